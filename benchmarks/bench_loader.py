"""Loader throughput (clips/s) for the NWM and 1X readers on generated data.

    .venv/bin/python benchmarks/bench_loader.py [--workers 2] [--clips 200] [--gop 250]

Each clip: 8 frames (context 1 + horizon 7) at 256x256, shuffled windows, batch size 4.
NWM: 16 trajectories x 120 JPEGs at 320x240 (RECON-like), frame_step 1.
1X: one 512x512 30 FPS shard of 3600 frames (2 min, segments of 600), 30 -> 5 FPS.
"""

from __future__ import annotations

import argparse
import pickle
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from egoworld.data.nwm import NWMDataset
from egoworld.data.onex import OneXDataset
from egoworld.data.video import write_video


def textured(rng: np.random.Generator, h: int, w: int, t: int) -> np.ndarray:
    """A smooth random scene drifting sideways over t frames: [t, h, w, 3] uint8."""
    base = cv2.resize(rng.integers(0, 255, (h // 8, (w + t) // 8 + 1, 3), dtype=np.uint8), ((w + t), h))
    noise = rng.integers(0, 24, (h, w + t, 3), dtype=np.uint8)
    scene = cv2.add(base, noise)
    return np.stack([scene[:, i : i + w] for i in range(t)])


def make_nwm(root: Path, trajs: int = 16, frames: int = 120) -> Path:
    rng = np.random.default_rng(0)
    for k in range(trajs):
        d = root / "recon" / f"traj_{k:03d}"
        d.mkdir(parents=True)
        for i, img in enumerate(textured(rng, 240, 320, frames)):
            cv2.imwrite(str(d / f"{i}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        steps = rng.normal(0.25, 0.05, (frames, 2)).cumsum(0)
        with open(d / "traj_data.pkl", "wb") as f:
            pickle.dump({"position": steps, "yaw": rng.normal(0, 0.1, frames).cumsum()}, f)
    return root / "recon"


def make_onex(root: Path, frames: int = 3600, gop: int | None = None) -> Path:
    rng = np.random.default_rng(1)
    for sub in ("videos", "robot_states", "segment_indices", "metadata"):
        (root / sub).mkdir(parents=True)
    (root / "metadata.json").write_text('{"hz": 30}')
    chunks = [textured(rng, 512, 512, 300) for _ in range(frames // 300)]
    write_video(root / "videos" / "video_0.mp4", np.concatenate(chunks), 30, gop=gop)
    rng.normal(0, 1, (frames, 25)).astype(np.float32).tofile(root / "robot_states" / "states_0.bin")
    (np.arange(frames) // 600).astype(np.int32).tofile(root / "segment_indices" / "segment_idx_0.bin")
    (root / "metadata" / "metadata_0.json").write_text(f'{{"shard_num_frames": {frames}}}')
    return root


def throughput(ds, workers: int, clips: int, batch: int = 4) -> float:
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )
    it = iter(loader)
    next(it)  # warm-up: worker start, first file opens
    n, t0 = 0, time.perf_counter()
    while n < clips:
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        n += len(b["frames"])
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument(
        "--gop", type=int, default=None, help="1X video keyframe interval (default: x264's 250)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        nwm_root, onex_root = make_nwm(tmp / "nwm"), make_onex(tmp / "onex", gop=args.gop)
        print(f"generated data in {time.perf_counter() - t0:.1f} s")
        nwm = NWMDataset(nwm_root, context=1, horizon=7, stride=1, resolution=256)
        onex = OneXDataset(onex_root, context=1, horizon=7, stride=1, fps=5, resolution=256)
        cpu = platform.processor() or platform.machine()
        print(f"machine: {cpu}, {torch.get_num_threads()} torch thread(s), {args.workers} workers")
        for name, ds in (("nwm", nwm), ("1x", onex)):
            rate = throughput(ds, args.workers, args.clips)
            print(f"{name}: {rate:.1f} clips/s ({len(ds)} windows, 8 frames at 256x256)")


if __name__ == "__main__":
    main()
