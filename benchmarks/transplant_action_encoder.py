"""A world-model folder with the base network of one model and the action encoder of another.

    .venv/bin/python benchmarks/transplant_action_encoder.py --base PRIOR_DIR --actions MODEL_DIR --out DIR
    .venv/bin/python benchmarks/transplant_action_encoder.py --base MODEL_DIR --no-actions --out DIR

The result has BASE's denoiser, codec and config, and ACTIONS's action encoder weights and action
statistics (`normalization.json`); `egoworld train CONFIG --init_from DIR` fine-tunes it. For the
question of docs/results.md ("Why the prior held the action path back"): can a passive prior use an
action path that already reads actions, when its own does not learn to? Both models must have the
same architecture. With `--no-actions` the action encoder's output layers are zeroed instead (the
encoder then outputs exact zeros, as a fresh model's does): fine-tuned with `--lr_actions 0`, that is
a model's no-action counterpart for a further stage (docs/results.md, "The shipped model keeps a
picture"). Not a test.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from egoworld.world_model import WorldModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="world model whose base network is kept")
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--actions", type=Path, help="world model whose action encoder is taken")
    source.add_argument("--no-actions", action="store_true", help="zero the action encoder's outputs")
    ap.add_argument("--out", type=Path, required=True, help="new world-model folder")
    args = ap.parse_args()
    base = WorldModel.from_pretrained(args.base)
    if args.no_actions:
        base.denoiser.action_encoder.zero_init_outputs()
        said = "its action encoder's outputs zeroed"
    else:
        donor = WorldModel.from_pretrained(args.actions)
        base.denoiser.action_encoder.load_state_dict(donor.denoiser.action_encoder.state_dict())
        base.normalizer = donor.normalizer
        said = f"action encoder and statistics of {args.actions}"
    base.save_pretrained(args.out)
    print(f"wrote {args.out}: base of {args.base}, {said}")


if __name__ == "__main__":
    main()
