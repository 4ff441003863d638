"""A tiny synthetic egocentric world for metric tests: a camera turning in yaw inside a textured cylinder.

The cylinder (radius R, axis = camera's vertical axis through the camera centre) carries a
smooth random texture and a few rectangular "structures" with instance ids. Everything is
rendered exactly by ray casting with a pinhole camera (OpenCV axes), so depth, instance masks,
intrinsics and camera-to-world poses are ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class World:
    frames: np.ndarray  # [T, H, W, 3] uint8
    depth: np.ndarray  # [T, H, W] float
    instances: np.ndarray  # [T, H, W] int32
    intrinsics: np.ndarray  # [3, 3]
    c2w: np.ndarray  # [T, 4, 4]


def yaw_pose(theta: float) -> np.ndarray:
    """Camera-to-world pose turning right by `theta` radians about the (downward) y axis."""
    c, s = np.cos(theta), np.sin(theta)
    pose = np.eye(4)
    pose[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    return pose


def make_texture(seed: int, size: tuple[int, int] = (256, 1024)) -> np.ndarray:
    """Smooth multi-scale colour noise `[Ht, Wt, 3]` uint8 (wraps horizontally well enough for flow)."""
    rng = np.random.default_rng(seed)
    h, w = size
    tex = np.zeros((h, w, 3), np.float32)
    for scale, weight in ((4, 0.5), (16, 0.3), (64, 0.2)):
        small = rng.random((max(2, h // scale), max(2, w // scale), 3)).astype(np.float32)
        tex += weight * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(tex * 255, 0, 255).astype(np.uint8)


def render(
    yaws: np.ndarray,
    *,
    width: int = 96,
    height: int = 72,
    fov_deg: float = 60.0,
    radius: float = 5.0,
    texture_seed: int = 0,
    structures: tuple = ((-0.6, -0.1, -0.8, 0.6), (0.2, 0.7, -0.5, 0.9), (1.1, 1.5, -1.0, 0.2)),
) -> World:
    """Render frames for each yaw (radians). `structures` are (φ0, φ1, y0, y1) boxes on the cylinder."""
    f = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
    k = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
    tex = make_texture(texture_seed)
    th, tw = tex.shape[:2]
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays_cam = np.stack([(u - k[0, 2]) / f, (v - k[1, 2]) / f, np.ones_like(u)], axis=-1)  # [H, W, 3], z = 1
    frames, depths, insts, poses = [], [], [], []
    for yaw in yaws:
        pose = yaw_pose(float(yaw))
        d = rays_cam @ pose[:3, :3].T  # world directions with camera z = 1
        s = radius / np.hypot(d[..., 0], d[..., 2])  # ray parameter to the cylinder = camera depth
        hit = d * s[..., None]
        phi = np.arctan2(hit[..., 0], hit[..., 2])  # azimuth, 0 straight ahead at yaw 0
        y = hit[..., 1]
        map_x = ((phi + np.pi) / (2 * np.pi) * tw).astype(np.float32)
        map_y = ((y / radius + 1.5) / 3.0 * th).astype(np.float32)
        frames.append(cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP))
        inst = np.zeros((height, width), np.int32)
        for i, (p0, p1, y0, y1) in enumerate(structures, start=1):
            box = (phi >= p0) & (phi < p1) & (y / radius >= y0) & (y / radius < y1)
            inst[box] = i
        insts.append(inst)
        depths.append(s)
        poses.append(pose)
    return World(np.stack(frames), np.stack(depths), np.stack(insts), k, np.stack(poses))


def exit_frame(yaws: np.ndarray, width: int = 96, fov_deg: float = 60.0) -> int:
    """Analytic index of the first frame where every frame-0 pixel centre has left the view."""
    f = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
    cx = (width - 1) / 2
    right = np.arctan((width - 1 - cx) / f)  # the last frame-0 pixel centre to leave (turning right)
    left_edge = np.arctan((-0.5 - cx) / f)  # the image's left border
    for t, yaw in enumerate(yaws):
        if t > 0 and right - (yaw - yaws[0]) < left_edge:
            return t
    return len(yaws)


def write_mp4(frames: np.ndarray, path, fps: int = 8) -> None:
    """Write uint8 `[T, H, W, 3]` as an H.264 mp4 through PyAV."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
