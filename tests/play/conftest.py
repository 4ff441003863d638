"""Shared fixtures for `egoworld play`: a tiny saved navigation world model, its engine, a client, a gate."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from egoworld.actions.normalization import ActionNormalizer
from egoworld.world_model import WorldModel, WorldModelConfig

SPACING = 0.25


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The model thread runs chunks with one torch thread: several times faster on a busy 2-core CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def nav_model_dir(tmp_path_factory):
    """A saved tiny SVD world model (32x32, chunks of 3 new frames) with spacing=0.25, delta actions."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    normalizer = ActionNormalizer.fit(
        [rng.normal(size=(64, 3))], meta={"dataset": "recon", "spacing": SPACING, "action_mode": "delta"}
    )
    config = WorldModelConfig(
        family="svd", num_frames=4, height=32, width=32, hidden_dim=32, num_inference_steps=2
    )
    directory = tmp_path_factory.mktemp("models") / "tiny-nav"
    WorldModel.build(config, normalizer=normalizer).eval().save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def engine(nav_model_dir):
    from egoworld.play.engine import load_engine

    eng = load_engine(nav_model_dir, steps=2)
    yield eng
    eng.close()


@pytest.fixture
def make_client(engine):
    """make_client(**limits) -> a started TestClient on a fresh app over the shared engine."""
    from fastapi.testclient import TestClient

    from egoworld.play.server import create_app

    clients = []

    def make(**limits):
        client = TestClient(create_app(engine, **limits))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def gate(engine, monkeypatch):
    """Hold the model: chunks wait until `gate.release()`; `gate.started` counts chunks begun."""

    class Gate:
        def __init__(self):
            self.event = threading.Event()
            self.started = 0

        def release(self):
            self.event.set()

    g = Gate()
    real = engine.generate

    def held(*args, **kwargs):
        g.started += 1
        assert g.event.wait(60), "the test never released the model"
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "generate", held)
    yield g
    g.release()


@pytest.fixture(scope="session")
def picture(tmp_path_factory):
    """An odd-sized RGB PNG (painting-like stripes) to upload."""
    path = tmp_path_factory.mktemp("pictures") / "painting.png"
    y, x = np.mgrid[0:90, 0:130]
    img = np.stack([(x * 2) % 256, (y * 3) % 256, ((x + y) * 5) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture(scope="session")
def humanoid_engine():
    """A tiny 1X-style world model (25-D actions + 25-D robot state) in a PlayEngine, no folder."""
    from egoworld.play.engine import PlayEngine

    torch.manual_seed(0)
    normalizer = ActionNormalizer.fit([np.random.default_rng(0).normal(scale=0.05, size=(64, 25))])
    config = WorldModelConfig(
        family="svd", num_frames=3, height=32, width=32, hidden_dim=32, action_dim=25, state_dim=25
    )
    eng = PlayEngine(WorldModel.build(config, normalizer=normalizer).eval(), "tiny-humanoid", steps=1)
    yield eng
    eng.close()
