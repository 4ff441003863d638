"""`egoworld sim …`: the EgoSim closed loop, states from synthetic episodes, observation-model training.

    egoworld sim --state S.npz --actions A.npz --clips K --out DIR [--model DIR] [--episode EP]
    egoworld sim build-state --episode EP --out S.npz [--actions-out A.npz]
    egoworld sim train-observe --data DIR --out MODEL [--preset tiny-pixel] [--budget SECONDS]

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
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sim",
        help="EgoSim: closed-loop simulation from a 3D state (and its tools)",
        description="Run K clips: render the state along the camera path, draw the hand skeletons, "
        "generate with the observation model, update the state; repeat. Subcommands build a state from "
        "a synthetic tabletop episode and train an observation model.",
        epilog="actions file (.npz): camera_poses [N,4,4] camera-to-world (OpenCV axes) and either "
        "hand_keypoints [N,21,3] / [N,2,21,3] (world metres, OpenPose order) or gripper_poses [N,4,4] + "
        "gripper_opening [N]; optional K [3,3] and observation [H,W,3] uint8; N >= K*(T-1)+1.",
    )
    p.add_argument("--state", help="state file (.npz from SceneState.save or `sim build-state`)")
    p.add_argument("--actions", help="actions file (.npz; format below)")
    p.add_argument("--clips", type=int, default=1, help="number of clips K (default 1)")
    p.add_argument("--out", help="output folder (replaced atomically when complete)")
    p.add_argument("--model", default=None, help="observation model folder (default: a random tiny model)")
    p.add_argument("--episode", default=None, help="tabletop episode for the ground-truth state update")
    p.add_argument(
        "--backend",
        default=None,
        choices=["gt", "state", "estimated"],
        help="state-update reconstruction (default: gt with --episode, else state)",
    )
    p.add_argument("--depth-model", default=None, help="Depth Anything folder (backend 'estimated')")
    p.add_argument("--sam2-checkpoint", default=None, help="SAM 2 checkpoint (backend 'estimated')")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's, 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--render", default="raycast", choices=["raycast", "splat"], help="renderer Π")
    p.add_argument("--fov", type=float, default=60.0, help="horizontal FOV when the actions have no K")
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest="sim_command", metavar="ACTION")

    b = sub.add_parser("build-state", help="S_0 from a tabletop episode frame (+ its actions file)")
    b.add_argument("--episode", dest="episode_dir", required=True, help="tabletop episode folder")
    b.add_argument("--out", dest="state_out", required=True, help="state file to write (.npz)")
    b.add_argument("--actions-out", default=None, help="also write the episode's actions file (.npz)")
    b.add_argument("--frame", type=int, default=0, help="frame to fuse (default 0)")
    b.add_argument("--voxel", type=float, default=0.01, help="TSDF voxel size in metres (default 0.01)")
    b.set_defaults(func=run_build_state)

    t = sub.add_parser("train-observe", help="train an observation model on tabletop episodes")
    t.add_argument("--data", required=True, help="folder of tabletop episodes (`worlds generate`)")
    t.add_argument("--out", dest="model_out", required=True, help="model folder to write")
    t.add_argument("--preset", default="tiny-pixel", help="tiny | tiny-pixel (default)")
    t.add_argument("--steps", dest="train_steps", type=int, default=1000, help="max steps (default 1000)")
    t.add_argument("--budget", type=float, default=None, help="stop after this many seconds")
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--voxel", type=float, default=0.03, help="state voxel size (default 0.03)")
    t.add_argument("--render", dest="train_render", default="splat", choices=["raycast", "splat"])
    t.add_argument("--no-scene", action="store_true", help="ablation: no scene render")
    t.add_argument("--no-mask", action="store_true", help="ablation: no mask channels")
    t.set_defaults(func=run_train)


# --------------------------------------------------------------------------- inputs


def load_actions(path: str | Path, clips: int, frames: int) -> dict:
    """Read and check an actions file for `clips` clips of `frames` frames."""
    import numpy as np

    from egoworld.sim.camera import validate_intrinsics, validate_poses
    from egoworld.sim.loop import GripperAction, check_action

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"actions file {str(path)!r} does not exist; expected an .npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"actions file {str(path)!r} is not a readable npz ({err})") from err
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
    return {
        "poses": poses[:need],
        "action": action,
        "K": validate_intrinsics(data["K"]) if "K" in data else None,
        "observation": data.get("observation"),
    }


def _backend(args, episode):
    from egoworld.sim.loop import EstimatedBackend, GroundTruthBackend, StateRenderBackend

    kind = args.backend or ("gt" if episode is not None else "state")
    if kind == "gt":
        if episode is None:
            raise ValueError("backend 'gt' needs --episode (the tabletop episode the actions came from)")
        return GroundTruthBackend(episode)
    if kind == "estimated":
        if not args.depth_model:
            raise ValueError("backend 'estimated' needs --depth-model DIR (Depth Anything, local weights)")
        return EstimatedBackend(args.depth_model, sam2_checkpoint=args.sam2_checkpoint)
    return StateRenderBackend()


# --------------------------------------------------------------------------- sim (run)


def run(args: argparse.Namespace) -> int:
    from egoworld.sim.loop import check_clip_count

    missing = [f"--{k}" for k in ("state", "actions", "out") if not getattr(args, k)]
    if missing:
        raise ValueError(
            f"missing {', '.join(missing)}; usage: egoworld sim --state S --actions A --clips K --out DIR"
        )
    clips = check_clip_count(args.clips)
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps {args.steps}; expected >= 1")

    import numpy as np

    from egoworld.io_utils import atomic_dir
    from egoworld.sim.camera import intrinsics_from_fov
    from egoworld.sim.loop import EgoSim, TabletopEpisode
    from egoworld.sim.observe import ObservationModel
    from egoworld.sim.state import SceneState

    state = SceneState.load(args.state)  # FileNotFoundError / ValueError
    if args.model:
        model = ObservationModel.from_pretrained(args.model)
    else:
        logger.info("no --model: using a randomly initialised tiny observation model (videos are noise)")
        model = ObservationModel.build("tiny")
    c = model.config
    acts = load_actions(args.actions, clips, c.num_frames)
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
        num_inference_steps=args.steps,
        seed=args.seed,
    )
    sim.reset(state, acts["observation"])

    t0 = time.perf_counter()
    video = sim.run(acts["poses"], acts["action"], clips)
    elapsed = time.perf_counter() - t0
    with atomic_dir(args.out) as tmp:
        from egoworld.worlds.writers import write_images, write_mp4

        np.save(tmp / "observation.npy", video)
        write_images(tmp / "frames", video, ".png")
        if video.shape[1] % 2 == 0 and video.shape[2] % 2 == 0:
            write_mp4(tmp / "video.mp4", video, fps=c.fps)
        summary = {"clips": clips, "frames": int(len(video)), "seconds": elapsed, "per_clip": []}
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
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    note = "" if args.model else " (no --model: a random tiny observation model, so the frames are noise)"
    print(f"wrote {clips} clips ({len(video)} frames) and the updated state to {args.out}{note}")
    return 0


# --------------------------------------------------------------------------- build-state


def run_build_state(args: argparse.Namespace) -> int:
    import numpy as np

    from egoworld.io_utils import atomic_path
    from egoworld.sim.loop import GripperAction, TabletopEpisode, episode_state
    from egoworld.sim.state import StateConfig

    episode = TabletopEpisode.load(args.episode_dir)
    if not 0 <= args.frame < len(episode):
        raise ValueError(f"--frame {args.frame}; the episode has frames 0 … {len(episode) - 1}")
    state = episode_state(episode, args.frame, StateConfig(voxel_size=args.voxel))
    state.save(args.state_out)
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
        with atomic_path(args.actions_out, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
    print(
        f"wrote {state!r} to {args.state_out}"
        + (f" and actions to {args.actions_out}" if args.actions_out else "")
    )
    return 0


# --------------------------------------------------------------------------- train-observe


def run_train(args: argparse.Namespace) -> int:
    from egoworld.sim.loop import TabletopEpisode, observation_clip
    from egoworld.sim.observe import ObservationModel, encode_clips, train_observation_model
    from egoworld.sim.state import StateConfig

    if args.train_steps < 1:
        raise ValueError(f"--steps {args.train_steps}; expected >= 1")
    folders = sorted(Path(args.data).glob("episode_*"))
    if not folders:
        raise FileNotFoundError(
            f"no tabletop episodes in {args.data}; expected episode_*/ folders from "
            "`egoworld worlds generate --task tabletop`"
        )
    model = ObservationModel.build(args.preset, use_scene=not args.no_scene, use_mask=not args.no_mask)
    c = model.config
    clips = []
    for f in folders:
        ep = TabletopEpisode.load(f)
        if ep.rgb.shape[1:3] != (c.height, c.width):
            raise ValueError(
                f"{f} has {ep.rgb.shape[1]}x{ep.rgb.shape[2]} frames; preset {args.preset} needs "
                f"{c.height}x{c.width}"
            )
        for start in range(0, len(ep) - c.num_frames + 1, 2):
            clips.append(
                observation_clip(
                    ep,
                    start,
                    c.num_frames,
                    config=StateConfig(voxel_size=args.voxel),
                    render_method=args.train_render,
                )
            )
    if not clips:
        raise ValueError(f"episodes in {args.data} are shorter than one clip of {c.num_frames} frames")
    x0, y = encode_clips(model, clips)
    losses = train_observation_model(
        model, x0, y, steps=args.train_steps, batch_size=args.batch, lr=args.lr, time_budget_s=args.budget
    )
    model.save_pretrained(args.model_out)
    n = min(20, len(losses))
    first, last = sum(losses[:n]) / n, sum(losses[-n:]) / n
    print(
        f"trained {len(losses)} steps on {len(clips)} clips: loss {first:.4f} → {last:.4f}; "
        f"saved to {args.model_out}"
    )
    return 0
