"""Tabletop worlds: keypoints land on the rendered effector, grasped objects move, files on disk."""

from __future__ import annotations

import numpy as np
import pytest

from egoworld.cli import main
from egoworld.worlds import hands, tabletop


@pytest.mark.parametrize("effector", ["hand", "gripper"])
def test_projected_keypoints_land_on_the_effector(effector):
    r = tabletop.run_episode(None, seed=1, index=0, frames=10, size=64, effector=effector)
    T, K = 10, len(hands.keypoint_sites(effector))
    assert r["keypoints_3d"].shape == (T, K, 3) and r["keypoints_2d"].shape == (T, K, 2)
    uv = np.rint(r["keypoints_2d"]).astype(int)
    inside = (uv >= 0).all(-1) & (uv < 64).all(-1)
    assert inside.mean() > 0.9
    t, k = np.nonzero(inside)
    ids = r["instances"][t, uv[t, k, 1], uv[t, k, 0]]
    assert (ids == r["effector_id"]).mean() > 0.6
    # each keypoint shows the effector within one pixel (fingers are thin at 64 px), or something
    # nearer to the camera hides it
    pad_ids = np.pad(r["instances"], ((0, 0), (1, 1), (1, 1)))
    near = np.stack([pad_ids[t, uv[t, k, 1] + dv, uv[t, k, 0] + du] for dv in range(3) for du in range(3)])
    depth = r["depth"][t, uv[t, k, 1], uv[t, k, 0]]
    hidden = depth < r["keypoints_depth"][t, k] - 0.005
    assert ((near == r["effector_id"]).any(0) | hidden).all()
    assert r["objects"][str(r["effector_id"])] == {"name": effector, "kind": "agent"}


def test_grasped_object_moves_and_others_stay():
    r = tabletop.run_episode(None, seed=2, index=0, frames=16, size=32)
    poses = r["object_poses"]  # [T, M, 7]
    moved = np.linalg.norm(poses[-1, :, :3] - poses[0, :, :3], axis=-1)
    k = r["grasped"]
    assert moved[k] > 0.02 and np.delete(moved, k).max(initial=0) < 1e-9
    assert poses[:, k, 2].max() > poses[0, k, 2] + 0.05  # lifted while carried


def test_tabletop_cli_layout(tmp_path):
    out = tmp_path / "tt"
    argv = ["worlds", "generate", "--task", "tabletop", "--out", str(out), "--episodes", "1", "--frames", "4"]
    assert main([*argv, "--size", "32", "--no-progress"]) == 0
    ep = out / "episode_00000"
    assert sorted(p.name for p in (ep / "frames").iterdir()) == [f"{t:05d}.png" for t in range(4)]
    assert np.load(ep / "keypoints_3d.npy").shape == (4, 21, 3)
    assert np.load(ep / "keypoints_2d.npy").dtype == np.float32
    assert np.load(ep / "gt/depth.npy").shape == (4, 32, 32)
    assert (ep / "gt/cameras.json").exists() and (ep / "gt/objects.json").exists()
