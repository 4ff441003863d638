"""Offscreen rendering of RGB, metric depth and instance masks, with camera intrinsics and poses.

Conventions: `K` is the 3x3 pinhole matrix with pixel centres at integer coordinates
(cx = (W - 1) / 2); `cam_to_world` is 4x4 in the OpenCV camera convention (x right, y down,
z forward). Depth is planar z-depth in metres, 0 where nothing was hit (sky).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from egoworld.worlds.geometry import rigid_inverse
from egoworld.worlds.scene import instance_lookup

# MuJoCo cameras look along -z with y up; OpenCV looks along +z with y down.
_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


@dataclass
class Frame:
    """One rendered view: rgb uint8 [H,W,3], depth float32 [H,W] metres, instances int32 [H,W]."""

    rgb: np.ndarray
    depth: np.ndarray
    instances: np.ndarray


def intrinsics(fovy_deg: float, width: int, height: int) -> np.ndarray:
    """Pinhole K [3,3] of a MuJoCo camera with vertical field of view `fovy_deg` (square pixels)."""
    f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2)
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]], dtype=np.float64)


def camera_intrinsics(model: mujoco.MjModel, camera: str, width: int, height: int) -> np.ndarray:
    """K [3,3] of the named camera of `model` rendered at `width` x `height` (no renderer needed)."""
    return intrinsics(float(model.cam_fovy[model.camera(camera).id]), width, height)


def cam_to_world(data: mujoco.MjData, camera_id: int) -> np.ndarray:
    """Camera-to-world [4,4] of camera `camera_id` in the OpenCV convention."""
    T = np.eye(4)
    T[:3, :3] = data.cam_xmat[camera_id].reshape(3, 3) @ _GL_TO_CV
    T[:3, 3] = data.cam_xpos[camera_id]
    return T


def project(points_world: np.ndarray, K: np.ndarray, cam_to_world_4x4: np.ndarray) -> np.ndarray:
    """Pixel coordinates (u, v) [N,2] and camera depth z, returned as [N,3], of world points [N,3]."""
    w2c = rigid_inverse(cam_to_world_4x4)
    pc = points_world @ w2c[:3, :3].T + w2c[:3, 3]  # [N, 3] camera frame
    uv = (pc[:, :2] / pc[:, 2:3]) @ K[:2, :2].T + K[:2, 2]
    return np.concatenate([uv, pc[:, 2:3]], axis=1)


class FrameRenderer:
    """Renders a named camera of `model` into `Frame`s of `height` x `width` pixels."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int, camera: str):
        self.model, self.camera, self.camera_id = model, camera, model.camera(camera).id
        self.width, self.height = width, height
        self.K = camera_intrinsics(model, camera, width, height)
        self.geom_instance = instance_lookup(model)  # [ngeom]
        self._renderer = mujoco.Renderer(model, height=height, width=width)

    def render(self, data: mujoco.MjData, *, ground_truth: bool = True) -> Frame:
        """RGB (+ depth and instances when `ground_truth`) of the current state of `data`."""
        r = self._renderer
        r.update_scene(data, camera=self.camera)
        rgb = r.render().copy()
        if not ground_truth:
            return Frame(rgb, np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int32))
        r.enable_segmentation_rendering()
        seg = r.render()  # [H, W, 2]: (object id, object type), -1 where empty
        r.disable_segmentation_rendering()
        r.enable_depth_rendering()
        depth = r.render().astype(np.float32)
        r.disable_depth_rendering()
        is_geom = (seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM) & (seg[..., 0] >= 0)
        instances = np.where(is_geom, self.geom_instance[np.clip(seg[..., 0], 0, None)], 0).astype(np.int32)
        depth[~is_geom] = 0.0
        return Frame(rgb, depth, instances)

    def pose(self, data: mujoco.MjData) -> np.ndarray:
        """Camera-to-world [4,4] (OpenCV convention) for the current state of `data`."""
        return cam_to_world(data, self.camera_id)

    def close(self) -> None:
        self._renderer.close()

    def __enter__(self) -> FrameRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
