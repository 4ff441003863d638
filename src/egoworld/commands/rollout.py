"""`egoworld rollout`: roll a world model out from any image under actions; write mp4, frames, gif.

    egoworld rollout --model DIR --image IMG --actions FILE|SCRIPT --out OUT.mp4
                     [--gt VIDEO|FRAMES_DIR] [--gif] [--frames-dir DIR] [--steps N] [--guidance G]
                     [--seed S] [--spacing M] [--dataset NAME] [--fps F] [--device cpu|cuda]

DIR is a world-model folder or a training run folder (its final/ model, else its newest complete
checkpoint). Writes OUT.mp4, a folder of PNG frames (default OUT_frames/), OUT.gif with --gif, and
with --gt a side-by-side video OUT_side_by_side.mp4 (ground truth | prediction). Every input is
checked before torch is imported and before anything is written, no output may be an input, and
every output goes to a temporary file moved into place at the end. A model trained on a mixture of
datasets normalises the actions with the statistics of its first dataset unless --dataset names another.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from pathlib import Path

from egoworld.cli import add_command, device_name, float_in, int_in

logger = logging.getLogger(__name__)

PROGRESS_MIN_CALLS = 10  # show a progress bar from this many denoiser calls on
MAX_SAMPLER_STEPS = 1_000  # = egoworld.rollout.MAX_SAMPLER_STEPS (a test checks)
MAX_FPS = 1_000.0

EXAMPLES = """
egoworld rollout --model src/egoworld/assets/demo-nav --image painting.jpg \\
    --actions "forward 0.2m x8; turn_left 15deg x4" --out walk.mp4 --gif
egoworld rollout --model runs/tiny-svd --image start.png --actions actions.npy --out pred.mp4 \\
    --gt episode_frames/ --steps 20
"""


def register(subparsers) -> None:
    """Add the `rollout` parser."""
    p = add_command(
        subparsers,
        "rollout",
        help="roll a world model out from an image under actions",
        description="Roll a world model out from any image (resized and centre-cropped to the model) "
        "under actions from .npy/.json/.csv or a navigation script such as\n"
        "'forward 0.2m x8; turn_left 15deg x4; strafe_right 0.2m x2; stay x3'.\n"
        "A warning says when the actions reach far beyond what the model was trained on.",
        examples=EXAMPLES,
    )
    p.add_argument(
        "--model",
        required=True,
        type=Path,
        help="world-model folder (save_pretrained), or a training run folder: its final/ model, "
        "else its newest complete checkpoint",
    )
    p.add_argument("--image", required=True, type=Path, help="start frame: any image PIL reads")
    p.add_argument("--actions", required=True, help="actions file (.npy, .json, .csv) or a navigation script")
    p.add_argument("--out", required=True, type=Path, help="output video (.mp4)")
    p.add_argument(
        "--gt",
        type=Path,
        help="ground truth, a video file or a folder of PNG/JPG frames: also write "
        "OUT_side_by_side.mp4 (GT | pred)",
    )
    p.add_argument("--gif", action="store_true", help="also write OUT.gif")
    p.add_argument("--frames-dir", type=Path, help="folder for PNG frames (default: OUT_frames beside OUT)")
    p.add_argument("--steps", type=int_in(1, MAX_SAMPLER_STEPS), help="sampler steps (default: the model's)")
    p.add_argument("--guidance", type=float_in(0.0), help="image guidance scale >= 0 (default: the model's)")
    p.add_argument("--seed", type=int_in(0, 2**63 - 1), default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--state",
        type=Path,
        help="start state for models with a state (.npy/.json vector, e.g. the 1X humanoid's 25 numbers); "
        "later chunks start from the state the actions lead to",
    )
    p.add_argument(
        "--spacing",
        type=float_in(0.0, lo_open=True),
        help="metres per action unit for scripts, if the model does not say",
    )
    p.add_argument(
        "--dataset",
        help="for a model trained on a mixture of datasets: whose action statistics (and spacing) the "
        "actions are read with (default: the first dataset of the mixture)",
    )
    p.add_argument(
        "--fps",
        type=float_in(0.0, MAX_FPS, lo_open=True),
        help="video frame rate (default: the model's, 5 for EgoWM)",
    )
    p.add_argument("--device", type=device_name, default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def _outputs(args: argparse.Namespace) -> dict[str, Path]:
    """The output paths, checked: .mp4, not a folder, a frames folder that is new or ours."""
    out: Path = args.out
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"--out {out}: expected a .mp4 path")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; expected a .mp4 file path")
    for parent in (out.parent, *out.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out {out}: {parent} is a file; expected a folder there")
            break
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


_OPTION = {"video": "--out", "frames": "--frames-dir", "gif": "--gif output", "side_by_side": "side-by-side"}


def check_request(args: argparse.Namespace):
    """Everything that can be checked without torch -> (outputs, model dir, note, image, actions, gt).

    Reads the model's JSON files (config, action statistics), the image, the actions and the
    ground truth; imports neither torch nor diffusers.
    """
    from egoworld.actions.normalization import select_dataset
    from egoworld.io_utils import check_outputs_distinct
    from egoworld.rollout import (
        load_actions,
        load_image,
        load_reference_frames,
        load_state,
        read_model_info,
        resolve_model_dir,
    )

    paths = _outputs(args)
    model_dir, note = resolve_model_dir(args.model)
    if not args.image.is_file():
        raise FileNotFoundError(f"--image {args.image}: file not found")
    if args.gt is not None and not args.gt.exists():
        raise FileNotFoundError(f"--gt {args.gt}: not found; expected a video file or a folder of frames")
    actions_file = Path(args.actions) if Path(args.actions).is_file() else None
    check_outputs_distinct(
        {_OPTION[k]: v for k, v in paths.items()},
        {"--model": model_dir, "--image": args.image, "--gt": args.gt, "--actions": actions_file},
        replaced_folders=["--frames-dir"],
    )
    info = read_model_info(model_dir)
    info.normalizer = select_dataset(info.normalizer, args.dataset)  # --dataset: one of a mixture's
    c = info.config
    image = load_image(args.image, c.height, c.width)  # [H, W, 3]
    actions = load_actions(args.actions, info, spacing=args.spacing)  # [N, D]
    state = load_state(args.state, c.state_dim)  # [S] or None
    gt = None
    if args.gt is not None:
        gt = load_reference_frames(args.gt, actions.shape[0], c.height, c.width)  # [N, H, W, 3]
    return paths, model_dir, note, image, actions, state, gt


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

    paths, model_dir, note, image, actions, state, gt = check_request(args)  # before torch is imported
    if note:
        print(f"egoworld rollout: {note}")

    import numpy as np

    from egoworld.actions.normalization import select_dataset
    from egoworld.data.video import write_video
    from egoworld.rollout import check_device, run_rollout

    check_device(args.device)
    model = _load_model(model_dir, args.device)
    model.normalizer = select_dataset(model.normalizer, args.dataset)
    c = model.config
    n = actions.shape[0]
    steps = args.steps or c.num_inference_steps
    calls = max(1, math.ceil((n - 1) / (c.num_frames - 1))) * steps
    print(
        f"egoworld rollout: {n} frames ({n - 1} actions) at {c.height}x{c.width}, "
        f"{c.family} model, {steps} steps"
    )
    frames = run_rollout(
        model,
        image,
        actions,
        state=state,
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
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
