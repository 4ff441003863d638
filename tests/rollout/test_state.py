"""Models with a state (Eq. 6): each chunk starts from its own state; `egoworld rollout --state`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egoworld.cli import main
from egoworld.world_model import WorldModel

from .conftest import tiny_config


@pytest.fixture(scope="module")
def state_model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("state") / "wm"
    WorldModel.build(tiny_config(action_dim=3, state_dim=3, num_frames=3)).save_pretrained(folder)
    return folder


def test_each_chunk_is_conditioned_on_the_state_its_actions_lead_to(state_model_dir):
    model = WorldModel.from_pretrained(state_model_dir)
    seen = []
    hook = model.denoiser.action_encoder.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs.get("state", args[1] if len(args) > 1 else None)),
        with_kwargs=True,
    )
    actions = np.array(
        [[0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 2, 0], [0, 2, 0]], np.float32
    )  # 2 chunks of 2 steps
    model.rollout(
        np.zeros((32, 32, 3), np.uint8), actions, np.array([10.0, 0, 0], np.float32), num_inference_steps=1
    )
    hook.remove()
    starts = [s[0].tolist() for s in seen if s is not None]
    assert starts[0] == [10.0, 0.0, 0.0] and starts[-1] == [
        12.0,
        0.0,
        0.0,
    ]  # 10 + the first chunk's two steps


def test_rollout_cli_state(state_model_dir, tmp_path, capsys):
    np.save(tmp_path / "actions.npy", np.zeros((5, 3), np.float32))
    np.save(tmp_path / "state.npy", np.zeros(3, np.float32))
    np.save(tmp_path / "state4.npy", np.zeros(4, np.float32))
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "img.png")
    base = ["rollout", "--model", str(state_model_dir), "--image", str(tmp_path / "img.png"), "--actions",
            str(tmp_path / "actions.npy"), "--steps", "1", "--no-progress"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "a.mp4")]) == 2
    assert "needs the start state: pass --state" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b.mp4"), "--state", str(tmp_path / "state4.npy")]) == 2
    assert "expected [3]" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "c.mp4"), "--state", str(tmp_path / "state.npy")]) == 0
    assert (tmp_path / "c.mp4").stat().st_size > 0
