"""`egoworld sim …`: the EgoSim closed loop, states from synthetic episodes, observation-model training.

    egoworld sim --state S.npz --actions A.npz --clips K --out DIR [--model DIR] [--episode EP]
    egoworld sim build-state --episode EP --out S.npz [--actions-out A.npz]
    egoworld sim train-observe --data DIR --out MODEL [--run-dir RUN] [--preset tiny-pixel] [--budget S]
    egoworld sim prepare DIR --out PREP --size H W --frames N (--depth D | --depth-model M) [--layout L]
    egoworld sim prepare --check DIR

The actions file (npz): `camera_poses` [N, 4, 4] camera-to-world (OpenCV axes) and either
`hand_keypoints` [N, 21, 3] / [N, 2, 21, 3] (world metres, OpenPose order) or `gripper_poses`
[N, 4, 4] + `gripper_opening` [N]; optional `K` [3, 3] at the model's frame size (default: a
horizontal field of view of `--fov` degrees) and `observation` [H, W, 3] uint8 (the current view,
the first frame of clip 1). N must be at least K·(T − 1) + 1 for clips of T frames.
Everything is checked before anything runs; the input state file is never written.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from egoworld.cli import add_command, device_name, float_in, int_in

logger = logging.getLogger(__name__)

MAX_SAMPLER_STEPS = 1_000  # = egoworld.rollout.MAX_SAMPLER_STEPS


OBSERVE_PRESETS = ("tiny", "tiny-pixel")  # CPU-sized presets of egoworld.sim.observe.PRESETS (a test checks)
OUT_MARKER = "summary.json"  # an earlier `egoworld sim` output folder, which a rerun may replace
MAX_CLIPS = 1_000

EXAMPLES = """
egoworld worlds generate --task tabletop --out W --episodes 1 --frames 17 --size 32
egoworld sim build-state --episode W/episode_00000 --out S.npz --actions-out A.npz
egoworld sim --state S.npz --actions A.npz --clips 2 --out OUT --episode W/episode_00000
egoworld sim train-observe --data W --out MODEL --steps 200
egoworld sim prepare EGODEX/part1 --out PREP --size 480 832 --frames 61 --frame-step 2 --depth-model DA2
egoworld sim prepare --check PREP
"""


def register(subparsers) -> None:
    """Add the `sim` parser and its `build-state` and `train-observe` subcommands."""
    from egoworld.sim.state import EPISODE_VOXEL_SIZE

    p = add_command(
        subparsers,
        "sim",
        help="EgoSim: closed-loop simulation from a 3D state (and its tools)",
        description="Run K clips: render the state along the camera path, draw the hand skeletons, "
        "generate with the observation model, update the state; repeat.\nSubcommands build a state from "
        "a synthetic tabletop episode and train an observation model.\n\n"
        "actions file (.npz): camera_poses [N,4,4] camera-to-world (OpenCV axes) and either "
        "hand_keypoints [N,21,3] / [N,2,21,3] (world metres, OpenPose order) or gripper_poses [N,4,4] + "
        "gripper_opening [N]; optional K [3,3] and observation [H,W,3] uint8; N >= K*(T-1)+1.",
        examples=EXAMPLES,
    )
    p.add_argument("--state", type=Path, help="state file (.npz from SceneState.save or `sim build-state`)")
    p.add_argument("--actions", type=Path, help="actions file (.npz; format above)")
    p.add_argument("--clips", type=int, default=1, help=f"number of clips K, 1..{MAX_CLIPS} (default 1)")
    p.add_argument(
        "--out", type=Path, help="output folder (new, empty or an earlier sim output; replaced when complete)"
    )
    p.add_argument(
        "--model", type=Path, default=None, help="observation model folder (default: a random tiny model)"
    )
    p.add_argument(
        "--episode", type=Path, default=None, help="tabletop episode for the ground-truth state update"
    )
    p.add_argument(
        "--backend",
        default=None,
        choices=["gt", "state", "estimated"],
        help="state-update reconstruction (default: gt with --episode, else state)",
    )
    p.add_argument(
        "--depth-model", type=Path, default=None, help="Depth Anything folder (backend 'estimated')"
    )
    p.add_argument(
        "--sam2-checkpoint", type=Path, default=None, help="SAM 2 checkpoint (backend 'estimated')"
    )
    p.add_argument(
        "--steps",
        type=int_in(1, MAX_SAMPLER_STEPS),
        default=None,
        help="sampling steps (default: the model's, 50)",
    )
    p.add_argument("--seed", type=int_in(0, 2**63 - 1), default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--render",
        default=None,
        choices=["raycast", "splat"],
        help="renderer Π (default: the one the model was trained with, else raycast)",
    )
    p.add_argument(
        "--trunc",
        type=float_in(0.0, 64.0, lo_open=True),
        default=None,
        metavar="VOXELS",
        help="TSDF truncation of the state update, in voxels (default: the model's training "
        "truncation, else the state's; at least 8 for estimated depth)",
    )
    p.add_argument(
        "--fov",
        type=float_in(0.0, 180.0, lo_open=True, hi_open=True),
        default=60.0,
        help="horizontal FOV in degrees when the actions have no K (default 60)",
    )
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest="sim_command", metavar="ACTION")

    voxel_help = (
        f"TSDF voxel size in metres (default {EPISODE_VOXEL_SIZE}: egoworld.sim.state.EPISODE_VOXEL_SIZE, "
        "the same in build-state and train-observe)"
    )
    b = add_command(
        sub,
        "build-state",
        help="S_0 from a tabletop episode frame (+ its actions file)",
        description="Fuse one frame of a synthetic tabletop episode (ground-truth depth, the hand left out, "
        "movable objects as point sets) into a state file, and optionally write the episode's actions "
        "file from that frame on.",
        examples="egoworld sim build-state --episode W/episode_00000 --out S.npz --actions-out A.npz",
    )
    b.add_argument("--episode", dest="episode_dir", type=Path, required=True, help="tabletop episode folder")
    b.add_argument("--out", dest="state_out", type=Path, required=True, help="state file to write (.npz)")
    b.add_argument(
        "--actions-out", type=Path, default=None, help="also write the episode's actions file (.npz)"
    )
    b.add_argument("--frame", type=int_in(0), default=0, help="frame to fuse (default 0)")
    b.add_argument(
        "--voxel", type=float_in(0.0, 1.0, lo_open=True), default=EPISODE_VOXEL_SIZE, help=voxel_help
    )
    b.set_defaults(func=run_build_state)

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
        "--preset", default="tiny-pixel", choices=OBSERVE_PRESETS, help="model size (default tiny-pixel)"
    )
    t.add_argument(
        "--steps",
        dest="train_steps",
        type=int_in(1, 10_000_000),
        default=1000,
        help="max steps (default 1000)",
    )
    t.add_argument(
        "--budget",
        type=float_in(0.0, lo_open=True),
        default=None,
        help="stop after this many seconds (a checkpoint is written; run again to continue)",
    )
    t.add_argument("--batch", type=int_in(1, 4096), default=16, help="batch size (default 16)")
    t.add_argument(
        "--lr", type=float_in(0.0, 1.0, lo_open=True), default=5e-4, help="learning rate (default 5e-4)"
    )
    t.add_argument(
        "--checkpoint-every",
        dest="train_checkpoint_every",
        type=int_in(1, 10_000_000),
        default=100,
        help="steps between checkpoints (default 100)",
    )
    t.add_argument("--seed", dest="train_seed", type=int_in(0, 2**32 - 1), default=0, help="seed (default 0)")
    t.add_argument(
        "--voxel", type=float_in(0.0, 1.0, lo_open=True), default=EPISODE_VOXEL_SIZE, help=voxel_help
    )
    t.add_argument("--render", dest="train_render", default="splat", choices=["raycast", "splat"])
    t.add_argument("--no-scene", action="store_true", help="ablation: no scene render")
    t.add_argument("--no-mask", action="store_true", help="ablation: no mask channels")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=run_train)
    _register_prepare(sub, voxel_help)
    _register_convert_inp(sub)


PREPARE_DESCRIPTION = (
    "Cut recorded egocentric video into training clips: the clip, the state fused from its first frames "
    "with the hands left out and rendered along its cameras (scene + unobserved mask), and the hand "
    "skeleton video, written as shards (egoworld.sim.prepared). Layouts (--layout, default auto: told "
    "apart by the file beside each video): egodex, <i>.mp4 + <i>.hdf5 (intrinsics, camera poses, hand "
    "joints in world coordinates); plain, <name>.mp4 + <name>.npz (K, hands [N, 2, 21, 3] in camera "
    "coordinates, optional hand_confidence and cam_to_world; without poses they are estimated by Open3D "
    "RGB-D odometry over the depth). Depth: --depth (metric, one file per episode) or --depth-model "
    "(Depth Anything, aligned per frame to the hand joints). --check PREP verifies a prepared folder "
    "(exit 1 when it lists problems). See docs/egosim.md."
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


def _register_prepare(sub, voxel_help: str) -> None:
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


# --------------------------------------------------------------------------- inputs


def load_actions(path: str | Path, clips: int, frames: int, size: tuple[int, int] | None = None) -> dict:
    """Read and check an actions file for `clips` clips of `frames` frames (observation [H, W, 3] = size)."""
    import numpy as np

    from egoworld.io_utils import check_npz_sizes
    from egoworld.sim.camera import validate_intrinsics, validate_poses
    from egoworld.sim.loop import GripperAction, check_action

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"actions file {str(path)!r} does not exist; expected an .npz")
    check_npz_sizes(path, "actions file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as err:  # a damaged archive: zip, zlib, EOF or value errors
        raise ValueError(
            f"actions file {str(path)!r} is not a readable npz ({type(err).__name__}: {err})"
        ) from None
    if "camera_poses" not in data:
        raise ValueError(f"actions file {str(path)!r} has no 'camera_poses'; expected [N, 4, 4]")
    poses = validate_poses(data["camera_poses"])
    need = clips * (frames - 1) + 1
    if poses.ndim != 3 or len(poses) < need:
        raise ValueError(
            f"actions file has camera_poses of shape {list(poses.shape)}; {clips} clips of {frames} frames "
            f"need at least [{need}, 4, 4]"
        )
    if "hand_keypoints" in data:
        action = np.asarray(data["hand_keypoints"], dtype=np.float64)
    elif "gripper_poses" in data and "gripper_opening" in data:
        action = GripperAction(data["gripper_poses"], data["gripper_opening"])
    else:
        raise ValueError(
            f"actions file {str(path)!r} has neither 'hand_keypoints' [N, 21, 3] / [N, 2, 21, 3] nor "
            "'gripper_poses' [N, 4, 4] + 'gripper_opening' [N]"
        )
    if len(action) < need:
        raise ValueError(f"actions cover {len(action)} frames; {clips} clips of {frames} frames need {need}")
    action = check_action(action[:need], need)
    observation = data.get("observation")
    if observation is not None:
        want = "[H, W, 3]" if size is None else f"[{size[0]}, {size[1]}, 3]"
        if observation.dtype != np.uint8:
            raise ValueError(
                f"actions file {str(path)!r}: observation is {observation.dtype}; expected uint8 {want}"
            )
        if (
            observation.ndim != 3
            or observation.shape[2] != 3
            or (size is not None and observation.shape[:2] != tuple(size))
        ):
            raise ValueError(
                f"actions file {str(path)!r}: observation has shape {list(observation.shape)}; "
                f"expected {want} (the model's frame size)"
            )
    return {
        "poses": poses[:need],
        "action": action,
        "K": validate_intrinsics(data["K"]) if "K" in data else None,
        "observation": observation,
    }


def _backend(args, episode):
    from egoworld.sim.loop import EstimatedBackend, GroundTruthBackend, StateRenderBackend

    kind = _backend_kind(args)
    if kind == "gt":
        return GroundTruthBackend(episode)
    if kind == "estimated":
        return EstimatedBackend(args.depth_model, sam2_checkpoint=args.sam2_checkpoint)
    return StateRenderBackend()


def _backend_kind(args) -> str:
    kind = args.backend or ("gt" if args.episode is not None else "state")
    if kind == "gt" and args.episode is None:
        raise ValueError("backend 'gt' needs --episode (the tabletop episode the actions came from)")
    if kind == "estimated" and not args.depth_model:
        raise ValueError("backend 'estimated' needs --depth-model DIR (Depth Anything, local weights)")
    return kind


def _need(path: Path | None, flag: str, kind: str, expected: str) -> None:
    """FileNotFoundError unless `path` (when given) is an existing file / folder."""
    if path is None:
        return
    ok = path.is_file() if kind == "file" else path.is_dir()
    if not ok:
        what = "does not exist" if not path.exists() else f"is not a {kind}"
        raise FileNotFoundError(f"{flag} {path} {what}; expected {expected}")


# --------------------------------------------------------------------------- sim (run)


def check_run_request(args: argparse.Namespace) -> None:
    """Every check of `egoworld sim` that needs neither Open3D nor torch (and writes nothing)."""
    from egoworld.io_utils import check_npz_sizes, check_outputs_distinct, check_replaceable

    missing = [f"--{k}" for k in ("state", "actions", "out") if not getattr(args, k)]
    if missing:
        raise ValueError(
            f"missing {', '.join(missing)}; usage: egoworld sim --state S --actions A --clips K --out DIR"
        )
    if not 1 <= args.clips <= MAX_CLIPS:  # as egoworld.sim.loop.check_clip_count, which imports torch
        raise ValueError(f"clips={args.clips}; expected an integer >= 1 and at most {MAX_CLIPS}")
    _need(args.state, "--state", "file", "a .npz from `egoworld sim build-state` or SceneState.save")
    _need(args.actions, "--actions", "file", "an .npz actions file (see egoworld sim --help)")
    _need(args.model, "--model", "folder", "an observation model folder (`egoworld sim train-observe`)")
    _need(args.episode, "--episode", "folder", "a tabletop episode folder (`egoworld worlds generate`)")
    _need(args.depth_model, "--depth-model", "folder", "a local transformers Depth Anything folder")
    _need(args.sam2_checkpoint, "--sam2-checkpoint", "file", "a local SAM 2 checkpoint (.pt)")
    _backend_kind(args)
    check_npz_sizes(args.state, "state file")  # a .npy, a truncated or an inflating archive: now, not later
    check_npz_sizes(args.actions, "actions file")
    check_replaceable(args.out, OUT_MARKER)
    check_outputs_distinct(
        {"--out": args.out},
        {
            "--state": args.state,
            "--actions": args.actions,
            "--model": args.model,
            "--episode": args.episode,
            "--depth-model": args.depth_model,
            "--sam2-checkpoint": args.sam2_checkpoint,
        },
        replaced_folders=["--out"],
    )


def run(args: argparse.Namespace) -> int:
    check_run_request(args)  # before Open3D, torch or any output

    import numpy as np

    from egoworld.io_utils import atomic_dir
    from egoworld.sim.camera import intrinsics_from_fov
    from egoworld.sim.loop import EgoSim, TabletopEpisode
    from egoworld.sim.observe import ObservationModel
    from egoworld.sim.state import SceneState

    clips = args.clips
    state = SceneState.load(args.state)  # FileNotFoundError / ValueError
    if args.model:
        model = ObservationModel.from_pretrained(args.model)
    else:
        logger.info("no --model: using a randomly initialised tiny observation model (videos are noise)")
        model = ObservationModel.build("tiny")
    c = model.config
    acts = load_actions(args.actions, clips, c.num_frames, (c.height, c.width))
    K = acts["K"] if acts["K"] is not None else intrinsics_from_fov(c.width, c.height, args.fov)
    episode = TabletopEpisode.load(args.episode) if args.episode else None
    if episode is not None and episode.rgb.shape[1:3] != (c.height, c.width):
        raise ValueError(
            f"episode frames are {episode.rgb.shape[1]}x{episode.rgb.shape[2]}; the model makes "
            f"{c.height}x{c.width} (generate the episode with --size {c.height})"
        )
    backend = _backend(args, episode)
    sim = EgoSim(
        state,
        model,
        K,
        backend=backend,
        render_method=args.render,
        trunc_voxel_multiplier=args.trunc,
        num_inference_steps=args.steps,
        seed=args.seed,
    )
    for note in sim.settings.notes:  # one line per departure from how the model was trained
        print(f"note: {note}", file=sys.stderr)
    sim.reset(state, acts["observation"])

    t0 = time.perf_counter()
    video = sim.run(acts["poses"], acts["action"], clips)
    elapsed = time.perf_counter() - t0
    with atomic_dir(args.out, replaces=OUT_MARKER) as tmp:
        from egoworld.worlds.writers import write_images, write_mp4

        np.save(tmp / "observation.npy", video)
        write_images(tmp / "frames", video, ".png")
        if video.shape[1] % 2 == 0 and video.shape[2] % 2 == 0:
            write_mp4(tmp / "video.mp4", video, fps=c.fps)
        summary = {"clips": clips, "frames": int(len(video)), "seconds": elapsed, "per_clip": []}
        summary["settings"] = {
            "render": sim.settings.render,
            "truncation_voxels": sim.settings.truncation(False),
            "estimated_truncation_voxels": sim.settings.truncation(True),
        }
        for k, rec in enumerate(sim.history):
            np.save(tmp / f"scene_render_{k + 1:02d}.npy", rec.rendering.video)
            summary["per_clip"].append(
                {
                    "frames": [int(rec.frames[0]), int(rec.frames[-1])],
                    "moved": [str(o) for o in rec.report.moved],
                    "skipped": {str(k2): v for k2, v in rec.report.skipped.items()},
                    "uncovered_fraction": float(rec.rendering.mask.mean()),
                }
            )
        sim.state.save(tmp / "state_final.npz")
        (tmp / OUT_MARKER).write_text(json.dumps(summary, indent=2))
    note = "" if args.model else " (no --model: a random tiny observation model, so the frames are noise)"
    print(f"wrote {clips} clips ({len(video)} frames) and the updated state to {args.out}{note}")
    return 0


# --------------------------------------------------------------------------- build-state


def _npz_path(path: Path, flag: str) -> None:
    if path.suffix.lower() != ".npz":
        raise ValueError(f"{flag} {path}: expected a .npz path")
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; expected a .npz file path")


def check_build_state_request(args: argparse.Namespace) -> None:
    """Every check of `sim build-state` that needs no Open3D (and writes nothing)."""
    from egoworld.io_utils import check_outputs_distinct

    _need(args.episode_dir, "--episode", "folder", "a tabletop episode folder (`egoworld worlds generate`)")
    _npz_path(args.state_out, "--out")
    if args.actions_out is not None:
        _npz_path(args.actions_out, "--actions-out")
    check_outputs_distinct(
        {"--out": args.state_out, "--actions-out": args.actions_out}, {"--episode": args.episode_dir}
    )


def run_build_state(args: argparse.Namespace) -> int:
    check_build_state_request(args)  # before Open3D or any output

    import numpy as np

    from egoworld.io_utils import atomic_path
    from egoworld.sim.loop import GripperAction, TabletopEpisode, episode_state
    from egoworld.sim.state import StateConfig

    episode = TabletopEpisode.load(args.episode_dir)
    if not 0 <= args.frame < len(episode):
        raise ValueError(f"--frame {args.frame}; the episode has frames 0 … {len(episode) - 1}")
    state = episode_state(episode, args.frame, StateConfig(voxel_size=args.voxel))
    arrays = None
    if args.actions_out:
        sl = slice(args.frame, None)
        action = episode.action(sl)
        arrays = {
            "camera_poses": episode.cam_to_world[sl],
            "K": episode.K,
            "observation": episode.rgb[args.frame],
        }
        if isinstance(action, GripperAction):
            arrays.update(gripper_poses=action.poses, gripper_opening=action.opening)
        else:
            arrays["hand_keypoints"] = action
    state.save(args.state_out)
    if arrays is not None:
        with atomic_path(args.actions_out, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
    print(
        f"wrote {state!r} to {args.state_out}"
        + (f" and actions to {args.actions_out}" if args.actions_out else "")
    )
    return 0


# --------------------------------------------------------------------------- train-observe


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

    _need(
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


# --------------------------------------------------------------------------- prepare


def check_prepare_request(args: argparse.Namespace) -> None:
    """Every check of `sim prepare` that needs no torch or Open3D (and writes nothing)."""
    from egoworld.io_utils import check_outputs_distinct, check_replaceable
    from egoworld.sim.prepared import MANIFEST

    if args.prepare_check is not None:
        if args.video_dir is not None or args.prepare_out is not None:
            raise ValueError("--check PREP takes no DIR or --out; usage: egoworld sim prepare --check PREP")
        _need(args.prepare_check, "--check", "folder", "a folder written by `egoworld sim prepare`")
        return
    missing = [n for n, v in (("DIR", args.video_dir), ("--out", args.prepare_out)) if v is None]
    missing += [n for n, v in (("--size", args.size), ("--frames", args.clip_frames)) if v is None]
    if missing:
        raise ValueError(
            f"missing {', '.join(missing)}; usage: egoworld sim prepare DIR --out PREP --size H W "
            "--frames N (--depth DIR | --depth-model DIR) [--layout auto|egodex|plain]"
        )
    _need(
        args.video_dir,
        "DIR",
        "folder",
        "a folder of episodes (<i>.mp4 + <i>.hdf5 EgoDex, or <name>.mp4 + <name>.npz plain)",
    )
    _need(args.prepare_depth, "--depth", "folder", "a folder of <episode>.npy metric depth files")
    _need(args.prepare_depth_model, "--depth-model", "folder", "a local transformers Depth Anything folder")
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
    print(
        f"wrote {len(meta['clips'])} clips of {meta['frames']} frames at {meta['height']}x{meta['width']} "
        f"from {meta['episodes']} episodes ({meta['layout']} layout, poses {meta['poses']}) in "
        f"{len(meta['shards'])} shards to {args.prepare_out}{skipped}"
    )
    return 0


# --------------------------------------------------------------------------- convert-inp


CONVERT_DESCRIPTION = (
    "Convert a Wan 2.1 Fun-InP (or Wan 2.1 i2v) transformer from the original Wan / VideoX-Fun release "
    "layout (SRC/config.json with dim, in_dim, num_heads, ... and diffusion_pytorch_model.safetensors with "
    "the original key names) into the diffusers layout (DST/transformer/) that ObservationModel.from_inp "
    "loads. --components links the VAE, UMT5, tokenizer, CLIP and scheduler of a diffusers Wan 2.1 i2v "
    "folder beside it. Weights are read from safetensors; a .bin/.pt/.pth only if torch.load(weights_only="
    "True) accepts it. See docs/egosim.md."
)
CONVERT_EXAMPLES = """
egoworld sim convert-inp Wan2.1-Fun-14B-InP --out Wan2.1-Fun-14B-InP-diffusers \\
    --components Wan2.1-I2V-14B-480P-Diffusers
egoworld sim convert-inp Wan2.1-Fun-1.3B-InP --out fun13-diffusers --dtype bfloat16
"""


def _register_convert_inp(sub) -> None:
    """`sim convert-inp`: original Wan / VideoX-Fun transformer weights -> the diffusers layout."""
    c = add_command(
        sub,
        "convert-inp",
        help="original Wan2.1-Fun-InP release layout -> diffusers layout",
        description=CONVERT_DESCRIPTION,
        examples=CONVERT_EXAMPLES,
    )
    c.add_argument("convert_src", metavar="SRC", type=Path, help="original checkpoint folder")
    c.add_argument(
        "--out",
        dest="convert_out",
        metavar="DST",
        type=Path,
        required=True,
        help="output folder (new, empty or an earlier convert-inp output; replaced when complete)",
    )
    c.add_argument(
        "--components",
        metavar="DIR",
        type=Path,
        default=None,
        help="a diffusers Wan 2.1 i2v folder: its vae/, text_encoder/, tokenizer/, image_encoder/ are linked",
    )
    c.add_argument(
        "--dtype",
        dest="convert_dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="cast the weights (default: keep the stored dtypes)",
    )
    c.set_defaults(func=run_convert_inp)


def check_convert_request(args: argparse.Namespace) -> None:
    """Every check of `sim convert-inp` that needs no torch (and writes nothing)."""
    from egoworld.io_utils import check_outputs_distinct, check_replaceable
    from egoworld.sim.convert_inp import MARKER, check_components, read_original_config

    check_replaceable(args.convert_out, MARKER)
    check_outputs_distinct(
        {"--out": args.convert_out},
        {"SRC": args.convert_src, "--components": args.components},
        replaced_folders=["--out"],
    )
    if args.components is not None:
        check_components(args.components)
    _need(args.convert_src, "SRC", "folder", "an original Wan / VideoX-Fun checkpoint folder")
    read_original_config(args.convert_src)


def run_convert_inp(args: argparse.Namespace) -> int:
    check_convert_request(args)  # before torch or any output

    import torch

    from egoworld.sim.convert_inp import convert_inp

    dtype = None if args.convert_dtype is None else getattr(torch, args.convert_dtype)
    out = convert_inp(args.convert_src, args.convert_out, components=args.components, torch_dtype=dtype)
    print(f"wrote the diffusers transformer{' and components' if args.components else ''} to {out}")
    return 0
