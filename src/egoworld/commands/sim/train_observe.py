"""`egoworld sim train-observe`: train an observation model on tabletop episodes or prepared clips.

A thin front end of `egoworld.sim.train_observe`, which writes the options as an `observation:` run
config and trains it with the one trainer (`egoworld.train`, as `egoworld train` does).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from egoworld.cli import add_command, float_in, int_in, need_path

OBSERVE_PRESETS = ("tiny", "tiny-pixel")  # CPU-sized presets of egoworld.sim.observe.PRESETS (a test checks)


def register(sub, voxel_help: str) -> None:
    """Add `sim train-observe` to the `sim` subcommands `sub`."""
    from egoworld.sim.state import EPISODE_VOXEL_SIZE
    from egoworld.sim.train_observe import TrainObserveOptions as D  # the defaults, in one place

    t = add_command(
        sub,
        "train-observe",
        help="train an observation model on tabletop episodes or prepared clips",
        description="Train an observation model (Wan InP DiT, 52 input channels) on clips of synthetic "
        "tabletop episodes or of a `sim prepare` folder: state rendering + unobserved mask + hand skeleton "
        "-> video. A shortcut for `egoworld train` with an observation: config (the same trainer): the run "
        "folder holds its checkpoints, and running the same command again resumes a stopped run.",
        examples="egoworld sim train-observe --data W --out MODEL --steps 200 --budget 600",
    )
    t.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder of tabletop episodes (`worlds generate`) or prepared clips (`sim prepare`)",
    )
    t.add_argument(
        "--out",
        dest="model_out",
        type=Path,
        required=True,
        help="model folder to write (new, empty or an earlier observation model)",
    )
    t.add_argument(
        "--run-dir",
        dest="train_run_dir",
        type=Path,
        default=None,
        help="training run folder: checkpoints, logs; a stopped run resumes from it (default: OUT.run "
        "beside --out)",
    )
    t.add_argument(
        "--preset", default=D.preset, choices=OBSERVE_PRESETS, help=f"model size (default {D.preset})"
    )
    t.add_argument(
        "--steps",
        dest="train_steps",
        type=int_in(1, 10_000_000),
        default=D.steps,
        help=f"max steps (default {D.steps})",
    )
    t.add_argument(
        "--budget",
        type=float_in(0.0, lo_open=True),
        default=None,
        help="stop after this many seconds (a checkpoint is written; run again to continue)",
    )
    t.add_argument("--batch", type=int_in(1, 4096), default=D.batch, help=f"batch size (default {D.batch})")
    t.add_argument(
        "--lr", type=float_in(0.0, 1.0, lo_open=True), default=D.lr, help=f"learning rate (default {D.lr:g})"
    )
    t.add_argument(
        "--checkpoint-every",
        dest="train_checkpoint_every",
        type=int_in(1, 10_000_000),
        default=D.checkpoint_every,
        help=f"steps between checkpoints (default {D.checkpoint_every})",
    )
    seed = int_in(0, 2**32 - 1)
    t.add_argument("--seed", dest="train_seed", type=seed, default=D.seed, help=f"seed (default {D.seed})")
    t.add_argument(
        "--voxel", type=float_in(0.0, 1.0, lo_open=True), default=EPISODE_VOXEL_SIZE, help=voxel_help
    )
    t.add_argument("--render", dest="train_render", default=D.render, choices=["raycast", "splat"])
    t.add_argument("--no-scene", action="store_true", help="ablation: no scene render")
    t.add_argument("--no-mask", action="store_true", help="ablation: no mask channels")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=run_train)


def train_run_dir(args: argparse.Namespace) -> Path:
    """The run folder of `sim train-observe`: --run-dir, or OUT.run beside --out."""
    if args.train_run_dir is not None:
        return args.train_run_dir
    return args.model_out.with_name(args.model_out.name + ".run")


def check_train_request(args: argparse.Namespace) -> None:
    """Every check of `sim train-observe` that needs no torch (and writes nothing)."""
    from egoworld.io_utils import check_outputs_distinct, check_replaceable
    from egoworld.sim.prepared import MANIFEST, read_manifest
    from egoworld.sim.train_observe import OBSERVATION_MARKER

    need_path(
        args.data,
        "--data",
        "folder",
        "tabletop episodes (`egoworld worlds generate`) or prepared clips (`egoworld sim prepare`)",
    )
    if (args.data / MANIFEST).is_file():
        read_manifest(args.data)
    elif not any(p.is_dir() for p in args.data.glob("episode_*")):
        raise FileNotFoundError(
            f"no tabletop episodes in {args.data}; expected episode_*/ folders from "
            "`egoworld worlds generate --task tabletop` or a `egoworld sim prepare` folder"
        )
    check_replaceable(args.model_out, OBSERVATION_MARKER)
    check_outputs_distinct(
        {"--out": args.model_out, "--run-dir": train_run_dir(args)},
        {"--data": args.data},
        replaced_folders=["--out"],
    )


def run_train(args: argparse.Namespace) -> int:
    check_train_request(args)  # before torch or any output

    from egoworld.sim.train_observe import TrainObserveOptions, observation_run_config, train_observation_run

    run_dir = train_run_dir(args)
    options = TrainObserveOptions(
        data=args.data,
        run_dir=run_dir,
        preset=args.preset,
        steps=args.train_steps,
        batch=args.batch,
        lr=args.lr,
        budget_s=args.budget,
        voxel_size=args.voxel,
        render=args.train_render,
        use_scene=not args.no_scene,
        use_mask=not args.no_mask,
        checkpoint_every=args.train_checkpoint_every,
        seed=args.train_seed,
    )
    cfg = observation_run_config(options)
    state = train_observation_run(cfg, args.model_out, progress=not args.no_progress)
    stopped = "" if state["completed"] else f" (--budget reached; run again to go on to {cfg.max_steps})"
    print(f"trained to step {state['step']}{stopped}; saved to {args.model_out} (run folder {run_dir})")
    return 0
