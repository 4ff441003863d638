"""`egoworld sim …`: the EgoSim closed loop and states from synthetic episodes (here); one module per
other subcommand: `train_observe`, `prepare`, `estimate_hands`, `convert_inp`.

    egoworld sim --state S.npz --actions A.npz --clips K --out DIR [--model DIR] [--episode EP]
                 [--prompt TEXT --text-encoder DIR]
    egoworld sim build-state --episode EP --out S.npz [--actions-out A.npz]
    egoworld sim train-observe --data DIR --out MODEL [--run-dir RUN] [--preset tiny-pixel] [--budget S]
    egoworld sim prepare DIR --out PREP --size H W --frames N (--depth D | --depth-model M) [--layout L]
    egoworld sim prepare --check DIR
    egoworld sim estimate-hands ROOT --pose-model DIR (--depth D | --depth-model M) [--overwrite]

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

from egoworld.cli import add_command, float_in, int_in, need_path

logger = logging.getLogger(__name__)

MAX_SAMPLER_STEPS = 1_000  # = egoworld.rollout.MAX_SAMPLER_STEPS


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
        "--prompt",
        default=None,
        metavar="TEXT",
        help="text prompt of the clips (default: the model's own); needs --text-encoder",
    )
    p.add_argument(
        "--text-encoder",
        type=Path,
        default=None,
        metavar="DIR",
        help="local T5/UMT5 folder (a Wan pipeline folder, or text_encoder/ + tokenizer/) for --prompt",
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

    from egoworld.commands.sim import convert_inp, estimate_hands, prepare, train_observe

    train_observe.register(sub, voxel_help)
    prepare.register(sub, voxel_help)
    estimate_hands.register(sub)
    convert_inp.register(sub)


# --------------------------------------------------------------------------- inputs


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
    need_path(args.state, "--state", "file", "a .npz from `egoworld sim build-state` or SceneState.save")
    need_path(args.actions, "--actions", "file", "an .npz actions file (see egoworld sim --help)")
    need_path(args.model, "--model", "folder", "an observation model folder (`egoworld sim train-observe`)")
    need_path(args.episode, "--episode", "folder", "a tabletop episode folder (`egoworld worlds generate`)")
    need_path(args.depth_model, "--depth-model", "folder", "a local transformers Depth Anything folder")
    need_path(args.sam2_checkpoint, "--sam2-checkpoint", "file", "a local SAM 2 checkpoint (.pt)")
    if args.prompt is not None and args.text_encoder is None:
        raise ValueError("--prompt needs --text-encoder DIR (the local T5/UMT5 folder that embeds it)")
    if args.text_encoder is not None and args.prompt is None:
        raise ValueError("--text-encoder is used only to embed --prompt TEXT; give both or neither")
    need_path(
        args.text_encoder, "--text-encoder", "folder", "a local T5/UMT5 folder (text_encoder/ + tokenizer/)"
    )
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
            "--text-encoder": args.text_encoder,
        },
        replaced_folders=["--out"],
    )


def run(args: argparse.Namespace) -> int:
    check_run_request(args)  # before Open3D, torch or any output

    import numpy as np

    from egoworld.io_utils import atomic_dir
    from egoworld.sim.actions_file import load_actions
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
    if args.prompt is not None:  # in place of the model's own prompt (e.g. the task the clips show)
        model.set_prompt(args.prompt, args.text_encoder)
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
            "prompt": c.prompt,
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

    need_path(
        args.episode_dir, "--episode", "folder", "a tabletop episode folder (`egoworld worlds generate`)"
    )
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
