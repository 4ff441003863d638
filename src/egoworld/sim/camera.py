"""Pinhole cameras in the OpenCV convention.

Camera frame: x right, y down, z forward. A pose is a camera-to-world 4×4 rigid transform
``[R | t; 0 0 0 1]``; the world-to-camera extrinsic is its inverse.
"""

from __future__ import annotations

import numpy as np

_ORTHO_TOL = 1e-4


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Return the 3×3 pinhole matrix K."""  # [3, 3]
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def intrinsics_from_fov(width: int, height: int, fov_x_deg: float) -> np.ndarray:
    """K for square pixels, a horizontal field of view and the principal point at the image centre."""
    f = 0.5 * width / np.tan(np.deg2rad(fov_x_deg) / 2.0)
    return intrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0)


def validate_intrinsics(K: np.ndarray) -> np.ndarray:
    """Check that K is a 3×3 pinhole matrix with positive focal lengths; return it as float64."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"intrinsics K has shape {list(K.shape)}; expected [3, 3]")
    if not (K[0, 0] > 0 and K[1, 1] > 0) or not np.allclose(K[2], [0, 0, 1]):
        raise ValueError(f"intrinsics K={K.tolist()} is not a pinhole matrix [[fx,0,cx],[0,fy,cy],[0,0,1]]")
    return K


def validate_poses(poses: np.ndarray, *, tol: float = _ORTHO_TOL) -> np.ndarray:
    """Check camera-to-world poses ``[T, 4, 4]`` (or one ``[4, 4]``) are rigid transforms.

    Raises ValueError naming the first bad frame: wrong shape, non-finite entries, a bottom row
    other than ``[0, 0, 0, 1]``, a rotation that is not orthonormal, or ``det(R) != 1``.
    Returns the poses as float64 with the input's shape.
    """
    poses = np.asarray(poses, dtype=np.float64)
    single = poses.ndim == 2
    batch = poses[None] if single else poses
    if batch.ndim != 3 or batch.shape[1:] != (4, 4):
        raise ValueError(f"camera poses have shape {list(poses.shape)}; expected [T, 4, 4] or [4, 4]")
    for i, P in enumerate(batch):
        if not np.all(np.isfinite(P)):
            raise ValueError(f"pose of frame {i} has non-finite entries")
        if not np.allclose(P[3], [0, 0, 0, 1], atol=tol):
            raise ValueError(f"pose of frame {i} has bottom row {P[3].tolist()}; expected [0, 0, 0, 1]")
        R = P[:3, :3]
        err = float(np.abs(R.T @ R - np.eye(3)).max())
        if err > tol:
            raise ValueError(
                f"pose of frame {i} is not a rigid transform: rotation is not orthonormal "
                f"(max |R^T R - I| = {err:.3g}; expected < {tol:g})"
            )
        det = float(np.linalg.det(R))
        if abs(det - 1.0) > tol:
            raise ValueError(f"pose of frame {i} is not a rigid transform: det(R) = {det:.4f}; expected 1")
    return poses


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4×4 (or ``[T, 4, 4]``) transform."""
    pose = np.asarray(pose, dtype=np.float64)
    R = pose[..., :3, :3]
    t = pose[..., :3, 3]
    out = np.zeros_like(pose)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


def world_to_camera(points: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """Points ``[N, 3]`` in world coordinates → camera coordinates ``[N, 3]`` of one pose ``[4, 4]``;
    or ``[T, N, 3]`` seen from one pose per frame ``[T, 4, 4]``."""
    cam = np.asarray(cam_to_world, dtype=np.float64)
    R, t = cam[..., :3, :3], cam[..., None, :3, 3]  # [..., 3, 3], [..., 1, 3]
    return (np.asarray(points, dtype=np.float64) - t) @ R


def project(points_cam: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Perspective projection of camera-frame points ``[..., 3]`` → pixels ``[..., 2]`` and depth ``[...]``.

    Pixel centres are at integer coordinates (OpenCV). Points with z <= 0 (behind or on the camera
    plane) or with non-finite coordinates get NaN pixels; the depth is returned as given.
    """
    K = validate_intrinsics(K)
    p = np.asarray(points_cam, dtype=np.float64)
    if p.shape[-1:] != (3,):
        raise ValueError(f"points have shape {list(p.shape)}; expected [..., 3] (camera frame)")
    z = p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        u = K[0, 0] * p[..., 0] / z + K[0, 2]
        v = K[1, 1] * p[..., 1] / z + K[1, 2]
    uv = np.stack([u, v], axis=-1)
    uv[~(z > 0) | ~np.all(np.isfinite(uv), axis=-1)] = np.nan
    return uv, z


def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Depth map ``[H, W]`` (metres along z) → camera-frame points ``[H, W, 3]``."""
    H, W = depth.shape
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    z = depth.astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], axis=-1)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world pose at `eye` looking at `target` (OpenCV axes; `up` is the world's up)."""
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(x) < 1e-9:
        x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
    return pose
