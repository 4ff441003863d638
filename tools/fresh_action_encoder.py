"""Copy a world-model folder with its action encoder replaced by a fresh (zero-output) one.

    .venv/bin/python tools/fresh_action_encoder.py SRC DST [--hidden-dim 64]

The INIT of issue 14's runs (configs/demo-nav.yaml): the shipped model's denoiser with a fresh
release-form encoder (16 sinusoid frequencies per scalar at scale 1), and no action statistics —
a run fits them on its own data. A fresh encoder outputs exact zeros, so DST rolls out exactly as
SRC does with zero actions until it is trained.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from egoworld.actions.encoders import ActionEncoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path, help="a world-model folder (e.g. src/egoworld/assets/demo-nav)")
    ap.add_argument("dst", type=Path, help="new folder to write")
    ap.add_argument("--hidden-dim", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0, help="seeds the encoder's (random) hidden layers")
    args = ap.parse_args()
    old = args.src / "denoiser" / "action_encoder"
    if not old.is_dir():
        raise SystemExit(f"{old} is missing; expected a world-model folder written by save_pretrained")
    if args.dst.exists():
        raise SystemExit(f"{args.dst} exists; expected a new folder")
    config = ActionEncoder.load_config(old)
    torch.manual_seed(args.seed)
    shutil.copytree(args.src, args.dst)
    shutil.rmtree(args.dst / "denoiser" / "action_encoder")
    (args.dst / "normalization.json").unlink(missing_ok=True)
    fresh = ActionEncoder(
        action_dim=config["action_dim"], embed_dim=config["embed_dim"], hidden_dim=args.hidden_dim
    )
    fresh.save_pretrained(args.dst / "denoiser" / "action_encoder")
    print(f"wrote {args.dst}")


if __name__ == "__main__":
    main()
