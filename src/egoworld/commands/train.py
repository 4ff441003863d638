"""`egoworld train CONFIG [--key=value ...]`: train or resume a world model."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a world model from a YAML config (resumes a run directory)",
        description="Train with Accelerate. Every config field is overridable: --max-steps 20, "
        "--run-dir DIR, --lr-actions=1e-4, --model.family=wan, --data.path=/data/recon. Multi-GPU: "
        "accelerate launch --config_file configs/accelerate/ddp.yaml -m egoworld train CONFIG ...",
    )
    p.add_argument("config", help="YAML config, e.g. configs/tiny-svd.yaml")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="--key=value or --key value")
    p.set_defaults(func=run)


def run(args) -> int:
    from egoworld.train import train
    from egoworld.train_config import load_config

    cfg = load_config(args.config, args.overrides)
    final = train(cfg)
    print(f"trained model: {final}")
    return 0
