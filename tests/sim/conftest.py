"""A small synthetic tabletop rendered to RGB-D with Open3D's RaycastingScene (z is up)."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import open3d.core as o3c
import pytest

from egoworld.sim.camera import intrinsics_from_fov, look_at

H, W = 48, 64
TABLE, WALL, BOX = 0, 1, 2  # geometry ids in the order they are added


def _texture(gid: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Smooth procedural colours per geometry, [N, 3] float 0..1."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    out = np.zeros((len(p), 3))
    t = gid == TABLE
    out[t] = np.stack([0.55 + 0.3 * np.sin(8 * x[t]), 0.45 + 0.3 * np.cos(7 * y[t]), 0.35 + 0 * x[t]], 1)
    w = gid == WALL
    out[w] = np.stack([0.3 + 0 * x[w], 0.5 + 0.3 * np.sin(6 * x[w]), 0.6 + 0.3 * np.cos(5 * z[w])], 1)
    b = gid == BOX
    out[b] = np.stack([0.85 + 0 * x[b], 0.2 + 0.2 * np.sin(30 * z[b]), 0.15 + 0 * x[b]], 1)
    return np.clip(out, 0, 1)


class Tabletop:
    """Table (z=0, 1 m × 0.8 m), back wall, and one 8 cm box that can be moved."""

    def __init__(self, box_xy=(0.1, 0.05), box_size=0.08):
        self.box_xy = np.asarray(box_xy, float)
        self.box_size = box_size
        self.scene = o3d.t.geometry.RaycastingScene()
        table = o3d.t.geometry.TriangleMesh.create_box(1.0, 0.8, 0.02)
        table.translate(o3c.Tensor([-0.5, -0.4, -0.02]))
        wall = o3d.t.geometry.TriangleMesh.create_box(1.0, 0.02, 0.6)
        wall.translate(o3c.Tensor([-0.5, 0.4, -0.02]))
        box = o3d.t.geometry.TriangleMesh.create_box(box_size, box_size, box_size)
        box.translate(o3c.Tensor([self.box_xy[0] - box_size / 2, self.box_xy[1] - box_size / 2, 0.0]))
        for m in (table, wall, box):
            self.scene.add_triangles(m)

    @property
    def box_center(self) -> np.ndarray:
        return np.array([*self.box_xy, self.box_size / 2])

    def rgbd(self, K, pose, h=H, w=W):
        """rgb [h,w,3] uint8, depth [h,w] float32 (0 = nothing hit), ids [h,w] int (-1 = nothing)."""
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)  # z = 1
        d_world = d_cam @ pose[:3, :3].T
        origin = np.broadcast_to(pose[:3, 3], d_world.shape)
        rays = o3c.Tensor(np.concatenate([origin, d_world], -1).astype(np.float32))
        hit = self.scene.cast_rays(rays)
        t = hit["t_hit"].numpy()  # in units of the ray direction, whose z is 1 → depth
        gid = hit["geometry_ids"].numpy().astype(np.int64)
        ok = np.isfinite(t)
        ids = np.where(ok, gid, -1)
        depth = np.where(ok, t, 0.0).astype(np.float32)
        p = origin + d_world * np.where(ok, t, 0)[..., None]
        rgb = _texture(ids.reshape(-1), p.reshape(-1, 3)).reshape(h, w, 3)
        rgb = (np.round(rgb * 255) * ok[..., None]).astype(np.uint8)
        return rgb, depth, ids


def camera_ring(n=5, radius=0.75, height=0.45, target=(0.0, 0.1, 0.05), span_deg=40.0):
    """Poses on an arc in front of the table, looking at `target`."""
    poses = []
    for a in np.linspace(-span_deg / 2, span_deg / 2, n):
        th = np.deg2rad(a - 90)
        eye = np.array([radius * np.cos(th), radius * np.sin(th) + 0.1, height])
        poses.append(look_at(eye, target))
    return np.stack(poses)


@pytest.fixture(scope="session")
def K():
    return intrinsics_from_fov(W, H, 70.0)


@pytest.fixture(scope="session")
def tabletop():
    return Tabletop()


def fuse(scene: Tabletop, K, poses, voxel=0.01, box_as_object=False):
    """A SceneState fused from the scene's RGB-D at `poses`; optionally the box as a separate object."""
    from egoworld.sim.camera import backproject
    from egoworld.sim.state import SceneState, StateConfig

    st = SceneState(StateConfig(voxel_size=voxel))
    pts, cols = [], []
    for p in poses:
        rgb, d, ids = scene.rgbd(K, p)
        box = ids == BOX
        st.integrate(rgb, d, K, p, ignore_mask=box if box_as_object else None)
        pts.append(backproject(d, K)[box] @ p[:3, :3].T + p[:3, 3])
        cols.append(rgb[box])
    if box_as_object:
        pts = np.concatenate(pts)
        c0 = pts.mean(0)
        pose = np.eye(4)
        pose[:3, 3] = c0
        st.add_object("box", pts - c0, np.concatenate(cols), pose)
    return st


@pytest.fixture(scope="session")
def fused_state(K, tabletop):
    return fuse(tabletop, K, camera_ring(5))
