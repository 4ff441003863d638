"""How fast does a training run's action path learn? The mirrored-action loss gap per checkpoint.

    .venv/bin/python benchmarks/action_path_probe.py --worlds PROBE_WORLDS --runs RUN_A RUN_B \
        [--draws 8] [--clips 32] [--min-step 0] [--rollouts 0] [--out probe.json]

For every checkpoint of every run (`RUN/checkpoints/step-*/model`, the raw weights), the denoising
loss of held-out clips under mirrored minus true actions, same noise
(`egoworld.experiments.action_following.action_loss_gap`): 0 for a model that ignores its actions,
> 0 once it reads them. Also the action embedding's size and how much it differs under the mirrored
actions (`action_embedding_split`): a path that grows an action-independent offset only has the
first and not the second. No sampling, so a checkpoint takes seconds; the figure for issue 14's
diagnostic in docs/results.md. `--rollouts N` also samples: the PSNR gap (dB, frames 4-16) of
rollouts under true minus mirrored actions on the first N clips, one seed (`mirrored_gap`, what
`egoworld experiment action-following` reports; needs clips of 17 frames). For the flow families
(Cosmos, Wan) also the denoiser's x0 error at noise level 0.9 relative to copying the first frame
(`high_noise_error`): far above 1 while the model has not learned to read its conditioning frame;
and the same under the mirrored actions, higher once the x0 estimate follows the actions.
Not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from egoworld.checkpoints import checkpoint_folders, step_of
from egoworld.experiments.action_following import (
    action_embedding_split,
    action_loss_gap,
    high_noise_error,
    mirrored_gap,
)
from egoworld.experiments.evaluation import load_eval_clips
from egoworld.world_model import WorldModel


def probe_run(
    run_dir: Path, worlds: Path, draws: int, num_clips: int, min_step: int = 0, rollouts: int = 0
) -> list[dict]:
    rows = []
    clips = long_clips = None
    for folder in checkpoint_folders(run_dir):
        if step_of(folder) < min_step:
            continue
        model = WorldModel.from_pretrained(folder / "model").eval()
        if clips is None:
            clips = load_eval_clips(worlds, model.config.num_frames, model.config.height)[:num_clips]
            if rollouts:
                long_clips = load_eval_clips(worlds, 17, model.config.height)[:rollouts]
        t0 = time.perf_counter()
        gap = action_loss_gap(model, clips, draws=draws)
        row = {"step": step_of(folder), **gap, "embedding": action_embedding_split(model, clips)}
        emb = row["embedding"]
        line = (
            f"{run_dir.name} step {row['step']:>5}: relative gap {gap['relative']:+.5f}, "
            f"|e_a| {emb['norm']:.3f}, |e_a - e_a(mirrored)| {emb['split']:.3f}"
        )
        if hasattr(model.family, "flow_velocity"):
            row["x0_error_t0.9"] = e = high_noise_error(model, clips, draws=draws)
            m = high_noise_error(model, clips, draws=draws, mirrored=True)
            row["x0_error_t0.9_mirrored"] = m
            line += f", x0 error at t=0.9 / copy-first {e['ratio']:.3f} (mirrored actions {m['ratio']:.3f})"
        if long_clips:
            m = mirrored_gap(model, long_clips, [0])
            row.update(psnr_gap_db=m["gap"][0], share_positive=m["share_positive"])
            line += f", rollout PSNR gap {m['gap'][0]:+.3f} dB ({m['share_positive']:.0%} of clips > 0)"
        rows.append({**row, "seconds": time.perf_counter() - t0})
        print(line, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", type=Path, required=True, help="held-out nav worlds (worlds generate)")
    ap.add_argument("--runs", type=Path, nargs="+", required=True, help="training run folders")
    ap.add_argument("--draws", type=int, default=8, help="noise draws per checkpoint")
    ap.add_argument("--clips", type=int, default=32, help="held-out clips scored (the first N worlds)")
    ap.add_argument("--min-step", type=int, default=0, help="skip checkpoints before this step")
    ap.add_argument("--rollouts", type=int, default=0, help="also the rollout PSNR gap on N clips")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.manual_seed(0)
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "worlds": str(args.worlds),
        "runs": {
            str(r): probe_run(r, args.worlds, args.draws, args.clips, args.min_step, args.rollouts)
            for r in args.runs
        },
    }
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
