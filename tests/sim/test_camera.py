import numpy as np
import pytest

from egoworld.sim.camera import (
    backproject,
    intrinsics,
    invert_pose,
    look_at,
    project,
    validate_poses,
    world_to_camera,
)


def test_validate_poses_accepts_rigid_and_names_bad_frame():
    good = np.stack([np.eye(4), look_at([1, 2, 3], [0, 0, 0])])
    assert validate_poses(good).shape == (2, 4, 4)
    scaled = good.copy()
    scaled[1, :3, :3] *= 1.1
    with pytest.raises(ValueError, match="frame 1 .*not orthonormal"):
        validate_poses(scaled)
    mirror = good.copy()
    mirror[0, :3, 0] *= -1
    with pytest.raises(ValueError, match=r"frame 0 .*det\(R\) = -1"):
        validate_poses(mirror)
    bottom = good.copy()
    bottom[1, 3, 0] = 0.5
    with pytest.raises(ValueError, match="frame 1 has bottom row"):
        validate_poses(bottom)
    with pytest.raises(ValueError, match=r"expected \[T, 4, 4\]"):
        validate_poses(np.eye(3))


def test_projection_geometry_and_roundtrip():
    K = intrinsics(100.0, 120.0, 31.5, 23.5)
    uv, z = project(np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, -1.0, 4.0]]), K)
    np.testing.assert_allclose(uv[0], [31.5, 23.5])  # optical axis → principal point
    np.testing.assert_allclose(uv[1], [31.5 + 50.0, 23.5])  # x right
    np.testing.assert_allclose(uv[2], [31.5, 23.5 - 30.0])  # y down
    depth = np.full((48, 64), 1.5, np.float32)
    pts = backproject(depth, K)
    uv2, _ = project(pts.reshape(-1, 3), K)
    v, u = np.mgrid[0:48, 0:64]
    np.testing.assert_allclose(uv2, np.stack([u.ravel(), v.ravel()], 1), atol=1e-9)


def test_look_at_and_inverse():
    pose = look_at([0.0, -1.0, 0.5], [0.0, 0.0, 0.0])
    validate_poses(pose)
    np.testing.assert_allclose(invert_pose(pose) @ pose, np.eye(4), atol=1e-12)
    target_cam = world_to_camera(np.zeros((1, 3)), pose)[0]
    np.testing.assert_allclose(target_cam[:2], 0.0, atol=1e-12)  # target on the optical axis
    assert target_cam[2] > 0


def test_projection_behind_camera_and_nan_points_give_nan():
    K = intrinsics(100.0, 100.0, 31.5, 23.5)
    pts = np.array([[0.1, 0.0, -1.0], [0.1, 0.0, 0.0], [np.nan, 0.0, 1.0], [0.0, 0.1, 1e-3]])
    uv, z = project(pts, K)
    assert np.all(np.isnan(uv[:3])) and np.all(np.isfinite(uv[3]))
    np.testing.assert_allclose(z[[0, 1, 3]], [-1.0, 0.0, 1e-3])
    with pytest.raises(ValueError, match=r"expected \[..., 3\]"):
        project(np.zeros((4, 2)), K)
    with pytest.raises(ValueError, match="intrinsics K"):
        project(pts, np.eye(4))
