"""Tabletop worlds: keypoints land on the rendered effector, grasped objects move, files on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from egoworld.cli import main
from egoworld.worlds import hands, tabletop
from egoworld.worlds.geometry import quat_angle, quat_to_mat


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


@pytest.mark.parametrize("seed", [2, 5])
def test_no_orientation_jump_when_grasped(seed):
    # the object keeps its orientation relative to the wrist from the grasp on: between two frames
    # it turns no more than the wrist does (it used to snap to the wrist's yaw at the grasp frame)
    r = tabletop.run_episode(None, seed=seed, index=0, frames=24, size=16)
    q_obj = r["object_poses"][:, r["grasped"], 3:]  # [T, 4]
    q_wrist = r["effector"][:, 3:7]
    turn_obj, turn_wrist = quat_angle(q_obj[1:], q_obj[:-1]), quat_angle(q_wrist[1:], q_wrist[:-1])
    assert (turn_obj <= turn_wrist + 1e-6).all(), np.degrees(turn_obj - turn_wrist).max()
    grasp = int(np.argmax(r["effector"][:, 7] > 0.6))
    assert quat_angle(q_obj[grasp], q_obj[grasp - 1]) < 1e-6  # no jump at the grasp frame itself
    # while held, q_wrist^-1 q_obj is constant
    held = np.flatnonzero(r["effector"][:, 7] > 0.6)
    rel = [quat_to_mat(q_wrist[t]).T @ quat_to_mat(q_obj[t]) for t in held]
    np.testing.assert_allclose(rel, np.broadcast_to(rel[0], np.shape(rel)), atol=1e-5)


def test_keypoints_behind_the_camera_are_not_visible():
    depth, inst = np.full((16, 16), 5.0, np.float32), np.zeros((16, 16), np.int32)
    uv = np.array([[8.0, 8.0], [8.0, 8.0], [30.0, 8.0]])
    z = np.array([1.0, -1.0, 1.0])  # in front; behind (its projection lands mirrored in the image); outside
    assert tabletop.keypoints_visible(uv, z, depth, inst, effector_id=7).tolist() == [True, False, False]
    inst[8, 8] = 7
    assert tabletop.keypoints_visible(uv, z, depth, inst, effector_id=7).tolist() == [True, False, False]
    depth[8, 8] = 0.5  # something nearer hides the keypoint unless it is the effector itself
    assert tabletop.keypoints_visible(uv, z, depth, np.zeros_like(inst), 7).tolist() == [False, False, False]
    nan = tabletop.keypoints_visible(np.full((1, 2), np.nan), np.zeros(1), depth, inst, 7)
    assert nan.tolist() == [False]


def test_gripper_keypoints_follow_the_exported_convention(tmp_path):
    out = tmp_path / "g"
    argv = ["worlds", "generate", "--task", "tabletop", "--out", str(out), "--episodes", "1", "--frames", "6"]
    assert main([*argv, "--size", "16", "--effector", "gripper", "--no-progress"]) == 0
    ep = out / "episode_00000"
    conv = json.loads((ep / "effector.json").read_text())
    assert conv == json.loads((out / "egoworld_world.json").read_text())["effector_convention"]
    g = conv["gripper"]
    kp, eff = np.load(ep / "keypoints_3d.npy"), np.load(ep / "effector.npy")  # [T,3,3], [T,8]
    for t in range(len(kp)):
        R = quat_to_mat(eff[t, 3:7])
        local = (kp[t] - eff[t, :3]) @ R  # keypoints in the effector frame
        half = hands.gripper_opening(eff[t, 7]) / 2
        want = [
            [0, 0, 0],
            [g["tip_distance_from_wrist_m"], half, 0],
            [g["tip_distance_from_wrist_m"], -half, 0],
        ]
        np.testing.assert_allclose(local, want, atol=1e-5)
    assert g["opening_m"] == pytest.approx({"open": 0.1, "closed": 0.036})
    # the sim side's frame (z along the fingers, y from the thumb-side to the index-side tip)
    P = np.array(g["to_sim_frame"]["R_sim = R_effector @"], float)
    R_sim = quat_to_mat(eff[0, 3:7]) @ P
    assert np.linalg.det(P) == pytest.approx(1.0)
    tips = kp[0, 1:].mean(0) - kp[0, 0]
    np.testing.assert_allclose(R_sim[:, 2], tips / np.linalg.norm(tips), atol=1e-5)
    across = kp[0, 2] - kp[0, 1]
    np.testing.assert_allclose(R_sim[:, 1], across / np.linalg.norm(across), atol=1e-5)


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
    # streamed to disk frame by frame = rendered in memory
    r = tabletop.run_episode(None, seed=0, index=0, frames=4, size=32)
    np.testing.assert_array_equal(np.load(ep / "gt/depth.npy"), r["depth"])
    np.testing.assert_array_equal(np.load(ep / "gt/instances.npy"), r["instances"])
    np.testing.assert_array_equal(np.load(ep / "keypoints_visible.npy"), r["keypoints_visible"])
    cams = json.loads((ep / "gt/cameras.json").read_text())
    np.testing.assert_allclose(cams["cam_to_world"], r["cam_to_world"])
    objects = json.loads((ep / "gt/objects.json").read_text())
    assert objects == {"background": 0, "objects": r["objects"]}


def _unseen_in_first_frame(r: dict, k: int, tolerance: float = 0.03) -> float:
    """Share of frame k's pixels whose 3-D point (ground-truth depth + pose) frame 0 does not see:
    it projects outside frame 0, behind its camera, or behind what frame 0 shows there."""
    from egoworld.sim.camera import backproject
    from egoworld.worlds.render import project

    depth, K, poses = r["depth"], r["K"], r["cam_to_world"]
    H, W = depth.shape[1:]
    valid = depth[k] > 0
    pts = backproject(depth[k], K)[valid] @ poses[k][:3, :3].T + poses[k][:3, 3]  # [N, 3] world
    uvz = project(pts, K, poses[0])
    px = np.rint(uvz[:, :2]).astype(int)
    inside = (uvz[:, 2] > 0) & (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
    seen = np.zeros(len(pts), bool)
    u, v = px[inside, 0], px[inside, 1]
    seen[inside] = uvz[inside, 2] < depth[0][v, u] + tolerance
    return float(1.0 - seen.mean())


def test_orbit_camera_reveals_what_frame_0_does_not_see(tmp_path):
    still = tabletop.run_episode(None, seed=3, index=0, frames=17, size=32)
    orbit = tabletop.run_episode(None, seed=3, index=0, frames=17, size=32, camera="orbit")
    unseen_still = [_unseen_in_first_frame(still, k) for k in range(17)]
    unseen_orbit = [_unseen_in_first_frame(orbit, k) for k in range(17)]
    assert unseen_orbit[0] < 0.02 and unseen_still[0] < 0.02  # the check itself: frame 0 sees itself
    assert max(unseen_still) < 0.15, unseen_still
    assert max(unseen_orbit) > 0.5, unseen_orbit
    # it looks away and back: the last frame sees the table again, mostly from a new side
    travel = np.linalg.norm(orbit["cam_to_world"][-1, :3, 3] - orbit["cam_to_world"][0, :3, 3])
    assert travel > 0.5 and (orbit["instances"][-1] == orbit["effector_id"]).any()
    # the default camera is the still one, and the orbit one changes only the head path
    np.testing.assert_array_equal(
        tabletop.run_episode(None, seed=3, index=0, frames=17, size=32, camera="still")["rgb"], still["rgb"]
    )
    np.testing.assert_array_equal(orbit["effector"], still["effector"])
    # CLI: --camera orbit is a task option, recorded in the dataset description
    out = tmp_path / "o"
    argv = ["worlds", "generate", "--task", "tabletop", "--out", str(out), "--episodes", "1", "--frames", "4"]
    assert main([*argv, "--size", "16", "--camera", "orbit", "--no-progress"]) == 0
    assert json.loads((out / "egoworld_world.json").read_text())["options"] == {"camera": "orbit"}
    with pytest.raises(ValueError, match="camera"):
        tabletop.validate_options({"camera": "drone"})
