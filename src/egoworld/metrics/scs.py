"""Structural Consistency Score (EgoWM §4, Eq. 7).

    SCS = 100 / (T K) * sum_t sum_k IoU(M^pred_{t,k}, M^gt_{t,k})

where M^pred_{t,k} and M^gt_{t,k} are the binary masks of object k at frame t in the predicted
and ground-truth videos. Masks cross this module as boolean arrays `[T, K, H, W]` (0/1 numbers
are accepted; NaN or any other value is refused with ValueError).

Empty unions: when object k is absent from frame t in *both* videos (it has left the view in
both), IoU is 0/0 and undefined. Such (t, k) pairs are left out of the mean, so T·K in Eq. 7
counts only the pairs where at least one of the two masks is non-empty. An object present in
one video and absent in the other has IoU 0 and counts fully. If no pair is defined at all,
`structural_consistency_score` raises `ValueError`; the per-horizon helpers report NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_HORIZONS = (2, 4, 8, 16)


def _check_masks(pred_masks: np.ndarray, gt_masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred_masks)
    gt = np.asarray(gt_masks)
    if pred.ndim != 4 or gt.ndim != 4:
        raise ValueError(
            f"SCS masks must be [T, K, H, W]; got pred shape {pred.shape} and gt shape {gt.shape}"
        )
    if pred.shape != gt.shape:
        raise ValueError(f"SCS masks differ in shape: pred {pred.shape} vs gt {gt.shape} (expected equal)")
    return _as_bool(pred, "pred"), _as_bool(gt, "gt")


def _as_bool(masks: np.ndarray, which: str) -> np.ndarray:
    """Boolean masks as they are; 0/1 integer or float masks converted; anything else refused.

    A NaN, a 255 or a probability is not a mask: `astype(bool)` would count it as "inside".
    """
    if masks.dtype == np.bool_:
        return masks
    if not (np.issubdtype(masks.dtype, np.integer) or np.issubdtype(masks.dtype, np.floating)):
        raise ValueError(f"SCS {which} masks are {masks.dtype}; expected boolean masks [T, K, H, W]")
    bad = (masks != 0) & (masks != 1)  # NaN compares unequal to both
    if bad.any():
        value = masks[bad].flat[0].item()
        raise ValueError(
            f"SCS {which} masks ({masks.dtype}) hold {value!r}; expected boolean masks [T, K, H, W] "
            "(or only 0 and 1)"
        )
    return masks.astype(bool)


def mask_iou(pred_masks: np.ndarray, gt_masks: np.ndarray) -> np.ndarray:
    """Per-frame, per-object IoU of boolean masks `[T, K, H, W]` → float `[T, K]`.

    Pairs whose union is empty (object absent in both videos) are NaN.
    """
    pred, gt = _check_masks(pred_masks, gt_masks)
    inter = np.logical_and(pred, gt).sum(axis=(2, 3), dtype=np.int64)
    union = np.logical_or(pred, gt).sum(axis=(2, 3), dtype=np.int64)
    iou = np.full(inter.shape, np.nan, dtype=np.float64)
    np.divide(inter, union, out=iou, where=union > 0)
    return iou  # [T, K]


def structural_consistency_score(pred_masks: np.ndarray, gt_masks: np.ndarray) -> float:
    """Eq. 7 on boolean masks `[T, K, H, W]`: mean mask IoU over frames and objects, × 100.

    Returns a float in [0, 100]. Pairs with an empty union are excluded (see module docstring);
    raises `ValueError` when every pair is empty or the shapes disagree.
    """
    iou = mask_iou(pred_masks, gt_masks)
    if not np.isfinite(iou).any():
        raise ValueError(
            f"SCS is undefined: all {iou.size} (frame, object) pairs have empty masks in both videos "
            "(expected at least one non-empty mask)"
        )
    return float(100.0 * np.nanmean(iou))


def scs_per_frame(pred_masks: np.ndarray, gt_masks: np.ndarray) -> np.ndarray:
    """SCS of each frame alone (mean over objects × 100) → float `[T]`, NaN where undefined."""
    iou = mask_iou(pred_masks, gt_masks)
    out = np.full(iou.shape[0], np.nan)
    defined = np.isfinite(iou).any(axis=1)
    out[defined] = 100.0 * np.nanmean(iou[defined], axis=1)
    return out


def scs_by_horizon(
    pred_masks: np.ndarray,
    gt_masks: np.ndarray,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    *,
    first_frame: int = 1,
    trim_at: int | None = None,
) -> dict[str, float]:
    """Eq. 7 per horizon and overall, as in Tables 1–2 ("Frame 2, 4, 8, 16").

    Frame 0 is the shared initial observation; horizon `h` is the frame with index `h`, scored
    with Eq. 7 over the K objects at that frame alone. "overall" applies Eq. 7 to frames
    `first_frame .. trim_at-1` (all remaining frames when `trim_at` is None). Horizons at or
    beyond `trim_at` or the video's end are NaN: structure is undefined there (§4, trimming).

    Returns {"2": …, "4": …, …, "overall": …} (`egoworld.metrics.report.by_horizon` on the
    IoUs `[T, K]`: a horizon averages its frame's objects, "overall" every defined pair).
    """
    from egoworld.metrics.report import by_horizon

    iou = mask_iou(pred_masks, gt_masks)  # [T, K]
    t = iou.shape[0]
    if trim_at is not None and trim_at < t:
        logger.info("SCS: trimmed at frame %d of %d", max(0, int(trim_at)), t)
    return by_horizon(100.0 * iou, horizons, first_frame=first_frame, end=trim_at)
