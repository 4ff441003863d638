"""Throughput of `egoworld worlds generate` (frames/s per core) and a picture grid of generated worlds.

    MUJOCO_GL=egl .venv/bin/python benchmarks/bench_worlds.py --grid docs/img/worlds_grid.png

Each task is generated with one worker process (so frames/s is per core) into a temporary folder;
the time covers scene building, rendering RGB + depth + instances (passive: RGB only), and writing.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from egoworld.worlds import humanoid, nav, tabletop  # noqa: E402
from egoworld.worlds.generate import WorldSpec, generate  # noqa: E402

TASKS = {"nav": 16, "passive": 16, "tabletop": 16, "humanoid": 16}  # frames per episode


def bench(task: str, size: int, episodes: int, frames: int, workers: int = 1) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        spec = WorldSpec(task=task, episodes=episodes, frames=frames, size=size, seed=0, workers=workers)
        t0 = time.perf_counter()
        generate(spec, Path(tmp) / "out", progress=False)
        return episodes * frames / (time.perf_counter() - t0)


def _colour_ids(ids: np.ndarray) -> np.ndarray:
    palette = np.random.default_rng(7).integers(40, 255, size=(int(ids.max()) + 1, 3)).astype(np.uint8)
    palette[0] = 0
    return palette[ids]


def _colour_depth(depth: np.ndarray) -> np.ndarray:
    valid = depth > 0
    far = np.percentile(depth[valid], 98) if valid.any() else 1.0
    d = np.where(valid, 1 - np.clip(depth / far, 0, 1), 0)  # near = bright, sky = black
    return np.repeat((d * 255).astype(np.uint8)[..., None], 3, axis=2)


def grid(path: Path, size: int = 128) -> None:
    """Rows: nav worlds, tabletop hand and gripper, humanoid; columns: RGB, depth, instances."""
    rows = []
    for seed in (0, 1, 3):
        world, model, traj = nav.plan_episode(seed, 0, 12, size)
        r = nav.render_walk(world, model, traj, size, nav.CAMERA_HEIGHT)
        rows.append((r["rgb"][6], r["depth"][6], r["instances"][6]))
    for effector in ("hand", "gripper"):
        r = tabletop.run_episode(None, seed=4, index=0, frames=12, size=size, effector=effector)
        rows.append((r["rgb"][5], r["depth"][5], r["instances"][5]))
    r = humanoid.render_episode(1, 0, 12, size)
    rows.append((r["rgb"][8], r["depth"][8], r["instances"][8]))
    tiles = [np.concatenate([rgb, _colour_depth(d), _colour_ids(i)], axis=1) for rgb, d, i in rows]
    # two columns of (RGB | depth | instances) triplets
    half = len(tiles) // 2
    img = np.concatenate([np.concatenate(tiles[:half], 0), np.concatenate(tiles[half:], 0)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, optimize=True)
    print(f"grid: {path} ({path.stat().st_size // 1024} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--grid", type=Path, default=None)
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, MUJOCO_GL={os.environ['MUJOCO_GL']}")
    print("| task | size | frames/s (1 worker) |")
    print("|---|---|---|")
    for size in args.sizes:
        for task, frames in TASKS.items():
            fps = bench(task, size, args.episodes, frames)
            print(f"| {task} | {size}x{size} | {fps:.1f} |", flush=True)
    fps2 = bench("nav", 64, 4, 16, workers=2)
    print(f"| nav, 2 workers, 4 episodes | 64x64 | {fps2:.1f} (total) |")
    if args.grid:
        grid(args.grid)


if __name__ == "__main__":
    main()
