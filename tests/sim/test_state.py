import json

import numpy as np
import pytest

from egoworld.sim.state import SceneState, StateConfig


def _sorted_blocks(state):
    keys, vals = state._dump_blocks()
    order = np.lexsort(keys.T)
    return keys[order], {k: v[order] for k, v in vals.items()}


def test_save_load_roundtrip(tmp_path, fused_state):
    st = fused_state.copy()
    pose = np.eye(4)
    pose[:3, 3] = [0.1, 0.2, 0.3]
    st.add_object(7, np.random.default_rng(0).normal(size=(50, 3)), np.full((50, 3), 200, np.uint8), pose)
    path = st.save(tmp_path / "state.npz")
    back = SceneState.load(path)
    assert back.config == st.config
    assert back.num_blocks == st.num_blocks
    assert list(back.objects) == [7]
    np.testing.assert_allclose(back.objects[7].pose, pose)
    (ka, va), (kb, vb) = _sorted_blocks(st), _sorted_blocks(back)
    np.testing.assert_array_equal(ka, kb)
    for name in va:  # the voxel grid comes back bit for bit
        np.testing.assert_array_equal(va[name], vb[name])
    assert len(back.points()[0]) == len(st.points()[0])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_load_missing_and_corrupt(tmp_path, fused_state):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SceneState.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a state")
    with pytest.raises(ValueError, match="corrupt or not an npz"):
        SceneState.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a valid egoworld state"):
        SceneState.load(other)
    good = fused_state.save(tmp_path / "good.npz")
    data = dict(np.load(good))
    data["block_tsdf"] = data["block_tsdf"][:, :2]
    np.savez(tmp_path / "trunc.npz", **data)
    with pytest.raises(ValueError, match="block_tsdf has shape"):
        SceneState.load(tmp_path / "trunc.npz")


def test_objects_move_remove_and_errors():
    st = SceneState(StateConfig(voxel_size=0.02))
    pts = np.random.default_rng(0).uniform(-0.05, 0.05, size=(100, 3))
    st.add_object("cup", pts, np.random.default_rng(1).uniform(size=(100, 3)))  # float colours → uint8
    assert st.objects["cup"].colors.dtype == np.uint8
    pose = np.eye(4)
    pose[:3, 3] = [1.0, 0.0, 0.0]
    st.move_object("cup", pose)
    np.testing.assert_allclose(st.objects["cup"].world_points().mean(0), pts.mean(0) + [1, 0, 0], atol=1e-6)
    with pytest.raises(ValueError, match="already exists"):
        st.add_object("cup", pts, np.zeros((100, 3), np.uint8))
    with pytest.raises(ValueError, match=r"expected \[N, 3\]"):
        st.add_object("x", pts[:, :2], np.zeros((100, 2), np.uint8))
    bad = pose.copy()
    bad[:3, :3] *= 2
    with pytest.raises(ValueError, match="not a rigid transform"):
        st.move_object("cup", bad)
    st.remove_object("cup")
    with pytest.raises(KeyError, match="no object 'cup'"):
        st.remove_object("cup")


def test_integrate_validates_inputs(K):
    st = SceneState(StateConfig(voxel_size=0.02))
    rgb = np.zeros((48, 64, 3), np.uint8)
    depth = np.ones((48, 64), np.float32)
    with pytest.raises(ValueError, match=r"expected \[48, 64, 3\]"):
        st.integrate(rgb[:10], depth, K, np.eye(4))
    bad = np.eye(4)
    bad[0, 0] = -1
    with pytest.raises(ValueError, match="not a rigid transform"):
        st.integrate(rgb, depth, K, bad)


def test_depth_out_of_range_is_no_measurement(K):
    """A frame whose every depth lies beyond depth_max (or below depth_min) fuses nothing (Open3D itself
    would abort on it); in range, the same frame fuses."""
    st = SceneState(StateConfig(voxel_size=0.02))
    rgb = np.zeros((48, 64, 3), np.uint8)
    far = np.full((48, 64), st.config.depth_max + 1.0, np.float32)
    st.integrate(rgb, far, K, np.eye(4))
    st.integrate(rgb, np.full_like(far, st.config.depth_min / 2), K, np.eye(4))
    assert st.num_blocks == 0
    st.integrate(rgb, np.ones_like(far), K, np.eye(4))
    assert st.num_blocks > 0


def test_export_ply_and_turntable(tmp_path, fused_state):
    import open3d as o3d

    path = fused_state.export_ply(tmp_path / "s.ply")
    pc = o3d.io.read_point_cloud(str(path))
    assert len(pc.points) == len(fused_state.points()[0]) > 1000
    views = fused_state.turntable(n_views=3, width=64, height=48)
    assert views.shape == (3, 48, 64, 3) and views.dtype == np.uint8
    assert (views.reshape(3, -1, 3).max(-1) > 0).mean() > 0.2


def test_clear_region_forgets_surface(fused_state, tabletop):
    st = fused_state.copy()
    xyz, _ = st.surface_points()
    near_box = np.linalg.norm(xyz - tabletop.box_center, axis=1) < 0.08
    assert near_box.sum() > 20
    assert st.clear_region(xyz[near_box], 0.02) > 0
    xyz2, _ = st.surface_points()
    assert (np.linalg.norm(xyz2 - tabletop.box_center, axis=1) < 0.05).sum() == 0
    assert len(fused_state.surface_points()[0]) == len(xyz)  # the copy did not touch the original


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("block_count", 10**12, r"block_count=1000000000000 .* GiB up front"),
        ("block_count", 0, r"block_count=0; expected an integer >= 1"),
        ("block_count", 2.5, r"block_count=2.5; expected an integer"),
        ("block_resolution", 0, r"block_resolution=0; expected an integer in \[2, 32\]"),
        ("block_resolution", -8, r"block_resolution=-8; expected an integer in \[2, 32\]"),
        ("block_resolution", 1000, r"block_resolution=1000; expected an integer in \[2, 32\]"),
        ("voxel_size", float("nan"), r"voxel_size=nan; expected a finite number"),
        ("trunc_voxel_multiplier", 1e9, r"trunc_voxel_multiplier=1000000000.0; expected in \(0, 64\]"),
        ("depth_max", "3", r"depth_max='3'; expected a number"),
    ],
)
def test_config_is_validated_on_load(tmp_path, field, value, match):
    st = SceneState(StateConfig(voxel_size=0.02))
    st.add_object("cup", np.zeros((5, 3)), np.zeros((5, 3), np.uint8))
    path = st.save(tmp_path / "s.npz")
    data = dict(np.load(path))
    meta = json.loads(str(data["meta"]))
    meta["config"][field] = value
    data["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ValueError, match="not a valid egoworld state: " + match):
        SceneState.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match=match):
        StateConfig(**{field: value})


def test_clear_region_matches_a_search_over_every_voxel(fused_state):
    """The block-key search clears exactly the voxels a search over the whole grid finds."""
    from scipy.spatial import cKDTree

    pts = np.random.default_rng(0).uniform([-0.1, -0.1, 0.0], [0.2, 0.2, 0.1], size=(300, 3))
    radius = 0.015
    st = fused_state.copy()
    coords, flat = st.grid.voxel_coordinates_and_flattened_indices()  # every voxel of the grid
    coords, flat = coords.numpy(), flat.numpy()
    dist, _ = cKDTree(pts).query(coords, k=1, distance_upper_bound=radius)
    want = flat[np.isfinite(dist)]
    before = st._attr("weight").reshape(-1).copy()
    assert st.clear_region(pts, radius) == len(want) > 100
    after = st._attr("weight").reshape(-1)
    assert np.isin(np.nonzero(after != before)[0], want).all() and (after[want] == 0).all()
    assert (st._attr("tsdf").reshape(-1)[want] == 1).all()
    assert len(fused_state.surface_points()[0]) > len(st.surface_points()[0])  # the original is untouched


def test_copy_is_deep_and_exact(fused_state, K, tabletop):
    from .conftest import camera_ring

    st = fused_state.copy()
    (ka, va), (kb, vb) = _sorted_blocks(fused_state), _sorted_blocks(st)
    np.testing.assert_array_equal(ka, kb)
    for name in va:
        np.testing.assert_array_equal(va[name], vb[name])
    n = fused_state.num_blocks
    pose = camera_ring(3, span_deg=120, height=0.9)[0]
    rgb, d, _ = tabletop.rgbd(K, pose)
    st.integrate(rgb, d, K, pose)  # new blocks in the copy only
    assert st.num_blocks > n and fused_state.num_blocks == n
    va2 = _sorted_blocks(fused_state)[1]
    for name in va:
        np.testing.assert_array_equal(va[name], va2[name])


def test_integrate_with_a_wider_truncation(K, tabletop):
    from .conftest import camera_ring

    pose = camera_ring(1)[0]
    rgb, d, _ = tabletop.rgbd(K, pose)
    narrow, wide = SceneState(StateConfig(voxel_size=0.01)), SceneState(StateConfig(voxel_size=0.01))
    narrow.integrate(rgb, d, K, pose)
    wide.integrate(rgb, d, K, pose, trunc_voxel_multiplier=8)
    assert wide.num_blocks > narrow.num_blocks  # the band reaches twice as far from the surface
    assert abs(len(wide.surface_points()[0]) - len(narrow.surface_points()[0])) < 0.1 * len(
        narrow.surface_points()[0]
    )
    with pytest.raises(ValueError, match="trunc_voxel_multiplier"):
        narrow.integrate(rgb, d, K, pose, trunc_voxel_multiplier=-1)
