import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from egoworld.sim.camera import backproject
from egoworld.sim.render import render_state
from egoworld.sim.state import SceneState
from egoworld.sim.update import update_state

from .conftest import BOX, H, Tabletop, W, camera_ring, fuse

OLD_XY, NEW_XY = (0.1, 0.05), (-0.15, 0.0)


@pytest.fixture(scope="module")
def setup(K):
    old, new = Tabletop(box_xy=OLD_XY, box_size=0.1), Tabletop(box_xy=NEW_XY, box_size=0.1)
    state = fuse(old, K, camera_ring(5), box_as_object=True)
    poses = camera_ring(8, span_deg=30)
    rgb, depth, masks = [], [], []
    for i, p in enumerate(poses):  # the box is carried from OLD to NEW half-way through the clip
        r, d, ids = (old if i < 4 else new).rgbd(K, p)
        rgb.append(r), depth.append(d), masks.append(ids == BOX)
    clip = {
        "rgb": np.stack(rgb),
        "depth": np.stack(depth),
        "K": K,
        "poses": poses,
        "object_masks": {"box": np.stack(masks)},
    }
    end = np.concatenate(
        [  # where the box ended, as seen in the clip's last frames
            backproject(depth[i], K)[masks[i]] @ poses[i][:3, :3].T + poses[i][:3, 3] for i in range(4, 8)
        ]
    ).mean(0)
    return state, clip, end


def test_update_moves_object_to_where_it_ended(setup, K):
    state, clip, end = setup
    before = state.objects["box"].world_points().mean(0)
    new, report = update_state(state, clip, ["box"], return_report=True)
    after = new.objects["box"].world_points().mean(0)
    assert np.linalg.norm(after - end) < 0.015
    np.testing.assert_allclose(report.moved["box"][:3, 3], np.array([*NEW_XY, 0]) - [*OLD_XY, 0], atol=0.015)
    assert report.scale == pytest.approx(1.0, abs=0.01)
    np.testing.assert_allclose(state.objects["box"].world_points().mean(0), before)  # input untouched
    # rendered from the middle view: red where the box now is, not at its old place
    view = clip["poses"][4]
    out = render_state(new, K, view, H, W)
    _, _, ids_new = Tabletop(box_xy=NEW_XY, box_size=0.1).rgbd(K, view)
    _, _, ids_old = Tabletop(box_xy=OLD_XY, box_size=0.1).rgbd(K, view)
    r, g, b = (out.video[0, ..., k].astype(int) for k in range(3))
    red = (r > 180) & (g < 120) & (b < 60)  # the box; the table has more blue
    assert red[ids_new == BOX].mean() > 0.8
    assert red[(ids_old == BOX) & (ids_new != BOX)].mean() < 0.1


def test_update_undoes_a_similarity_of_the_clip(setup):
    state, clip, end = setup
    s, R, t = (
        1.3,
        Rotation.from_euler("xyz", [5, -10, 20], degrees=True).as_matrix(),
        np.array([0.2, -0.1, 0.3]),
    )
    poses = clip["poses"].copy()
    poses[:, :3, :3] = R @ poses[:, :3, :3]
    poses[:, :3, 3] = s * poses[:, :3, 3] @ R.T + t
    warped = dict(clip, depth=clip["depth"] * s, poses=poses, state_poses=clip["poses"])
    new, report = update_state(state, warped, ["box"], return_report=True)
    assert report.scale * s == pytest.approx(1.0, abs=0.01)
    assert np.linalg.norm(new.objects["box"].world_points().mean(0) - end) < 0.015


def test_untouched_object_far_from_hand_is_skipped(setup):
    state, clip, _ = setup
    hands = np.full((len(clip["rgb"]), 21, 3), [0.0, -0.4, 0.5])  # hand far from the box
    new, report = update_state(state, dict(clip, hand_keypoints=hands), ["box"], return_report=True)
    assert "box" in report.skipped
    np.testing.assert_allclose(new.objects["box"].pose, state.objects["box"].pose)


def test_failed_update_leaves_saved_state_untouched(setup, tmp_path):
    state, clip, _ = setup
    path = state.save(tmp_path / "s.npz")
    before = path.read_bytes()
    bad = clip["poses"].copy()
    bad[3, :3, :3] *= 1.5
    with pytest.raises(ValueError, match="frame 3 is not a rigid transform"):
        update_state(SceneState.load(path), dict(clip, poses=bad), ["box"])
    with pytest.raises(ValueError, match=r"no mask"):
        update_state(SceneState.load(path), clip, ["cup"])
    with pytest.raises(ValueError, match=r"hand keypoints have shape \[8, 20, 3\]"):
        update_state(SceneState.load(path), dict(clip, hand_keypoints=np.zeros((8, 20, 3))), ["box"])
    assert path.read_bytes() == before
