import numpy as np
import pytest

from egoworld.actions.spaces import (
    HUMANOID_STATE_DIM,
    HUMANOID_STATE_LAYOUT,
    METRIC_WAYPOINT_SPACING,
    humanoid_deltas,
    nav_cumulative,
    nav_deltas,
    wrap_angle,
)


def test_nav_deltas_hand_computed():
    # facing +y (yaw pi/2), moving +x by 1 m is 1 m to the robot's right: (0, -1) / 0.25
    position = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.5]])
    yaw = np.array([np.pi / 2, 0.0, 0.0])
    a = nav_deltas(position, yaw, spacing=0.25)
    assert a.shape == (2, 3) and a.dtype == np.float32
    np.testing.assert_allclose(a[0], [0.0, -4.0, -np.pi / 2], atol=1e-6)
    # facing +x, moving +y 0.5 m: 0.5 m to the left -> (0, 2)
    np.testing.assert_allclose(a[1], [0.0, 2.0, 0.0], atol=1e-6)


def test_yaw_wraps_across_pi():
    position = np.zeros((4, 2))
    yaw = np.array([3.0, -3.0, 3.0, 3.0 - np.pi])
    a = nav_deltas(position, yaw, spacing=1.0)
    np.testing.assert_allclose(a[:, 2], [2 * np.pi - 6.0, 6.0 - 2 * np.pi, -np.pi], atol=1e-6)
    assert wrap_angle(np.pi) == pytest.approx(-np.pi)  # [-pi, pi)
    assert np.all((a[:, 2] >= -np.pi) & (a[:, 2] < np.pi))


def test_nav_cumulative_relative_to_start():
    position = np.array([[0.0, 0.0], [0.0, 1.0], [-1.0, 1.0]])
    yaw = np.array([0.0, np.pi / 2, np.pi])
    c = nav_cumulative(position, yaw, spacing=0.5, start=1)
    np.testing.assert_allclose(c[1], 0.0, atol=1e-7)
    # from pose 1 (at (0,1), facing +y), pose 2 is 1 m to the left, turned +90 degrees
    np.testing.assert_allclose(c[2], [0.0, 2.0, np.pi / 2], atol=1e-6)
    # pose 0 is 1 m behind
    np.testing.assert_allclose(c[0], [-2.0, 0.0, -np.pi / 2], atol=1e-6)
    # consistent with chaining the deltas from the start
    d = nav_deltas(position[1:], yaw[1:], 0.5)
    np.testing.assert_allclose(d[0], c[2], atol=1e-6)


def test_nav_rejects_bad_shapes():
    with pytest.raises(ValueError, match="yaw has 2"):
        nav_deltas(np.zeros((3, 2)), np.zeros(2), 1.0)
    with pytest.raises(ValueError, match="spacing"):
        nav_deltas(np.zeros((3, 2)), np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="start"):
        nav_cumulative(np.zeros((3, 2)), np.zeros(3), 1.0, start=3)


def test_humanoid_layout_covers_25_dims_once():
    covered = np.concatenate([np.arange(25)[s] for s in HUMANOID_STATE_LAYOUT.values()])
    assert sorted(covered.tolist()) == list(range(HUMANOID_STATE_DIM))
    assert HUMANOID_STATE_LAYOUT["neck"] == slice(20, 21)
    assert METRIC_WAYPOINT_SPACING["scand"] == 0.38
    s = np.arange(50, dtype=np.float32).reshape(2, 25)
    np.testing.assert_array_equal(humanoid_deltas(s), np.full((1, 25), 25.0))
    with pytest.raises(ValueError, match="25"):
        humanoid_deltas(np.zeros((3, 24)))
