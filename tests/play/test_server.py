"""The play server without a browser: sessions, uploads, model folders, merged presses, undo, downloads."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
from PIL import Image

from egoworld.cli import main
from egoworld.errors import EgoworldError
from tests.play.helpers import command, new_session, settled, status, wait_until


def upload(client, sid, path, name="painting.png"):
    return client.post(f"/api/sessions/{sid}/image?name={name}", content=path.read_bytes())


def receive_until(ws, kind: str, limit: int = 200) -> dict:
    """Read messages until one of type `kind` (messages arrive in order; `limit` guards a stuck test)."""
    for _ in range(limit):
        msg = ws.receive_json()
        if msg["type"] == kind:
            return msg
        assert msg["type"] != "error", msg
    raise AssertionError(f"no {kind!r} message in {limit} messages")


# sessions and the page ------------------------------------------------------------------------


def test_page_info_and_samples(client, engine):
    page = client.get("/")
    assert page.status_code == 200 and "play.js" in page.text
    assert client.get("/static/play.js").status_code == 200
    info = client.get("/api/info").json()
    assert info["model"]["chunk"] == 3 and info["model"]["steps"] == 2
    assert info["controller"]["kind"] == "keys"
    kinds = {s["kind"] for s in info["samples"]}
    assert kinds == {"world", "painting"} and len(info["samples"]) >= 6
    name = info["samples"][0]["name"]
    png = client.get(f"/samples/{name}.png")
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (128, 128)
    sid = new_session(client)
    r = client.post(f"/api/sessions/{sid}/sample/{name}")
    assert r.status_code == 200 and r.json()["frame"].startswith("data:image/png;base64,")
    assert status(client, sid)["length"] == 1
    assert client.post(f"/api/sessions/{sid}/sample/nope").status_code == 404


def test_each_page_gets_its_own_session(client, picture):
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
        hello_a, hello_b = a.receive_json(), b.receive_json()
        assert hello_a["type"] == hello_b["type"] == "hello"
        sid_a, sid_b = hello_a["session"], hello_b["session"]
        assert sid_a != sid_b
        assert upload(client, sid_a, picture).status_code == 200
        walk = receive_until(a, "walk")
        assert walk["length"] == 1 and walk["image"] == "painting.png"
        a.send_json({"type": "act", "command": "turn_left"})
        frames = receive_until(a, "frames")
        assert frames["first"] == 1 and len(frames["frames"]) == 1
        assert frames["frames"][0] != walk["frames"][0]
        settled(client, sid_a, 2)
        other = status(client, sid_b)
        assert other["length"] == 0 and other["chunks"] == 0 and other["path"] is None
        # B cannot act before it has a start image; A is unaffected by B's message
        b.send_json({"type": "act", "command": "forward"})
        assert receive_until(b, "notice")["message"] == "pick a start image first"
        assert status(client, sid_a)["length"] == 2
    # a page that reconnects with its session id gets its walk back
    with client.websocket_connect(f"/ws?session={sid_a}") as again:
        assert again.receive_json()["session"] == sid_a
        assert receive_until(again, "walk")["length"] == 2


def test_unknown_sessions_and_messages(client):
    assert client.get("/api/sessions/nope").status_code == 404
    assert "reload the page" in client.get("/api/sessions/nope").json()["detail"]
    sid = new_session(client)
    r = client.post(f"/api/sessions/{sid}/command", json={"type": "jump"})
    assert r.status_code == 400 and "unknown message type 'jump'" in r.json()["detail"]
    with client.websocket_connect(f"/ws?session={sid}") as ws:
        ws.send_text("not json")
        assert receive_until_error(ws).startswith("Expecting value")
        ws.send_json({"type": "act", "command": "fly"})
        assert receive_until_error(ws).startswith("unknown command 'fly'; expected one of ['forward'")


def receive_until_error(ws) -> str:
    for _ in range(50):
        msg = ws.receive_json()
        if msg["type"] == "error":
            return msg["message"]
    raise AssertionError("no error message")


def test_other_sites_are_refused(client, picture):
    sid = new_session(client)
    r = client.post(
        f"/api/sessions/{sid}/image", content=picture.read_bytes(), headers={"Origin": "http://evil.example"}
    )
    assert r.status_code == 403
    ok = client.post(
        f"/api/sessions/{sid}/image", content=picture.read_bytes(), headers={"Origin": "http://testserver"}
    )
    assert ok.status_code == 200


# bad input ------------------------------------------------------------------------------------


def test_bad_uploads_get_a_clear_message_and_the_server_stays_up(make_client, picture, tmp_path):
    client = make_client(max_upload_bytes=20_000, max_pixels=5_000)
    sid = new_session(client)
    r = client.post(f"/api/sessions/{sid}/image?name=notes.txt", content=b"this is not an image")
    assert r.status_code == 400
    assert r.json()["detail"].startswith("notes.txt: not an image")
    r = client.post(f"/api/sessions/{sid}/image?name=empty.png", content=b"")
    assert r.status_code == 400 and "empty" in r.json()["detail"]
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(big)
    r = upload(client, sid, big, name="big.png")
    assert r.status_code == 413 and "at most 0.02 MB" in r.json()["detail"]
    wide = tmp_path / "wide.png"
    Image.new("RGB", (100, 80), "white").save(wide)  # 8000 px > 5000
    r = upload(client, sid, wide, name="wide.png")
    assert r.json()["detail"] == "wide.png: 100x80 px (0.008 megapixels); expected at most 0.005 megapixels"
    small = tmp_path / "small.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 50, 3), dtype=np.uint8)).save(small)
    r = client.post(f"/api/sessions/{sid}/image?name=cut.png", content=small.read_bytes()[:300])
    assert r.status_code == 400 and r.json()["detail"].startswith("cut.png: cannot decode")
    assert status(client, sid)["length"] == 0  # nothing was half-set
    assert upload(client, sid, small).status_code == 200  # still serving
    assert status(client, sid)["length"] == 1


def test_model_folders_that_are_not_world_models(tmp_path, nav_model_dir, capsys):
    from egoworld.play.engine import load_engine

    with pytest.raises(FileNotFoundError, match="folder not found"):
        load_engine(tmp_path / "missing")
    with pytest.raises(EgoworldError, match="is not a world model: it has no egoworld_world_model.json"):
        load_engine(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "egoworld_world_model.json").write_text("{not json")
    with pytest.raises(EgoworldError, match="incomplete or unreadable world-model folder"):
        load_engine(broken)
    with pytest.raises(ValueError, match="--steps 0"):
        load_engine(nav_model_dir, steps=0)
    assert main(["play", "--model", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("egoworld play: error: --model") and "not a world model" in err[0]
    )


def test_a_port_in_use_is_one_clear_error():
    from egoworld.play.server import bind_socket, url_of

    sock = bind_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert url_of(sock) == f"http://127.0.0.1:{port}/"
        with pytest.raises(EgoworldError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind_socket("127.0.0.1", port)
    finally:
        sock.close()
    with pytest.raises(ValueError, match="--port 70000"):
        bind_socket("127.0.0.1", 70000)


def test_a_failing_model_is_reported_and_the_next_chunk_works(client, picture, engine, monkeypatch, caplog):
    sid = new_session(client)
    upload(client, sid, picture)
    real = engine.generate
    monkeypatch.setattr(
        engine, "generate", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("out of memory"))
    )
    with caplog.at_level(logging.ERROR, logger="egoworld.play.server"):
        with client.websocket_connect(f"/ws?session={sid}") as ws:
            ws.send_json({"type": "act", "command": "forward"})
            assert receive_until_error(ws) == "the model failed: out of memory"
    assert any(
        "the model failed on a chunk (RuntimeError: out of memory)" in r.message for r in caplog.records
    )
    monkeypatch.setattr(engine, "generate", real)
    command(client, sid, type="act", command="forward")
    assert settled(client, sid, 2)["chunks"] == 1


# the model queue ------------------------------------------------------------------------------


def test_presses_while_busy_merge_into_the_next_chunk(client, picture, gate):
    sid, other = new_session(client), new_session(client)
    upload(client, sid, picture)
    upload(client, other, picture)
    command(client, sid, type="act", command="forward")
    wait_until(lambda: gate.started == 1, what="the first chunk to start")
    for _ in range(10):  # the model is busy: these queue up to one chunk, the rest are merged away
        command(client, sid, type="act", command="turn_left")
    s = status(client, sid)
    assert s["busy"] and s["pending"] == 3 and s["dropped"] == 7
    assert len(s["path"]) == 1 + 1 + 3  # start, the chunk being made, the queued presses
    # the event loop stays responsive and the other page queues behind the shared model
    assert client.get("/api/info").status_code == 200
    command(client, other, type="act", command="forward")
    assert status(client, other)["busy"] and gate.started == 1  # its chunk waits for the model thread
    gate.release()
    s = settled(client, sid, 1 + 1 + 3)
    assert s["chunks"] == 2 and s["dropped"] == 7
    assert status(client, sid)["labels"] == ["forward"] + ["turn_left"] * 3
    assert settled(client, other, 2)["chunks"] == 1


def test_undo_and_reset(client, picture, gate):
    sid = new_session(client)
    upload(client, sid, picture)
    gate.release()
    command(client, sid, type="act", command="forward")
    settled(client, sid, 2)
    for _ in range(2):
        command(client, sid, type="act", command="turn_right")
    settled(client, sid, 4)  # the second press merged into the chunk of the first, or came in its own
    chunks = status(client, sid)["chunks"]
    reply = command(client, sid, type="undo")
    assert reply["message"].startswith("undid the last chunk")
    assert reply["status"]["chunks"] == chunks - 1 and reply["status"]["length"] < 4
    while status(client, sid)["chunks"]:
        command(client, sid, type="undo")
    assert status(client, sid)["length"] == 1
    assert command(client, sid, type="undo")["message"] == "nothing to undo"
    command(client, sid, type="act", command="forward")
    command(client, sid, type="act", command="forward")
    settled(client, sid, 3)
    reply = command(client, sid, type="reset")
    assert reply["status"]["length"] == 1 and reply["status"]["chunks"] == 0


def test_undo_drops_the_chunk_being_made(client, picture, gate):
    sid = new_session(client)
    upload(client, sid, picture)
    command(client, sid, type="act", command="forward")
    wait_until(lambda: gate.started == 1, what="the chunk to start")
    command(client, sid, type="act", command="forward")
    reply = command(client, sid, type="undo")
    assert reply["message"] == "dropped the chunk being generated and the queued presses"
    gate.release()
    s = settled(client, sid, 1)
    assert s["chunks"] == 0 and s["pending"] == 0


def test_same_presses_after_undo_give_the_same_frames(client, picture):
    sid = new_session(client)
    upload(client, sid, picture)
    with client.websocket_connect(f"/ws?session={sid}") as ws:
        ws.send_json({"type": "act", "command": "strafe_left"})
        first = receive_until(ws, "frames")["frames"]
        settled(client, sid, 2)
        ws.send_json({"type": "undo"})
        assert receive_until(ws, "walk")["length"] == 1
        ws.send_json({"type": "act", "command": "strafe_left"})
        assert receive_until(ws, "frames")["frames"] == first  # chunk k always samples with seed + k


def test_a_page_closed_mid_chunk_is_one_log_line(client, picture, gate, caplog):
    sid = new_session(client)
    upload(client, sid, picture)
    with caplog.at_level(logging.WARNING, logger="egoworld.play.server"):
        with client.websocket_connect(f"/ws?session={sid}") as ws:
            ws.receive_json()
            ws.send_json({"type": "act", "command": "forward"})
            wait_until(lambda: gate.started == 1, what="the chunk to start")
        gate.release()  # the page is gone when the chunk is done
        settled(client, sid, 2)
    lines = [r.getMessage() for r in caplog.records if "closed while a chunk" in r.getMessage()]
    assert len(lines) == 1 and sid in lines[0] and "\n" not in lines[0]
    assert new_session(client)  # the server stays up
    with client.websocket_connect(f"/ws?session={sid}") as again:  # and the frames were kept
        again.receive_json()
        assert receive_until(again, "walk")["length"] == 2


# downloads ------------------------------------------------------------------------------------


def test_downloads_mp4_gif_and_actions(client, picture, tmp_path, nav_model_dir):
    from egoworld.data.video import VideoReader
    from egoworld.rollout import load_actions
    from egoworld.world_model import WorldModel

    sid = new_session(client)
    assert client.get(f"/api/sessions/{sid}/walk.mp4").status_code == 409
    upload(client, sid, picture)
    for move in ("turn_left", "turn_left", "forward", "forward"):
        command(client, sid, type="act", command=move)
    settled(client, sid, 5)

    mp4 = client.get(f"/api/sessions/{sid}/walk.mp4")
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    assert "attachment" in mp4.headers["content-disposition"]
    (tmp_path / "walk.mp4").write_bytes(mp4.content)
    with VideoReader(tmp_path / "walk.mp4") as reader:
        assert len(reader) == 5
        assert reader.read([0]).shape == (1, 256, 256, 3)  # 32 px frames shown 8x by default
    native = client.get(f"/api/sessions/{sid}/walk.mp4?scale=1")
    (tmp_path / "native.mp4").write_bytes(native.content)
    with VideoReader(tmp_path / "native.mp4") as reader:
        assert reader.read([0]).shape == (1, 32, 32, 3)
    assert client.get(f"/api/sessions/{sid}/walk.mp4?scale=99").status_code == 400

    gif = client.get(f"/api/sessions/{sid}/walk.gif?scale=2")
    assert gif.headers["content-type"] == "image/gif"
    with Image.open(io.BytesIO(gif.content)) as img:
        assert img.n_frames == 5 and img.size == (64, 64)

    actions_file = client.get(f"/api/sessions/{sid}/walk_actions.json")
    data = actions_file.json()
    a = np.asarray(data["actions"])
    assert a.shape == (5, 3) and not a[0].any()
    assert a[1, 2] > 0 and a[3, 0] > 0  # turns left, then forward
    assert data["script"] == "turn_left 15deg x2; forward 0.25m x2"
    assert data["labels"] == ["start", "turn_left", "turn_left", "forward", "forward"]
    assert sum(c["frames"] for c in data["chunks"]) == 4
    path = tmp_path / "walk_actions.json"
    path.write_text(json.dumps(data))
    model = WorldModel.from_pretrained(nav_model_dir)
    assert np.array_equal(load_actions(path, model), a.astype(np.float32))  # `egoworld rollout` reads it
    assert np.allclose(load_actions(data["script"], model), a, atol=1e-6)
