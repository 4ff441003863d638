"""Trimming for SCS (EgoWM §4): the first frame at which every point visible in frame 0 has left the view.

Frames from that index on show only regions unseen in the initial observation, where structural
correspondence is ill-defined, so SCS ignores them. Two ways to find it:

* `trim_frame_by_flow` (default, no weights): a grid of points in frame 0 is tracked by chaining
  dense optical flow from OpenCV (DIS or Farnebäck). A point survives a step when it lands inside
  the image and passes a forward–backward check |p + F(p) + B(p + F(p)) − p| ≤ τ_abs + τ_rel·|F(p)|;
  a point that fails is dropped as unreliable (occluded or mistracked). The trim frame is the
  first frame at which at most `tolerance` of the grid points are still tracked in view.
* `trim_frame_by_reprojection` (synthetic worlds): every pixel of frame 0 is lifted with its
  ground-truth depth and intrinsics K, moved to world space with the camera-to-world pose of frame
  0 and projected into each later frame (OpenCV axes: x right, y down, z forward). A point is in
  view when z > 0 and its projection lies in the image (pixel centres at integer coordinates).
  Occlusion is not modelled: only leaving the field of view counts.

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
    """First frame where every tracked frame-0 point has left the view, by chained optical flow.

    Args:
        frames: uint8 `[T, H, W, 3]` RGB (the ground-truth video).
        method: "dis" or "farneback" (OpenCV).
        grid_step: spacing in pixels of the frame-0 point grid.
        fb_abs, fb_rel: forward–backward threshold τ_abs + τ_rel·|flow| in pixels.
        tolerance: fraction of grid points that may remain (0 = every point must have left).

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
    n0 = len(pts)
    for i in range(1, t):
        fwd = dense_flow(frames[i - 1], frames[i], method)
        bwd = dense_flow(frames[i], frames[i - 1], method)
        f = _sample(fwd, pts)
        moved = pts + f
        inside = _in_view(moved, h, w)
        back = moved + _sample(bwd, moved)
        fb_err = np.linalg.norm(back - pts, axis=1)
        reliable = fb_err <= fb_abs + fb_rel * np.linalg.norm(f, axis=1)
        keep = inside & reliable
        logger.debug(
            "trim step %d: %d points, %d left the view, %d failed forward-backward",
            i,
            len(pts),
            int((~inside).sum()),
            int((inside & ~reliable).sum()),
        )
        pts = moved[keep]
        if len(pts) <= tolerance * n0:
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
    v, u = np.mgrid[0:h:stride, 0:w:stride]
    z = depth0[v, u]
    valid = np.isfinite(z) & (z > 0)
    if not valid.any():
        raise ValueError("depth0 has no valid (finite, positive) pixel; cannot reproject frame 0")
    pix = np.stack([u[valid], v[valid], np.ones(valid.sum())], axis=0)  # [3, N]
    cam0 = np.linalg.inv(k) @ pix * z[valid]  # [3, N]
    world = c2w[0, :3, :3] @ cam0 + c2w[0, :3, 3:4]
    n0 = cam0.shape[1]
    for i in range(1, c2w.shape[0]):
        w2c = np.linalg.inv(c2w[i])
        cam = w2c[:3, :3] @ world + w2c[:3, 3:4]
        front = cam[2] > 1e-9
        proj = k @ cam[:, front]
        uv = (proj[:2] / proj[2]).T  # [M, 2]
        remaining = int(_in_view(uv, h, w).sum())
        if remaining <= tolerance * n0:
            return i
    return c2w.shape[0]
