"""Trimming for SCS (EgoWM §4): the first frame at which every point visible in frame 0 has left the view.

Frames from that index on show only regions unseen in the initial observation, where structural
correspondence is ill-defined, so SCS ignores them. Two ways to find it:

* `trim_frame_by_flow` (no weights): a grid of points in frame 0 is tracked by chaining dense
  optical flow from OpenCV (DIS or Farnebäck). A point that lands outside the image has *left
  the view*. A point that fails the forward–backward check
  |p + F(p) + B(p + F(p)) − p| ≤ τ_abs + τ_rel·|F(p)| is *lost* (occluded or mistracked): it is
  dropped from the count altogether — neither in view nor left — so the in-view fraction is
  (points in view) / (points in view + points that left). The trim frame is the first frame at
  which that fraction is at most `tolerance` (0: no tracked point is still in view). Lost points
  are not carried on with their unreliable flow: on low-texture renders they sit still on blank
  walls and would keep the view "open" long after it has changed.
* `trim_frame_by_reprojection` (synthetic worlds): every pixel of frame 0 is lifted with its
  ground-truth depth and intrinsics K, moved to world space with the camera-to-world pose of frame
  0 and projected into each later frame (OpenCV axes: x right, y down, z forward; the pinhole
  helpers of `egoworld.sim.camera`). A point is in view when z > 0 and its projection lies in the
  image (pixel centres at integer coordinates). Occlusion is not modelled: only leaving the
  field of view counts. Pixels without depth (the sky: depth 0) are not points.

Both return an index `trim_at` in [1, T]; `trim_at == T` means nothing is trimmed.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def dense_flow(prev: np.ndarray, nxt: np.ndarray, method: str = "dis") -> np.ndarray:
    """Dense optical flow from `prev` to `nxt` (uint8 `[H, W, 3]` RGB) → float32 `[H, W, 2]` (dx, dy)."""
    import cv2

    a, b = _gray(prev), _gray(nxt)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return dis.calc(a, b, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 5, 7, 1.5, 0)
    raise ValueError(f"unknown optical flow method {method!r}; expected 'dis' or 'farneback'")


def _sample(field: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Bilinear sample of `[H, W, C]` at points `[N, 2]` (x, y) → `[N, C]`."""
    import cv2

    map_x = pts[:, 0].astype(np.float32).reshape(-1, 1)
    map_y = pts[:, 1].astype(np.float32).reshape(-1, 1)
    out = cv2.remap(field, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(len(pts), -1)


def _in_view(pts: np.ndarray, h: int, w: int) -> np.ndarray:
    x, y = pts[:, 0], pts[:, 1]
    return (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)


def trim_frame_by_flow(
    frames: np.ndarray,
    *,
    method: str = "dis",
    grid_step: int = 4,
    fb_abs: float = 1.0,
    fb_rel: float = 0.05,
    tolerance: float = 0.0,
) -> int:
    """First frame where no tracked frame-0 point is still in view, by chained optical flow.

    Args:
        frames: uint8 `[T, H, W, 3]` RGB (the ground-truth video).
        method: "dis" or "farneback" (OpenCV).
        grid_step: spacing in pixels of the frame-0 point grid.
        fb_abs, fb_rel: forward–backward threshold τ_abs + τ_rel·|flow| in pixels.
        tolerance: largest fraction of the points whose fate is known (in view or left) that may
            still be in view at the trim frame (0 = every one must have left).

    Points that fail the forward–backward check are lost and leave the count (module docstring).
    If every point is lost before any has left the view, there is no evidence that the view
    changed: nothing is trimmed (T, with a warning).

    Returns `trim_at` in [1, T] (T: the first view never leaves entirely).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [T, H, W, 3]; got shape {frames.shape}")
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance must be in [0, 1); got {tolerance}")
    t, h, w = frames.shape[:3]
    ys, xs = np.mgrid[grid_step // 2 : h : grid_step, grid_step // 2 : w : grid_step]
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)  # [N, 2]
    left = lost = 0
    for i in range(1, t):
        fwd = dense_flow(frames[i - 1], frames[i], method)
        bwd = dense_flow(frames[i], frames[i - 1], method)
        f = _sample(fwd, pts)
        moved = pts + f
        inside = _in_view(moved, h, w)
        back = moved + _sample(bwd, moved)
        fb_err = np.linalg.norm(back - pts, axis=1)
        reliable = fb_err <= fb_abs + fb_rel * np.linalg.norm(f, axis=1)
        left += int((~inside).sum())  # leaving the image needs no backward check
        lost += int((inside & ~reliable).sum())
        pts = moved[inside & reliable]
        logger.debug("trim step %d: %d in view, %d left the view, %d lost", i, len(pts), left, lost)
        if left == 0 and len(pts) == 0:
            logger.warning(
                "flow trimming lost every point by frame %d before any left the view; not trimming", i
            )
            return t
        if len(pts) <= tolerance * (len(pts) + left):
            return i
    return t


def trim_frame_by_reprojection(
    depth0: np.ndarray, intrinsics: np.ndarray, c2w: np.ndarray, *, stride: int = 1, tolerance: float = 0.0
) -> int:
    """First frame where every frame-0 pixel (lifted with GT depth) projects outside the image.

    Args:
        depth0: depth of frame 0 `[H, W]` (z along the optical axis); non-finite or ≤ 0 is ignored.
        intrinsics: K `[3, 3]`.
        c2w: camera-to-world poses `[T, 4, 4]`, OpenCV axes.
        stride: use every `stride`-th pixel.
        tolerance: fraction of the points that may remain in view.

    Returns `trim_at` in [1, T].
    """
    from egoworld.sim.camera import backproject, invert_pose, project

    depth0 = np.asarray(depth0, dtype=np.float64)
    k = np.asarray(intrinsics, dtype=np.float64)
    c2w = np.asarray(c2w, dtype=np.float64)
    if depth0.ndim != 2:
        raise ValueError(f"depth0 must be [H, W]; got shape {depth0.shape}")
    if k.shape != (3, 3):
        raise ValueError(f"intrinsics must be [3, 3]; got shape {k.shape}")
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"c2w must be [T, 4, 4]; got shape {c2w.shape}")
    h, w = depth0.shape
    valid = np.isfinite(depth0) & (depth0 > 0)
    valid[np.arange(h) % stride != 0] = False
    valid[:, np.arange(w) % stride != 0] = False
    if not valid.any():
        raise ValueError("depth0 has no valid (finite, positive) pixel; cannot reproject frame 0")
    cam0 = backproject(np.where(valid, depth0, 0.0), k)[valid]  # [N, 3]
    world = cam0 @ c2w[0, :3, :3].T + c2w[0, :3, 3]
    w2c = invert_pose(c2w)  # [T, 4, 4]
    n0 = len(world)
    for i in range(1, c2w.shape[0]):
        uv, _ = project(world @ w2c[i, :3, :3].T + w2c[i, :3, 3], k)  # NaN behind the camera
        remaining = int(_in_view(uv, h, w).sum())
        if remaining <= tolerance * n0:
            return i
    return c2w.shape[0]
