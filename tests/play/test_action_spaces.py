"""Models that are not 3-DoF navigation: sliders for a humanoid, a plain message for the rest."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from egoworld.play.server import create_app
from tests.play.helpers import command, new_session, settled, status


def test_a_humanoid_model_is_driven_with_sliders(humanoid_engine):
    with TestClient(create_app(humanoid_engine)) as client:
        info = client.get("/api/info").json()
        c = info["controller"]
        assert c["kind"] == "sliders" and len(c["sliders"]) == 25 and len(c["state"]) == 25
        assert c["sliders"][3]["name"] == "Δ knee_pitch"
        sid = new_session(client)
        assert client.post(f"/api/sessions/{sid}/sample/painting-night").status_code == 200
        vector = np.linspace(-0.05, 0.05, 25).tolist()
        state = [0.0] * 21 + [1.0, 0.0, 0.5, 0.0]
        command(client, sid, type="act", vector=vector, state=state)
        command(client, sid, type="act", vector=vector)
        s = settled(client, sid, 3)
        assert s["path"] is None  # no minimap for this action space
        actions = np.asarray(client.get(f"/api/sessions/{sid}/walk_actions.json").json()["actions"])
        assert actions.shape == (3, 25) and np.allclose(actions[1], vector, atol=1e-6)
        r = client.post(f"/api/sessions/{sid}/command", json={"type": "act", "vector": [0.0] * 3})
        assert r.status_code == 400 and "expected [25]" in r.json()["detail"]
        r = client.post(f"/api/sessions/{sid}/command", json={"type": "act", "command": "forward"})
        assert r.status_code == 400 and "expected [25]" in r.json()["detail"]
        assert status(client, sid)["length"] == 3


def test_a_model_the_page_cannot_drive_says_so(engine, monkeypatch):
    from egoworld.play.controls import Controller

    blocked = Controller("none", 3, note="this model needs another controller")
    monkeypatch.setattr(engine, "controller", blocked)
    with TestClient(create_app(engine)) as client:
        assert client.get("/api/info").json()["controller"]["kind"] == "none"
        sid = new_session(client)
        client.post(f"/api/sessions/{sid}/sample/world-room")
        r = client.post(f"/api/sessions/{sid}/command", json={"type": "act", "command": "forward"})
        assert r.status_code == 400
        assert r.json()["detail"] == (
            "this model has no controller on the page: this model needs another controller"
        )
