"""`egoworld train CONFIG [--key=value ...]`: train or resume a world model."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Train a world model with Accelerate, or resume the run in --run-dir where it stopped.

example:
  egoworld train configs/tiny-svd.yaml --run-dir runs/tiny-svd --max-steps 20 --lr-actions=1e-3

Every config field can be overridden as --field VALUE or --field=VALUE ('-' or '_' alike);
model and data fields take their section as a prefix: --model.family=wan, --data.path=/data/recon.

{fields}

Each field is documented in the Args: docstrings of TrainConfig and DataConfig
(src/egoworld/train_config.py) and WorldModelConfig (src/egoworld/model_config.py); the loop,
checkpoints and resuming are described in docs/training.md. The config is checked before anything
is written. Multi-GPU:
  accelerate launch --config_file configs/accelerate/ddp.yaml -m egoworld train CONFIG ...
"""


def _fields() -> str:
    """The config's top-level fields and sections, wrapped for --help (read from the dataclasses)."""
    import dataclasses
    import textwrap

    from egoworld.train_config import _SECTIONS, TrainConfig

    def wrap(title: str, names: list[str]) -> str:
        return textwrap.fill(" ".join(names), 96, initial_indent=f"  {title:<9}", subsequent_indent=" " * 11)

    top = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _SECTIONS]
    lines = ["config fields:", wrap("top", top)]
    lines += [wrap(f"{name}.*", [f.name for f in dataclasses.fields(cls)]) for name, cls in _SECTIONS.items()]
    return "\n".join(lines)


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a world model from a YAML config (resumes a run directory)",
        description=DESCRIPTION.format(fields=_fields()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="YAML config, e.g. configs/tiny-svd.yaml")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="--key=value or --key value")
    p.set_defaults(func=run)


def run(args) -> int:
    from egoworld.train_config import load_config

    cfg = load_config(args.config, args.overrides)  # checked before torch/diffusers are imported
    from egoworld.train import train

    final = train(cfg)
    print(f"trained model: {final}")
    return 0
