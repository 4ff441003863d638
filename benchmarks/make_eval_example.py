"""Build the worked example of docs/metrics.md and run `egoworld eval` on it.

    .venv/bin/python benchmarks/make_eval_example.py --out /tmp/eval_example

1. Ground truth: `egoworld worlds generate --task nav` (MuJoCo rooms and yards; frames
   `traj_XXXXX/{0..T-1}.jpg` with depth, instance masks, intrinsics, camera poses and object
   kinds in `traj_XXXXX/gt/`).
2. "Prediction": each episode re-rendered in the same world with the agent under-turning by
   `--turn-gain` (20 % by default) — the commanded yaw steps scaled, forward/lateral steps kept —
   written in the same layout, so its `gt/` is what a simulator re-rendering the predicted state
   would give (Depth ERR, Cam ERR and instance tracks of the prediction come from it).
3. `egoworld eval --pred OUT/pred --gt OUT/gt …` as a user would run it; the command, its output
   and the wall time are printed (that is what docs/metrics.md quotes).

Rendering runs in this process and `egoworld eval` in a child process (MuJoCo's EGL rendering
followed by a first import of torchvision in one process crashes here).
"""

from __future__ import annotations

import argparse
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _run(cmd: list[str]) -> tuple[str, float]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {shlex.join(cmd)}\n{done.stderr}")
    return done.stdout, wall


def make_prediction(gt: Path, pred: Path, *, seed: int, frames: int, size: int, trajectory: str, gain: float):
    """Re-render every GT episode with the yaw steps scaled by `gain` into `pred` (same layout).

    Writes `traj_XXXXX/{t}.jpg` and `gt/` (depth.npy, instances.npy, cameras.json, objects.json),
    the files `egoworld eval` reads, in the format `worlds generate` documents.
    """
    import json

    import numpy as np
    from PIL import Image

    from egoworld.worlds import nav

    for ep in sorted(gt.glob("traj_*")):
        index = int(ep.name.split("_")[1])
        world, model, traj = nav.plan_episode(seed, index, frames, size, None, trajectory)
        steps = traj.steps.copy()
        steps[:, 2] *= gain  # the "model" under-turns
        wrong = nav.integrate(traj.position[0], traj.yaw[0], steps)
        walk = nav.render_walk(world, model, wrong, size, nav.CAMERA_HEIGHT)
        if not np.array_equal(np.load(ep / "gt" / "instances.npy")[0], walk["instances"][0]):
            sys.exit(f"{ep.name}: the re-rendered frame 0 differs from the generated one (nav changed?)")
        out = pred / ep.name
        (out / "gt").mkdir(parents=True)
        for t, frame in enumerate(walk["rgb"]):
            Image.fromarray(frame).save(out / f"{t}.jpg", quality=95)
        np.save(out / "gt" / "depth.npy", walk["depth"].astype(np.float32))
        np.save(out / "gt" / "instances.npy", walk["instances"].astype(np.uint16))
        cameras = {"K": np.asarray(walk["K"]).tolist(), "cam_to_world": walk["cam_to_world"].tolist()}
        (out / "gt" / "cameras.json").write_text(json.dumps(cameras))
        (out / "gt" / "objects.json").write_text(json.dumps({"objects": world.objects_json()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder to create (replaced if it exists)")
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--frames", type=int, default=17, help="frames per episode (17: horizons up to 16)")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trajectory", default="random", help="nav trajectory: random | circle | square")
    ap.add_argument("--turn-gain", type=float, default=0.8, help="the prediction's yaw steps × this")
    args = ap.parse_args()

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    gt, pred, report = args.out / "gt", args.out / "pred", args.out / "report"
    egoworld = [sys.executable, "-m", "egoworld"]
    generate = [
        *egoworld,
        "worlds",
        "generate",
        "--task",
        "nav",
        "--out",
        str(gt),
        "--episodes",
        str(args.episodes),
        "--frames",
        str(args.frames),
        "--size",
        str(args.size),
        "--seed",
        str(args.seed),
        "--trajectory",
        args.trajectory,
        "--no-progress",
    ]
    _, wall = _run(generate)
    print(f"generated {args.episodes} nav episodes in {wall:.1f} s", file=sys.stderr, flush=True)
    make_prediction(
        gt,
        pred,
        seed=args.seed,
        frames=args.frames,
        size=args.size,
        trajectory=args.trajectory,
        gain=args.turn_gain,
    )
    evaluate = [
        *egoworld,
        "eval",
        "--pred",
        str(pred),
        "--gt",
        str(gt),
        "--metrics",
        "psnr,ssim,scs,depth,cam",
        "--horizons",
        "2,4,8,16",
        "--gt-tracks",
        "instances",
        "--pred-tracks",
        "instances",
        "--out",
        str(report),
    ]
    out, wall = _run(evaluate)
    shown = ["egoworld", *evaluate[3:]]
    print(f"$ {shlex.join(shown)}")
    print(out, end="")
    print(
        f"({wall:.1f} s wall for egoworld eval, {platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
