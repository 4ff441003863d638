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
