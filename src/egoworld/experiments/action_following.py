"""Does a navigation world model follow its actions? Three measurements (docs/results.md).

1. **Mirrored actions.** Each held-out world is rolled out twice from its first frame: under its
   true actions and under the mirrored ones (left <-> right: lateral step and yaw negated). A model
   that follows its actions matches the ground truth better under the true actions; the gap is the
   mean PSNR over frames `GAP_FRAMES` (true minus mirrored), per world and sampling seed.
2. **Turn probes.** From any image, `turn_left`/`turn_right` scripts must move the image content
   the right way: turning left (positive yaw, NWM convention) moves what is seen to the right, so
   the mean horizontal optical flow between consecutive frames is positive; turning right, negative.
3. **Forward probe.** `forward` must expand the view: the mean radial component of the flow
   (outward from the image centre) is positive.
4. **Standing still.** Under zero actions the camera does not move, so every frame should be the
   start image: the mean PSNR of frames `GAP_FRAMES` against frame 0 says how much of a picture the
   model keeps (from pictures unlike its worlds, one it does not keep dissolves into its own scenery).
5. **Turning in front of a picture.** A camera that only rotates sees exactly the homography of its
   start view, whatever the depth (`egoworld.worlds.turns`), so a turn of `TURN_IN_PICTURE` from any
   image, taken as a wide view, has exact frames to score against (PSNR, beside copying frame 0).

Flow is OpenCV DIS on frames upscaled to 128 px (`egoworld.metrics.flow_tracking.upscaled_flow`),
the same estimator as the SCS protocol.
"""

from __future__ import annotations

import numpy as np

from egoworld.actions.spaces import mirror_nav
from egoworld.experiments.evaluation import EvalClip, rollout_batch

FIRST_FRAMES = "the worlds' first frames"  # where the probes start unless a folder is given
GAP_FRAMES = tuple(range(4, 17))  # frames scored by the mirrored-action test (issue 14: 4..16)
TURN_IN_PICTURE = (5.0, 6)  # degrees per frame, frames: 30° of a picture seen 100° wide (turns.py)
PROBES = {  # name -> script for `egoworld.rollout.parse_script`
    "turn_left": "turn_left 15deg x16",
    "turn_right": "turn_right 15deg x16",
    "forward": "forward 0.5m x16",
}


def _mean_psnr(pred_THW3: np.ndarray, gt_THW3: np.ndarray, frames) -> float:
    from egoworld.metrics.pixel import psnr

    p = psnr(pred_THW3, gt_THW3)
    return float(np.mean([p[t] for t in frames if t < len(p)]))


def mirrored_gap(
    model,
    clips: list[EvalClip],
    seeds: list[int],
    *,
    batch_size: int = 8,
    frames=GAP_FRAMES,
    keep: int = 0,
    true_rollouts: dict | None = None,
) -> dict:
    """PSNR under true vs mirrored actions per world and seed.

    `true_rollouts` ({seed: uint8 `[C, T, H, W, 3]`}: the clips' rollouts under their true actions
    with the same seeds, batches and sampler steps, as `evaluation.evaluate_model` returns them)
    saves rolling them out again, with the same result (each batch's noise comes from its own
    seeded generator).
    Returns {"per_world": {seed: {clip: {"true", "mirrored", "gap"}}}, "gap": [mean, std over seeds],
    "share_positive": share of (world, seed) pairs whose gap is > 0}; with `keep` > 0 also "videos":
    [(clip, true-action rollout, mirrored rollout)] of the first `keep` clips at the first seed, the
    rollouts scored (uint8 `[N, H, W, 3]`, not JSON).
    """
    per_world: dict = {}
    videos = []
    for seed in seeds:
        rows = {}
        for start in range(0, len(clips), batch_size):
            part = clips[start : start + batch_size]
            images = np.stack([c.frames[0] for c in part])
            true = np.stack([c.actions for c in part])
            if true_rollouts is not None:
                pred = true_rollouts[seed][start : start + batch_size]
            else:
                pred = rollout_batch(model, images, true, seed=seed)
            pred_m = rollout_batch(model, images, mirror_nav(true), seed=seed)
            for c, p, pm in zip(part, pred, pred_m):
                t, m = _mean_psnr(p, c.frames, frames), _mean_psnr(pm, c.frames, frames)
                rows[c.name] = {"true": t, "mirrored": m, "gap": t - m}
                if seed == seeds[0] and len(videos) < keep:
                    videos.append((c, p, pm))
        per_world[seed] = rows
    means = [float(np.mean([r["gap"] for r in rows.values()])) for rows in per_world.values()]
    gaps = [r["gap"] for rows in per_world.values() for r in rows.values()]
    out = {
        "per_world": per_world,
        "gap": [float(np.mean(means)), float(np.std(means))],
        "share_positive": float(np.mean([g > 0 for g in gaps])),
    }
    return {**out, "videos": videos} if keep else out


def strips(groups, *, every: int = 2, tile: int = 96) -> np.ndarray:
    """Labelled rows of frames: `groups` is a list of groups, each a list of (label, video
    `[T, H, W, 3]` uint8); every row shows frames 0, `every`, 2 `every`, ..., a white gap separates
    the groups (uint8 `[H, W, 3]`). A label may have several lines ("\n"); each shows its first 18
    characters."""
    import cv2

    rows = []
    for group in groups:
        for label, video in group:
            tiles = [cv2.resize(f, (tile, tile), interpolation=cv2.INTER_NEAREST) for f in video[::every]]
            text = np.full((tile, 120, 3), 255, np.uint8)
            lines = label.split("\n")
            for k, line in enumerate(lines):
                y = tile // 2 + 14 * k - 7 * (len(lines) - 1)
                cv2.putText(text, line[:18], (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            rows.append(np.concatenate([text, *tiles], axis=1))
        rows.append(np.full((6, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def rollout_strips(videos, *, every: int = 2, tile: int = 96) -> np.ndarray:
    """A picture of what `mirrored_gap` scores, from its "videos" [(clip, true-action rollout,
    mirrored rollout)]: per clip, rows ground truth / true actions / mirrored actions (`strips`)."""
    groups = [[(c.name, c.frames), ("true actions", p), ("mirrored", pm)] for c, p, pm in videos]
    return strips(groups, every=every, tile=tile)


def first_chunks(model, clips: list[EvalClip], *, mirrored: bool = False):
    """(video `[B, F, 3, H, W]` in [-1, 1], model-scale actions `[B, F, D]`) of each clip's first
    chunk of the model's F frames, on the model's device; `mirrored`: the actions mirrored."""
    import torch

    f = model.config.num_frames
    frames = torch.from_numpy(np.stack([c.frames[:f] for c in clips])).permute(0, 1, 4, 2, 3)
    video = frames.float().div(127.5).sub(1).to(model.device)
    flip = mirror_nav if mirrored else (lambda a: a)
    actions = torch.stack([model.chunk_actions(flip(c.actions[:f]))[0] for c in clips]).to(model.device)
    return video, actions


def action_loss_gap(model, clips: list[EvalClip], *, draws: int = 8, seed: int = 0) -> dict:
    """How much the denoiser reads the actions: its training loss under mirrored minus true actions.

    Each clip's first chunk (frames [F, H, W, 3], its per-step actions through `chunk_actions`) is
    scored twice per draw with the same noise level and noise (one generator seeded per draw): once
    with the true actions, once mirrored. A model that ignores its actions scores a gap of exactly 0;
    one that follows them loses more with the wrong ones (gap > 0). Cheap: no sampling, 2 x `draws`
    forward passes, so it tracks the action path during training (docs/results.md, issue 14).
    Returns {"true": mean loss, "mirrored": mean loss, "gap": mean difference, "relative": gap / true,
    "gap_std": std of the per-draw gaps}.
    """
    import torch

    f = model.config.num_frames
    usable = [c for c in clips if len(c.frames) >= f]
    if not usable:
        raise ValueError(f"no clip has the model's {f} frames")
    frames, true = first_chunks(model, usable)
    mirrored = first_chunks(model, usable, mirrored=True)[1]
    losses = {"true": [], "mirrored": []}
    with torch.no_grad():
        for d in range(draws):
            for name, actions in (("true", true), ("mirrored", mirrored)):
                g = torch.Generator(device="cpu").manual_seed(seed + d)
                losses[name].append(float(model.loss({"frames": frames, "actions": actions}, g)))
    t, m = np.array(losses["true"]), np.array(losses["mirrored"])
    return {
        "true": float(t.mean()),
        "mirrored": float(m.mean()),
        "gap": float((m - t).mean()),
        "relative": float((m - t).mean() / t.mean()),
        "gap_std": float((m - t).std()),
    }


def action_embedding_split(model, clips: list[EvalClip]) -> dict:
    """Does the action embedding tell left from right? The action encoder's output e_a `[B, T, D]`
    (what is added where the timestep modulates) for each clip's first chunk under the true and the
    mirrored actions. A path that only learned an action-independent offset (an extra timestep
    shift) has a large |e_a| and a small split; one that reads the actions has both.
    Returns {"norm": mean |e_a|, "split": mean |e_a(true) - e_a(mirrored)|, "ratio": split / norm
    (0 when the norm is 0)}, per-frame L2 norms averaged over clips and frames."""
    import torch

    _, true = first_chunks(model, clips)
    _, mirrored = first_chunks(model, clips, mirrored=True)
    encoder = model.denoiser.action_encoder
    with torch.no_grad():
        e, e_m = (encoder(a.to(encoder.dtype), None).float() for a in (true, mirrored))
    norm, split = float(e.norm(dim=-1).mean()), float((e - e_m).norm(dim=-1).mean())
    return {"norm": norm, "split": split, "ratio": split / norm if norm > 0 else 0.0}


def high_noise_error(
    model, clips: list[EvalClip], *, t: float = 0.9, draws: int = 4, seed: int = 0, mirrored: bool = False
) -> dict:
    """Does the denoiser use its conditioning frame? Its x0 estimate at noise level `t` against copying.

    Each clip's first chunk is noised to x_t = (1 - t) x0 + t eps (flow families: Cosmos, Wan), the
    denoiser's velocity under the true actions turned into x0_hat = x_t - t v, its conditioning
    latent frame put back, and decoded. At high noise x_t says little about the future frames, so a
    model that reads its first frame scores near "copy first frame" (ratio <= 1 once it also reads
    the motion), one that does not scores near the frames' variance (ratio >> 1); so does a velocity
    network that cannot reproduce the noise in its output (`objectives.flow`). Pixel MSE over
    frames 1..F-1 in [-1, 1], mean over `draws` noise draws. `mirrored`: under the mirrored actions
    (the same noise), so that the difference to the true actions' error measures how much the x0
    estimate follows the actions. Returns {"model", "copy_first", "ratio"}.
    """
    import torch

    family = model.family
    if not hasattr(family, "flow_velocity"):
        raise ValueError(f"high_noise_error needs a flow family (cosmos, wan); got {family.name}")
    video, actions = first_chunks(model, clips, mirrored=mirrored)
    flow = family.objective
    errors = []
    with torch.no_grad():
        x0 = model.codec.encode(video)  # [B, C, T, h, w]
        cond = family.conditions(model, video[:, 0], x0)
        for d in range(draws):
            g = torch.Generator(device="cpu").manual_seed(seed + d)
            eps = torch.randn(x0.shape, generator=g).to(x0)
            x_t = flow.interpolate(x0, eps, t)
            tt = torch.full((len(clips),), t, device=x0.device)
            x0_hat = flow.x0_from_velocity(x_t, family.flow_velocity(model, x_t, tt, cond, actions, None), t)
            x0_hat[:, :, :1] = x0[:, :, :1]  # the conditioning frame is given
            errors.append(float(((model.codec.decode(x0_hat) - video)[:, 1:] ** 2).mean()))
    copy = float(((video[:, :1] - video[:, 1:]) ** 2).mean())
    err = float(np.mean(errors))
    return {"model": err, "copy_first": copy, "ratio": err / copy}


def flow_motion(frames_THW3: np.ndarray) -> dict[str, float]:
    """Mean horizontal flow (px/frame, + = content moves right) and mean radial flow (+ = expands)."""
    from egoworld.metrics.flow_tracking import upscaled_flow

    h, w = frames_THW3.shape[1:3]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.stack([xs - (w - 1) / 2, ys - (h - 1) / 2], axis=-1)
    norm = np.linalg.norm(r, axis=-1, keepdims=True)
    r_hat = np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)
    dx, radial = [], []
    for a, b in zip(frames_THW3[:-1], frames_THW3[1:]):
        flow = upscaled_flow(a, b, "dis", 128)  # [H, W, 2]
        dx.append(float(flow[..., 0].mean()))
        radial.append(float((flow * r_hat).sum(-1).mean()))
    return {"dx": float(np.mean(dx)), "radial": float(np.mean(radial))}


def probe_images(model, images_BHW3: np.ndarray, seeds: list[int], spacing: float, keep: int = 0) -> dict:
    """Roll out every `PROBES` script from every image; flow statistics and whether each moved right.

    Returns {"per_image": {probe: [[{dx, radial} per image] per seed]}, "correct": {probe: share},
    "dx": {probe: mean}, "radial": {probe: mean}}; "correct" means dx > 0 for turn_left, dx < 0 for
    turn_right and radial > 0 for forward. With `keep` > 0 also "videos": {probe: the first seed's
    rollouts `[T, H, W, 3]` from the first `keep` images}.
    """
    from egoworld.rollout import parse_script

    out: dict = {"per_image": {}, "correct": {}, "dx": {}, "radial": {}}
    videos: dict = {}
    for name, script in PROBES.items():
        actions = parse_script(script, spacing)  # [N, 3] raw
        batch = np.repeat(actions[None], len(images_BHW3), axis=0)
        runs = []
        for seed in seeds:
            pred = rollout_batch(model, images_BHW3, batch, seed=seed)
            runs.append([flow_motion(p) for p in pred])
            videos.setdefault(name, list(pred[:keep]))
        flat = [m for run in runs for m in run]
        if name == "forward":
            ok = [m["radial"] > 0 for m in flat]
        else:
            ok = [(m["dx"] > 0) == (name == "turn_left") for m in flat]
        out["per_image"][name] = runs
        out["correct"][name] = float(np.mean(ok))
        out["dx"][name] = float(np.mean([m["dx"] for m in flat]))
        out["radial"][name] = float(np.mean([m["radial"] for m in flat]))
    return {**out, "videos": videos} if keep else out


def standing_still(model, images_BHW3: np.ndarray, seeds: list[int], frames=GAP_FRAMES) -> dict:
    """Roll out zero actions (stand still) from every image; how much of the start image it keeps.

    Returns {"psnr": mean over images and seeds of the mean PSNR of `frames` against frame 0 (dB),
    "per_image": [[psnr per image] per seed]}.
    """
    zeros = np.zeros((len(images_BHW3), max(frames) + 1, model.config.action_dim))
    runs = []
    for seed in seeds:
        pred = rollout_batch(model, images_BHW3, zeros, seed=seed)
        runs.append([_mean_psnr(p, np.repeat(p[:1], len(p), axis=0), frames) for p in pred])
    return {"psnr": float(np.mean(runs)), "per_image": runs}


def turning_in_picture(model, images_BHW3: np.ndarray, seeds: list[int], spacing: float) -> dict:
    """Turn left and right (`TURN_IN_PICTURE`) in front of every image, each taken as a wide view
    (`worlds.turns.view`; the start frame is its centre), and score frames 1.. against the exact
    frames of that turn. Returns {"psnr": {"turn_left", "turn_right": mean dB over images and seeds},
    "copy_first": {the same for frame 0 repeated}}."""
    from egoworld.rollout import parse_script
    from egoworld.worlds.turns import view

    degrees, steps = TURN_IN_PICTURE
    scored = range(1, steps + 1)
    size = model.config.height
    out: dict = {"psnr": {}, "copy_first": {}}
    for name, sign in (("turn_left", 1.0), ("turn_right", -1.0)):
        actions = parse_script(f"{name} {degrees}deg x{steps}", spacing)  # [steps + 1, 3]
        truth = np.stack(
            [[view(p, sign * np.deg2rad(degrees * t), size) for t in range(steps + 1)] for p in images_BHW3]
        )
        batch = np.repeat(actions[None], len(truth), axis=0)
        scores = [
            _mean_psnr(p, g, scored)
            for seed in seeds
            for p, g in zip(rollout_batch(model, truth[:, 0], batch, seed=seed), truth)
        ]
        out["psnr"][name] = float(np.mean(scores))
        copies = [_mean_psnr(np.repeat(g[:1], len(g), axis=0), g, scored) for g in truth]
        out["copy_first"][name] = float(np.mean(copies))
    return out


def probe_strips(videos: dict, labels=None, *, every: int = 2, tile: int = 96) -> np.ndarray:
    """A picture of the probes (`probe_images`' "videos"): per image, one row per probe script.

    `labels`: one name per image (a file name, a world); default "image k".
    """
    count = min(len(v) for v in videos.values())
    labels = list(labels)[:count] if labels is not None else [f"image {i}" for i in range(count)]
    groups = [[(f"{label}\n{name}", videos[name][i]) for name in PROBES] for i, label in enumerate(labels)]
    return strips(groups, every=every, tile=tile)


def _scores(model, clips: list[EvalClip], seeds: list[int], kind: str = "model", zero_actions=False) -> dict:
    """One row of the report; "predictions" ({seed: uint8 `[C, T, H, W, 3]`}, not JSON) the rollouts."""
    from egoworld.experiments.evaluation import best_of_seeds, evaluate_model, summarize

    if zero_actions:
        clips = [
            EvalClip(c.name, c.frames, np.zeros_like(c.actions), c.gt_masks, c.object_names, c.trim_at)
            for c in clips
        ]
    run = evaluate_model(model, clips, seeds if model is not None else [0], kind=kind)
    return {
        "summary": summarize(run["per_seed"]),
        "best_of_seeds": best_of_seeds(run["per_seed"]),
        "per_seed": {str(s): v for s, v in run["per_seed"].items()},
        "predictions": run["predictions"],
    }


def probe_image_files(folder) -> list:
    """The images in `folder` (sorted by name) to start the probes from; one clear error otherwise."""
    from pathlib import Path

    from egoworld.worlds.textures import IMAGE_SUFFIXES, image_files

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--probe-images {folder}: not a folder; expected a folder of images")
    files = image_files(folder)
    if not files:
        raise ValueError(f"--probe-images {folder}: no images; expected files ending in {IMAGE_SUFFIXES}")
    return files


def evaluate_action_following(
    model_dir, worlds_dir, *, seeds=(0, 1), frames: int = 17, baseline_dir=None, probe_folder=None
) -> dict:
    """Every measurement of this module for the model at `model_dir` on the nav worlds at `worlds_dir`.

    Rows scored with SCS/PSNR/SSIM (`egoworld.experiments.evaluation`): the model under the true
    actions, the same model with zero actions, the `baseline_dir` model (the same architecture trained
    without actions) when given, and "copy first frame". Probes start from the images in
    `probe_folder` (resized and centre-cropped as `egoworld rollout --image` does; default: each
    world's first frame). "figure" is `rollout_strips` of the first 3 worlds' scored rollouts at the
    first seed, "probe_figure" `probe_strips` of the probes from the first 3 images.
    """
    from egoworld.data.nwm import world_description
    from egoworld.experiments.evaluation import load_eval_clips
    from egoworld.rollout import model_spacing
    from egoworld.world_model import WorldModel

    model = WorldModel.from_pretrained(model_dir).eval()
    # the worlds' actions are in units of their spacing: the model must read them in the same units
    spacing = model_spacing(model, float(world_description(worlds_dir)["metric_waypoint_spacing"]))
    clips = load_eval_clips(worlds_dir, frames, model.config.height)
    seeds = list(seeds)
    rows = {
        "model": _scores(model, clips, seeds),
        "model, zero actions": _scores(model, clips, seeds, zero_actions=True),
        "copy first frame": _scores(None, clips, seeds, kind="copy-first-frame"),
    }
    if baseline_dir is not None:
        rows["no-action baseline"] = _scores(WorldModel.from_pretrained(baseline_dir).eval(), clips, seeds)
    if probe_folder is not None:
        from egoworld.rollout import load_image

        h, w = model.config.height, model.config.width
        files = probe_image_files(probe_folder)
        images = np.stack([load_image(p, h, w) for p in files])
        labels = [p.stem for p in files]
    else:
        images = np.stack([c.frames[0] for c in clips])
        labels = [c.name for c in clips]
    mirrored = mirrored_gap(model, clips, seeds, keep=3, true_rollouts=rows["model"]["predictions"])
    for row in rows.values():
        row.pop("predictions")
    videos = mirrored.pop("videos")
    probes = probe_images(model, images, seeds, spacing, keep=3)
    probe_videos = probes.pop("videos")
    probes["standing_still"] = standing_still(model, images, seeds)
    probes["turning_in_picture"] = turning_in_picture(model, images, seeds, spacing)
    return {
        "worlds": str(worlds_dir),
        "episodes": len(clips),
        "seeds": seeds,
        "mirrored": mirrored,
        "probes": probes,
        "probes_from": str(probe_folder) if probe_folder is not None else FIRST_FRAMES,
        "rows": rows,
        # not JSON: the caller saves them
        "figure": rollout_strips(videos),
        "probe_figure": probe_strips(probe_videos, labels),
    }


def markdown_report(result: dict, horizons=(2, 4, 8, 16)) -> str:
    """The tables of docs/results.md's "Does it follow its actions?" section."""
    m = result["mirrored"]
    lines = [
        f"{result['episodes']} worlds × {len(result['seeds'])} sampling seeds",
        "",
        "| test | result |",
        "|---|---|",
        f"| PSNR true − mirrored actions, frames 4–16 (dB) | {m['gap'][0]:+.2f} ± {m['gap'][1]:.2f} |",
        f"| worlds × seeds where true actions win | {100 * m['share_positive']:.0f} % |",
    ]
    p = result["probes"]
    lines.append(f"| probes start from | {result.get('probes_from', FIRST_FRAMES)} |")
    for name in PROBES:
        stat = "radial" if name == "forward" else "dx"
        lines.append(
            f"| `{PROBES[name]}`: mean {'radial' if stat == 'radial' else 'horizontal'} flow "
            f"{p[stat][name]:+.3f} px/frame | moves the right way in {100 * p['correct'][name]:.0f} % |"
        )
    if "standing_still" in p:  # absent in results written before it was added
        lines.append(
            "| zero actions (standing still): frames 4–16 against the start image | "
            f"{p['standing_still']['psnr']:.2f} dB PSNR |"
        )
    if "turning_in_picture" in p:
        t = p["turning_in_picture"]
        degrees, steps = TURN_IN_PICTURE
        model_db = f"{t['psnr']['turn_left']:.2f} / {t['psnr']['turn_right']:.2f}"
        copy_db = f"{t['copy_first']['turn_left']:.2f} / {t['copy_first']['turn_right']:.2f}"
        lines.append(
            f"| `turn_left/turn_right {degrees:g}deg x{steps}` in front of the image: frames 1–{steps} "
            f"against the exact turn | {model_db} dB PSNR (copy first frame {copy_db}) |"
        )
    n = len(result["seeds"])
    lines += [
        "",
        "| row | "
        + " | ".join(f"SCS@{h}" for h in horizons)
        + f" | PSNR@16 | best of {n}: SCS@16, PSNR@16 |",
        "|---" * (len(horizons) + 3) + "|",
    ]
    for name, row in result["rows"].items():
        s = row["summary"]
        cells = [f"{s['scs'][str(h)][0]:.1f} ± {s['scs'][str(h)][1]:.1f}" for h in horizons]  # SCS is in %
        cells.append(f"{s['psnr']['16'][0]:.2f} ± {s['psnr']['16'][1]:.2f}")
        best = row.get("best_of_seeds")  # absent in results written before it was added
        cells.append(f"{best['scs']['16']:.1f}, {best['psnr']['16']:.2f}" if best else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Best of {n}: each world's best sample over the {n} seeds, then the mean over worlds (the reference"
        " rows have one sample).",
    ]
    return "\n".join(lines) + "\n"
