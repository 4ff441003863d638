"""Humanoid worlds: 1X v2.0 raw shards with the right sizes and dtypes; grasped objects are carried."""

from __future__ import annotations

import json

import mujoco
import numpy as np

from egoworld.cli import main
from egoworld.data.onex import check_onex
from egoworld.worlds import humanoid
from egoworld.worlds.geometry import quat_to_mat, yaw_quat


def test_humanoid_shards(tmp_path):
    out = tmp_path / "onex"
    argv = ["worlds", "generate", "--task", "humanoid", "--out", str(out), "--episodes", "5", "--frames", "6"]
    assert main([*argv, "--size", "32", "--seed", "3", "--no-progress"]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["num_shards"] == 2 and meta["hz"] == 30 and meta["image_size"] == [32, 32]
    for shard, episodes in ((0, [0, 1, 2, 3]), (1, [4])):
        n = 6 * len(episodes)
        shard_meta = json.loads((out / f"metadata/metadata_{shard}.json").read_text())
        assert shard_meta["shard_num_frames"] == n
        states = np.fromfile(out / f"robot_states/states_{shard}.bin", dtype="<f4")
        assert states.size == n * 25 and np.isfinite(states).all()
        segments = np.fromfile(out / f"segment_indices/segment_idx_{shard}.bin", dtype="<i4")
        assert segments.tolist() == [e for e in episodes for _ in range(6)]
        assert (out / f"videos/video_{shard}.mp4").stat().st_size > 0
        # per-episode ground truth with the nav/tabletop schema
        assert [g["episode"] for g in shard_meta["ground_truth"]] == episodes
        for g in shard_meta["ground_truth"]:
            gt = out / g["path"]
            assert g["path"] == f"gt/shard_{shard}/episode_{g['episode']:05d}"
            assert segments[g["first_frame"] : g["first_frame"] + g["frames"]].tolist() == [g["episode"]] * 6
            assert np.load(gt / "depth.npy").shape == (6, 32, 32)
            assert np.load(gt / "rgb.npy").shape == (6, 32, 32, 3)
            assert np.load(gt / "object_poses.npy").shape[::2] == (6, 7)
            objects = json.loads((gt / "objects.json").read_text())
            assert objects["background"] == 0
            assert all(set(o) == {"name", "kind"} for o in objects["objects"].values())
            assert set(np.unique(np.load(gt / "instances.npy"))) - {0} <= {int(k) for k in objects["objects"]}
            assert np.asarray(json.loads((gt / "cameras.json").read_text())["cam_to_world"]).shape == (
                6,
                4,
                4,
            )
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
    assert r["states"][:, 23].max() > 0.1  # drives forward to the table: positive forward velocity


def test_forward_velocity_is_signed_along_the_heading():
    yaw = np.full(4, np.pi / 2)  # facing world +y
    back = np.array([[0.0, 0.0], [0.0, -0.1], [0.0, -0.2], [0.05, -0.2]])  # reverse, then sideways
    forward, turn = humanoid.base_velocity(back, yaw, hz=10)
    np.testing.assert_allclose(forward, [0.0, -1.0, -1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(turn, 0.0)
    fwd, turn = humanoid.base_velocity(np.zeros((3, 2)), np.array([3.1, -3.1, -3.0]), hz=1)
    np.testing.assert_allclose(turn, [0.0, 2 * np.pi - 6.2, 0.1], atol=1e-9)  # wrapped across ±pi


def test_held_object_keeps_its_orientation_in_the_hand():
    ep = humanoid.Episode(0, 0, 16, 16)
    kin, hand = humanoid.Kinematics(ep.model), ep.model.body(ep.world.extras["hands"][ep.side == "right"]).id
    data = mujoco.MjData(ep.model)
    rel = []  # hand-to-object rotation per frame
    for t, f in enumerate(ep):
        data.mocap_pos[0], data.mocap_quat[0] = (*ep.base[t], 0.0), yaw_quat(ep.yaw[t])
        kin.set(data, ep.joints[t], ep.closure[t])
        mujoco.mj_kinematics(ep.model, data)
        rel.append(data.xmat[hand].reshape(3, 3).T @ quat_to_mat(f["object_poses"][ep.grasped, 3:]))
    assert ep.held
    held = np.flatnonzero(ep.closure.max(axis=1) > 0.99)
    np.testing.assert_allclose(
        np.take(rel, held, axis=0), np.broadcast_to(rel[held[0]], (len(held), 3, 3)), atol=1e-6
    )
