import numpy as np
import pytest

import egoworld.worlds  # noqa: F401  (sets MUJOCO_GL before the gripper tests import mujoco)
from egoworld.sim.camera import intrinsics, look_at
from egoworld.sim.hands import (
    GRIPPER_PALM_LENGTH,
    HAND_BONE_COLORS,
    HAND_EDGES,
    draw_gripper_keypoint_skeletons,
    draw_gripper_skeletons,
    draw_hand_skeletons,
    gripper_keypoints_to_hand_keypoints,
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


def _worlds_gripper(closures, wrist_poses):
    """Keypoints [T, 3, 3] of the synthetic worlds' MuJoCo gripper (egoworld.worlds.hands) at each pose."""
    import mujoco

    from egoworld.worlds.hands import closure_qpos, gripper_xml, keypoint_sites

    m = mujoco.MjModel.from_xml_string("<mujoco><worldbody>" + gripper_xml("eff") + "</worldbody></mujoco>")
    d = mujoco.MjData(m)
    out = []
    for c, pose in zip(closures, wrist_poses):
        for j, v in closure_qpos("gripper", c).items():
            d.qpos[m.joint(j).qposadr[0]] = v
        d.mocap_pos[0] = pose[:3, 3]
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, pose[:3, :3].reshape(-1))
        d.mocap_quat[0] = q
        mujoco.mj_forward(m, d)
        out.append([d.site(s).xpos.copy() for s in keypoint_sites("gripper")])
    return np.array(out)


def _effector_poses():
    """Effector frames (x along the fingers) pointing roughly away from a camera at the origin."""
    from scipy.spatial.transform import Rotation

    poses = np.tile(np.eye(4), (3, 1, 1))
    rots = Rotation.from_euler("xyz", [[0, -60, 10], [20, -45, 80], [-30, -70, -40]], degrees=True)
    poses[:, :3, :3] = rots.as_matrix()
    poses[:, :3, 3] = [[0.0, 0.02, 0.25], [-0.05, 0.0, 0.3], [0.03, -0.03, 0.28]]
    return poses


def test_gripper_keypoints_give_chains_ending_on_the_tips():
    closures = np.array([0.0, 0.5, 1.0])
    kp = _worlds_gripper(closures, _effector_poses())  # [3, 3, 3]
    hands = gripper_keypoints_to_hand_keypoints(kp)
    assert hands.shape == (3, 21, 3) and np.all(np.isnan(hands[:, 9:]))
    np.testing.assert_allclose(hands[:, [0, 4, 8]], kp, atol=1e-12)  # wrist and both tips are the given ones
    finger = np.linalg.norm(hands[:, 4] - hands[:, 1], axis=-1)
    np.testing.assert_allclose(finger, 0.115 - GRIPPER_PALM_LENGTH, atol=1e-9)  # |mid − wrist| − palm
    # the pose + opening form with its default lengths gives the same skeleton for this gripper
    R_sim = _effector_poses()[:, :3, :3] @ np.array(
        [[0, 0, 1], [0, -1, 0], [1, 0, 0.0]]
    )  # z fingers, y → index
    ee = _effector_poses()
    ee[:, :3, :3] = R_sim
    opening = np.linalg.norm(kp[:, 1] - kp[:, 2], axis=-1)
    np.testing.assert_allclose(gripper_to_hand_keypoints(ee, opening)[:, :9], hands[:, :9], atol=1e-9)
    two = gripper_keypoints_to_hand_keypoints(np.stack([kp, kp], 1))
    assert two.shape == (3, 2, 21, 3)
    with pytest.raises(ValueError, match=r"expected more than palm_length=0.2"):
        gripper_keypoints_to_hand_keypoints(kp, palm_length=0.2)
    with pytest.raises(ValueError, match=r"gripper keypoints have shape \[3, 4, 3\]"):
        gripper_keypoints_to_hand_keypoints(np.zeros((3, 4, 3)))


def test_drawn_gripper_tips_land_on_the_tip_keypoints():
    K2 = intrinsics(160.0, 160.0, 79.5, 59.5)
    kp = _worlds_gripper(np.array([0.0, 0.5, 1.0]), _effector_poses())  # camera frame (camera at the origin)
    video = draw_gripper_keypoint_skeletons(kp, K2, None, 120, 160)
    uv, _ = project_keypoints(kp, K2)  # [3, 3, 2]
    old = draw_gripper_skeletons(  # the old geometry: tips 0.09 m from the wrist
        *_sim_pose_and_opening(kp), K2, None, 120, 160, finger_length=0.05
    )
    for t in range(3):
        drawn = video[t].max(-1) > 0
        for tip in (1, 2):
            u, v = np.round(uv[t, tip]).astype(int)
            assert drawn[v, u], (t, tip)  # the drawn tip covers the tip keypoint
            wrist_to_tip = uv[t, tip] - uv[t, 0]
            beyond = np.round(uv[t, tip] + 6 * wrist_to_tip / np.linalg.norm(wrist_to_tip)).astype(int)
            assert not drawn[beyond[1], beyond[0]], (t, tip)  # and ends there (6 px further: black)
        assert (old[t].max(-1) > 0).sum() < drawn.sum()  # the short fingers draw less


def _sim_pose_and_opening(kp):
    wrist, a, b = kp[:, 0], kp[:, 1], kp[:, 2]
    z = (a + b) / 2 - wrist
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    y = b - a
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    ee = np.tile(np.eye(4), (len(kp), 1, 1))
    ee[:, :3, 0], ee[:, :3, 1], ee[:, :3, 2], ee[:, :3, 3] = np.cross(y, z), y, z, wrist
    return ee, np.linalg.norm(b - a, axis=1)
