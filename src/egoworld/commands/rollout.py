"""`egoworld rollout`: roll a world model out from any image under actions; write mp4, frames, gif.

    egoworld rollout --model DIR --image IMG --actions FILE|SCRIPT --out OUT.mp4
                     [--gt VIDEO] [--gif] [--frames-dir DIR] [--steps N] [--guidance G]
                     [--seed S] [--spacing M] [--fps F] [--device cpu|cuda]

Writes OUT.mp4, a folder of PNG frames (default OUT_frames/), OUT.gif with --gif, and with --gt
a side-by-side video OUT_side_by_side.mp4 (ground truth | prediction). Every input is checked
before anything is written, and every output goes to a temporary file moved into place at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

PROGRESS_MIN_CALLS = 10  # show a progress bar from this many denoiser calls on


def register(subparsers) -> None:
    """Add the `rollout` parser."""
    p = subparsers.add_parser(
        "rollout",
        help="roll a world model out from an image under actions",
        description="Roll a world model out from any image (resized and centre-cropped to the model) "
        "under actions from .npy/.json/.csv or a navigation script such as "
        "'forward 0.5m x8; turn_left 15deg x4; strafe_right 0.2m x2; stay x3'.",
    )
    p.add_argument("--model", required=True, type=Path, help="world-model folder (save_pretrained)")
    p.add_argument("--image", required=True, type=Path, help="start frame: any image PIL reads")
    p.add_argument("--actions", required=True, help="actions file (.npy, .json, .csv) or a navigation script")
    p.add_argument("--out", required=True, type=Path, help="output video (.mp4)")
    p.add_argument("--gt", type=Path, help="ground-truth video: also write OUT_side_by_side.mp4 (GT | pred)")
    p.add_argument("--gif", action="store_true", help="also write OUT.gif")
    p.add_argument("--frames-dir", type=Path, help="folder for PNG frames (default: OUT_frames beside OUT)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--guidance", type=float, help="image guidance scale (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--spacing", type=float, help="metres per action unit for scripts, if the model does not say"
    )
    p.add_argument("--fps", type=float, help="video frame rate (default: the model's, 5 for EgoWM)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def _outputs(args: argparse.Namespace) -> dict[str, Path]:
    out: Path = args.out
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"--out {out}: expected a .mp4 path")
    if out.exists() and out.is_dir():
        raise ValueError(f"--out {out} is a folder; expected a .mp4 file path")
    paths = {"video": out, "frames": args.frames_dir or out.with_name(f"{out.stem}_frames")}
    if args.gif:
        paths["gif"] = out.with_suffix(".gif")
    if args.gt is not None:
        paths["side_by_side"] = out.with_name(f"{out.stem}_side_by_side.mp4")
    frames = paths["frames"]
    if frames.exists():
        if not frames.is_dir():
            raise ValueError(f"--frames-dir {frames} is a file; expected a folder")
        foreign = [
            p.name for p in frames.iterdir() if not (p.name.startswith("frame_") and p.suffix == ".png")
        ]
        if foreign:
            raise ValueError(
                f"--frames-dir {frames} holds other files ({foreign[:3]}); expected a new folder or one "
                "with only frame_*.png (it is replaced)"
            )
    return paths


def _check_inputs(args: argparse.Namespace) -> None:
    if not args.model.is_dir():
        raise FileNotFoundError(f"--model {args.model}: folder not found; expected a world-model folder")
    if not args.image.is_file():
        raise FileNotFoundError(f"--image {args.image}: file not found")
    if args.gt is not None and not args.gt.is_file():
        raise FileNotFoundError(f"--gt {args.gt}: file not found")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps {args.steps}; expected at least 1")
    if args.fps is not None and not args.fps > 0:
        raise ValueError(f"--fps {args.fps}; expected > 0")


def _quiet_loading() -> None:
    """No per-file loading bars from diffusers/transformers: stderr stays for progress and errors."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def _load_model(directory: Path, device: str):
    from egoworld.errors import EgoworldError
    from egoworld.world_model import WorldModel

    _quiet_loading()
    try:
        model = WorldModel.from_pretrained(directory)
    except FileNotFoundError:
        raise
    except (OSError, json.JSONDecodeError, TypeError, KeyError, RuntimeError) as err:
        detail = " ".join(str(err).split())[:300]
        raise EgoworldError(
            f"--model {directory}: incomplete or unreadable world-model folder "
            f"({type(err).__name__}: {detail})"
        ) from err
    return model.to(device)


def _read_gt(path: Path, frames: int, height: int, width: int):
    from egoworld.data.video import VideoReader
    from egoworld.rollout import fit_frames

    with VideoReader(path) as reader:
        have = len(reader)
        if have < frames:
            raise ValueError(
                f"--gt {path} has {have} frames; the rollout has {frames} (start frame + actions)"
            )
        gt = reader.read(range(frames))  # [N, H0, W0, 3]
    return fit_frames(gt, height, width)


def _shareable(path: Path) -> Path:
    """Give a staged output the permissions a plain new file would get (temp files are 0600/0700)."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
    return path


def _write_frames(folder, frames) -> None:
    from PIL import Image

    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame_{i:05d}.png")


def _write_gif(path, frames, fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
    )


def _stage(name: str, path: Path):
    from egoworld.io_utils import atomic_dir, atomic_path

    return atomic_dir(path) if name == "frames" else atomic_path(path)


def run(args: argparse.Namespace) -> int:
    import math

    import numpy as np

    from egoworld.data.video import write_video
    from egoworld.rollout import load_actions, load_image

    _check_inputs(args)
    paths = _outputs(args)
    model = _load_model(args.model, args.device)
    c = model.config
    image = load_image(args.image, c.height, c.width)  # [H, W, 3]
    actions = load_actions(args.actions, model, spacing=args.spacing)  # [N, D]
    n = actions.shape[0]
    gt = _read_gt(args.gt, n, c.height, c.width) if args.gt is not None else None
    steps = args.steps or c.num_inference_steps
    calls = max(1, math.ceil((n - 1) / (c.num_frames - 1))) * steps
    print(
        f"egoworld rollout: {n} frames ({n - 1} actions) at {c.height}x{c.width}, "
        f"{c.family} model, {steps} steps"
    )
    frames = model.rollout(
        image,
        actions,
        num_inference_steps=steps,
        guidance=args.guidance,
        seed=args.seed,
        progress=not args.no_progress and calls >= PROGRESS_MIN_CALLS,
    )  # [N, H, W, 3] uint8
    fps = args.fps or float(c.fps)
    with contextlib.ExitStack() as stack:  # everything is staged; moved into place only if all succeed
        staged = {name: stack.enter_context(_stage(name, path)) for name, path in paths.items()}
        write_video(staged["video"], frames, fps)
        _write_frames(staged["frames"], frames)
        if "gif" in staged:
            _write_gif(staged["gif"], frames, fps)
        if gt is not None:
            both = np.concatenate([gt, frames], axis=2)  # [N, H, 2W, 3]: GT | prediction
            write_video(staged["side_by_side"], both, fps)
        for path in staged.values():
            _shareable(path)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
