"""Navigation and passive worlds: determinism, geometry of depth/masks/poses, actions, CLI."""

from __future__ import annotations

import hashlib
import json
import logging

import mujoco  # MUJOCO_GL is set by tests/worlds/conftest.py
import numpy as np
import pytest
from PIL import Image

from egoworld.actions.spaces import nav_deltas
from egoworld.cli import main
from egoworld.data.safe_pickle import safe_load
from egoworld.worlds import nav, passive, scene
from egoworld.worlds.geometry import quat_to_mat, rigid_inverse, yaw_quat
from egoworld.worlds.render import FrameRenderer, project


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _walk(seed: int, size: int = 32, frames: int = 4) -> dict:
    world, model, traj = nav.plan_episode(seed, 0, frames, size)
    return nav.render_walk(world, model, traj, size, nav.CAMERA_HEIGHT)


def test_same_seed_same_frames_other_seed_differs():
    a, b, c = _walk(3), _walk(3), _walk(4)
    for key in ("rgb", "depth", "instances"):
        assert _digest(a[key]) == _digest(b[key])
    assert _digest(a["rgb"]) != _digest(c["rgb"])


def test_known_box_has_its_depth_and_id():
    rng = np.random.default_rng(0)
    b = scene.SceneBuilder(rng, None, 48, 48)
    floor = b.static("floor", [scene.box((20, 20, 0.05), (0, 0, -0.05), rgba=(0.5, 0.5, 0.5, 1))])
    target = b.static("target", [scene.box((0.5, 0.5, 0.5), rgba=(1, 0, 0, 1))], pos=(3.0, 0.0, 1.2))
    b.raw(nav.agent_xml(1.2))
    model = b.build((-1, 1, -1, 1)).compile()
    data = mujoco.MjData(model)
    data.mocap_pos[0] = (0, 0, 1.2)
    data.mocap_quat[0] = yaw_quat(0.0)
    mujoco.mj_forward(model, data)
    with FrameRenderer(model, 48, 48, "ego") as cam:
        frame, pose, K = cam.render(data), cam.pose(data), cam.K
    centre = frame.depth[22:26, 22:26]
    np.testing.assert_allclose(centre, 2.5, atol=2e-3)  # front face 3.0 - 0.5 m ahead
    assert (frame.instances[22:26, 22:26] == target).all()
    assert frame.instances[-1, 24] == floor and frame.instances[0, 24] == 0 and frame.depth[0, 24] == 0
    # the box's front corners project onto the edges of its mask
    uvz = project(np.array([[2.5, 0.5, 1.7], [2.5, -0.5, 0.7]]), K, pose)
    np.testing.assert_allclose(uvz[:, 2], 2.5)
    cols = np.flatnonzero((frame.instances == target).any(axis=0))
    assert abs(cols.min() - uvz[0, 0]) <= 1.0 and abs(cols.max() - uvz[1, 0]) <= 1.0
    # OpenCV pose: camera at the agent, z forward along world +x, y down
    np.testing.assert_allclose(pose[:3, 3], (0, 0, 1.2), atol=1e-9)
    np.testing.assert_allclose(pose[:3, 2], (1, 0, 0), atol=1e-9)
    np.testing.assert_allclose(pose[:3, 1], (0, 0, -1), atol=1e-9)


def test_episode_rng_separates_anagram_tasks():
    a, b = nav.episode_rng(0, 0, "nav"), nav.episode_rng(0, 0, "anv")  # equal sums of ord()
    assert a.integers(2**62) != b.integers(2**62)
    assert nav.episode_rng(0, 0, "nav").integers(2**62) == nav.episode_rng(0, 0, "nav").integers(2**62)


def test_rigid_inverse_and_projection_of_points_behind():
    rng = np.random.default_rng(0)
    q = rng.normal(size=4)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = quat_to_mat(q), rng.normal(size=3)
    np.testing.assert_allclose(rigid_inverse(T) @ T, np.eye(4), atol=1e-12)
    K = np.array([[10.0, 0, 7.5], [0, 10.0, 7.5], [0, 0, 1]])
    uvz = project(np.array([[0.0, 0.0, 2.0], [0.0, 0.0, -2.0]]), K, np.eye(4))
    np.testing.assert_allclose(uvz[:, 2], (2.0, -2.0))  # depth keeps its sign behind the camera


@pytest.mark.parametrize("trajectory", ["random", "explore", "square", "look"])
def test_written_poses_give_commanded_actions(tmp_path, trajectory):
    out = tmp_path / "nav"
    args = ["worlds", "generate", "--task", "nav", "--out", str(out), "--episodes", "2", "--frames", "40"]
    assert main([*args, "--size", "16", "--seed", "5", "--trajectory", trajectory, "--no-progress"]) == 0
    meta = json.loads((out / "egoworld_world.json").read_text())
    spacing = meta["metric_waypoint_spacing"]
    for i in range(2):
        folder = out / nav.episode_name(i)
        traj = safe_load(folder / "traj_data.pkl")  # the project's restricted unpickler
        assert type(traj) is dict and set(traj) == {"position", "yaw"}
        assert traj["position"].shape == (40, 2) and traj["yaw"].shape == (40,)
        assert traj["position"].dtype == np.float64
        _, _, planned = nav.plan_episode(5, i, 40, 16, trajectory=trajectory)
        commanded = nav.commanded_actions(planned, spacing)  # [T, 3], row 0 = 0 (clip convention)
        assert commanded.shape == (40, 3) and not commanded[0].any()
        # the reader's formula (egoworld.actions.spaces, not the writer's) recovers the commanded steps
        np.testing.assert_allclose(
            nav_deltas(traj["position"], traj["yaw"], spacing), commanded[1:], atol=1e-5
        )
        assert np.abs(commanded).max() > 0.1
        if trajectory == "look":  # turning in place only, 2-10 degrees per frame
            assert not commanded[:, :2].any() and np.ptp(traj["position"], axis=0).max() == 0
            assert np.all((np.abs(commanded[1:, 2]) >= 0.035) & (np.abs(commanded[1:, 2]) <= 0.175))
        saved = np.load(folder / "gt/actions.npy")
        assert saved.shape == (40, 3) and saved.dtype == np.float32
        np.testing.assert_allclose(saved, commanded, atol=1e-6)
        assert sorted(p.name for p in folder.glob("*.jpg")) == sorted(f"{t}.jpg" for t in range(40))
        depth, inst = np.load(folder / "gt/depth.npy"), np.load(folder / "gt/instances.npy")
        assert depth.shape == inst.shape == (40, 16, 16) and depth.dtype == np.float32
        lossless = np.load(folder / "gt/rgb.npy")
        assert lossless.shape == (40, 16, 16, 3) and lossless.dtype == np.uint8
        jpg = np.asarray(Image.open(folder / "7.jpg"))
        assert np.abs(jpg.astype(int) - lossless[7]).mean() < 12  # the JPEG is a lossy copy of it
        cams = json.loads((folder / "gt/cameras.json").read_text())
        assert np.asarray(cams["cam_to_world"]).shape == (40, 4, 4) and np.asarray(cams["K"]).shape == (3, 3)
        np.testing.assert_allclose(np.asarray(cams["cam_to_world"])[:, :2, 3], traj["position"], atol=1e-9)
        objects = json.loads((folder / "gt/objects.json").read_text())["objects"]
        assert set(np.unique(inst)) - {0} <= {int(k) for k in objects}
    train = (out / "data_splits/egoworld_nav/train/traj_names.txt").read_text().split()
    test = (out / "data_splits/egoworld_nav/test/traj_names.txt").read_text().split()
    assert train == ["traj_00000"] and test == ["traj_00001"]


def test_one_episode_warns_that_train_is_test(tmp_path, caplog):
    out = tmp_path / "nav"
    args = ["worlds", "generate", "--task", "nav", "--out", str(out), "--episodes", "1", "--frames", "2"]
    with caplog.at_level(logging.WARNING, logger="egoworld.worlds.nav"):
        assert main([*args, "--size", "16", "--no-progress"]) == 0
    assert any("not held out" in r.getMessage() for r in caplog.records)
    for split in ("train", "test"):
        assert (out / f"data_splits/egoworld_nav/{split}/traj_names.txt").read_text().split() == [
            "traj_00000"
        ]


def test_parallel_equals_serial_and_rerun_is_noop(tmp_path, capsys):
    common = ["worlds", "generate", "--task", "passive", "--episodes", "2", "--frames", "6", "--size", "16"]
    assert main([*common, "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--workers", "2", "--no-progress"]) == 0
    for name in ("video_00000.mp4", "video_00001.mp4"):
        a = (tmp_path / "a/videos" / name).read_bytes()
        assert a == (tmp_path / "b/videos" / name).read_bytes() and len(a) > 100
    frames = passive.render_episode(0, 1, 6, 16)["rgb"]
    assert frames.shape == (6, 16, 16, 3) and frames.dtype == np.uint8
    before = (tmp_path / "a/egoworld_world.json").stat().st_mtime_ns
    assert main([*common, "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    assert "already holds" in capsys.readouterr().out
    assert (tmp_path / "a/egoworld_world.json").stat().st_mtime_ns == before
