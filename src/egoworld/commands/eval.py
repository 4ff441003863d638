"""`egoworld eval`: score predicted videos against ground truth.

Metrics: PSNR, SSIM, LPIPS, DreamSim, SCS (EgoWM Eq. 7), Depth ERR and Cam ERR (EgoSim).

    egoworld eval --pred P --gt G [--metrics psnr,ssim,lpips,dreamsim,scs,depth,cam]
                  [--horizons 2,4,8,16] [--annotations A.json] [--out DIR]

P and G are folders of videos (mp4 or folders of frames) matched by name; the output of
`egoworld worlds generate --task nav|tabletop` is such a folder. Ground truth (depth, poses,
intrinsics, instance masks, object kinds) is read from `<name>.npz` beside a video or from the
`gt/` folder inside a frame folder. Writes results.md / .csv / .json and metrics_vs_horizon.png
into DIR, all at once or not at all. See docs/metrics.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from egoworld.metrics.tracking import DEFAULT_EXCLUDE_NAMES

logger = logging.getLogger(__name__)

ALL_METRICS = ("psnr", "ssim", "lpips", "dreamsim", "scs", "depth", "cam")
DEFAULT_METRICS = "psnr,ssim,lpips,dreamsim,scs"
ESTIMATED_MEDIAN_DEPTH = 2.0  # estimated depth of unknown scale is brought to this median before odometry


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
        "(default: annotations if given, else the GT instance masks: <name>.npz or gt/instances.npy)",
    )
    g.add_argument(
        "--min-object-area",
        type=float,
        default=0.005,
        help="--objects instances: smallest object, as a fraction of frame 0 (default 0.005)",
    )
    g.add_argument(
        "--max-object-area",
        type=float,
        help="--objects instances: largest object, as a fraction of frame 0 (default: no limit)",
    )
    g.add_argument(
        "--exclude-objects",
        default=",".join(DEFAULT_EXCLUDE_NAMES),
        help="--objects instances with gt/objects.json: comma list of name globs that are not "
        f"structures (default {','.join(DEFAULT_EXCLUDE_NAMES)}; '' keeps every static object)",
    )
    g.add_argument("--gt-tracks", choices=("sam2", "instances"), default="sam2", help="masks of the GT video")
    g.add_argument(
        "--pred-tracks", choices=("sam2", "instances"), default="sam2", help="masks of the prediction"
    )
    g.add_argument("--sam2-config", default="configs/sam2.1/sam2.1_hiera_t.yaml", help="SAM 2 config name")
    g.add_argument("--sam2-checkpoint", type=Path, help="local SAM 2 checkpoint (.pt) matching --sam2-config")
    g.add_argument("--sam2-random", action="store_true", help="random SAM 2 weights (plumbing tests only)")
    g.add_argument(
        "--trim",
        choices=("auto", "flow", "reprojection", "none"),
        default="auto",
        help="SCS trimming (default auto: reprojection when the GT has depth, poses and intrinsics, "
        "else flow)",
    )
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


def _need(side: dict, key: str, where: Path, why: str):
    if key not in side:
        raise ValueError(
            f"{where}: no {key!r} in its ground truth (<name>.npz beside it or gt/ inside it); {why} needs it"
        )
    return side[key]


def _intrinsics(side: dict, width: int, height: int, fov_deg: float, where: Path):
    """K from the side data (checked), else from --fov-deg (horizontal FOV, centred principal point)."""
    from egoworld.sim.camera import intrinsics_from_fov, validate_intrinsics

    if "intrinsics" not in side:
        return intrinsics_from_fov(width, height, fov_deg)
    try:
        return validate_intrinsics(side["intrinsics"])
    except ValueError as err:
        raise ValueError(f"{where}: ground-truth intrinsics: {err}") from None


def _trim_method(args, side_gt: dict) -> str:
    if args.trim != "auto":
        return args.trim
    has_geometry = all(k in side_gt for k in ("depth", "poses_c2w", "intrinsics"))
    return "reprojection" if has_geometry else "flow"


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
                    "(or pass --gt-tracks/--pred-tracks instances when the ground truth, <name>.npz "
                    "or gt/instances.npy, holds instance masks)"
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


def _scs(args, pair, pred, gt, side_pred, side_gt, annotations, models, horizons, info):

    from egoworld.metrics import scs, tracking, trimming

    t, h, w = gt.shape[:3]
    if args.objects == "annotations":
        if pair.name not in annotations:
            raise ValueError(
                f"{args.annotations}: no annotation for video {pair.name!r} "
                f"(annotated: {sorted(annotations)})"
            )
        prompts = tracking.fit_prompts(annotations[pair.name], w, h)
        tracking.check_prompts_fit(prompts, t, h, w, pair.name)
    else:
        exclude = tuple(x.strip() for x in args.exclude_objects.split(",") if x.strip())
        objects = side_gt.get("objects")
        if objects is not None and not isinstance(objects, dict):
            raise ValueError(f"{pair.gt}: 'objects' must come from gt/objects.json, not an array in the .npz")
        prompts = tracking.prompts_from_instances(
            _instances(side_gt, pair.gt, (t, h, w), "--objects instances"),
            min_area=args.min_object_area,
            max_area=args.max_object_area,
            objects=objects,
            exclude_names=exclude,
            allow_empty=True,
        )
    info["scs_objects"] = [p.obj_id for p in prompts]
    if not prompts:
        logger.warning(
            "%s: no static object qualifies in frame 0 of the GT; SCS is undefined (NaN)", pair.name
        )
        return {str(hz): float("nan") for hz in horizons} | {"overall": float("nan")}

    def masks(which: str, frames, side, where):
        if which == "instances":
            if any(p.instance_id is None for p in prompts):
                raise ValueError("--gt-tracks/--pred-tracks instances need --objects instances")
            inst = _instances(side, where, (t, h, w), "instance tracks")
            return tracking.masks_from_instances(inst, prompts)
        return models.sam2.track(frames, prompts)

    gt_masks = masks(args.gt_tracks, gt, side_gt, pair.gt)  # [T, K, H, W]
    pred_masks = masks(args.pred_tracks, pred, side_pred, pair.pred)
    method = _trim_method(args, side_gt)
    if method == "flow":
        trim_at = trimming.trim_frame_by_flow(gt)
    elif method == "reprojection":
        why = "--trim reprojection"
        trim_at = trimming.trim_frame_by_reprojection(
            _need(side_gt, "depth", pair.gt, why)[0],
            _intrinsics(side_gt, w, h, args.fov_deg, pair.gt),
            _poses(side_gt, pair.gt, t, why),
        )
    else:
        trim_at = t
    info["scs_trim"], info["scs_trim_at"] = method, int(trim_at)
    return scs.scs_by_horizon(pred_masks, gt_masks, horizons, trim_at=trim_at)


def _instances(side: dict, where: Path, thw: tuple[int, int, int], why: str):
    import numpy as np

    inst = _need(side, "instances", where, why)
    if np.shape(inst) != thw or not np.issubdtype(np.asarray(inst).dtype, np.integer):
        raise ValueError(
            f"{where}: instances are {np.asarray(inst).dtype} {list(np.shape(inst))}; "
            f"expected integer ids [{', '.join(map(str, thw))}] (one mask per frame of the video)"
        )
    return inst


def _poses(side: dict, where: Path, t: int, why: str):
    from egoworld.sim.camera import validate_poses

    poses = _need(side, "poses_c2w", where, why)
    try:
        poses = validate_poses(poses)
    except ValueError as err:
        raise ValueError(f"{where}: ground-truth poses_c2w: {err}") from None
    if poses.shape != (t, 4, 4):
        raise ValueError(
            f"{where}: poses_c2w has shape {list(poses.shape)}; expected [{t}, 4, 4] (one per frame)"
        )
    return poses


def _depths(args, pair, pred, gt, side_pred, side_gt, models):
    if args.depth == "gt":
        why = "--depth gt"
        return _need(side_pred, "depth", pair.pred, why), _need(side_gt, "depth", pair.gt, why)
    return models.depth(pred), models.depth(gt)


def evaluate_pair(args, pair, metrics, horizons, annotations, models) -> tuple[dict, dict]:
    """All requested metrics for one matched pair → ({metric: {horizon: value}}, {extra info})."""
    import numpy as np

    from egoworld.metrics import geometry, pixel, videos
    from egoworld.metrics.report import by_horizon

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
        res["scs"] = _scs(args, pair, pred, gt, side_pred, side_gt, annotations, models, horizons, info)
    depth_pred = depth_gt = None
    if "depth" in metrics or ("cam" in metrics and args.poses == "open3d"):
        depth_pred, depth_gt = _depths(args, pair, pred, gt, side_pred, side_gt, models)
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
            poses_pred = _poses(side_pred, pair.pred, t, why)
            poses_gt = _poses(side_gt, pair.gt, t, why)
        else:
            k = _intrinsics(side_gt, w, h, args.fov_deg, pair.gt)
            # estimated depth has no unit: give it a nominal median before Open3D's metric thresholds
            median = ESTIMATED_MEDIAN_DEPTH if args.depth == "depth-anything" else None
            odo = geometry.Open3DOdometry(median_depth=median)
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
    if not 0 <= args.min_object_area < 1 or (
        args.max_object_area is not None and not args.min_object_area < args.max_object_area <= 1
    ):
        raise ValueError(
            f"object areas must satisfy 0 ≤ --min-object-area < --max-object-area ≤ 1; "
            f"got {args.min_object_area} and {args.max_object_area}"
        )
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
    counts = report.count_over_videos(results)
    print(report.markdown_table(mean, horizons, counts, len(results)), end="")
    print(f"wrote {args.out}/results.md, .csv, .json and metrics_vs_horizon.png ({len(pairs)} videos)")
    return 0
