import numpy as np
import pytest

from egoworld.actions.spaces import (
    HUMANOID_STATE_DIM,
    HUMANOID_STATE_LAYOUT,
    METRIC_WAYPOINT_SPACING,
    humanoid_deltas,
    mirror_nav,
    nav_cumulative,
    nav_deltas,
    nav_deltas_to_cumulative,
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


def test_composing_deltas_gives_the_cumulative_poses():
    # a random walk with turns across +-pi: composing its per-step deltas reproduces the poses
    # relative to step 0 that the cumulative action mode computes from the positions
    rng = np.random.default_rng(0)
    yaw = np.cumsum(rng.uniform(-0.8, 0.8, 30)) + 3.0
    position = np.cumsum(rng.normal(0, 0.3, (30, 2)), axis=0)
    deltas = np.concatenate([np.zeros((1, 3)), nav_deltas(position, yaw, 0.25)])
    c = nav_deltas_to_cumulative(deltas)
    np.testing.assert_allclose(c, nav_cumulative(position, yaw, 0.25, start=0), atol=1e-4)
    assert c.dtype == np.float32 and np.all(c[0] == 0)
    with pytest.raises(ValueError, match=r"\[T, 3\]"):
        nav_deltas_to_cumulative(np.zeros((4, 2)))


def test_mirroring_a_walk_mirrors_its_poses():
    # the walk reflected in the first heading's axis (world y -> -y, yaw -> -yaw) has the mirrored
    # actions, in either mode
    rng = np.random.default_rng(1)
    yaw = np.cumsum(rng.uniform(-0.5, 0.5, 12))
    position = np.cumsum(rng.normal(0, 0.3, (12, 2)), axis=0)
    flip = np.array([1.0, -1.0])
    np.testing.assert_allclose(
        mirror_nav(nav_deltas(position, yaw, 0.5)), nav_deltas(position * flip, -yaw, 0.5), atol=1e-5
    )
    np.testing.assert_allclose(
        mirror_nav(nav_cumulative(position, yaw, 0.5, 0)),
        nav_cumulative(position * flip, -yaw, 0.5, 0),
        atol=1e-5,
    )
    a = rng.normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(mirror_nav(mirror_nav(a)), a)


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
