"""Hand (and forearm) masks from 3-D hand keypoints: the hand's silhouette at physical size.

Each bone is a capsule of a given radius (metres) around the segment between two keypoints; its
silhouette in a pinhole camera is drawn as the quadrilateral joining the two end discs (radius
r·f/z at each end, so a bone pointing away from the camera tapers) plus the discs. The palm is
the filled convex hull of the wrist and the five finger bases, with its outline drawn as
capsules of the palm radius; the forearm is a capsule from the forearm joint to the wrist.
Segments are clipped to the camera's front (z ≥ `NEAR`) before projection.

The radii (`HandRadii`) are sized for an adult hand (palm about 8-9 cm wide) and cover the
synthetic tabletop hand (palm 7.6 cm wide at the wrist, fingers 1.7 cm thick, arm 4.8 cm): without
a margin the masks hold every ground-truth hand pixel at 32 px (seeds 0-5, tests/sim/test_prepare.py)
and 99.7 % of them at 64 px. They are deliberately generous: a background pixel wrongly masked is
only left out of the fused state (the observation model sees it as unobserved), while a hand pixel
fused into the static scene stays in it as a ghost.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from egoworld.sim.camera import validate_intrinsics, validate_poses, world_to_camera
from egoworld.sim.hands import HAND_EDGES, _as_hands

NEAR = 0.02  # metres: segments are clipped to z >= NEAR
PALM = (0, 1, 5, 9, 13, 17)  # wrist, thumb base, index/middle/ring/pinky knuckles
_SHIFT = 4  # cv2 sub-pixel bits


@dataclass(frozen=True)
class HandRadii:
    """Capsule radii in metres: finger bones, the palm outline, and the forearm."""

    finger: float = 0.013
    palm: float = 0.03
    forearm: float = 0.035


def _clip_segment(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of the camera-frame segment p–q with z >= NEAR, or None."""
    if p[2] < NEAR and q[2] < NEAR:
        return None
    if p[2] < NEAR or q[2] < NEAR:
        t = (NEAR - p[2]) / (q[2] - p[2])
        cut = p + t * (q - p)
        p, q = (cut, q) if p[2] < NEAR else (p, cut)
    return p, q


def _project(p: np.ndarray, K: np.ndarray) -> np.ndarray:
    return np.array([K[0, 0] * p[0] / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2]])


def _fixed(uv: np.ndarray) -> np.ndarray:
    """Pixel coordinates as cv2 fixed-point ints (clamped far outside the image first)."""
    return np.round(np.clip(uv, -1e5, 1e5) * (1 << _SHIFT)).astype(np.int32)


def _capsule(canvas: np.ndarray, p: np.ndarray, q: np.ndarray, radius: float, K: np.ndarray) -> None:
    """Draw the silhouette of the capsule p–q (camera frame, metres) into `canvas` (uint8, in place)."""
    seg = _clip_segment(p, q)
    if seg is None:
        return
    p, q = seg
    a, b = _project(p, K), _project(q, K)
    f = 0.5 * (K[0, 0] + K[1, 1])
    ra, rb = radius * f / p[2], radius * f / q[2]
    for c, r in ((a, ra), (b, rb)):
        cv2.circle(
            canvas, tuple(int(v) for v in _fixed(c)), int(round(r * (1 << _SHIFT))), 1, -1, cv2.LINE_8, _SHIFT
        )
    d = b - a
    n = np.linalg.norm(d)
    if n < 1e-9:
        return
    normal = np.array([-d[1], d[0]]) / n
    quad = np.stack([a + ra * normal, b + rb * normal, b - rb * normal, a - ra * normal])
    cv2.fillConvexPoly(canvas, _fixed(quad), 1, cv2.LINE_8, _SHIFT)


def _hand(canvas, kp_cam: np.ndarray, arm_cam: np.ndarray | None, K, radii: HandRadii) -> None:
    """One hand: keypoints [21, 3] and forearm joint [3] (or None) in the camera frame."""
    known = np.isfinite(kp_cam).all(-1)
    palm = [i for i in PALM if known[i]]
    outline = list(zip(PALM, PALM[1:] + PALM[:1]))
    if len(palm) == len(PALM) and (kp_cam[palm, 2] >= NEAR).all():
        uv = np.stack([_project(kp_cam[i], K) for i in palm])
        hull = cv2.convexHull(_fixed(uv))
        cv2.fillConvexPoly(canvas, hull, 1, cv2.LINE_8, _SHIFT)
    for i, j in outline:
        if known[i] and known[j]:
            _capsule(canvas, kp_cam[i], kp_cam[j], radii.palm, K)
    for i, j in HAND_EDGES:
        if known[i] and known[j]:
            r = radii.palm if i == 0 else radii.finger  # wrist → finger base runs through the palm
            _capsule(canvas, kp_cam[i], kp_cam[j], r, K)
    if arm_cam is not None and known[0] and np.isfinite(arm_cam).all():
        _capsule(canvas, arm_cam, kp_cam[0], radii.forearm, K)


def keypoint_hand_masks(
    keypoints: np.ndarray,  # [T, 21, 3] or [T, A, 21, 3] world metres, NaN = unknown
    K: np.ndarray,  # [3, 3]
    cam_to_world: np.ndarray,  # [T, 4, 4]
    height: int,
    width: int,
    *,
    forearms: np.ndarray | None = None,  # [T, A, 3] world metres, NaN = unknown
    radii: HandRadii = HandRadii(),
    dilate_px: int = 1,
) -> np.ndarray:
    """Pixels of the hands (and forearms) `[T, H, W]` bool, from their keypoints (see the module doc)."""
    hands = _as_hands(keypoints)  # [T, A, 21, 3]
    K = validate_intrinsics(K)
    poses = validate_poses(cam_to_world).reshape(-1, 4, 4)
    T, A = hands.shape[:2]
    if len(poses) != T:
        raise ValueError(f"{len(poses)} camera poses for {T} keypoint frames; expected {T}")
    if forearms is not None:
        forearms = np.asarray(forearms, dtype=np.float64).reshape(T, A, 3)
    out = np.zeros((T, int(height), int(width)), bool)
    kernel = np.ones((2 * dilate_px + 1, 2 * dilate_px + 1), np.uint8) if dilate_px > 0 else None
    for t in range(T):
        canvas = np.zeros((int(height), int(width)), np.uint8)
        for a in range(A):
            kp = world_to_camera(hands[t, a], poses[t])
            arm = None if forearms is None else world_to_camera(forearms[t, a][None], poses[t])[0]
            _hand(canvas, kp, arm, K, radii)
        if kernel is not None:
            canvas = cv2.dilate(canvas, kernel)
        out[t] = canvas > 0
    return out
