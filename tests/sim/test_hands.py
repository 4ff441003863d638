import numpy as np
import pytest

from egoworld.sim.camera import intrinsics, look_at
from egoworld.sim.hands import (
    HAND_BONE_COLORS,
    HAND_EDGES,
    draw_gripper_skeletons,
    draw_hand_skeletons,
    gripper_to_hand_keypoints,
    project_keypoints,
)

K = intrinsics(60.0, 60.0, 31.5, 23.5)


def _hand(z, x=0.0):
    """A flat open hand facing the camera at depth z (camera frame), [21, 3]."""
    kp = np.zeros((21, 3))
    kp[0] = [x, 0.05, z]
    for f in range(5):
        for j in range(4):
            kp[1 + 4 * f + j] = [x - 0.04 + 0.02 * f, 0.03 - 0.02 * j, z]
    return kp


def test_openpose_layout():
    assert len(HAND_EDGES) == 20 and HAND_BONE_COLORS.shape == (20, 3)
    assert HAND_EDGES[0] == (0, 1) and HAND_EDGES[3] == (3, 4) and HAND_EDGES[4] == (0, 5)
    assert HAND_EDGES[-1] == (19, 20)
    assert tuple(HAND_BONE_COLORS[0]) == (255, 0, 0)


def test_projection_matches_camera_geometry():
    uv, z = project_keypoints(np.array([[0.0, 0.0, 2.0], [0.5, 0.25, 1.0], [0.0, 0.0, -1.0]]), K)
    np.testing.assert_allclose(uv[0], [31.5, 23.5])
    np.testing.assert_allclose(uv[1], [31.5 + 30.0, 23.5 + 15.0])
    assert np.all(np.isnan(uv[2]))
    # with a camera pose: a world point on the optical axis lands on the principal point
    pose = look_at([0.3, -1.0, 0.8], [0.1, 0.2, 0.0])
    target = np.array([[0.1, 0.2, 0.0]])
    uv, z = project_keypoints(target, K, pose)
    np.testing.assert_allclose(uv[0], [31.5, 23.5], atol=1e-9)
    assert z[0] == pytest.approx(np.linalg.norm([0.2, 1.2, -0.8]))


def test_skeleton_video_and_foreshortening():
    K2 = intrinsics(240.0, 240.0, 127.5, 95.5)
    near = draw_hand_skeletons(_hand(0.4)[None], K2, None, 192, 256)
    far = draw_hand_skeletons(_hand(0.8)[None], K2, None, 192, 256)
    assert near.shape == (1, 192, 256, 3) and near.dtype == np.uint8
    n_near = (near.max(-1) > 0).sum()
    n_far = (far.max(-1) > 0).sum()
    assert n_near > 2.5 * n_far > 0  # twice as close: twice as long and twice as thick
    # the thumb's first bone is drawn in OpenPose red near its midpoint
    uv, _ = project_keypoints(_hand(0.4)[:2], K2)
    mid = np.round(uv.mean(0)).astype(int)
    px = near[0, mid[1], mid[0]].astype(int)
    assert px[0] > 150 and px[1] < 100 and px[2] < 100


def test_two_hands_and_missing_hand():
    both = np.stack([_hand(0.5, -0.12), _hand(0.5, 0.12)])[None]  # [1, 2, 21, 3]
    video = draw_hand_skeletons(both, K, np.eye(4), 48, 64)
    left, right = video[0, :, :32].max(-1) > 0, video[0, :, 32:].max(-1) > 0
    assert left.sum() > 20 and right.sum() > 20
    both[0, 1] = np.nan  # second hand out of view
    video = draw_hand_skeletons(both, K, None, 48, 64)
    assert (video[0, :, 40:].max(-1) > 0).sum() == 0


@pytest.mark.parametrize("shape", [(5, 20, 3), (5, 21), (5, 3, 21, 3), (21, 3)])
def test_wrong_keypoint_shape(shape):
    with pytest.raises(ValueError, match=r"shape \[.*\]; expected \[T, 21, 3\].*\[T, 2, 21, 3\]"):
        draw_hand_skeletons(np.zeros(shape), K, None, 48, 64)


def test_gripper_skeleton_shows_opening():
    ee = np.tile(np.eye(4), (2, 1, 1))
    ee[:, :3, 3] = [0.0, 0.0, 0.3]
    ee[:, :3, :3] = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0.0]])  # fingers along +y (down), jaws along x
    kp = gripper_to_hand_keypoints(ee, np.array([0.02, 0.08]))
    assert kp.shape == (2, 21, 3) and np.all(np.isnan(kp[:, 9:]))
    gap = np.linalg.norm(kp[:, 4] - kp[:, 8], axis=-1)
    np.testing.assert_allclose(gap, [0.02, 0.08])
    video = draw_gripper_skeletons(ee, np.array([0.02, 0.08]), K, None, 48, 64)
    assert video.shape == (2, 48, 64, 3)
    cols = [np.nonzero((v.max(-1) > 0).any(0))[0] for v in video]
    assert np.ptp(cols[1]) > np.ptp(cols[0])  # wider open → wider drawing
    with pytest.raises(ValueError, match="opening"):
        draw_gripper_skeletons(ee, np.array([0.02]), K, None, 48, 64)
