"""Trimming finds, within ±1 frame, where a synthetic camera has turned away from its first view."""

import numpy as np
import pytest
from metrics_world import exit_frame, render

from egoworld.metrics.trimming import trim_frame_by_flow, trim_frame_by_reprojection

YAWS = np.radians(np.arange(20) * 4.5)  # turning right 4.5° a frame; FOV 60°


@pytest.fixture(scope="module")
def world():
    return render(YAWS)


def test_analytic_exit_is_inside_the_clip():
    assert 5 < exit_frame(YAWS) < len(YAWS) - 2


def test_reprojection_matches_geometry(world):
    expected = exit_frame(YAWS)
    assert trim_frame_by_reprojection(world.depth[0], world.intrinsics, world.c2w) == expected


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_chained_flow_within_one_frame(world, method):
    expected = exit_frame(YAWS)
    found = trim_frame_by_flow(world.frames, method=method)
    assert abs(found - expected) <= 1, (found, expected)


def test_no_motion_keeps_whole_clip():
    still = render(np.zeros(4))
    assert trim_frame_by_flow(still.frames) == 4
    assert trim_frame_by_reprojection(still.depth[0], still.intrinsics, still.c2w) == 4


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        trim_frame_by_flow(np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"\[3, 3\]"):
        trim_frame_by_reprojection(np.ones((4, 4)), np.eye(4), np.tile(np.eye(4), (2, 1, 1)))


def _scripted_flow(monkeypatch, lost_rows_from: int):
    """Replace optical flow by a scripted one: everything moves +1 px/frame in x; from row
    `lost_rows_from` down the backward flow disagrees (those points fail the forward–backward check)."""
    import egoworld.metrics.trimming as trimming

    def flow(prev, nxt, method="dis"):
        h, w = prev.shape[:2]
        f = np.zeros((h, w, 2), np.float32)
        forward = prev[0, 0, 0] < nxt[0, 0, 0]  # frame i has value i: forward when it grows
        f[..., 0] = 1.0 if forward else -1.0
        if not forward:
            f[lost_rows_from:, :, 0] = 9.0  # inconsistent backward flow
        return f

    monkeypatch.setattr(trimming, "dense_flow", flow)
    return np.arange(40, dtype=np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)


def test_flow_points_failing_the_check_are_not_counted_as_left(monkeypatch):
    # top half tracked (x = 2, 6, …, 30 moving +1 px/frame), bottom half lost at the first step
    frames = _scripted_flow(monkeypatch, lost_rows_from=16)
    assert trim_frame_by_flow(frames) == 30  # x = 2 leaves (≥ 31.5) at frame 30
    # half of the tracked columns (x ≥ 18) have left at frame 14; the lost half does not count
    assert trim_frame_by_flow(frames, tolerance=0.5) == 14  # counting lost as left gave 1


def test_flow_losing_every_point_in_view_does_not_trim(monkeypatch, caplog):
    frames = _scripted_flow(monkeypatch, lost_rows_from=0)
    assert trim_frame_by_flow(frames[:5]) == 5  # no point seen leaving: no evidence, no trim
    assert "lost every point" in caplog.text
