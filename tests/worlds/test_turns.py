"""Walks that only turn in front of a picture: the homography's geometry against the pinhole model,
the walks' limits, and the dataset read back by the NWM reader as nav actions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import egoworld.world_model  # noqa: F401  (diffusers before MuJoCo's EGL: see internet_prior.py)
from egoworld.cli import main
from egoworld.worlds import nav, turns


def _dot_picture(side: int = 64) -> np.ndarray:
    """Grey, with a white dot at the centre (a point on the picture's optical axis)."""
    picture = np.full((side, side, 3), 60, np.uint8)
    c = side // 2
    picture[c - 1 : c + 1, c - 1 : c + 1] = 255
    return picture


@pytest.mark.parametrize("degrees", [-20.0, 0.0, 12.0, 25.0])
def test_a_turn_moves_a_point_where_the_pinhole_model_puts_it(degrees):
    # the dot is straight ahead of the picture's centre; the camera turned left by yaw sees it at
    # x = c + f tan(yaw) (turning left moves what is seen to the right), y = c
    size = 64
    frame = turns.view(_dot_picture(), np.deg2rad(degrees), size).astype(float).mean(-1)
    ys, xs = np.nonzero(frame > 0.5 * (frame.max() + 60))
    f = 0.5 * size / np.tan(np.deg2rad(nav.FOVY) / 2)
    assert xs.mean() == pytest.approx((size - 1) / 2 + f * np.tan(np.deg2rad(degrees)), abs=0.75)
    assert ys.mean() == pytest.approx((size - 1) / 2, abs=0.75)


def test_turning_right_is_the_mirror_image_of_turning_left():
    picture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    left = turns.view(picture, np.deg2rad(15), 32).astype(int)
    right_of_mirror = turns.view(picture[:, ::-1].copy(), np.deg2rad(-15), 32)[:, ::-1].astype(int)
    assert np.abs(left - right_of_mirror).max() <= 1


def test_walks_turn_at_the_nav_rates_inside_the_limits():
    for seed in range(20):
        yaw = turns.yaw_path(np.random.default_rng(seed), 40)
        steps = np.abs(np.diff(yaw))
        assert yaw[0] == 0 and np.abs(yaw).max() <= turns.MAX_YAW + 1e-12
        moving = steps[steps > 0]
        assert np.all((moving >= turns.TURN_RATE[0] - 1e-12) & (moving <= turns.TURN_RATE[1] + 1e-12))
    pauses = sum(np.sum(np.diff(turns.yaw_path(np.random.default_rng(s), 40)) == 0) for s in range(20))
    assert pauses > 0


def test_a_turns_dataset_reads_back_as_nav_walks(tmp_path):
    from egoworld.data.nwm import NWMDataset

    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(
            pictures / f"p{i}.png"
        )
    out = tmp_path / "turns"
    argv = ["worlds", "generate", "--task", "turns", "--textures", str(pictures), "--episodes", "3",
            "--frames", "12", "--size", "32", "--seed", "5", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert main(argv) == 0  # the same request again: unchanged
    data = NWMDataset(out, split=None, context=1, horizon=11, resolution=32, output="clip")
    assert data.dataset_name == "egoworld_turns" and data.spacing == nav.SPACING and len(data) == 3
    for i, traj in enumerate(data.trajectories):  # one window of 12 frames per walk
        stored = np.load(out / traj["name"] / "gt" / "actions.npy")
        assert np.all(stored[:, :2] == 0) and np.allclose(np.diff(traj["yaw"]), stored[1:, 2], atol=1e-6)
        assert np.allclose(data[i].actions, stored, atol=1e-6)  # what the reader feeds a model
    assert main(["data", "check", str(out)]) == 0
