"""SCS (EgoWM Eq. 7): bounds, empty unions, horizons, and monotone decay under drift."""

import numpy as np
import pytest
from metrics_world import render

from egoworld.metrics import structural_consistency_score
from egoworld.metrics.scs import mask_iou, scs_by_horizon
from egoworld.metrics.tracking import masks_from_instances, prompts_from_instances


def _boxes(t=5, k=2, h=32, w=32):
    m = np.zeros((t, k, h, w), bool)
    m[:, 0, 4:12, 4:12] = True
    m[:, 1, 20:30, 18:28] = True
    return m


def test_identical_is_100_and_disjoint_is_0():
    m = _boxes()
    assert structural_consistency_score(m, m) == 100.0
    disjoint = np.roll(m, 16, axis=2)  # each object moved 16 rows down: no overlap left
    assert not (disjoint & m).any() and disjoint.any(axis=(2, 3)).all()
    assert structural_consistency_score(disjoint, m) == 0.0


def test_empty_union_pairs_are_excluded_and_all_empty_raises():
    m = _boxes()
    m[3, 1] = False  # object 1 gone from frame 3 in both videos → that pair is skipped
    assert np.isnan(mask_iou(m, m)[3, 1])
    assert structural_consistency_score(m, m) == 100.0
    half = m.copy()
    half[:, 0] = False  # object 0 missed by the prediction: IoU 0 wherever the GT has it
    assert structural_consistency_score(half, m) == pytest.approx(100.0 * 4 / 9)
    with pytest.raises(ValueError, match="undefined"):
        structural_consistency_score(np.zeros((2, 1, 4, 4), bool), np.zeros((2, 1, 4, 4), bool))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"\[T, K, H, W\]"):
        structural_consistency_score(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 4), bool))
    with pytest.raises(ValueError, match="differ"):
        structural_consistency_score(np.zeros((2, 1, 4, 4), bool), np.zeros((3, 1, 4, 4), bool))


def test_horizons_and_trimming():
    m = _boxes(t=10)
    pred = m.copy()
    pred[4:] = False  # prediction loses everything from frame 4 on
    out = scs_by_horizon(pred, m, (2, 4, 8, 16), trim_at=8)
    assert out["2"] == 100.0 and out["4"] == 0.0
    assert np.isnan(out["8"]) and np.isnan(out["16"])  # at/after the trim frame, beyond the video
    assert out["overall"] == pytest.approx(100.0 * 3 / 7)  # frames 1..7


def _shift(frames_masks: np.ndarray, k: int) -> np.ndarray:
    """Shift frame t by k·t pixels to the right (zero fill): a prediction drifting k px per frame."""
    out = np.zeros_like(frames_masks)
    for t in range(len(frames_masks)):
        s = k * t
        out[t, ..., s:] = frames_masks[t, ..., : frames_masks.shape[-1] - s]
    return out


def test_scs_falls_monotonically_with_drift():
    world = render(np.radians(np.arange(8) * 2.0))
    prompts = prompts_from_instances(world.instances)
    gt = masks_from_instances(world.instances, prompts)  # [T, K, H, W]
    scores = []
    for k in (0, 1, 2, 3, 5):
        pred = masks_from_instances(_shift(world.instances, k), prompts)
        scores.append(structural_consistency_score(pred, gt))
    assert scores[0] == 100.0
    assert all(a > b for a, b in zip(scores, scores[1:])), scores
