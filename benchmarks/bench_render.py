"""Time and check EgoSim's two renderers (Render Π): torch point splatting vs Open3D TSDF ray casting.

A synthetic tabletop (tests/sim/conftest.py) is fused at 3 mm voxels (the paper's setting) from
640×480 RGB-D views; both renderers then draw a 16-frame trajectory at 64×64 and 256×256.
Correctness is PSNR and depth error against the ground-truth frames on pixels both cover, and the
share of pixels whose coverage mask disagrees with the ground truth.

    .venv/bin/python benchmarks/bench_render.py [--voxel 0.003] [--frames 16] [--threads N]
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import time
from pathlib import Path

import numpy as np
import torch

from egoworld.sim.camera import intrinsics_from_fov
from egoworld.sim.render import METHODS, render_state
from egoworld.sim.state import SceneState, StateConfig

ROOT = Path(__file__).resolve().parents[1]


def _scene_module():
    spec = importlib.util.spec_from_file_location("tabletop", ROOT / "tests" / "sim" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voxel", type=float, default=0.003)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sc = _scene_module()
    scene = sc.Tabletop(box_size=0.1)

    Kf = intrinsics_from_fov(640, 480, 70.0)
    state = SceneState(StateConfig(voxel_size=args.voxel, block_count=60_000))
    t0 = time.perf_counter()
    fuse_poses = np.concatenate([sc.camera_ring(6, span_deg=60), sc.camera_ring(4, radius=0.6, height=0.6)])
    for p in fuse_poses:
        rgb, d, _ = scene.rgbd(Kf, p, 480, 640)
        state.integrate(rgb, d, Kf, p)
    t_fuse = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_points = len(state.points()[0])
    t_extract = time.perf_counter() - t0
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(
        f"state: voxel {args.voxel} m, {state.num_blocks} blocks, {n_points} surface points; "
        f"fusing {len(fuse_poses)} 640x480 frames {t_fuse:.2f} s, surface extraction {t_extract:.2f} s"
    )

    traj = sc.camera_ring(args.frames, span_deg=50, radius=0.7)
    print("| size | method | ms / frame | PSNR (dB, covered) | depth err (mm, median) | mask disagreement |")
    print("|---|---|---|---|---|---|")
    for size in (64, 256):
        K = intrinsics_from_fov(size, size, 70.0)
        gts = [scene.rgbd(K, p, size, size) for p in traj]
        for method in METHODS:
            render_state(state, K, traj[:1], size, size, method=method)  # warm-up
            best = np.inf
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = render_state(state, K, traj, size, size, method=method)
                best = min(best, time.perf_counter() - t0)
            se, n, derr, dis = 0.0, 0, [], 0
            for i, (rgb, d, _) in enumerate(gts):
                cov = ~out.mask[i] & (d > 0)
                se += float(((out.video[i][cov].astype(np.float64) - rgb[cov]) ** 2).sum())
                n += int(cov.sum()) * 3
                derr.append(np.abs(out.depth[i][cov] - d[cov]))
                dis += int((out.mask[i] != (d == 0)).sum())
            psnr = 10 * np.log10(255.0**2 / (se / n))
            print(
                f"| {size}x{size} | {method} | {1000 * best / len(traj):.1f} | {psnr:.2f} | "
                f"{1000 * np.median(np.concatenate(derr)):.1f} | {100 * dis / out.mask.size:.2f}% |"
            )


if __name__ == "__main__":
    main()
