"""Rigid-body helpers shared by the worlds: yaw rotations, quaternions, rigid inverses, grasps, keyframes.

Quaternions are (w, x, y, z), MuJoCo's order, and rotate vectors as q v q⁻¹. Poses are 4x4 matrices
mapping local points to world points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def yaw_quat(yaw: float) -> np.ndarray:
    """Unit quaternion (w, x, y, z) [4] of a rotation by `yaw` rad about world z."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation [3, 3] by `yaw` rad about world z."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a ⊗ b of (w, x, y, z) quaternions [4] (rotate by b, then by a)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion [4]."""
    return np.array([q[0], -q[1], -q[2], -q[3]])


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """Rotation [3, 3] of a unit quaternion (w, x, y, z)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def quat_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle (rad) between unit quaternions a [..., 4] and b [..., 4]."""
    d = np.abs(np.sum(np.asarray(a) * np.asarray(b), axis=-1))
    return 2 * np.arccos(np.clip(d, 0.0, 1.0))


def rigid_inverse(pose_44: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform [..., 4, 4]: (R, t) -> (Rᵀ, -Rᵀ t), no general matrix inverse."""
    pose_44 = np.asarray(pose_44, dtype=np.float64)
    R_t = np.swapaxes(pose_44[..., :3, :3], -1, -2)
    out = np.zeros_like(pose_44)
    out[..., :3, :3] = R_t
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", R_t, pose_44[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


@dataclass(frozen=True)
class Attachment:
    """A child held rigidly by a parent: `rel_pos` [3] in the parent frame, `rel_quat` = q_parent⁻¹ ⊗ q_child.

    Made at the grasp frame from both current poses, so the child does not move at that frame;
    afterwards `child_pose` follows the parent's position and full orientation.
    """

    rel_pos: np.ndarray
    rel_quat: np.ndarray

    @classmethod
    def grasp(cls, parent_pos, parent_quat, child_pos, child_quat) -> Attachment:
        inv = quat_conj(np.asarray(parent_quat, dtype=np.float64))
        rel_pos = quat_to_mat(inv) @ (np.asarray(child_pos, dtype=np.float64) - parent_pos)
        return cls(rel_pos, quat_mul(inv, np.asarray(child_quat, dtype=np.float64)))

    def child_pose(self, parent_pos, parent_quat) -> tuple[np.ndarray, np.ndarray]:
        """Child position [3] and unit quaternion [4] for the parent's current pose."""
        parent_quat = np.asarray(parent_quat, dtype=np.float64)
        q = quat_mul(parent_quat, self.rel_quat)
        return np.asarray(parent_pos) + quat_to_mat(parent_quat) @ self.rel_pos, q / np.linalg.norm(q)


def eased_keyframes(times, values, s) -> np.ndarray:
    """Cosine-eased interpolation between keyframes.

    Args:
        times: [K] increasing keyframe times.
        values: [K, ...] values at the keyframes.
        s: [T] query times; outside [times[0], times[-1]] they hold the end values.

    Returns:
        [T, ...]: between keyframes i and i+1, (1 - a) v_i + a v_{i+1} with
        a = (1 - cos(pi u)) / 2 and u the fraction of the interval elapsed.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    i = np.clip(np.searchsorted(times, s, side="right") - 1, 0, len(times) - 2)
    u = np.clip((s - times[i]) / (times[i + 1] - times[i]), 0.0, 1.0)
    a = (0.5 - 0.5 * np.cos(np.pi * u)).reshape(u.shape + (1,) * (values.ndim - 1))
    return (1 - a) * values[i] + a * values[i + 1]


__all__ = [
    "Attachment",
    "eased_keyframes",
    "quat_angle",
    "quat_conj",
    "quat_mul",
    "quat_to_mat",
    "rigid_inverse",
    "yaw_matrix",
    "yaw_quat",
]
