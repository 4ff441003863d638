"""Training throughput (samples/s) of the tiny world-model presets on this machine's CPU.

    .venv/bin/python benchmarks/bench_train.py [--steps 10] [--out docs/train-bench.md]

One optimizer step = the base model's objective on a batch, backward, AdamW step, with the two
learning-rate groups of the trainer. Random clips at the configs' resolution; not a test.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from egoworld.train import param_groups
from egoworld.train_config import load_config
from egoworld.world_model import WorldModel

CONFIGS = ("tiny-svd", "tiny-cosmos", "tiny-wan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", default="docs/train-bench.md")
    args = ap.parse_args()
    rows = []
    for name in CONFIGS:
        cfg = load_config(Path("configs") / f"{name}.yaml")
        m = cfg.model
        torch.manual_seed(0)
        model = WorldModel.build(m).train()
        opt = torch.optim.AdamW(param_groups(cfg, model))
        batch = {
            "frames": torch.rand(cfg.batch_size, m.num_frames, 3, m.height, m.width) * 2 - 1,
            "actions": torch.randn(cfg.batch_size, m.num_frames, m.action_dim),
        }
        times = []
        for i in range(args.steps + 1):
            t0 = time.perf_counter()
            loss = model(batch)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i:
                times.append(time.perf_counter() - t0)
        per_step = sum(times) / len(times)
        params = sum(p.numel() for p in model.denoiser.parameters())
        rows.append(
            f"| {name} | {params:,} | {m.height}×{m.width}×{m.num_frames} | {cfg.batch_size} "
            f"| {per_step * 1000:.0f} | {cfg.batch_size / per_step:.1f} |"
        )
    lines = [
        "# Training throughput, tiny presets (CPU)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_train.py --steps {args.steps}`; machine: "
        f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}, no GPU.",
        "Mean over the steps after one warm-up step; random clips; VAE encode included.",
        "",
        "| config | denoiser params | clip (H×W×F) | batch | ms / step | samples / s |",
        "|---|---:|---|---:|---:|---:|",
        *rows,
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
