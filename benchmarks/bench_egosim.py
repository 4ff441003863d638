"""EgoSim on synthetic tabletop episodes: train small observation models, evaluate the closed loop.

    .venv/bin/python benchmarks/bench_egosim.py --out /tmp/bench_egosim \
        --picture docs/img/egosim_before_after.png

1. Generates tabletop episodes (hand effector) at `--size` px: `--train` for training, `--test`
   held out (another seed).
2. Training examples: 9-frame windows of the training episodes; the state is fused from the
   window's first frame with ground-truth depth (the hand left out, movable objects as object
   instances), rendered along the window's cameras (scene video + unobserved mask); the skeleton
   video is drawn from the recorded hand keypoints. The clips are written once as a prepared folder
   (`egoworld.sim.prepared.write_clips`, OUT/train_clips).
3. Trains three `tiny-pixel` observation models with the same number of steps through the one
   trainer (`egoworld.train`, the runs in OUT/runs/<variant>, as `egoworld sim train-observe`): full,
   w/o scene render, w/o mask (the paper's ablation table).
4. On each held-out episode: S_0 from frame 0, the closed loop (`EgoSim`, ground-truth
   reconstruction backend) for 2 clips (17 frames). "single clip" scores frames 1–8 of clip 1,
   "continuous" frames 1–16 of both clips. Frame 0 (the given observation) is not scored.

With `--camera orbit` the episodes' head camera walks around the table and looks away and back
(`egoworld.worlds.tabletop.orbit_head`), and a training window starting at frame s > 0 gets the
state fused from frames 0 and s (`memory_clip`): as in the closed loop, where clip 2's state holds
what frame 0 and clip 1 saw, the render then carries what the window's first frame lacks. Every
variant reports a t-based 95 % confidence interval over held-out episodes, and each ablation the
paired difference to the full model (per episode, same episodes) with its interval.

Metrics: PSNR / SSIM at 224×224 (`egoworld.metrics.pixel`); LPIPS only with `--alexnet FILE`;
Cam ERR = ATE RMSE (mm, after Sim(3) alignment) of the camera path that Open3D RGB-D odometry
(photometric term only) recovers from the *generated* frames paired with the ground-truth depth,
against the ground-truth camera path; Depth ERR (×100 AbsRel, median-scaled) between Depth Anything
on the generated and on the ground-truth frames only with `--depth-model DIR` — without it, the
"state depth" column is AbsRel ×100 of the simulator state's depth (rendered at the ground-truth
camera of the last scored frame, after the update) vs ground-truth depth on covered, non-hand pixels.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch

from egoworld.metrics.geometry import Open3DOdometry, camera_errors, depth_errors
from egoworld.metrics.pixel import psnr, ssim
from egoworld.sim.loop import (
    EgoSim,
    GroundTruthBackend,
    TabletopEpisode,
    action_video,
    episode_state,
    observation_clip,
    state_from_frames,
)
from egoworld.sim.observe import ObservationModel
from egoworld.sim.prepared import MANIFEST, write_clips
from egoworld.sim.render import render_state
from egoworld.sim.state import StateConfig
from egoworld.sim.train_observe import TrainObserveOptions, observation_run_config, train_observation_run
from egoworld.worlds.generate import WorldSpec, generate

logger = logging.getLogger("bench_egosim")
STATE = StateConfig(voxel_size=0.03)  # a 32 px pixel is ~3.6 cm at 1 m: coarser voxels than the paper's 3 mm
RENDER = "splat"  # fewer holes than ray casting in a state fused from one sparse view (docs/egosim.md)
VARIANTS = {"full": {}, "w/o scene render": {"use_scene": False}, "w/o mask": {"use_mask": False}}


def episodes(
    root: Path, n: int, seed: int, size: int, frames: int, camera: str = "still"
) -> list[TabletopEpisode]:
    options = {} if camera == "still" else {"camera": camera}
    spec = WorldSpec(task="tabletop", episodes=n, frames=frames, size=size, seed=seed, options=options)
    generate(spec, root, progress=False)
    return [TabletopEpisode.load(p) for p in sorted(root.glob("episode_*"))]


def memory_clip(ep: TabletopEpisode, start: int, frames: int) -> dict[str, np.ndarray]:
    """A training example whose state is fused from frames 0 and `start` (ground-truth depth, the
    effector left out), rendered along the window's cameras: `target`, `scene`, `skeleton` uint8
    [T,H,W,3], `mask` bool [T,H,W] as `observation_clip`."""
    if start == 0:
        return observation_clip(ep, 0, frames, config=STATE, render_method=RENDER)
    idx, sl = [0, start], slice(start, start + frames)
    state = state_from_frames(
        ep.rgb[idx],
        ep.depth[idx],
        ep.instances[idx],
        ep.K,
        ep.cam_to_world[idx],
        object_ids=ep.movable_ids,
        ignore_ids=[ep.effector_id],
        config=STATE,
    )
    H, W = ep.rgb.shape[1:3]
    poses = ep.cam_to_world[sl]
    r = render_state(state, ep.K, poses, H, W, method=RENDER)
    skeleton = action_video(ep.action(sl), ep.K, poses, H, W)
    return {"target": ep.rgb[sl], "scene": r.video, "mask": r.mask, "skeleton": skeleton}


def with_cameras(clip: dict[str, np.ndarray], ep: TabletopEpisode, start: int) -> dict[str, np.ndarray]:
    """A clip with the cameras and hands a prepared folder stores (`egoworld.sim.prepared`)."""
    sl = slice(start, start + len(clip["target"]))
    hands = np.full((len(clip["target"]), 2, 21, 3), np.nan, np.float32)  # not used by training
    return {
        **clip,
        "K": ep.K.astype(np.float64),
        "cam_to_world": ep.cam_to_world[sl],
        "hand_keypoints": hands,
    }


def logged_losses(run_dir: Path) -> list[float]:
    """The training losses the trainer logged to TensorBoard (every `log_every` steps)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "logs" / "train"))
    events.Reload()
    return [s.value for s in events.Scalars("loss")]


def interval(values, confidence: float = 0.95) -> dict:
    """Mean and t-based `confidence` interval (half-width) of per-episode values [N]."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]  # Cam ERR is NaN where the odometry lost track
    if len(v) < 2:
        return {"mean": float(v.mean()) if len(v) else float("nan"), "ci95": float("nan"), "n": len(v)}
    half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return {"mean": float(v.mean()), "ci95": half, "n": len(v)}


def scores(pred: np.ndarray, ep: TabletopEpisode, n: int, lpips=None, depth_model=None) -> dict:
    """Metrics of generated frames 0 … n−1 against the episode (frame 0 not scored for PSNR/SSIM)."""
    gt = ep.rgb[:n]
    out = {
        "psnr": float(np.mean(psnr(pred[1:n], gt[1:n]))),
        "ssim": float(np.mean(ssim(pred[1:n], gt[1:n]))),
    }
    if lpips is not None:
        out["lpips"] = float(np.mean(lpips(pred[1:n], gt[1:n])))
    if depth_model is not None:
        out["depth_err"] = 100 * depth_errors(depth_model(pred[1:n]), depth_model(gt[1:n]))["abs_rel"]
    out["cam_err_mm"] = cam_err_mm(pred[:n], ep, n)
    return out


def cam_err_mm(frames: np.ndarray, ep: TabletopEpisode, n: int) -> float:
    """ATE RMSE (mm) of the odometry path from `frames` [n,H,W,3]; NaN where the odometry lost
    track (non-finite poses: frames that look at a bare wall or floor, as the orbit camera does)."""
    est = Open3DOdometry(method="color", depth_max=3.0)(frames, ep.depth[:n], ep.K)
    if not np.isfinite(est).all():
        return float("nan")
    try:
        return 1000 * camera_errors(est, ep.cam_to_world[:n])["ate_rmse"]
    except np.linalg.LinAlgError:
        return float("nan")


def state_depth_err(state, ep: TabletopEpisode, frame: int) -> float:
    H, W = ep.depth.shape[1:]
    r = render_state(state, ep.K, ep.cam_to_world[frame], H, W, method=RENDER)
    gt = ep.depth[frame].copy()
    keep = ~r.mask[0] & (ep.instances[frame] != ep.effector_id) & (gt > 0)
    pred = np.where(keep, r.depth[0], 0.0)[None]
    return 100 * depth_errors(pred, np.where(keep, gt, 0.0)[None])["abs_rel"]


def evaluate(model: ObservationModel, test: list[TabletopEpisode], steps: int, **metric_kw) -> dict:
    T = model.config.num_frames
    rows = {"single clip": [], "continuous": []}
    states = []
    for i, ep in enumerate(test):
        s0 = episode_state(ep, 0, STATE)
        sim = EgoSim(
            s0,
            model,
            ep.K,
            backend=GroundTruthBackend(ep),
            render_method=RENDER,
            num_inference_steps=steps,
            seed=i,
        )
        sim.reset(s0, ep.rgb[0])
        v1 = sim.step(ep.cam_to_world[:T], ep.action(slice(0, T)))
        s1 = sim.state
        v2 = sim.step(ep.cam_to_world[T - 1 : 2 * T - 1], ep.action(slice(T - 1, 2 * T - 1)))
        video = np.concatenate([v1, v2[1:]])
        single = scores(video, ep, T, **metric_kw)
        single["state_depth_err"] = state_depth_err(s1, ep, T - 1)
        cont = scores(video, ep, 2 * T - 1, **metric_kw)
        cont["state_depth_err"] = state_depth_err(sim.state, ep, 2 * T - 2)
        rows["single clip"].append(single)
        rows["continuous"].append(cont)
        states.append((s0, s1, sim.state, video))
    mean = {k: {m: float(np.nanmean([r[m] for r in v])) for m in v[0]} for k, v in rows.items()}
    ci = {k: {m: interval([r[m] for r in v]) for m in v[0]} for k, v in rows.items()}
    return {"mean": mean, "ci": ci, "per_episode": rows, "states": states}


def paired(results: dict) -> dict:
    """Per setting and metric: (ablation − full) per episode, mean and 95 % interval."""
    full = results["variants"].get("full")
    out = {}
    for name, v in results["variants"].items():
        if name == "full" or full is None:
            continue
        out[name] = {
            setting: {
                m: interval([a[m] - b[m] for a, b in zip(rows, full["per_episode"][setting])])
                for m in rows[0]
            }
            for setting, rows in v["per_episode"].items()
        }
    return out


def render_only(test: list[TabletopEpisode], T: int, **metric_kw) -> dict:
    """Reference row: the state's own render (first frame given) as the prediction, no generation."""
    rows = []
    for ep in test:
        H, W = ep.rgb.shape[1:3]
        r = render_state(episode_state(ep, 0, STATE), ep.K, ep.cam_to_world[:T], H, W, method=RENDER)
        pred = r.video.copy()
        pred[0] = ep.rgb[0]
        rows.append(scores(pred, ep, T, **metric_kw))
    return {m: interval([r[m] for r in rows]) for m in rows[0]}


def gt_floor(test: list[TabletopEpisode], T: int) -> dict:
    """Cam ERR of the odometry on the ground-truth frames themselves (the estimator's own error)."""
    return interval([cam_err_mm(ep.rgb[:T], ep, T) for ep in test])


def picture(path: Path, states, ep: TabletopEpisode, scale: int = 4) -> None:
    """Before/after: the state from the head camera and from the side, S_0 vs after 2 clips, plus
    ground-truth frames vs generated frames."""
    import cv2

    from egoworld.sim.camera import look_at

    s0, _, s2, video = states
    H, W = ep.rgb.shape[1:3]
    head = ep.cam_to_world[0]
    center = np.array([0.0, 0.0, 0.75])
    side = look_at(center + np.array([-0.25, -0.75, 0.55]), center)
    tiles = []
    for s in (s0, s2):
        tiles += [render_state(s, ep.K, pose, H, W, method=RENDER).video[0] for pose in (head, side)]
    row1 = np.concatenate(tiles, 1)
    idx = [0, 4, 8, 12, 16]
    gt = np.concatenate([ep.rgb[i] for i in idx], 1)
    gen = np.concatenate([video[i] for i in idx], 1)
    pad = np.zeros((H, row1.shape[1] - gt.shape[1], 3), np.uint8) if row1.shape[1] > gt.shape[1] else None
    rows = [row1] + [np.concatenate([r, pad], 1) if pad is not None else r for r in (gt, gen)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    img = np.concatenate(rows, 0)
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/bench_egosim"))
    p.add_argument("--train", type=int, default=64, help="training episodes")
    p.add_argument("--test", type=int, default=8, help="held-out episodes")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--camera", default="still", choices=("still", "orbit"), help="tabletop head camera")
    p.add_argument("--budget", type=float, default=600.0, help="max training seconds per variant")
    p.add_argument("--steps", type=int, default=200, help="training steps per variant")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--sample-steps", type=int, default=50, help="sampling steps (the paper: 50)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--alexnet", default=None, help="AlexNet state dict for LPIPS (absent here)")
    p.add_argument("--depth-model", default=None, help="Depth Anything folder for Depth ERR (absent here)")
    p.add_argument("--picture", type=Path, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: far faster on a loaded machine)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t_all = time.perf_counter()
    metric_kw = {}
    if args.alexnet:
        from egoworld.metrics.perceptual import LPIPSMetric

        metric_kw["lpips"] = LPIPSMetric(args.alexnet)
    else:
        logger.info("LPIPS skipped: no AlexNet weights given (--alexnet)")
    if args.depth_model:
        from egoworld.metrics.geometry import DepthAnythingEstimator

        metric_kw["depth_model"] = DepthAnythingEstimator(args.depth_model)
    else:
        logger.info("Depth ERR (Depth Anything) skipped: no --depth-model; reporting the state depth error")

    t0 = time.perf_counter()
    train = episodes(args.out / "train", args.train, 0, args.size, 17, args.camera)
    test = episodes(args.out / "test", args.test, 1000, args.size, 17, args.camera)
    data = args.out / "train_clips"  # training examples are a pure function of the seeds: made once
    if not (data / MANIFEST).is_file():
        clips = [
            with_cameras(
                memory_clip(ep, s, 9)
                if args.camera == "orbit"
                else observation_clip(ep, s, 9, config=STATE, render_method=RENDER),
                ep,
                s,
            )
            for ep in train
            for s in (0, 2, 4, 6, 8)
        ]
        meta = {"layout": f"bench_egosim --camera {args.camera}", "render": RENDER}
        meta |= {"voxel_size": STATE.voxel_size, "fuse_frames": 1, "depth": "ground truth"}
        write_clips(data, clips, meta)
    n_clips = len(json.loads((data / MANIFEST).read_text())["clips"])
    t_data = time.perf_counter() - t0
    logger.info("%d training clips from %d episodes in %.0f s", n_clips, len(train), t_data)

    results = {
        "machine": f"{platform.machine()} {platform.processor() or ''} torch {torch.__version__}, "
        f"{args.threads} threads",
        "args": {k: str(v) for k, v in vars(args).items()},
        "data_s": t_data,
        "variants": {},
    }
    T = 9
    results["render_only"] = render_only(test, T, **metric_kw)
    results["cam_err_floor_gt_frames_mm"] = gt_floor(test, T)
    results["cam_err_floor_gt_frames_continuous_mm"] = gt_floor(test, 2 * T - 1)
    pic_states = None
    for name in args.variants.split(","):
        slug = name.replace("/", "").replace(" ", "-")
        options = TrainObserveOptions(
            data, args.out / "runs" / slug, height=args.size, width=args.size, steps=args.steps,
            batch=args.batch, lr=args.lr, budget_s=args.budget, **VARIANTS[name],
        )  # fmt: skip
        t0 = time.perf_counter()
        state = train_observation_run(observation_run_config(options), args.out / "models" / slug)
        model = ObservationModel.from_pretrained(args.out / "models" / slug).eval()
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        ev = evaluate(model, test, args.sample_steps, **metric_kw)
        t_eval = time.perf_counter() - t0
        if name == "full":
            pic_states = ev["states"][0]
        results["variants"][name] = {
            "steps": state["step"],
            "loss_logged": logged_losses(args.out / "runs" / slug),  # every 10th step's loss
            "train_s": t_train,
            "eval_s": t_eval,
            "mean": ev["mean"],
            "ci": ev["ci"],
            "per_episode": ev["per_episode"],
        }
        logger.info("%s: %s", name, json.dumps(results["variants"][name]))
    results["paired_vs_full"] = paired(results)
    results["total_s"] = time.perf_counter() - t_all
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    if args.picture is not None and pic_states is not None:
        picture(args.picture, pic_states, test[0])
    summary = {k: v for k, v in results.items() if k != "args"}
    summary["variants"] = {
        n: {k: x for k, x in v.items() if k != "per_episode"} for n, v in results["variants"].items()
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
