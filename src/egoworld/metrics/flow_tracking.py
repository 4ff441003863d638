"""Weights-free mask tracking for SCS: carry frame-0 masks through a video with dense optical flow.

SAM 2 (the tracker of EgoWM §4) needs a checkpoint; where none is available, the frame-0 masks of
the objects (e.g. ground-truth instance masks) can be propagated through a *predicted* video by
chaining backward optical flow (OpenCV DIS or Farnebäck):

    B_t          flow from frame t to frame t-1:  frame_t(p) ≈ frame_{t-1}(p + B_t(p))
    M_0(p) = p,  M_t(p) = M_{t-1}(p + B_t(p))      where pixel p of frame t came from in frame 0
    mask_{t,k}(p) = [ mask_{0,k}(M_t(p)) ≥ 0.5 ]   (bilinear sampling of the frame-0 mask)

Chaining coordinates rather than re-warping masks keeps the masks sharp over many frames. A pixel
whose origin lies outside frame 0 (a region entering the view) takes the label of the nearest
frame-0 border pixel with `outside="replicate"` (structures cut by the image border continue
beyond it), or no label with `outside="empty"`. Flow is computed on frames upscaled so that the
shorter side is at least `flow_size` pixels (DIS works on 8-pixel patches; 32-pixel frames are
too small for it) and scaled back. Masks cross this module as boolean `[T, K, H, W]`.
"""

from __future__ import annotations

import logging

import numpy as np

from egoworld.metrics.trimming import dense_flow

logger = logging.getLogger(__name__)

OUTSIDE = ("replicate", "empty")


def upscaled_flow(prev: np.ndarray, nxt: np.ndarray, method: str, flow_size: int) -> np.ndarray:
    """Flow from `prev` to `nxt` (uint8 [H, W, 3]) computed at >= flow_size px → float32 [H, W, 2]."""
    import cv2

    h, w = prev.shape[:2]
    scale = max(1.0, flow_size / min(h, w))
    if scale == 1.0:
        return dense_flow(prev, nxt, method)
    size = (round(w * scale), round(h * scale))
    big = dense_flow(
        cv2.resize(prev, size, interpolation=cv2.INTER_CUBIC),
        cv2.resize(nxt, size, interpolation=cv2.INTER_CUBIC),
        method,
    )
    flow = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)
    flow[..., 0] *= w / size[0]
    flow[..., 1] *= h / size[1]
    return flow


def origin_maps(frames: np.ndarray, *, method: str = "dis", flow_size: int = 128) -> np.ndarray:
    """Where each pixel of each frame came from in frame 0, by chained backward flow.

    Args:
        frames: uint8 `[T, H, W, 3]` RGB.
        method: "dis" or "farneback" (OpenCV).
        flow_size: flow is computed on frames upscaled to at least this many pixels per side.

    Returns float32 `[T, H, W, 2]` (x, y) positions in frame 0; row 0 is the identity grid.
    """
    import cv2

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3]; got {frames.dtype} {frames.shape}")
    t, h, w = frames.shape[:3]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    grid = np.stack([xs, ys], axis=-1)  # [H, W, 2]
    maps = np.empty((t, h, w, 2), np.float32)
    maps[0] = grid
    for i in range(1, t):
        back = upscaled_flow(frames[i], frames[i - 1], method, flow_size)  # frame i -> frame i-1
        where = grid + back
        # M_i(p) = M_{i-1}(p + B_i(p)); beyond the border M_{i-1} is extended linearly (replicate
        # would pin the origin to the edge and lose how far outside frame 0 the pixel lies)
        prev = maps[i - 1]
        inside = cv2.remap(
            prev, where[..., 0], where[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        edge = np.stack([np.clip(where[..., 0], 0, w - 1), np.clip(where[..., 1], 0, h - 1)], axis=-1)
        maps[i] = inside + (where - edge)  # identity extrapolation outside the previous frame
    return maps


def track_masks_by_flow(
    frames: np.ndarray,
    masks0: np.ndarray,
    *,
    method: str = "dis",
    flow_size: int = 128,
    outside: str = "replicate",
) -> np.ndarray:
    """Propagate frame-0 masks through a video with chained optical flow.

    Args:
        frames: uint8 `[T, H, W, 3]` RGB; frame 0 is the frame the masks belong to.
        masks0: boolean `[K, H, W]`, one mask per object on frame 0.
        method: "dis" or "farneback".
        flow_size: see `origin_maps`.
        outside: "replicate" (a pixel whose origin is outside frame 0 takes the nearest border
            pixel's label) or "empty" (it belongs to no object).

    Returns boolean `[T, K, H, W]`; row 0 equals `masks0`.
    """
    import cv2

    frames, masks0 = np.asarray(frames), np.asarray(masks0)
    if outside not in OUTSIDE:
        raise ValueError(f"outside={outside!r}; expected one of {OUTSIDE}")
    if masks0.ndim != 3 or frames.ndim != 4 or masks0.shape[1:] != frames.shape[1:3]:
        raise ValueError(
            f"masks0 must be [K, H, W] matching frames [T, H, W, 3]; got {masks0.shape} and {frames.shape}"
        )
    maps = origin_maps(frames, method=method, flow_size=flow_size)  # [T, H, W, 2]
    t, h, w = frames.shape[:3]
    soft = masks0.astype(np.float32)  # [K, H, W]
    out = np.zeros((t, len(masks0), h, w), dtype=bool)
    out[0] = masks0.astype(bool)
    for i in range(1, t):
        mx, my = maps[i, ..., 0], maps[i, ..., 1]
        valid = (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)
        for k in range(len(masks0)):
            warped = cv2.remap(soft[k], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            m = warped >= 0.5
            out[i, k] = m if outside == "replicate" else m & valid
    logger.debug("tracked %d masks through %d frames", len(masks0), t)
    return out  # [T, K, H, W]
