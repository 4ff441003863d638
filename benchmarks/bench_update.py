"""Time EgoSim's state bookkeeping at the paper's 3 mm voxels: SceneState.copy / clear_region on a
room-sized state, and update_state on a 16-frame 240×416 clip (a box fused into the static scene,
carried away).

    .venv/bin/python benchmarks/bench_update.py [--part room|update|all] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import platform
import time
from pathlib import Path

import numpy as np
import open3d as o3d
import open3d.core as o3c

from egoworld.sim.camera import intrinsics_from_fov, look_at
from egoworld.sim.state import SceneState, StateConfig

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / "tests" / "sim" / "conftest.py").is_file():  # run from outside benchmarks/
    ROOT = Path.cwd()


def room_scene():
    """A 4 × 3 × 2.5 m box room (floor, ceiling, walls) with a table, a box on it and a cabinet."""
    scene = o3d.t.geometry.RaycastingScene()
    L, W, H = 4.0, 3.0, 2.5
    parts = [
        ((L, W, 0.02), (0, 0, -0.02)),
        ((L, W, 0.02), (0, 0, H)),
        ((0.02, W, H), (-0.02, 0, 0)),
        ((0.02, W, H), (L, 0, 0)),
        ((L, 0.02, H), (0, -0.02, 0)),
        ((L, 0.02, H), (0, W, 0)),
        ((1.2, 0.8, 0.75), (0.3, 0.3, 0)),
        ((0.5, 0.5, 1.8), (3.2, 2.2, 0)),
        ((0.3, 0.3, 0.3), (0.6, 0.5, 0.75)),
    ]
    for size, at in parts:
        m = o3d.t.geometry.TriangleMesh.create_box(*size)
        m.translate(o3c.Tensor(list(at)))
        scene.add_triangles(m)
    return scene


def rgbd(scene, K, pose, h, w):
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    d_world = (
        np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ pose[:3, :3].T
    )
    origin = np.broadcast_to(pose[:3, 3], d_world.shape)
    t = scene.cast_rays(o3c.Tensor(np.concatenate([origin, d_world], -1).astype(np.float32)))["t_hit"].numpy()
    ok = np.isfinite(t)
    p = origin + d_world * np.where(ok, t, 0)[..., None]
    rgb = np.stack([np.sin(5 * p[..., 0]), np.cos(4 * p[..., 1]), np.sin(3 * p[..., 2])], -1) * 0.4 + 0.5
    return (rgb * 255 * ok[..., None]).astype(np.uint8), np.where(ok, t, 0).astype(np.float32)


def bench_room(repeats: int) -> None:
    scene, h, w = room_scene(), 240, 416
    K = intrinsics_from_fov(w, h, 75.0)
    state = SceneState(StateConfig(voxel_size=0.003))
    t0 = time.perf_counter()
    for yaw in np.linspace(0, 2 * np.pi, 12, endpoint=False):
        eye = np.array([2.0, 1.5, 1.5])
        pose = look_at(eye, eye + [np.cos(yaw), np.sin(yaw), -0.45])
        state.integrate(*rgbd(scene, K, pose, h, w), K, pose)
    print(
        f"room: 12 views at {h}x{w} fused in {time.perf_counter() - t0:.1f} s; {state.num_blocks} blocks "
        f"({state.num_blocks * state.config.block_resolution**3 / 1e6:.1f} M voxels)"
    )
    pts = np.array([0.6, 0.5, 0.75]) + np.random.default_rng(0).uniform(size=(3000, 3)) * 0.3
    for _ in range(repeats):
        t0 = time.perf_counter()
        cp = state.copy()
        t1 = time.perf_counter()
        n = cp.clear_region(pts, 0.0045)
        t2 = time.perf_counter()
        print(f"  copy {t1 - t0:.2f} s; clear_region (3000 points, r = 4.5 mm) {t2 - t1:.3f} s, {n} voxels")
        del cp
        gc.collect()


def bench_update(repeats: int, profile: bool) -> None:
    import egoworld.sim.update as U

    spec = importlib.util.spec_from_file_location("tabletop", ROOT / "tests" / "sim" / "conftest.py")
    tc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tc)
    h, w = 240, 416
    K = intrinsics_from_fov(w, h, 70.0)
    old, new = tc.Tabletop(box_xy=(0.1, 0.05), box_size=0.1), tc.Tabletop(box_xy=(-0.15, 0.0), box_size=0.1)
    state = SceneState(StateConfig(voxel_size=0.003))
    for p in tc.camera_ring(5):
        state.integrate(*old.rgbd(K, p, h, w)[:2], K, p)
    poses = tc.camera_ring(16, span_deg=30)
    frames = [(old if i < 8 else new).rgbd(K, p, h, w) for i, p in enumerate(poses)]
    clip = {
        "rgb": np.stack([f[0] for f in frames]),
        "depth": np.stack([f[1] for f in frames]),
        "K": K,
        "poses": poses,
        "object_masks": {"box": np.stack([f[2] == tc.BOX for f in frames])},
    }
    print(f"update: state {state.num_blocks} blocks (3 mm, box in the static TSDF); clip 16x{h}x{w}")
    t0 = time.perf_counter()
    state.copy()
    print(f"  state.copy {time.perf_counter() - t0:.3f} s")
    U.update_state(state, clip, ["box"])  # warm-up (imports)
    for _ in range(repeats):
        if profile:
            import cProfile
            import pstats

            pr = cProfile.Profile()
            pr.enable()
        t0 = time.perf_counter()
        _, report = U.update_state(state, clip, ["box"], return_report=True)
        print(f"  update_state {time.perf_counter() - t0:.2f} s; moved {list(report.moved)}")
        if profile:
            pr.disable()
            pstats.Stats(pr).sort_stats("cumulative").print_stats(15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("room", "update", "all"), default="all")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}")
    if args.part in ("room", "all"):
        bench_room(args.repeats)
    if args.part in ("update", "all"):
        bench_update(args.repeats, args.profile)


if __name__ == "__main__":
    main()
