"""Score world models on generated navigation worlds: batched rollouts, SCS with GT masks, PSNR/SSIM.

Protocol (EgoWM §4–5 at our scale; docs/results.md):

* Each evaluation world is one nav episode of `T` frames (frame 0 = the observation, horizons
  2/4/8/16 = frame indices). Frames are rendered at `render size` and resized to the model's size
  (area); the instance ids are resized with nearest neighbour.
* Objects: the ground-truth instances covering at least `min_area` of frame 0, except the large
  planar surfaces (floor, ground, ceiling), which a model that never moves would still match.
* SCS (Eq. 7): ground-truth instance masks on the ground-truth video against masks tracked through
  the *predicted* video from the frame-0 ground-truth masks by chained optical flow
  (`egoworld.metrics.flow_tracking`; SAM 2 weights cannot be downloaded here). Frames from the
  trim frame on (every frame-0 point has left the view, by reprojection with GT depth and
  poses) are not scored. The same tracker on the *ground-truth* video gives the ceiling of this
  protocol (the "GT video, flow-tracked" row).
* PSNR and SSIM at 224×224 (`egoworld.metrics.pixel`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from egoworld.world_model import WorldModel

logger = logging.getLogger(__name__)

HORIZONS = (2, 4, 8, 16)
SURFACES = ("floor", "ground", "ceiling")


@dataclass
class EvalClip:
    """One evaluation episode at the model's resolution.

    Attributes:
        name: trajectory folder name.
        frames: uint8 `[T, H, W, 3]`.
        actions: raw (unnormalised) nav actions `[T, 3]`, row 0 zero.
        gt_masks: boolean `[T, K, H, W]` ground-truth masks of the scored objects.
        object_names: the K objects' names.
        trim_at: first frame not scored by SCS (T when nothing is trimmed).
    """

    name: str
    frames: np.ndarray
    actions: np.ndarray
    gt_masks: np.ndarray
    object_names: list[str]
    trim_at: int


def load_eval_clips(
    world_dir: str | Path, frames: int, size: int, *, min_area: float = 0.01
) -> list[EvalClip]:
    """Every episode of a generated nav dataset as an `EvalClip` of `frames` frames at `size`²."""
    import cv2

    from egoworld.data.nwm import NWMDataset
    from egoworld.metrics.trimming import trim_frame_by_reprojection

    world_dir = Path(world_dir)
    meta = json.loads((world_dir / "egoworld_world.json").read_text())
    ds = NWMDataset(
        world_dir,
        dataset_name=meta["dataset_name"],
        spacing=float(meta["metric_waypoint_spacing"]),
        context=1,
        horizon=frames - 1,
        stride=10**6,  # one window per episode: its first `frames` frames
        resolution=(size, size),
        output="clip",
    )
    clips = []
    for i in range(len(ds)):
        clip = ds.get_clip(i)
        gt = world_dir / clip.episode / "gt"
        idx = clip.frame_indices
        inst = np.load(gt / "instances.npy")[idx]  # [T, h, w] at the render size
        inst = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_NEAREST) for f in inst])
        names = {
            int(k): v["name"] for k, v in json.loads((gt / "objects.json").read_text())["objects"].items()
        }
        ids, counts = np.unique(inst[0], return_counts=True)
        keep = [
            int(j)
            for j, c in zip(ids, counts)
            if j != 0 and c >= min_area * inst[0].size and not names.get(int(j), "").startswith(SURFACES)
        ]
        cams = json.loads((gt / "cameras.json").read_text())
        depth = np.load(gt / "depth.npy")[idx]
        trim = trim_frame_by_reprojection(depth[0], np.array(cams["K"]), np.array(cams["cam_to_world"])[idx])
        clips.append(
            EvalClip(
                name=clip.episode,
                frames=clip.frames,
                actions=clip.actions,
                gt_masks=inst[:, None] == np.array(keep, dtype=inst.dtype)[None, :, None, None],
                object_names=[names.get(j, str(j)) for j in keep],
                trim_at=int(trim),
            )
        )
    return clips


@torch.no_grad()
def rollout_batch(
    model: WorldModel, images: np.ndarray, actions: np.ndarray, *, seed: int, steps: int | None = None
) -> np.ndarray:
    """`WorldModel.rollout` for a batch: uint8 images `[B, H, W, 3]` + raw actions `[B, N, D]`.

    Chunks of `num_frames` frames, each conditioned on the previous chunk's last frame, as
    `WorldModel.rollout`; one generator (seeded with `seed`) draws the whole batch's noise.
    Returns uint8 `[B, N, H, W, 3]`; frame 0 is the input image.
    """
    c = model.config
    b, n = actions.shape[:2]
    if images.shape != (b, c.height, c.width, 3):
        raise ValueError(f"images have shape {images.shape}; expected ({b}, {c.height}, {c.width}, 3)")
    per_clip = [model.chunk_actions(x) for x in actions]  # B lists of [F, D] chunks, model scale
    steps = steps or c.num_inference_steps
    generator = torch.Generator(device="cpu").manual_seed(seed)
    cond = torch.as_tensor(images).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(model.device)
    frames = [cond]
    for k in range(len(per_clip[0])):
        chunk = torch.stack([chunks[k] for chunks in per_clip]).to(model.device)  # [B, F, D]
        video = model.family.sample(model, cond, chunk, None, steps, c.guidance, generator)  # [B, F, 3, H, W]
        frames.extend(video.unbind(1)[1:])
        cond = video[:, -1]
    out = torch.stack(frames[:n], dim=1)  # [B, N, 3, H, W]
    return ((out + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 1, 3, 4, 2).cpu().numpy()


def score(pred: np.ndarray, clip: EvalClip, horizons=HORIZONS) -> dict[str, dict[str, float]]:
    """SCS, PSNR and SSIM per horizon of one predicted video uint8 `[T, H, W, 3]`."""
    from egoworld.metrics.flow_tracking import track_masks_by_flow
    from egoworld.metrics.pixel import psnr, ssim
    from egoworld.metrics.scs import scs_by_horizon

    if pred.shape != clip.frames.shape:
        raise ValueError(f"prediction has shape {pred.shape}; expected {clip.frames.shape} as the GT clip")
    out: dict[str, dict[str, float]] = {}
    if clip.gt_masks.shape[1]:
        tracked = track_masks_by_flow(pred, clip.gt_masks[0])
        out["scs"] = scs_by_horizon(tracked, clip.gt_masks, horizons, trim_at=clip.trim_at)
    else:
        out["scs"] = {str(h): float("nan") for h in horizons} | {"overall": float("nan")}
    p, s = psnr(pred, clip.frames), ssim(pred, clip.frames)
    valid = [h for h in horizons if h < len(pred)]
    out["psnr"] = {str(h): float(p[h]) for h in valid}
    out["ssim"] = {str(h): float(s[h]) for h in valid}
    return out


def evaluate_model(
    model: WorldModel | None,
    clips: list[EvalClip],
    seeds: list[int],
    *,
    steps: int | None = None,
    batch_size: int = 8,
    kind: str = "model",
) -> dict:
    """Roll out and score every clip for every sampling seed.

    Args:
        model: the world model (None for the reference rows).
        kind: "model"; "copy-first-frame" (frame 0 repeated: no motion at all); or "gt-tracked"
            (the ground-truth video itself, through the same flow tracker: the protocol's ceiling).

    Returns {"per_seed": {seed: {clip: metrics}}, "predictions": {seed: uint8 [C, T, H, W, 3]}}.
    """
    per_seed, predictions = {}, {}
    for seed in seeds:
        preds = []
        for start in range(0, len(clips), batch_size):
            part = clips[start : start + batch_size]
            if kind == "copy-first-frame":
                preds.append(np.stack([np.repeat(c.frames[:1], len(c.frames), axis=0) for c in part]))
            elif kind == "gt-tracked":
                preds.append(np.stack([c.frames for c in part]))
            else:
                images = np.stack([c.frames[0] for c in part])
                actions = np.stack([c.actions for c in part])
                preds.append(rollout_batch(model, images, actions, seed=seed, steps=steps))
        pred = np.concatenate(preds)  # [C, T, H, W, 3]
        predictions[seed] = pred
        per_seed[seed] = {c.name: score(p, c) for p, c in zip(pred, clips)}
        logger.info("%s seed %d: scored %d clips", kind, seed, len(clips))
    return {"per_seed": per_seed, "predictions": predictions}


def best_of_seeds(per_seed: dict) -> dict[str, dict[str, float]]:
    """Mean over clips of each clip's best score over the seeds: {metric: {horizon: value}}.

    The best of N samples (N = the number of seeds), as stochastic video prediction reports it: it
    asks whether *some* sample of a model matches the ground truth, where `summarize` scores the
    typical sample, which a model can raise by hedging (blurring the futures it cannot tell apart).
    Each number takes its own best sample (the oracle's pick per metric and horizon).
    """
    seeds = list(per_seed)
    clips = list(per_seed[seeds[0]])
    first = per_seed[seeds[0]][clips[0]]
    out: dict[str, dict[str, float]] = {}
    for metric, by_h in first.items():
        out[metric] = {}
        for h in by_h:
            best = []
            for clip in clips:
                vals = [per_seed[s][clip][metric].get(h, float("nan")) for s in seeds]
                vals = [x for x in vals if np.isfinite(x)]
                if vals:
                    best.append(max(vals))
            out[metric][h] = float(np.mean(best)) if best else float("nan")
    return out


def summarize(per_seed: dict, horizons=HORIZONS) -> dict[str, dict[str, list[float]]]:
    """Mean over clips for each seed, then mean and std over seeds: {metric: {horizon: [mean, std]}}."""
    out: dict[str, dict[str, list[float]]] = {}
    seeds = list(per_seed)
    first = next(iter(per_seed[seeds[0]].values()))
    for metric, by_h in first.items():
        out[metric] = {}
        for h in by_h:
            per = []
            for s in seeds:
                vals = [v[metric].get(h, float("nan")) for v in per_seed[s].values()]
                vals = [x for x in vals if np.isfinite(x)]
                per.append(float(np.mean(vals)) if vals else float("nan"))
            per = [x for x in per if np.isfinite(x)]
            out[metric][h] = [float(np.mean(per)), float(np.std(per))] if per else [float("nan")] * 2
    return out
