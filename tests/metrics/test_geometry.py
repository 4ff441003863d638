"""Depth ERR and Cam ERR: known answers, Sim(3) recovery through evo, and the pluggable estimators."""

import numpy as np
import pytest
from metrics_world import render
from scipy.spatial.transform import Rotation

from egoworld.metrics.geometry import (
    DepthAnythingEstimator,
    Open3DOdometry,
    camera_errors,
    depth_errors,
    disparity_to_depth,
    normalize_depth,
)
from tests.tiny_depth_anything import save_tiny_depth_anything


def _trajectory(t=12, seed=0):
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (t, 1, 1))
    poses[:, :3, :3] = Rotation.from_rotvec(rng.normal(scale=0.3, size=(t, 3))).as_matrix()
    poses[:, :3, 3] = np.cumsum(rng.normal(size=(t, 3)), axis=0)
    return poses


def test_ate_after_sim3_recovers_a_known_similarity():
    gt = _trajectory()
    s, r, tr = (
        2.5,
        Rotation.from_euler("zyx", [40, -20, 10], degrees=True).as_matrix(),
        np.array([3.0, -1, 7]),
    )
    sim3 = np.eye(4)
    sim3[:3, :3], sim3[:3, 3] = r, tr
    pred = np.einsum("ij,tjk->tik", sim3, gt)
    pred[:, :3, 3] = (r @ (s * gt[:, :3, 3]).T).T + tr  # x' = s R x + t; orientations R·R_i
    err = camera_errors(pred, gt)
    assert err["ate_rmse"] < 1e-6
    assert err["rot_err_deg"] < 1e-4
    assert err["scale"] == pytest.approx(1 / s, rel=1e-6)


def test_ate_measures_residual_noise():
    gt = _trajectory()
    pred = gt.copy()
    pred[::2, 0, 3] += 0.1
    pred[1::2, 0, 3] -= 0.1
    err = camera_errors(pred, gt, correct_scale=False)
    assert 0.05 < err["ate_rmse"] <= 0.1 + 1e-9


def test_camera_errors_bad_input():
    with pytest.raises(ValueError, match=r"\[T, 4, 4\]"):
        camera_errors(np.zeros((5, 3, 4)), np.zeros((5, 4, 4)))
    with pytest.raises(ValueError, match="length"):
        camera_errors(_trajectory(5), _trajectory(6))


def test_depth_errors_median_scaling():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1, 5, size=(3, 8, 8))
    assert depth_errors(0.37 * gt, gt) == pytest.approx({"abs_rel": 0.0, "rmse": 0.0}, abs=1e-12)
    noisy = gt * (1 + 0.1 * rng.choice([-1, 1], size=gt.shape))
    assert depth_errors(noisy, gt)["abs_rel"] == pytest.approx(0.1, abs=0.02)
    with pytest.raises(ValueError, match="shape"):
        depth_errors(gt[:2], gt)


def test_open3d_odometry_follows_a_turning_camera():
    world = render(np.radians(np.arange(6) * 3.0))
    poses = Open3DOdometry()(world.frames, world.depth.astype(np.float32), world.intrinsics)
    assert poses.shape == (6, 4, 4)
    err = camera_errors(poses, world.c2w)
    assert err["rot_err_deg"] < 1.0


def test_depth_anything_loads_a_local_folder(tmp_path):
    save_tiny_depth_anything(tmp_path)
    depth = DepthAnythingEstimator(tmp_path)(np.zeros((2, 30, 40, 3), np.uint8))
    assert depth.shape == (2, 30, 40)
    known = np.isfinite(depth)  # random weights: many disparities ≤ 0, which become NaN, not 1e6
    assert known.any() and (depth[known] > 0).all()
    with pytest.raises(FileNotFoundError, match="config.json"):
        DepthAnythingEstimator(tmp_path / "missing")


def _other_world(poses: np.ndarray, scale: float = 1.7) -> np.ndarray:
    """The same camera path expressed in another world frame (rotated, shifted) and unit (scaled)."""
    g = np.eye(4)
    g[:3, :3] = Rotation.from_euler("zyx", [70, -35, 120], degrees=True).as_matrix()
    g[:3, 3] = [4.0, -2.0, 9.0]
    out = np.einsum("ij,tjk->tik", g, poses)
    out[:, :3, 3] = (g[:3, :3] @ (scale * poses[:, :3, 3]).T).T + g[:3, 3]
    return out


def _path(kind: str, t: int = 10) -> np.ndarray:
    """Camera-to-world poses (OpenCV axes) of a degenerate or planar path."""
    poses = np.tile(np.eye(4), (t, 1, 1))
    yaw = np.radians(np.arange(t) * 6.0)
    if kind == "straight":  # driving straight ahead: collinear positions
        poses[:, 2, 3] = np.arange(t) * 0.5
    elif kind == "turn_in_place":  # all positions equal
        poses[:, :3, :3] = Rotation.from_euler("y", yaw[:, None]).as_matrix()
    elif kind == "planar_arc":  # a nav robot: positions in a plane, yaw about the plane normal
        poses[:, :3, :3] = Rotation.from_euler("y", yaw[:, None]).as_matrix()
        poses[:, 0, 3], poses[:, 2, 3] = np.sin(yaw) * 3, np.cos(yaw) * 3
    return poses


@pytest.mark.parametrize("kind", ["straight", "turn_in_place", "planar_arc"])
def test_perfect_prediction_in_another_world_frame_scores_zero(kind):
    gt = _path(kind)
    err = camera_errors(_other_world(gt), gt)
    assert err["rot_err_deg"] == pytest.approx(0.0, abs=1e-6)  # was 60°/173°/… with positions only
    assert err["ate_rmse"] == pytest.approx(0.0, abs=1e-9)
    if kind != "turn_in_place":  # no spread in position: scale is undefined there (1)
        assert err["scale"] == pytest.approx(1 / 1.7)


def test_degenerate_path_still_measures_errors():
    gt = _path("straight")
    pred = _other_world(gt)
    pred[:, :3, :3] = (
        pred[:, :3, :3] @ Rotation.from_euler("y", np.radians(np.arange(10.0))[:, None]).as_matrix()
    )
    err = camera_errors(pred, gt)  # a heading drifting 0…9°: the alignment absorbs only its mean
    assert 1.0 < err["rot_err_deg"] < 5.0 and err["ate_rmse"] < 0.2


def test_straight_line_trajectory_still_aligns():
    gt = np.tile(np.eye(4), (6, 1, 1))
    gt[:, 2, 3] = np.arange(6) * 0.5  # driving straight ahead: collinear positions (evo refuses these)
    pred = gt.copy()
    pred[:, 2, 3] *= 3.0
    err = camera_errors(pred, gt)
    assert err["ate_rmse"] < 1e-9 and err["scale"] == pytest.approx(1 / 3)
    assert err["rot_err_deg"] < 1e-6


def test_disparity_to_depth_masks_near_zero_disparity():
    disp = np.linspace(0.0, 2.0, 100).reshape(1, 10, 10)
    disp[0, 0, :3] = [-1.0, 1e-9, 1e-7]  # negative and near-zero: 1/d would be 1e9 "metres"
    depth = disparity_to_depth(disp, 0.05)
    assert np.isnan(depth[0, 0, :5]).all()
    known = np.isfinite(depth)
    assert known.sum() == 95 and depth[known].max() < 1 / 0.09  # nothing huge survives
    np.testing.assert_allclose(depth[known], 1 / disp[known], rtol=1e-6)


def test_open3d_odometry_on_estimated_depth_of_unknown_scale():
    world = render(np.radians(np.arange(5) * 3.0))
    depth = normalize_depth(world.depth * 37.0, 2.0)
    assert np.median(depth) == pytest.approx(2.0)
    raw = (world.depth * 37.0).astype(np.float32)  # 185 "units": beyond depth_max without normalising
    poses = Open3DOdometry(median_depth=2.0)(world.frames, raw, world.intrinsics)
    assert camera_errors(poses, world.c2w)["rot_err_deg"] < 1.0


def test_noisy_straight_path_takes_rotation_from_orientations():
    gt = _path("straight", t=12)
    rng = np.random.default_rng(0)
    pred = gt.copy()
    pred[:, :3, 3] += rng.normal(scale=0.005, size=(12, 3))  # odometry noise: 5 mm around 5.5 m
    err = camera_errors(_other_world(pred), gt)
    assert err["rot_err_deg"] < 0.5  # positions alone leave the roll about the path to the noise
    assert err["ate_rmse"] < 0.01


def test_umeyama_rotations_option_leaves_full_rank_fits_alone():
    from egoworld.sim.align import umeyama

    gt = _trajectory()  # positions span 3-D
    moved = _other_world(gt)
    plain = umeyama(gt[:, :3, 3], moved[:, :3, 3])
    with_rot = umeyama(gt[:, :3, 3], moved[:, :3, 3], rotations=(gt[:, :3, :3], moved[:, :3, :3]))
    assert plain[0] == pytest.approx(with_rot[0]) and np.allclose(plain[1], with_rot[1])
    with pytest.raises(ValueError, match=r"expected two \[12, 3, 3\]"):
        umeyama(gt[:, :3, 3] * 0, moved[:, :3, 3], rotations=(gt[:3, :3, :3], moved[:, :3, :3]))
