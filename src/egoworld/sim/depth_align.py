"""Relative depth of a generated clip made metric, frame by frame, before the update's Sim(3) fit.

A monocular estimator gives each frame's depth up to an unknown scale, and relative models (Depth
Anything v1/v2 "relative") up to a shift as well, in *disparity*: their output d is affine in
inverse depth, 1/z = a·d + b, with a and b changing from frame to frame. One Sim(3) per clip cannot
undo that, and 1/d is not a depth (b ≠ 0 bends it), so every frame is fitted on its own against
metric anchors, in the space the model predicts in, and only then inverted:

- ``"disparity"`` (relative models): 1/z ≈ a·d + b, fitted in inverse depth, z = 1/(a·d + b) after
  (0 where a·d + b ≤ 0);
- ``"depth"`` (affine-invariant depth): z ≈ a·p + b;
- ``"metric"`` (metric models, whose scale may still be off): z ≈ s·p.

Anchors are pixels with a metric depth the simulator already knows: the state's rendered depth on
static, covered pixels (away from the hands and the state's objects, which may move), and the hand
keypoints (camera z at their projected pixel; joint centres, about a centimetre behind the skin the
model sees). The fit is robust (`egoworld.sim.align.robust_affine_fit`: Huber IRLS, then a refit on
the points within 3 scales), so pixels where the generated frame differs from the state (a moved
object, the hand) do not pull it. With fewer than `MIN_SHIFT_ANCHORS` anchors, or anchors spanning
less than `MIN_SHIFT_SPAN` in depth, the shift is not observable and only a scale is fitted; a
frame with fewer than `MIN_ANCHORS` anchors, or whose fit inverts the depth order, gets no depth
(0: not fused).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from egoworld.sim.align import robust_affine_fit

logger = logging.getLogger(__name__)

DEPTH_KINDS = ("disparity", "depth", "metric")
MIN_ANCHORS = 3
MIN_SHIFT_ANCHORS = 6
MIN_SHIFT_SPAN = 1.25  # max z / min z of the anchors needed to fit a shift
MAX_PIXEL_ANCHORS = 4096  # state pixels per frame entering the fit (an even subsample)


@dataclass
class DepthFit:
    """One frame's alignment: ``scale`` a and ``shift`` b of the kind's model (None: not aligned),
    the anchors used, the fit's inliers and the median |z_fit − z| over them (metres)."""

    kind: str
    anchors: int
    inliers: int = 0
    scale: float | None = None
    shift: float | None = None
    residual_m: float | None = None

    @property
    def ok(self) -> bool:
        return self.scale is not None


def _anchor_pairs(
    pred: np.ndarray, anchor_depth: np.ndarray | None, uv: np.ndarray | None, z: np.ndarray | None, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, metric z) at the anchors: state pixels (an even subsample) and joints."""
    H, W = pred.shape
    xs, zs = [], []
    if anchor_depth is not None:
        usable = np.isfinite(anchor_depth) & (anchor_depth > 0) & np.isfinite(pred)
        flat = np.flatnonzero(usable.reshape(-1))
        if len(flat) > limit:
            flat = flat[np.linspace(0, len(flat) - 1, limit).round().astype(np.int64)]
        xs.append(pred.reshape(-1)[flat])
        zs.append(anchor_depth.reshape(-1)[flat])
    if uv is not None and z is not None:
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        ok = np.isfinite(uv).all(-1) & np.isfinite(z) & (z > 0)
        px = np.rint(np.where(ok[:, None], uv, -1)).astype(np.int64)
        ok &= (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
        x = pred[px[ok, 1], px[ok, 0]]
        keep = np.isfinite(x)
        xs.append(x[keep])
        zs.append(z[ok][keep])
    if not xs:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(xs).astype(np.float64), np.concatenate(zs).astype(np.float64)


def align_depth_frame(
    prediction_HW: np.ndarray,
    kind: str,
    anchor_depth_HW: np.ndarray | None = None,
    joints_uv: np.ndarray | None = None,  # [J, 2] pixels
    joints_z: np.ndarray | None = None,  # [J] metres
    *,
    max_pixel_anchors: int = MAX_PIXEL_ANCHORS,
) -> tuple[np.ndarray, DepthFit]:
    """Metric depth ``[H, W]`` float32 (0 = unknown) of one frame's prediction, and its fit.

    `anchor_depth_HW` is metric depth where known (0 elsewhere), e.g. the state's rendered depth on
    static pixels; `joints_uv` / `joints_z` are further anchors (NaN: none). See the module doc.
    """
    if kind not in DEPTH_KINDS:
        raise ValueError(f"depth kind {kind!r}; expected one of {list(DEPTH_KINDS)}")
    pred = np.asarray(prediction_HW, dtype=np.float64)
    if pred.ndim != 2:
        raise ValueError(f"prediction has shape {list(pred.shape)}; expected [H, W]")
    if anchor_depth_HW is not None and np.shape(anchor_depth_HW) != pred.shape:
        raise ValueError(
            f"anchor depth has shape {list(np.shape(anchor_depth_HW))}; expected {list(pred.shape)}"
        )
    x, z = _anchor_pairs(pred, anchor_depth_HW, joints_uv, joints_z, max_pixel_anchors)
    fit = DepthFit(kind, int(len(x)))
    empty = np.zeros(pred.shape, np.float32)
    if len(x) < MIN_ANCHORS:
        return empty, fit
    shift = kind != "metric" and len(x) >= MIN_SHIFT_ANCHORS and z.max() / z.min() >= MIN_SHIFT_SPAN
    y = 1.0 / z if kind == "disparity" else z
    a, b, inl = robust_affine_fit(x, y, shift=shift)
    if a <= 0 and shift:  # the fit inverts the depth order: a scale alone
        a, b, inl = robust_affine_fit(x, y, shift=False)
    if not a > 0:
        logger.info("depth fit of kind %s inverts the depth order (a=%.3g); frame not aligned", kind, a)
        return empty, fit
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        fitted = a * pred + b  # inverse depth (disparity) or depth
        depth = np.where(fitted > 0, 1.0 / fitted if kind == "disparity" else fitted, 0.0)
        zf = 1.0 / (a * x[inl] + b) if kind == "disparity" else a * x[inl] + b
    depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    fit.scale, fit.shift, fit.inliers = float(a), float(b), int(inl.sum())
    fit.residual_m = float(np.median(np.abs(zf - z[inl]))) if inl.any() else None
    return depth, fit


def align_depth(
    prediction_THW: np.ndarray,
    kind: str,
    anchor_depth_THW: np.ndarray | None = None,
    joints_uv: np.ndarray | None = None,  # [T, J, 2]
    joints_z: np.ndarray | None = None,  # [T, J]
    **kwargs,
) -> tuple[np.ndarray, list[DepthFit]]:
    """`align_depth_frame` for every frame: metric depth ``[T, H, W]`` float32 and the fits."""
    pred = np.asarray(prediction_THW)
    if pred.ndim != 3:
        raise ValueError(f"prediction has shape {list(pred.shape)}; expected [T, H, W]")
    out = np.zeros(pred.shape, np.float32)
    fits = []
    for t in range(len(pred)):
        out[t], fit = align_depth_frame(
            pred[t],
            kind,
            None if anchor_depth_THW is None else anchor_depth_THW[t],
            None if joints_uv is None else joints_uv[t],
            None if joints_z is None else joints_z[t],
            **kwargs,
        )
        fits.append(fit)
    bad = [t for t, f in enumerate(fits) if not f.ok]
    if bad:
        logger.warning("frames %s could not be put on a metric scale (too few anchors); not fused", bad)
    return out, fits
