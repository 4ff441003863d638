"""`egoworld sim prepare`: observation-model training clips from recorded video (EgoDex or plain layout).

A thin front end of `egoworld.sim.prepare` (the clips) and `egoworld.sim.prepared` (`--check`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from egoworld.cli import add_command, device_name, float_in, int_in, need_path

PREPARE_DESCRIPTION = (
    "Cut recorded egocentric video into training clips: the clip, the state fused from its first frames "
    "with the hands left out and rendered along its cameras (scene + unobserved mask), and the hand "
    "skeleton video, written as shards (egoworld.sim.prepared). Layouts (--layout, default auto: told "
    "apart by the file beside each video): egodex, <i>.mp4 + <i>.hdf5 (intrinsics, camera poses, hand "
    "joints in world coordinates); plain, <name>.mp4 + <name>.npz (K, hands [N, 2, 21, 3] in camera "
    "coordinates, optional hand_confidence and cam_to_world; without poses they are estimated by Open3D "
    "RGB-D odometry over the depth). Depth: --depth (metric, one file per episode) or --depth-model "
    "(Depth Anything, aligned per frame to the hand joints). Each clip keeps its episode's text prompt "
    "(EgoDex: the llm_description attributes; plain: the npz's optional 'prompt' string). --check PREP "
    "verifies a prepared folder (exit 1 when it lists problems). See docs/egosim.md."
)
PREPARE_EXAMPLES = """
egoworld worlds generate --task tabletop --format egodex --out EGX --episodes 2 --frames 17 --size 32
egoworld sim prepare EGX --out PREP --size 32 32 --frames 9 --depth EGX/depth
egoworld worlds generate --task tabletop --format plain --no-poses --out PLN --episodes 2 --size 96
egoworld sim prepare PLN --out PREP2 --size 32 32 --frames 9 --depth PLN/depth
egoworld sim prepare EGODEX/part1 --out PREP --size 480 832 --frames 61 --frame-step 2 --voxel 0.005 \\
    --depth-model Depth-Anything-V2-Small-hf
egoworld sim prepare --check PREP
"""


def register(sub, voxel_help: str) -> None:
    """`sim prepare`: training clips for the observation model from recorded video (EgoDex or plain)."""
    from egoworld.sim.state import EPISODE_VOXEL_SIZE

    r = add_command(
        sub,
        "prepare",
        help="observation-model training clips from recorded video (EgoDex or plain layout)",
        description=PREPARE_DESCRIPTION,
        examples=PREPARE_EXAMPLES,
    )
    r.add_argument(
        "video_dir",
        nargs="?",
        type=Path,
        metavar="DIR",
        help="folder of episodes (searched recursively): EgoDex or plain layout",
    )
    r.add_argument(
        "--layout",
        dest="prepare_layout",
        default="auto",
        choices=["auto", "egodex", "plain"],
        help="input layout (default auto: .hdf5 beside the videos = egodex, .npz = plain)",
    )
    r.add_argument(
        "--out",
        dest="prepare_out",
        metavar="PREP",
        type=Path,
        help="output folder (new, empty or an earlier `sim prepare` output; replaced when complete)",
    )
    r.add_argument("--size", nargs=2, type=int_in(16, 8192), metavar=("H", "W"), help="clip frame size")
    r.add_argument(
        "--frames", dest="clip_frames", metavar="N", type=int_in(5, 100_000), help="frames per clip, 4k + 1"
    )
    r.add_argument(
        "--frame-step", type=int_in(1, 1000), default=1, help="video frames per clip frame (default 1)"
    )
    r.add_argument(
        "--stride", type=int_in(1), default=None, help="video frames between clip starts (default (N-1)*step)"
    )
    r.add_argument(
        "--fuse-frames", type=int_in(1), default=1, help="clip frames fused into the state (default 1)"
    )
    r.add_argument(
        "--depth",
        dest="prepare_depth",
        metavar="DIR",
        type=Path,
        default=None,
        help="metric depth: DIR/<episode>.npy [N, H, W] metres (or .npz 'depth', or uint16 mm)",
    )
    r.add_argument(
        "--depth-model",
        dest="prepare_depth_model",
        metavar="DIR",
        type=Path,
        default=None,
        help="local Depth Anything folder (transformers); depth aligned per frame to the hand joints",
    )
    r.add_argument("--device", type=device_name, default="cpu", help="torch device of the depth model")
    r.add_argument(
        "--voxel",
        dest="prepare_voxel",
        metavar="METRES",
        type=float_in(0.0, 1.0, lo_open=True),
        default=EPISODE_VOXEL_SIZE,
        help=voxel_help,
    )
    r.add_argument(
        "--render", dest="prepare_render", default="splat", choices=["splat", "raycast"], help="renderer Π"
    )
    r.add_argument(
        "--min-confidence",
        type=float_in(0.0, 1.0),
        default=0.0,
        help="hand joints below this confidence are unknown (default 0: keep all)",
    )
    r.add_argument(
        "--hand-margin",
        type=int_in(0, 64),
        default=None,
        help="hand mask dilation in pixels (default min(H, W)/240)",
    )
    r.add_argument(
        "--clips-per-shard", type=int_in(1, 100_000), default=64, help="clips per shard (default 64)"
    )
    r.add_argument("--max-clips", type=int_in(1), default=None, help="stop after this many clips")
    r.add_argument(
        "--check",
        dest="prepare_check",
        type=Path,
        default=None,
        metavar="PREP",
        help="check a prepared folder instead",
    )
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.set_defaults(func=run_prepare)


def check_prepare_request(args: argparse.Namespace) -> None:
    """Every check of `sim prepare` that needs no torch or Open3D (and writes nothing)."""
    from egoworld.io_utils import check_outputs_distinct, check_replaceable
    from egoworld.sim.prepared import MANIFEST

    if args.prepare_check is not None:
        if args.video_dir is not None or args.prepare_out is not None:
            raise ValueError("--check PREP takes no DIR or --out; usage: egoworld sim prepare --check PREP")
        need_path(args.prepare_check, "--check", "folder", "a folder written by `egoworld sim prepare`")
        return
    missing = [n for n, v in (("DIR", args.video_dir), ("--out", args.prepare_out)) if v is None]
    missing += [n for n, v in (("--size", args.size), ("--frames", args.clip_frames)) if v is None]
    if missing:
        raise ValueError(
            f"missing {', '.join(missing)}; usage: egoworld sim prepare DIR --out PREP --size H W "
            "--frames N (--depth DIR | --depth-model DIR) [--layout auto|egodex|plain]"
        )
    need_path(
        args.video_dir,
        "DIR",
        "folder",
        "a folder of episodes (<i>.mp4 + <i>.hdf5 EgoDex, or <name>.mp4 + <name>.npz plain)",
    )
    need_path(args.prepare_depth, "--depth", "folder", "a folder of <episode>.npy metric depth files")
    need_path(
        args.prepare_depth_model, "--depth-model", "folder", "a local transformers Depth Anything folder"
    )
    if (args.prepare_depth is None) == (args.prepare_depth_model is None):
        raise ValueError(
            "give exactly one depth source: --depth DIR (metric depth per episode) or --depth-model DIR "
            "(a local Depth Anything folder); the recorded video has no depth"
        )
    _prepare_config(args).validate()
    check_replaceable(args.prepare_out, MANIFEST)
    check_outputs_distinct(
        {"--out": args.prepare_out},
        {
            "DIR": args.video_dir,
            "--depth": args.prepare_depth,
            "--depth-model": args.prepare_depth_model,
        },
        replaced_folders=["--out"],
    )


def _prepare_config(args: argparse.Namespace):
    from egoworld.sim.prepare import PrepareConfig

    return PrepareConfig(
        size=tuple(args.size),
        frames=args.clip_frames,
        frame_step=args.frame_step,
        stride=args.stride,
        fuse_frames=args.fuse_frames,
        voxel_size=args.prepare_voxel,
        render=args.prepare_render,
        min_confidence=args.min_confidence,
        clips_per_shard=args.clips_per_shard,
        max_clips=args.max_clips,
        hand_margin_px=args.hand_margin,
    )


def run_prepare(args: argparse.Namespace) -> int:
    check_prepare_request(args)  # before torch, Open3D or any output

    if args.prepare_check is not None:
        from egoworld.sim.prepared import check_prepared

        problems, summary = check_prepared(args.prepare_check)
        print(f"{args.prepare_check} (egoworld.sim.prepared)")
        for key, value in summary.items():
            print(f"  {key}: {value}")
        print(f"  problems: {len(problems)}")
        for problem in problems:
            print(f"  - {problem}")
        return 1 if problems else 0

    from egoworld.sim.prepare import prepare_videos

    meta = prepare_videos(
        args.video_dir,
        args.prepare_out,
        _prepare_config(args),
        layout=args.prepare_layout,
        depth_dir=args.prepare_depth,
        depth_model=args.prepare_depth_model,
        device=args.device,
        progress=not args.no_progress,
    )
    skipped = f" ({meta['skipped_clips']} skipped: no depth to fuse)" if meta["skipped_clips"] else ""
    prompted = sum("prompt" in c for c in meta["clips"])
    print(
        f"wrote {len(meta['clips'])} clips of {meta['frames']} frames at {meta['height']}x{meta['width']} "
        f"from {meta['episodes']} episodes ({meta['layout']} layout, poses {meta['poses']}) in "
        f"{len(meta['shards'])} shards to {args.prepare_out}{skipped}; {prompted} clips with a prompt "
        f"({len(meta['prompts'])} distinct)"
    )
    return 0
