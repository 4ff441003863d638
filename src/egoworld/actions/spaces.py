"""Action spaces: 3-DoF navigation deltas (NWM/GNM datasets) and the 1X 25-D humanoid layout.

Navigation (EgoWM §3.1, NWM): per step t, in the robot frame of step t-1,

    (dx, dy) = R(-yaw_{t-1}) (p_t - p_{t-1}) / spacing
    dyaw     = wrap(yaw_t - yaw_{t-1})  in [-pi, pi)

where `spacing` is the dataset's metric waypoint spacing (metres per normalised unit).
"""

from __future__ import annotations

import numpy as np

# metres between waypoints in each NWM/GNM dataset (the GNM data configs).
METRIC_WAYPOINT_SPACING: dict[str, float] = {
    "recon": 0.25,
    "scand": 0.38,
    "tartan_drive": 0.72,
    "go_stanford": 0.12,
    "sacson": 0.255,
}

NAV_ACTION_DIM = 3

# 1X world model v2.0 robot state: index ranges of each joint group.
HUMANOID_STATE_LAYOUT: dict[str, slice] = {
    "hip": slice(0, 6),  # hip yaw/roll/pitch, knee pitch, ankle roll/pitch
    "left_arm": slice(6, 13),  # shoulder pitch/roll/yaw, elbow pitch/yaw, wrist pitch/roll
    "right_arm": slice(13, 20),
    "neck": slice(20, 21),  # neck pitch
    "hand_closure": slice(21, 23),  # left, right (0 = open, 1 = closed)
    "velocity": slice(23, 25),  # linear, angular
}
HUMANOID_STATE_DIM = 25


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap angles (radians) into [-pi, pi)."""
    return (np.asarray(angle, dtype=np.float64) + np.pi) % (2.0 * np.pi) - np.pi


def _check_pose(position: np.ndarray, yaw: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    position = np.asarray(position, dtype=np.float64)
    yaw = np.asarray(yaw, dtype=np.float64).reshape(-1)
    if position.ndim != 2 or position.shape[1] < 2:
        raise ValueError(f"position must be [T, 2], got shape {position.shape}")
    if position.shape[0] != yaw.shape[0]:
        raise ValueError(f"position has {position.shape[0]} steps but yaw has {yaw.shape[0]}; expected equal")
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0 metres, got {spacing}")
    return position[:, :2], yaw


def _to_frame(offset: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotate world-frame offsets [N, 2] by -yaw [N] into the robot frame."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * offset[:, 0] + s * offset[:, 1], -s * offset[:, 0] + c * offset[:, 1]], axis=-1)


def nav_deltas(position: np.ndarray, yaw: np.ndarray, spacing: float) -> np.ndarray:
    """Per-step (dx, dy, dyaw) in the previous step's robot frame.

    Args:
        position: [T, 2] world positions in metres (extra columns, e.g. z, are ignored).
        yaw: [T] headings in radians.
        spacing: metric waypoint spacing; translations are divided by it.

    Returns:
        [T-1, 3] float32.
    """
    position, yaw = _check_pose(position, yaw, spacing)
    dxy = _to_frame(np.diff(position, axis=0), yaw[:-1]) / spacing  # [T-1, 2]
    dyaw = wrap_angle(np.diff(yaw))  # [T-1]
    return np.concatenate([dxy, dyaw[:, None]], axis=-1).astype(np.float32)


def nav_cumulative(position: np.ndarray, yaw: np.ndarray, spacing: float, start: int) -> np.ndarray:
    """Pose of every step relative to step `start` (NWM's cumulative-from-current-frame form).

    Row t is (R(-yaw_s)(p_t - p_s) / spacing, wrap(yaw_t - yaw_s)) with s = start; row `start`
    is zero, rows before it describe past poses.

    Returns:
        [T, 3] float32.
    """
    position, yaw = _check_pose(position, yaw, spacing)
    if not 0 <= start < len(yaw):
        raise ValueError(f"start must be in [0, {len(yaw)}), got {start}")
    rel = position - position[start]
    dxy = _to_frame(rel, np.full(len(yaw), yaw[start])) / spacing
    dyaw = wrap_angle(yaw - yaw[start])
    return np.concatenate([dxy, dyaw[:, None]], axis=-1).astype(np.float32)


def nav_deltas_to_cumulative(deltas_TD: np.ndarray) -> np.ndarray:
    """Per-step deltas -> every step's pose relative to step 0 (the inverse of `nav_deltas`).

    `deltas_TD` [T, 3] holds row t = (dx, dy, dyaw) moving step t-1 to step t in step t-1's frame
    (row 0, the start, is ignored). Returns [T, 3] float32 with row 0 zero and row t equal to
    `nav_cumulative(position, yaw, spacing, start=0)[t]` for the walk those deltas describe: the
    SE(2) composition pose_t = pose_{t-1} (+) delta_t, in the deltas' units.
    """
    d = np.asarray(deltas_TD, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] != NAV_ACTION_DIM:
        raise ValueError(f"navigation deltas must be [T, {NAV_ACTION_DIM}], got shape {d.shape}")
    out = np.zeros_like(d)
    for t in range(1, len(d)):
        x, y, yaw = out[t - 1]
        c, s = np.cos(yaw), np.sin(yaw)
        out[t, 0] = x + c * d[t, 0] - s * d[t, 1]
        out[t, 1] = y + s * d[t, 0] + c * d[t, 1]
        out[t, 2] = wrap_angle(yaw + d[t, 2])
    return out.astype(np.float32)


def mirror_nav(actions_TD: np.ndarray) -> np.ndarray:
    """Left <-> right for navigation actions `[..., 3]` (deltas or cumulative poses alike):
    (x, y, yaw) -> (x, -y, -yaw), the reflection of the walk in the heading axis."""
    out = np.array(actions_TD, dtype=np.float32, copy=True)
    out[..., 1:3] *= -1.0
    return out


def humanoid_deltas(states: np.ndarray) -> np.ndarray:
    """1X actions: differences of consecutive 25-D states, [T, 25] -> [T-1, 25] float32."""
    states = np.asarray(states, dtype=np.float32)
    if states.ndim != 2 or states.shape[1] != HUMANOID_STATE_DIM:
        raise ValueError(f"humanoid states must be [T, {HUMANOID_STATE_DIM}], got shape {states.shape}")
    return np.diff(states, axis=0)
