import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from egoworld.sim.camera import backproject
from egoworld.sim.render import render_state
from egoworld.sim.state import SceneState
from egoworld.sim.update import _statistical_inliers, hand_object_iou, update_state

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


def _red(video):
    r, g, b = (video[..., k].astype(int) for k in range(3))
    return (r > 180) & (g < 120) & (b < 60)  # the box; the table has more blue


@pytest.fixture(scope="module")
def fused_box(K, setup):
    """The same clip, but the state has the box fused into the static TSDF (no object point set)."""
    _, clip, end = setup
    return fuse(Tabletop(box_xy=OLD_XY, box_size=0.1), K, camera_ring(5)), clip, end


def test_box_fused_into_static_scene_is_carved_when_moved(fused_box, K):
    state, clip, end = fused_box
    assert not state.objects
    views = clip["poses"][[0, 4, 7]]
    _, _, ids_old = Tabletop(box_xy=OLD_XY, box_size=0.1).rgbd(K, views[1])
    _, _, ids_new = Tabletop(box_xy=NEW_XY, box_size=0.1).rgbd(K, views[1])
    old_only = (ids_old == BOX) & (ids_new != BOX)
    assert _red(render_state(state, K, views[1], H, W).video[0])[old_only].mean() > 0.8  # the box is there

    new, report = update_state(state, clip, ["box"], return_report=True)
    assert "box" in new.objects and report.carved["box"] > 0
    assert np.linalg.norm(new.objects["box"].world_points().mean(0) - end) < 0.015
    out = render_state(new, K, views, H, W)  # ray cast, the default
    assert _red(out.video[1])[ids_new == BOX].mean() > 0.8
    assert _red(out.video[1])[old_only].mean() < 0.05  # no ghost at the old place
    assert (~out.mask[1][old_only]).mean() > 0.8  # the table seen there was fused back
    xyz, rgb = new.surface_points()
    near_old = np.linalg.norm(xyz - [*OLD_XY, 0.05], axis=1) < 0.05
    assert _red(rgb[near_old][None])[0].sum() == 0  # nothing red left in the static surface

    # without carving a ghost stays (fusing the later frames erases only the part they see through)
    ghost = update_state(state, clip, ["box"], carve_static=False)
    assert _red(render_state(ghost, K, views[1], H, W).video[0])[old_only].mean() > 0.25
    xyz, rgb = ghost.surface_points()
    assert _red(rgb[np.linalg.norm(xyz - [*OLD_XY, 0.05], axis=1) < 0.05][None])[0].sum() > 20


def test_hand_mask_iou_rule(setup):
    state, clip, _ = setup
    masks = clip["object_masks"]["box"]
    far = np.zeros_like(masks)
    far[:, :8, :8] = True  # a "hand" in the image corner, away from the box in every frame
    near = np.zeros_like(masks)
    for t, m in enumerate(masks):  # a hand box overlapping the box's bounding box
        rows, cols = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
        near[t, rows[0] : rows[-1] + 1, max(cols[0] - 4, 0) : cols[-1] - 4] = True
        near[t] &= ~m  # disjoint pixels, as a segmenter gives them
    kp_near = np.broadcast_to(state.objects["box"].world_points().mean(0), (len(masks), 21, 3))
    _, rep = update_state(
        state, dict(clip, hand_masks=far, hand_keypoints=kp_near), ["box"], return_report=True
    )
    assert "IoU" in rep.skipped["box"]  # the mask rule wins over the keypoint fallback
    _, rep = update_state(state, dict(clip, hand_masks=near), ["box"], return_report=True)
    assert "box" in rep.moved
    _, rep = update_state(state, dict(clip, hand_masks=near), ["box"], hand_iou="mask", return_report=True)
    assert "box" in rep.skipped  # disjoint pixels: a pixel IoU of 0
    with pytest.raises(ValueError, match="hand_iou='iou'"):
        update_state(state, dict(clip, hand_masks=near), ["box"], hand_iou="iou")


def test_hand_object_iou_values():
    a = np.zeros((1, 10, 10), bool)
    b = np.zeros((1, 10, 10), bool)
    a[0, 0:4, 0:4] = True  # 16 px box
    b[0, 2:6, 2:6] = True  # 16 px box, 4 px overlap
    np.testing.assert_allclose(hand_object_iou(a, b, "box"), [4 / 28])
    np.testing.assert_allclose(hand_object_iou(a, b, "mask"), [4 / 28])
    b[0, 2:4, 2:4] = False  # same box, disjoint pixels
    np.testing.assert_allclose(hand_object_iou(a, b, "box"), [4 / 28])
    np.testing.assert_allclose(hand_object_iou(a, b, "mask"), [0.0])
    np.testing.assert_allclose(hand_object_iou(a, np.zeros_like(b)), [0.0])


def test_outlier_removal_on_a_voxel_grid_flags_flying_points():
    rng = np.random.default_rng(0)
    plane = np.c_[rng.uniform(0, 0.3, (20000, 2)), rng.normal(0, 0.0005, 20000)]
    flying = np.c_[rng.uniform(0, 0.3, (30, 2)), rng.uniform(0.05, 0.3, 30)]
    pts = np.concatenate([plane, flying])
    full = _statistical_inliers(pts, 20, 2.0)
    grid = _statistical_inliers(pts, 20, 2.0, voxel=0.006)
    assert grid[:20000].mean() > 0.99 and grid[20000:].mean() < 0.1
    assert (grid == full).mean() > 0.98  # the same verdicts as the full-resolution test, nearly


def test_estimated_depth_truncation(setup):
    state, clip, _ = setup
    new, rep = update_state(state, clip, ["box"], trunc_voxel_multiplier=8, return_report=True)
    assert "box" in rep.moved and new.num_blocks >= state.num_blocks
    with pytest.raises(ValueError, match="trunc_voxel_multiplier"):
        update_state(state, clip, ["box"], trunc_voxel_multiplier=0)


def test_estimated_depth_flag_and_ignored_pixels(setup):
    """`estimated_depth=True` fuses at 8 voxels unless told otherwise; pixels in `ignore_masks` are
    neither fused nor aligned on: a clip that ignores every pixel leaves the static TSDF as it was."""
    state, clip, _ = setup
    _, rep = update_state(state, clip, estimated_depth=True, return_report=True)
    assert rep.truncation_voxels == 8.0
    _, rep = update_state(state, clip, return_report=True)
    assert rep.truncation_voxels == state.config.trunc_voxel_multiplier
    everything = np.ones(clip["depth"].shape, bool)
    new, rep = update_state(state, dict(clip, ignore_masks=everything), return_report=True)
    assert rep.scale == 1.0  # nothing to align on
    (k0, v0), (k1, v1) = state._dump_blocks(), new._dump_blocks()
    o0, o1 = np.lexsort(k0.T), np.lexsort(k1.T)  # the same blocks holding the same values
    np.testing.assert_array_equal(k1[o1], k0[o0])
    for name in v0:
        np.testing.assert_array_equal(v1[name][o1], v0[name][o0])
