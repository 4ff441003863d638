"""A world-model folder with the base network of one model and the action encoder of another.

    .venv/bin/python benchmarks/transplant_action_encoder.py --base PRIOR_DIR --actions MODEL_DIR --out DIR

The result has BASE's denoiser, codec and config, and ACTIONS's action encoder weights and action
statistics (`normalization.json`); `egoworld train CONFIG --init_from DIR` fine-tunes it. For the
question of docs/results.md ("Why the prior held the action path back"): can a passive prior use an
action path that already reads actions, when its own does not learn to? Both models must have the
same architecture. Not a test.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from egoworld.world_model import WorldModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="world model whose base network is kept")
    ap.add_argument("--actions", type=Path, required=True, help="world model whose action encoder is taken")
    ap.add_argument("--out", type=Path, required=True, help="new world-model folder")
    args = ap.parse_args()
    base, donor = WorldModel.from_pretrained(args.base), WorldModel.from_pretrained(args.actions)
    base.denoiser.action_encoder.load_state_dict(donor.denoiser.action_encoder.state_dict())
    base.normalizer = donor.normalizer
    base.save_pretrained(args.out)
    print(f"wrote {args.out}: base of {args.base}, action encoder and statistics of {args.actions}")


if __name__ == "__main__":
    main()
