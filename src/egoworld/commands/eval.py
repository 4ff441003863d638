"""`egoworld eval`: score predicted videos against ground truth.

Metrics: PSNR, SSIM, LPIPS, DreamSim, SCS (EgoWM Eq. 7), Depth ERR and Cam ERR (EgoSim).

    egoworld eval --pred P --gt G [--metrics psnr,ssim,lpips,dreamsim,scs,depth,cam]
                  [--horizons 2,4,8,16] [--annotations A.json] [--out DIR]

P and G are folders of videos (mp4 or folders of frames) matched by name. Ground-truth arrays
(depth, poses, intrinsics, instance masks) are read from `<name>.npz` beside a video. Writes
results.md / .csv / .json and metrics_vs_horizon.png into DIR, all at once or not at all.
See docs/metrics.md.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

logger = logging.getLogger(__name__)

ALL_METRICS = ("psnr", "ssim", "lpips", "dreamsim", "scs", "depth", "cam")
DEFAULT_METRICS = "psnr,ssim,lpips,dreamsim,scs"


def register(subparsers) -> None:
    """Add the `eval` parser."""
    p = subparsers.add_parser(
        "eval",
        help="score predicted videos against ground truth",
        description="Score predicted videos against ground-truth videos matched by name (docs/metrics.md).",
    )
    p.add_argument(
        "--pred", required=True, type=Path, help="folder of predicted videos (mp4 or frame folders)"
    )
    p.add_argument("--gt", required=True, type=Path, help="folder of ground-truth videos, same names")
    p.add_argument("--metrics", default=DEFAULT_METRICS, help=f"comma list from {','.join(ALL_METRICS)}")
    p.add_argument(
        "--horizons", default="2,4,8,16", help="frame indices to report (frame 0 = first observation)"
    )
    p.add_argument(
        "--out", type=Path, default=Path("eval_report"), help="report folder (default: eval_report)"
    )
    p.add_argument("--device", default="cpu", help="torch device for learned models")
    g = p.add_argument_group("LPIPS / DreamSim")
    g.add_argument("--alexnet", type=Path, help="torchvision alexnet state dict for LPIPS")
    g.add_argument("--lpips-random", action="store_true", help="random AlexNet (plumbing tests only)")
    g.add_argument(
        "--dreamsim-cache", type=Path, help="folder filled by dreamsim(pretrained=True, cache_dir=…)"
    )
    g = p.add_argument_group("SCS")
    g.add_argument(
        "--annotations", type=Path, help="JSON of point clicks per video (schema: docs/metrics.md)"
    )
    g.add_argument(
        "--objects",
        choices=("annotations", "instances"),
        help="where objects come from "
        "(default: annotations if given, else instance masks in the GT <name>.npz)",
    )
    g.add_argument("--gt-tracks", choices=("sam2", "instances"), default="sam2", help="masks of the GT video")
    g.add_argument(
        "--pred-tracks", choices=("sam2", "instances"), default="sam2", help="masks of the prediction"
    )
    g.add_argument("--sam2-config", default="configs/sam2.1/sam2.1_hiera_t.yaml", help="SAM 2 config name")
    g.add_argument("--sam2-checkpoint", type=Path, help="local SAM 2 checkpoint (.pt) matching --sam2-config")
    g.add_argument("--sam2-random", action="store_true", help="random SAM 2 weights (plumbing tests only)")
    g.add_argument("--trim", choices=("flow", "reprojection", "none"), default="flow", help="SCS trimming")
    g = p.add_argument_group("Depth ERR / Cam ERR")
    g.add_argument(
        "--depth", choices=("gt", "depth-anything"), default="gt", help="depth source for both videos"
    )
    g.add_argument("--depth-model", type=Path, help="local transformers Depth Anything folder")
    g.add_argument("--depth-output", choices=("disparity", "depth"), default="disparity")
    g.add_argument(
        "--poses", choices=("gt", "open3d"), default="gt", help="camera pose source for both videos"
    )
    g.add_argument("--fov-deg", type=float, default=60.0, help="horizontal FOV when no intrinsics are given")
    p.set_defaults(func=run)


def _parse_metrics(text: str) -> list[str]:
    metrics = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown or not metrics:
        raise ValueError(
            f"unknown metrics {unknown or text!r}; expected a comma list from {','.join(ALL_METRICS)}"
        )
    return list(dict.fromkeys(metrics))


def _parse_horizons(text: str) -> list[int]:
    try:
        horizons = [int(h) for h in text.split(",") if h.strip()]
    except ValueError:
        raise ValueError(
            f"--horizons must be comma-separated frame indices like 2,4,8,16; got {text!r}"
        ) from None
    if not horizons or min(horizons) < 1:
        raise ValueError(f"--horizons must be frame indices ≥ 1; got {text!r}")
    return sorted(set(horizons))


def by_horizon(per_frame, horizons: list[int]) -> dict[str, float]:
    """Per-frame values `[T]` → {"h": value at frame h (NaN past the end), "overall": mean of frames 1..}."""
    import numpy as np

    v = np.asarray(per_frame, dtype=np.float64)
    out = {str(h): float(v[h]) if h < len(v) else float("nan") for h in horizons}
    rest = v[1:] if len(v) > 1 else v
    rest = rest[~np.isnan(rest)]
    out["overall"] = float(rest.mean()) if rest.size else float("nan")
    return out


def _need(side: dict, key: str, where: Path, why: str):
    if key not in side:
        raise ValueError(f"{where}: no {key!r} array in its <name>.npz side file; {why} needs it")
    return side[key]


def _intrinsics(side: dict, width: int, height: int, fov_deg: float):
    import numpy as np

    if "intrinsics" in side:
        return np.asarray(side["intrinsics"], dtype=np.float64)
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])


class _Models:
    """Learned models, built once and validated before any video is scored."""

    def __init__(self, args, metrics: list[str]):
        from egoworld.metrics import geometry, perceptual, tracking

        self.lpips = self.dreamsim = self.sam2 = self.depth = None
        if "lpips" in metrics:
            self.lpips = perceptual.LPIPSMetric(
                args.alexnet, random_backbone=args.lpips_random, device=args.device
            )
        if "dreamsim" in metrics:
            self.dreamsim = perceptual.DreamSimMetric(args.dreamsim_cache, device=args.device)
        if "scs" in metrics and "sam2" in (args.gt_tracks, args.pred_tracks):
            if args.sam2_checkpoint is None and not args.sam2_random:
                raise FileNotFoundError(
                    "SCS tracks objects with SAM 2 but no --sam2-checkpoint was given; download "
                    "sam2.1_hiera_tiny.pt from https://github.com/facebookresearch/sam2#download-checkpoints "
                    "(or pass --gt-tracks/--pred-tracks instances when <name>.npz holds instance masks)"
                )
            self.sam2 = tracking.Sam2Tracker(args.sam2_config, args.sam2_checkpoint, device=args.device)
        if (
            "depth" in metrics or ("cam" in metrics and args.poses == "open3d")
        ) and args.depth == "depth-anything":
            if args.depth_model is None:
                raise FileNotFoundError(
                    "--depth depth-anything needs --depth-model DIR (a local transformers folder)"
                )
            self.depth = geometry.DepthAnythingEstimator(
                args.depth_model, output=args.depth_output, device=args.device
            )


def _scs(args, name, pred, gt, side_pred, side_gt, annotations, models, horizons):
    from egoworld.metrics import scs, tracking, trimming

    t, h, w = gt.shape[:3]
    if args.objects == "annotations":
        if name not in annotations:
            raise ValueError(
                f"{args.annotations}: no annotation for video {name!r} (annotated: {sorted(annotations)})"
            )
        prompts = tracking.fit_prompts(annotations[name], w, h)
        tracking.check_prompts_fit(prompts, t, h, w, name)
    else:
        prompts = tracking.prompts_from_instances(
            _need(side_gt, "instances", args.gt / name, "--objects instances")
        )

    def masks(which: str, frames, side, folder):
        if which == "instances":
            if any(p.instance_id is None for p in prompts):
                raise ValueError("--gt-tracks/--pred-tracks instances need --objects instances")
            return tracking.masks_from_instances(
                _need(side, "instances", folder / name, "instance tracks"), prompts
            )
        return models.sam2.track(frames, prompts)

    gt_masks = masks(args.gt_tracks, gt, side_gt, args.gt)  # [T, K, H, W]
    pred_masks = masks(args.pred_tracks, pred, side_pred, args.pred)
    if args.trim == "flow":
        trim_at = trimming.trim_frame_by_flow(gt)
    elif args.trim == "reprojection":
        why = "--trim reprojection"
        trim_at = trimming.trim_frame_by_reprojection(
            _need(side_gt, "depth", args.gt / name, why)[0],
            _intrinsics(side_gt, w, h, args.fov_deg),
            _need(side_gt, "poses_c2w", args.gt / name, why),
        )
    else:
        trim_at = t
    return scs.scs_by_horizon(pred_masks, gt_masks, horizons, trim_at=trim_at), trim_at


def _depths(args, name, pred, gt, side_pred, side_gt, models):
    if args.depth == "gt":
        why = "--depth gt"
        return _need(side_pred, "depth", args.pred / name, why), _need(side_gt, "depth", args.gt / name, why)
    return models.depth(pred), models.depth(gt)


def evaluate_pair(args, pair, metrics, horizons, annotations, models) -> tuple[dict, dict]:
    """All requested metrics for one matched pair → ({metric: {horizon: value}}, {extra info})."""
    import numpy as np

    from egoworld.metrics import geometry, pixel, videos

    pred, gt = videos.load_video(pair.pred), videos.load_video(pair.gt)
    videos.check_same_shape(pred, gt, pair.name)
    side_pred, side_gt = videos.load_side_file(pair.pred), videos.load_side_file(pair.gt)
    t, h, w = gt.shape[:3]
    res: dict[str, dict[str, float]] = {}
    info: dict = {"frames": t, "size": [w, h]}
    if "psnr" in metrics:
        res["psnr"] = by_horizon(pixel.psnr(pred, gt), horizons)
    if "ssim" in metrics:
        res["ssim"] = by_horizon(pixel.ssim(pred, gt), horizons)
    if "lpips" in metrics:
        res["lpips"] = by_horizon(models.lpips(pred, gt), horizons)
    if "dreamsim" in metrics:
        res["dreamsim"] = by_horizon(models.dreamsim(pred, gt), horizons)
    if "scs" in metrics:
        res["scs"], info["scs_trim_at"] = _scs(
            args, pair.name, pred, gt, side_pred, side_gt, annotations, models, horizons
        )
    depth_pred = depth_gt = None
    if "depth" in metrics or ("cam" in metrics and args.poses == "open3d"):
        depth_pred, depth_gt = _depths(args, pair.name, pred, gt, side_pred, side_gt, models)
        if np.shape(depth_pred) != (t, h, w) or np.shape(depth_gt) != (t, h, w):
            raise ValueError(
                f"{pair.name}: depth shapes {np.shape(depth_pred)} / {np.shape(depth_gt)}, "
                f"expected [T, H, W] = {(t, h, w)}"
            )
    if "depth" in metrics:
        per = {"abs_rel": [], "rmse": []}
        for i in range(t):
            try:
                e = geometry.depth_errors(depth_pred[i : i + 1], depth_gt[i : i + 1])
            except ValueError:
                e = {"abs_rel": float("nan"), "rmse": float("nan")}
            per["abs_rel"].append(e["abs_rel"])
            per["rmse"].append(e["rmse"])
        res["depth_abs_rel"] = by_horizon(per["abs_rel"], horizons)
        res["depth_rmse"] = by_horizon(per["rmse"], horizons)
    if "cam" in metrics:
        if args.poses == "gt":
            why = "--poses gt"
            poses_pred = _need(side_pred, "poses_c2w", args.pred / pair.name, why)
            poses_gt = _need(side_gt, "poses_c2w", args.gt / pair.name, why)
        else:
            k = _intrinsics(side_gt, w, h, args.fov_deg)
            odo = geometry.Open3DOdometry()
            poses_pred, poses_gt = odo(pred, depth_pred, k), odo(gt, depth_gt, k)
        cam = geometry.camera_errors(poses_pred, poses_gt)
        res["cam_ate"] = {"overall": cam["ate_rmse"]}
        res["cam_rot_deg"] = {"overall": cam["rot_err_deg"]}
        info["cam_sim3_scale"] = cam["scale"]
    return res, info


def run(args: argparse.Namespace) -> int:
    """Score every matched pair and write the report."""
    from egoworld.metrics import report, tracking, videos

    metrics = _parse_metrics(args.metrics)
    horizons = _parse_horizons(args.horizons)
    pairs = videos.match_videos(args.pred, args.gt)
    annotations: dict = {}
    if "scs" in metrics:
        if args.objects is None:
            args.objects = "annotations" if args.annotations is not None else "instances"
        if args.objects == "annotations":
            if args.annotations is None:
                raise ValueError("--objects annotations needs --annotations FILE (schema: docs/metrics.md)")
            annotations = tracking.load_annotations(args.annotations)
            missing = [p.name for p in pairs if p.name not in annotations]
            if missing:
                raise ValueError(
                    f"{args.annotations}: no annotation for videos {missing}; "
                    f"annotated: {sorted(annotations)}"
                )
    models = _Models(args, metrics)
    results, infos = {}, {}
    for pair in pairs:
        logger.info("evaluating %s", pair.name)
        results[pair.name], infos[pair.name] = evaluate_pair(
            args, pair, metrics, horizons, annotations, models
        )
    meta = {
        "metrics": metrics,
        "pred": str(args.pred),
        "gt": str(args.gt),
        "videos": infos,
        "options": {k: str(v) for k, v in vars(args).items() if k not in ("func",)},
    }
    mean = report.write_report(args.out, results, horizons, meta=meta)
    print(report.markdown_table(mean, horizons), end="")
    print(f"wrote {args.out}/results.md, .csv, .json and metrics_vs_horizon.png ({len(pairs)} videos)")
    return 0
