"""`egoworld worlds generate`: synthetic egocentric worlds on MuJoCo with ground truth."""

from __future__ import annotations

import argparse

from egoworld.cli import add_command, int_in
from egoworld.worlds import TASKS
from egoworld.worlds.generate import MAX_EPISODES, MAX_FRAMES, MAX_SIZE, MAX_WORKERS, MIN_SIZE
from egoworld.worlds.hands import EFFECTORS
from egoworld.worlds.nav import SCRIPTS as TRAJECTORIES

EXAMPLES = """
egoworld worlds generate --task nav --out worlds/nav --episodes 8 --frames 32 --size 64
egoworld worlds generate --task tabletop --out worlds/tabletop --episodes 2 --frames 17 --size 32
egoworld worlds generate --task tabletop --format egodex --out worlds/egodex --episodes 2 --size 32
egoworld worlds generate --task tabletop --format plain --no-poses --out worlds/plain --episodes 2 --size 96
egoworld worlds generate --task tabletop --format plain --no-hands --out worlds/nohands --episodes 2 --size 96
egoworld worlds generate --task nav --trajectory circle --textures my_paintings/ --out worlds/gallery
egoworld worlds generate --task turns --textures my_pictures/ --out worlds/turns --episodes 64 --frames 40
"""


def register(subparsers) -> None:
    """Add the `worlds` parser and its `generate` subcommand."""
    parser = add_command(
        subparsers,
        "worlds",
        help="generate synthetic egocentric worlds (MuJoCo)",
        description="Synthetic egocentric worlds on MuJoCo with exact ground truth (depth, instance masks, "
        "camera poses, actions). One action: generate.",
        examples=EXAMPLES,
    )
    sub = parser.add_subparsers(dest="worlds_command", metavar="ACTION")
    gen = add_command(
        sub,
        "generate",
        help="render a dataset of episodes with RGB, depth, instance masks and camera poses",
        description="Render procedural rooms and yards; nav -> NWM layout, humanoid -> 1X v2.0 shards, "
        "tabletop -> frames + hand keypoints, passive -> mp4 videos, turns -> NWM walks that only turn in "
        "front of each picture of --textures (exact frames by homography, no depth or masks). The output "
        "folder appears whole or "
        "not at all; the same request again is a no-op.",
        examples=EXAMPLES,
    )
    gen.add_argument("--task", required=True, choices=TASKS, help=f"what to render: {' | '.join(TASKS)}")
    gen.add_argument("--out", required=True, help="output folder (new or empty, or holding the same dataset)")
    gen.add_argument(
        "--episodes", type=int_in(1, MAX_EPISODES), default=4, help="number of episodes (default 4)"
    )
    gen.add_argument(
        "--frames", type=int_in(2, MAX_FRAMES), default=32, help="frames per episode (default 32)"
    )
    gen.add_argument(
        "--size",
        type=int_in(MIN_SIZE, MAX_SIZE),
        default=64,
        help=f"square image side in pixels, even, {MIN_SIZE}..{MAX_SIZE} (default 64)",
    )
    gen.add_argument("--seed", type=int_in(0, 2**63 - 1), default=0, help="base seed (default 0)")
    gen.add_argument(
        "--textures",
        default=None,
        help="folder of images used as wall/floor/object textures (turns: the pictures, required)",
    )
    gen.add_argument(
        "--workers", type=int_in(1, MAX_WORKERS), default=1, help="parallel processes (default 1)"
    )
    gen.add_argument(
        "--trajectory", default=None, choices=TRAJECTORIES, help="nav only: camera path (default random)"
    )
    gen.add_argument(
        "--effector", default=None, choices=EFFECTORS, help="tabletop only: what acts (default hand)"
    )
    gen.add_argument(
        "--camera",
        default=None,
        choices=("still", "orbit"),
        help="tabletop only: head camera; still (default), or orbit: walks around the table, looks "
        "away and back",
    )
    gen.add_argument(
        "--format",
        default="native",
        choices=("native", "egodex", "plain"),
        help="native: each task's own layout (default); egodex: tabletop hand episodes as EgoDex "
        "<i>.mp4 + <i>.hdf5; plain: as <i>.mp4 + <i>.npz (K, hands in camera coordinates, "
        "cam_to_world), the plain layout of `sim prepare` (egoworld.worlds.egodex_export)",
    )
    gen.add_argument(
        "--no-poses",
        action="store_true",
        help="--format plain only: leave cam_to_world out (sim prepare then estimates the poses)",
    )
    gen.add_argument(
        "--no-hands",
        action="store_true",
        help="--format plain only: leave hands and hand_confidence out (for `sim estimate-hands`)",
    )
    gen.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    gen.set_defaults(func=run)
    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run(args: argparse.Namespace) -> int:
    from egoworld.worlds.generate import WorldSpec, generate

    options = {}
    if args.trajectory is not None:
        options["trajectory"] = args.trajectory
    if args.effector is not None:
        options["effector"] = args.effector
    if args.camera is not None:
        options["camera"] = args.camera
    spec = WorldSpec(
        task=args.task,
        episodes=args.episodes,
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        textures=args.textures,
        workers=args.workers,
        options=options,
    )
    if args.no_poses and args.format != "plain":
        raise ValueError(f"--no-poses applies to --format plain; got --format {args.format}")
    if args.no_hands and args.format != "plain":
        raise ValueError(f"--no-hands applies to --format plain; got --format {args.format}")
    if args.format in ("egodex", "plain"):
        from egoworld.worlds.egodex_export import generate_recorded

        desc = generate_recorded(
            spec,
            args.out,
            layout=args.format,
            poses=not args.no_poses,
            hands=not args.no_hands,
            progress=not args.no_progress,
        )
    else:
        desc = generate(spec, args.out, progress=not args.no_progress)
    if desc["status"] == "unchanged":
        print(f"{args.out} already holds this {spec.task} dataset; nothing to do")
    else:
        print(
            f"wrote {spec.episodes} {spec.task} episodes x {spec.frames} frames at {spec.size}x{spec.size} "
            f"to {args.out}" + {"egodex": " (EgoDex layout)", "plain": " (plain layout)"}.get(args.format, "")
        )
    return 0
