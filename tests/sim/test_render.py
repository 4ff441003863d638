import numpy as np
import pytest
from scipy import ndimage

from egoworld.sim.render import METHODS, render_state

from .conftest import BOX, H, Tabletop, W, camera_ring, fuse


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def _band(mask, px=2):
    """Pixels within `px` of the boundary of `mask`, plus the image border."""
    band = ndimage.binary_dilation(mask, iterations=px) & ndimage.binary_dilation(~mask, iterations=px)
    band[:px], band[-px:], band[:, :px], band[:, -px:] = True, True, True, True
    return band


@pytest.mark.parametrize("method", METHODS)
def test_render_reproduces_ground_truth(method, K, tabletop, fused_state):
    poses = camera_ring(5)[[1, 2, 3]]
    out = render_state(fused_state, K, poses, H, W, method=method)
    assert out.video.shape == (3, H, W, 3) and out.video.dtype == np.uint8
    assert out.mask.shape == (3, H, W) and out.mask.dtype == bool
    for i, p in enumerate(poses):
        rgb, depth, _ = tabletop.rgbd(K, p)
        empty = depth == 0  # sky: nothing there
        assert empty.sum() > 300
        band = _band(empty)
        # masked exactly where nothing is, away from a 2-pixel band at silhouettes and borders
        assert not np.any(~out.mask[i] & empty & ~band), "empty pixels rendered as covered"
        holes = out.mask[i] & ~empty & ~band
        assert holes.sum() <= 0.01 * H * W
        covered = ~out.mask[i] & ~empty
        assert _psnr(out.video[i][covered], rgb[covered]) > 25.0
        assert np.median(np.abs(out.depth[i][covered] - depth[covered])) < 0.01
        assert np.all(out.video[i][out.mask[i]] == 0)


@pytest.mark.parametrize(("method", "max_holes"), [("splat", 0.02), ("raycast", 0.08)])
def test_unobserved_region_is_masked(method, max_holes, K, tabletop):
    # a sparse one-view state: the TSDF ray cast leaves more small holes than splatting does
    ring = camera_ring(5, span_deg=90)
    st = fuse(tabletop, K, ring[:1], voxel=0.02)  # only the leftmost view; 2 cm ≈ its pixel footprint
    view = ring[-1]
    out = render_state(st, K, view, H, W, method=method)
    _, depth, _ = tabletop.rgbd(K, view)
    # ground truth: which surface pixels of `view` were seen by the fused camera
    from egoworld.sim.camera import backproject, project, world_to_camera

    pts = backproject(depth, K) @ view[:3, :3].T + view[:3, 3]
    uv, z = project(world_to_camera(pts.reshape(-1, 3), ring[0]), K)
    _, d0, _ = tabletop.rgbd(K, ring[0])
    ui, vi = np.round(uv[:, 0]), np.round(uv[:, 1])
    inside = (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H) & (depth.reshape(-1) > 0)
    seen = np.zeros(H * W, bool)
    idx = np.nonzero(inside)[0]
    seen[idx] = np.abs(d0[vi[idx].astype(int), ui[idx].astype(int)] - z[idx]) < 0.03
    seen = seen.reshape(H, W)
    unseen = ~seen
    assert unseen.sum() > 0.2 * H * W  # a real never-observed region
    band = _band(seen)
    # all but a handful of pixels (the visibility test above is itself nearest-pixel)
    assert (~out.mask[0] & unseen & ~band).sum() <= 0.005 * unseen.sum()
    assert out.mask[0][seen & ~band].mean() < max_holes


def test_objects_are_rendered_and_occlude(K):
    scene = Tabletop(box_size=0.12)
    poses = camera_ring(5)
    st = fuse(scene, K, poses, box_as_object=True)
    for method in METHODS:
        out = render_state(st, K, poses[2], H, W, method=method)
        _, _, ids = scene.rgbd(K, poses[2])
        box = ndimage.binary_erosion(ids == BOX, iterations=1)
        assert box.sum() > 30
        assert np.all(~out.mask[0][box])
        assert out.video[0][box][:, 0].mean() > 180  # the red box, not the table behind it


def test_render_bad_inputs(K, fused_state):
    with pytest.raises(ValueError, match="render method 'nerf'"):
        render_state(fused_state, K, np.eye(4), H, W, method="nerf")
    bad = np.eye(4)
    bad[:3, :3] *= 0.5
    with pytest.raises(ValueError, match="frame 0 is not a rigid transform"):
        render_state(fused_state, K, bad, H, W)
