"""`egoworld eval`: score predicted videos against ground truth.

Metrics: PSNR, SSIM, LPIPS, DreamSim, SCS (EgoWM Eq. 7), Depth ERR and Cam ERR (EgoSim).

    egoworld eval --pred P --gt G [--metrics psnr,ssim,lpips,dreamsim,scs,depth,cam]
                  [--horizons 2,4,8,16] [--annotations A.json] [--out DIR]

P and G are folders of videos (mp4 or folders of frames) matched by name, or two single videos
(or one video and a folder holding it); the output of `egoworld worlds generate --task
nav|tabletop` is such a folder. Ground truth (depth, poses, intrinsics, instance masks, object
kinds) is read from `<name>.npz` beside a video or from the `gt/` folder inside a frame folder. A
ground truth larger than the prediction (same aspect ratio) is area-downsampled to the
prediction's size, and the report says so. The default metrics need no downloaded weights: PSNR,
SSIM, and SCS where instance masks or a SAM 2 checkpoint make it computable. Writes results.md /
.csv / .json and metrics_vs_horizon.png into DIR, all at once or not at all. Arguments, paths and
weights files are checked before torch is imported. See docs/metrics.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from egoworld.cli import add_command, device_name, float_in
from egoworld.metrics.tracking import DEFAULT_EXCLUDE_NAMES

logger = logging.getLogger(__name__)

ALL_METRICS = ("psnr", "ssim", "lpips", "dreamsim", "scs", "depth", "cam")
DEFAULT_METRICS = ("psnr", "ssim", "scs")  # no downloaded weights; scs only where it is computable
DEFAULT_HELP = (
    "default: psnr,ssim,scs - scs only when it can be computed without weights (instance masks in both "
    "videos, <name>.npz or gt/instances.npy) or with --sam2-checkpoint; lpips and dreamsim need local "
    "weights (--alexnet, --dreamsim-cache)"
)
TRACKS = ("auto", "sam2", "instances")
MAX_HORIZON = 100_000
MAX_HORIZONS = 64
EXAMPLES = """
egoworld eval --pred preds/ --gt worlds/nav-eval/                  # folders of videos matched by name
egoworld eval --pred demo_out/prediction.mp4 --gt demo_out/world-seed0-17f/traj_00000   # one pair
egoworld eval --pred P --gt G --metrics psnr,ssim,lpips --alexnet alexnet-owt-7be5be79.pth --out report
"""
ESTIMATED_MEDIAN_DEPTH = 2.0  # estimated depth of unknown scale is brought to this median before odometry


def register(subparsers) -> None:
    """Add the `eval` parser."""
    p = add_command(
        subparsers,
        "eval",
        help="score predicted videos against ground truth",
        description="Score predicted videos against ground-truth videos matched by name, or one predicted "
        "video against its ground truth (docs/metrics.md).\n"
        f"Metrics {DEFAULT_HELP}.\n"
        "A ground truth larger than the prediction (same aspect ratio) is area-downsampled to the "
        "prediction's size; the report says so.",
        examples=EXAMPLES,
    )
    p.add_argument(
        "--pred",
        required=True,
        type=Path,
        help="folder of predicted videos (mp4 or frame folders), or one video",
    )
    p.add_argument(
        "--gt",
        required=True,
        type=Path,
        help="folder of ground-truth videos with the same names, or one video",
    )
    p.add_argument(
        "--metrics", default=None, help=f"comma list from {','.join(ALL_METRICS)} ({DEFAULT_HELP})"
    )
    p.add_argument(
        "--horizons",
        default="2,4,8,16",
        help="frame indices to report (frame 0 = first observation; default 2,4,8,16)",
    )
    p.add_argument(
        "--out", type=Path, default=Path("eval_report"), help="report folder (default: eval_report)"
    )
    p.add_argument("--device", type=device_name, default="cpu", help="torch device for learned models")
    g = p.add_argument_group("LPIPS / DreamSim")
    g.add_argument(
        "--alexnet",
        type=Path,
        help="torchvision AlexNet weights for LPIPS (default: alexnet-owt-7be5be79.pth in torch hub's "
        "cache, $TORCH_HOME/hub/checkpoints or ~/.cache/torch/hub/checkpoints)",
    )
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
        type=float_in(0.0, 1.0, hi_open=True),
        default=0.005,
        help="--objects instances: smallest object, as a fraction of frame 0 (default 0.005)",
    )
    g.add_argument(
        "--max-object-area",
        type=float_in(0.0, 1.0, lo_open=True),
        help="--objects instances: largest object, as a fraction of frame 0 (default: no limit)",
    )
    g.add_argument(
        "--exclude-objects",
        default=",".join(DEFAULT_EXCLUDE_NAMES),
        help="--objects instances with gt/objects.json: comma list of name globs that are not "
        f"structures (default {','.join(DEFAULT_EXCLUDE_NAMES)}; '' keeps every static object)",
    )
    tracks_help = (
        "(default auto: the instance masks when both videos of a pair have them and objects come from "
        "instances, else SAM 2)"
    )
    g.add_argument("--gt-tracks", choices=TRACKS, default="auto", help=f"masks of the GT video {tracks_help}")
    g.add_argument(
        "--pred-tracks", choices=TRACKS, default="auto", help=f"masks of the prediction {tracks_help}"
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
    g.add_argument(
        "--fov-deg",
        type=float_in(0.0, 180.0, lo_open=True, hi_open=True),
        default=60.0,
        help="horizontal FOV in degrees when no intrinsics are given (default 60)",
    )
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
    if not horizons or min(horizons) < 1 or max(horizons) > MAX_HORIZON:
        raise ValueError(f"--horizons must be frame indices in [1, {MAX_HORIZON}]; got {text!r}")
    horizons = sorted(set(horizons))
    if len(horizons) > MAX_HORIZONS:
        raise ValueError(f"--horizons lists {len(horizons)} frames; expected at most {MAX_HORIZONS}")
    return horizons


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


SAM2_HOWTO = (
    "download sam2.1_hiera_tiny.pt from https://github.com/facebookresearch/sam2#download-checkpoints "
    "and pass it with --sam2-checkpoint (or pass --gt-tracks/--pred-tracks instances when both videos "
    "hold instance masks, <name>.npz or gt/instances.npy)"
)


def _tracks(args, pair) -> tuple[str, str]:
    """(GT, prediction) mask sources for one pair: 'instances' or 'sam2' ('auto' resolved)."""
    from egoworld.metrics.videos import has_side_key

    both = (
        args.objects == "instances"
        and has_side_key(pair.gt, "instances")
        and has_side_key(pair.pred, "instances")
    )
    auto = "instances" if both else "sam2"
    return tuple(auto if t == "auto" else t for t in (args.gt_tracks, args.pred_tracks))


def _scs_unavailable(args, pairs) -> str | None:
    """Why SCS cannot be computed without more weights or masks (None: it can)."""
    from egoworld.metrics.videos import has_side_key

    if args.objects == "instances":
        missing = [p.name for p in pairs if not has_side_key(p.gt, "instances")]
        if missing:
            return f"no objects: the ground truth of {missing[:3]} has no instance masks and no --annotations"
    if args.sam2_checkpoint is None and not args.sam2_random:
        need = [p.name for p in pairs if "sam2" in _tracks(args, p)]
        if need:
            return f"{need[:3]} need SAM 2 masks and no --sam2-checkpoint was given"
    return None


def _needs_learned_depth(args, metrics) -> bool:
    return (
        "depth" in metrics or ("cam" in metrics and args.poses == "open3d")
    ) and args.depth == "depth-anything"


def check_weights(args, metrics: list[str], pairs) -> None:
    """Every weights file the requested metrics need exists; raises naming the file (no torch import)."""
    from egoworld.metrics import perceptual

    if "lpips" in metrics and (args.alexnet is not None or not args.lpips_random):
        perceptual.find_alexnet(args.alexnet)
    if "dreamsim" in metrics:
        perceptual.check_dreamsim_cache(args.dreamsim_cache)
    if "scs" in metrics and any("sam2" in _tracks(args, p) for p in pairs) and not args.sam2_random:
        if args.sam2_checkpoint is None:
            raise FileNotFoundError(
                f"SCS tracks objects with SAM 2 but no --sam2-checkpoint was given; {SAM2_HOWTO}"
            )
        if not args.sam2_checkpoint.is_file():
            raise FileNotFoundError(f"SAM 2 checkpoint not found: {args.sam2_checkpoint}; {SAM2_HOWTO}")
    if _needs_learned_depth(args, metrics):
        if args.depth_model is None:
            raise FileNotFoundError(
                "--depth depth-anything needs --depth-model DIR (a local transformers folder)"
            )
        if not args.depth_model.is_dir():
            raise FileNotFoundError(
                f"--depth-model {args.depth_model} not found; expected a local transformers "
                "Depth Anything folder"
            )


def _uses_torch(args, metrics, pairs) -> bool:
    return (
        "lpips" in metrics
        or "dreamsim" in metrics
        or _needs_learned_depth(args, metrics)
        or ("scs" in metrics and any("sam2" in _tracks(args, p) for p in pairs))
    )


class _Models:
    """Learned models, built once and validated before any video is scored."""

    def __init__(self, args, metrics: list[str], pairs):
        from egoworld.metrics import geometry, perceptual, tracking

        self.lpips = self.dreamsim = self.sam2 = self.depth = None
        if "lpips" in metrics:
            self.lpips = perceptual.LPIPSMetric(
                args.alexnet, random_backbone=args.lpips_random, device=args.device
            )
        if "dreamsim" in metrics:
            self.dreamsim = perceptual.DreamSimMetric(args.dreamsim_cache, device=args.device)
        if "scs" in metrics and any("sam2" in _tracks(args, p) for p in pairs):
            if args.sam2_checkpoint is None and not args.sam2_random:
                raise FileNotFoundError(
                    f"SCS tracks objects with SAM 2 but no --sam2-checkpoint was given; {SAM2_HOWTO}"
                )
            self.sam2 = tracking.Sam2Tracker(args.sam2_config, args.sam2_checkpoint, device=args.device)
        if _needs_learned_depth(args, metrics):
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

    gt_tracks, pred_tracks = _tracks(args, pair)
    info["scs_tracks"] = {"gt": gt_tracks, "pred": pred_tracks}
    gt_masks = masks(gt_tracks, gt, side_gt, pair.gt)  # [T, K, H, W]
    pred_masks = masks(pred_tracks, pred, side_pred, pair.pred)
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
    side_pred, side_gt = videos.load_side_file(pair.pred), videos.load_side_file(pair.gt)
    gt, side_gt, resized_from = videos.fit_to_prediction(pred, gt, side_gt, pair.name)
    t, h, w = gt.shape[:3]
    res: dict[str, dict[str, float]] = {}
    info: dict = {"frames": t, "size": [w, h]}
    if resized_from is not None:
        info["gt_resized_from"] = resized_from
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


def check_request(args: argparse.Namespace):
    """Everything checkable before torch is imported -> (metrics, horizons, pairs, annotations, notes).

    Parses the lists, matches the videos, checks the report folder and every weights file the
    metrics need, and resolves the default metrics (a note says why SCS is left out, if it is).
    """
    from egoworld.io_utils import check_outputs_distinct, check_replaceable
    from egoworld.metrics import tracking, videos

    requested = _parse_metrics(args.metrics) if args.metrics is not None else None
    horizons = _parse_horizons(args.horizons)
    if args.max_object_area is not None and not args.min_object_area < args.max_object_area:
        raise ValueError(
            f"object areas must satisfy 0 ≤ --min-object-area < --max-object-area ≤ 1; "
            f"got {args.min_object_area} and {args.max_object_area}"
        )
    pairs = videos.match_videos(args.pred, args.gt)
    check_replaceable(args.out, "results.json")
    inputs = {"--pred": args.pred, "--gt": args.gt, "--annotations": args.annotations}
    check_outputs_distinct({"--out": args.out}, inputs, replaced_folders=["--out"])
    if args.objects is None:
        args.objects = "annotations" if args.annotations is not None else "instances"
    notes: list[str] = []
    if requested is None:
        metrics = list(DEFAULT_METRICS)
        why = _scs_unavailable(args, pairs)
        if why is not None:
            metrics.remove("scs")
            notes.append(f"scs left out of the default metrics: {why}")
    else:
        metrics = requested
    annotations: dict = {}
    if "scs" in metrics and args.objects == "annotations":
        if args.annotations is None:
            raise ValueError("--objects annotations needs --annotations FILE (schema: docs/metrics.md)")
        annotations = tracking.load_annotations(args.annotations)
        missing = [p.name for p in pairs if p.name not in annotations]
        if missing:
            raise ValueError(
                f"{args.annotations}: no annotation for videos {missing}; annotated: {sorted(annotations)}"
            )
    check_weights(args, metrics, pairs)
    return metrics, horizons, pairs, annotations, notes


def run(args: argparse.Namespace) -> int:
    """Score every matched pair and write the report."""
    metrics, horizons, pairs, annotations, notes = check_request(args)  # no torch yet

    from egoworld.metrics import report

    if _uses_torch(args, metrics, pairs):
        from egoworld.rollout import check_device

        check_device(args.device)
    models = _Models(args, metrics, pairs)
    results, infos = {}, {}
    for pair in pairs:
        logger.info("evaluating %s", pair.name)
        results[pair.name], infos[pair.name] = evaluate_pair(
            args, pair, metrics, horizons, annotations, models
        )
    resized = {n: i["gt_resized_from"] for n, i in infos.items() if "gt_resized_from" in i}
    if resized:
        sizes = sorted({f"{w}x{h}" for w, h in resized.values()})
        first = infos[next(iter(resized))]["size"]
        notes.append(
            f"ground truth of {len(resized)} of {len(pairs)} videos ({', '.join(sizes)}) was "
            f"area-downsampled to the prediction's size ({first[0]}x{first[1]}) before scoring"
        )
    meta = {
        "metrics": metrics,
        "pred": str(args.pred),
        "gt": str(args.gt),
        "videos": infos,
        "notes": notes,
        "options": {k: str(v) for k, v in vars(args).items() if k not in ("func",)},
    }
    mean = report.write_report(args.out, results, horizons, meta=meta)
    counts = report.count_over_videos(results)
    print(report.markdown_table(mean, horizons, counts, len(results)), end="")
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {args.out}/results.md, .csv, .json and metrics_vs_horizon.png ({len(pairs)} videos)")
    return 0
