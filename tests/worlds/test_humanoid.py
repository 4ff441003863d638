"""Humanoid worlds: 1X v2.0 raw shards with the right sizes and dtypes; grasped objects are carried."""

from __future__ import annotations

import json

import numpy as np

from egoworld.cli import main
from egoworld.worlds import humanoid


def test_humanoid_shards(tmp_path):
    out = tmp_path / "onex"
    argv = ["worlds", "generate", "--task", "humanoid", "--out", str(out), "--episodes", "5", "--frames", "6"]
    assert main([*argv, "--size", "32", "--seed", "3", "--no-progress"]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["num_shards"] == 2 and meta["hz"] == 30 and meta["image_size"] == [32, 32]
    for shard, episodes in ((0, [0, 1, 2, 3]), (1, [4])):
        n = 6 * len(episodes)
        assert json.loads((out / f"metadata/metadata_{shard}.json").read_text())["shard_num_frames"] == n
        states = np.fromfile(out / f"robot_states/states_{shard}.bin", dtype="<f4")
        assert states.size == n * 25 and np.isfinite(states).all()
        segments = np.fromfile(out / f"segment_indices/segment_idx_{shard}.bin", dtype="<i4")
        assert segments.tolist() == [e for e in episodes for _ in range(6)]
        assert (out / f"videos/video_{shard}.mp4").stat().st_size > 0
        assert np.load(out / f"gt/shard_{shard}/depth.npy").shape == (n, 32, 32)
    try:
        from egoworld.data.onex import check_onex
    except ImportError:  # the reader may not be installed alongside
        return
    assert check_onex(out, deep=True) == []


def test_grasped_object_follows_the_hand():
    r = humanoid.render_episode(0, 0, 20, 32)
    assert r["states"].shape == (20, 25) and r["states"].dtype == np.float32
    assert r["held"]
    poses = r["object_poses"][:, r["grasped"]]  # [T, 7]
    assert poses[-1, 2] - poses[0, 2] > 0.1  # lifted
    hand_id = next(int(i) for i, o in r["objects"].items() if o["name"] == f"{r['side']}_hand")
    assert (r["instances"] == hand_id).any()  # the grasping hand is in view
    assert r["states"][-1, 21 if r["side"] == "left" else 22] == 1.0  # closed
