"""`egoworld worlds generate`: synthetic egocentric worlds on MuJoCo with ground truth."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("worlds", help="generate synthetic egocentric worlds (MuJoCo)")
    sub = parser.add_subparsers(dest="worlds_command", metavar="ACTION")
    gen = sub.add_parser(
        "generate",
        help="render a dataset of episodes with RGB, depth, instance masks and camera poses",
        description="Render procedural rooms and yards; nav -> NWM layout, humanoid -> 1X v2.0 shards, "
        "tabletop -> frames + hand keypoints, passive -> mp4 videos.",
    )
    gen.add_argument("--task", required=True, help="nav | humanoid | tabletop | passive")
    gen.add_argument("--out", required=True, help="output folder (new or empty, or holding the same dataset)")
    gen.add_argument("--episodes", type=int, default=4, help="number of episodes (default 4)")
    gen.add_argument("--frames", type=int, default=32, help="frames per episode (default 32)")
    gen.add_argument("--size", type=int, default=64, help="square image side in pixels, even (default 64)")
    gen.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    gen.add_argument("--textures", default=None, help="folder of images used as wall/floor/object textures")
    gen.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    gen.add_argument("--trajectory", default=None, help="nav only: random | circle | square (default random)")
    gen.add_argument("--effector", default=None, help="tabletop only: hand | gripper (default hand)")
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
    desc = generate(spec, args.out, progress=not args.no_progress)
    if desc["status"] == "unchanged":
        print(f"{args.out} already holds this {spec.task} dataset; nothing to do")
    else:
        print(
            f"wrote {spec.episodes} {spec.task} episodes x {spec.frames} frames at {spec.size}x{spec.size} "
            f"to {args.out}"
        )
    return 0
