"""Depth ERR and Cam ERR: known answers, Sim(3) recovery through evo, and the pluggable estimators."""

import numpy as np
import pytest
from metrics_world import render
from scipy.spatial.transform import Rotation

from egoworld.metrics.geometry import DepthAnythingEstimator, Open3DOdometry, camera_errors, depth_errors


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
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=56,
        patch_size=14,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[16, 16, 16, 16],
        fusion_hidden_size=16,
        head_hidden_size=8,
        reassemble_hidden_size=32,
        patch_size=14,
    )
    DepthAnythingForDepthEstimation(config).save_pretrained(tmp_path)
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=False).save_pretrained(tmp_path)
    depth = DepthAnythingEstimator(tmp_path)(np.zeros((2, 30, 40, 3), np.uint8))
    assert depth.shape == (2, 30, 40) and np.isfinite(depth).all() and (depth > 0).all()
    with pytest.raises(FileNotFoundError, match="config.json"):
        DepthAnythingEstimator(tmp_path / "missing")


def test_straight_line_trajectory_still_aligns():
    gt = np.tile(np.eye(4), (6, 1, 1))
    gt[:, 2, 3] = np.arange(6) * 0.5  # driving straight ahead: collinear positions (evo refuses these)
    pred = gt.copy()
    pred[:, 2, 3] *= 3.0
    err = camera_errors(pred, gt)
    assert err["ate_rmse"] < 1e-9 and err["scale"] == pytest.approx(1 / 3)
