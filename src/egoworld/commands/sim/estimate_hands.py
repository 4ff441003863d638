"""`egoworld sim estimate-hands`: 3-D hand joints for plain-layout episodes that have video + K only.

A thin front end of `egoworld.sim.estimate_hands` (the folder) and `egoworld.sim.hand_estimation`
(the models and the lifting).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from egoworld.cli import add_command, device_name, float_in, int_in, need_path

DESCRIPTION = (
    "Estimate the hands of plain-layout episodes (<name>.mp4 + <name>.npz holding K) and write them "
    "into each npz as hands [N, 2, 21, 3] (camera coordinates, metres, NaN = unknown) and "
    "hand_confidence [N, 2, 21], every other key unchanged (a new file renamed onto the old one). "
    "2-D keypoints: a local COCO-WholeBody pose model (transformers ViTPose, 133 keypoints) run on "
    "the whole frame as its person box (egocentric video shows no body; hands are small in it); "
    "3-D: each keypoint at the median metric depth of a 5x5 window, 1 cm behind the skin along its "
    "ray. Depth: --depth (metric files) or --depth-model (a metric Depth Anything; relative models "
    "are refused). npz files that already hold hands are skipped unless --overwrite. See "
    "docs/egosim.md."
)
EXAMPLES = """
egoworld worlds generate --task tabletop --format plain --no-hands --out PLN --episodes 2 --size 96
egoworld sim estimate-hands PLN --pose-model vitpose-wholebody --depth PLN/depth
egoworld sim estimate-hands RECORDED --pose-model vitpose-wholebody \\
    --depth-model Depth-Anything-V2-Metric-Indoor-Small-hf --min-score 0.4
egoworld sim prepare PLN --out PREP --size 32 32 --frames 9 --depth PLN/depth
"""


def register(sub) -> None:
    """`sim estimate-hands`: hands for plain-layout episodes from a pose model and metric depth."""
    from egoworld.sim.hand_estimation import MIN_SCORE

    r = add_command(
        sub,
        "estimate-hands",
        help="3-D hand joints for plain-layout episodes (video + K) from a pose model and metric depth",
        description=DESCRIPTION,
        examples=EXAMPLES,
    )
    r.add_argument(
        "hands_root", type=Path, metavar="ROOT", help="folder of plain-layout episodes (searched recursively)"
    )
    r.add_argument(
        "--pose-model",
        type=Path,
        required=True,
        metavar="DIR",
        help="local transformers COCO-WholeBody pose folder (ViTPose, num_labels 133)",
    )
    r.add_argument(
        "--depth",
        dest="hands_depth",
        metavar="DIR",
        type=Path,
        default=None,
        help="metric depth: DIR/<episode>.npy [N, H, W] metres (or .npz 'depth', or uint16 mm)",
    )
    r.add_argument(
        "--depth-model",
        dest="hands_depth_model",
        metavar="DIR",
        type=Path,
        default=None,
        help="local metric Depth Anything folder (depth_estimation_type 'metric')",
    )
    r.add_argument(
        "--overwrite", action="store_true", help="replace the hands of npz files that already hold them"
    )
    r.add_argument(
        "--min-score",
        type=float_in(0.0, 1.0),
        default=MIN_SCORE,
        help=f"keypoints scored below this are unknown (default {MIN_SCORE})",
    )
    r.add_argument(
        "--dataset-index",
        type=int_in(0, 63),
        default=None,
        help="ViTPose++ only: the MoE expert (default 5, COCO-WholeBody)",
    )
    r.add_argument("--device", type=device_name, default="cpu", help="torch device of the models")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.set_defaults(func=run_estimate_hands)


def check_request(args: argparse.Namespace) -> None:
    """Every check that reads no video or weights (and writes nothing)."""
    from egoworld.sim.hand_estimation import check_metric_depth_model, check_pose_model

    need_path(args.hands_root, "ROOT", "folder", "a folder of <name>.mp4 + <name>.npz (K) episodes")
    need_path(args.pose_model, "--pose-model", "folder", "a local COCO-WholeBody pose-estimation folder")
    need_path(args.hands_depth, "--depth", "folder", "a folder of <episode>.npy metric depth files")
    need_path(args.hands_depth_model, "--depth-model", "folder", "a local metric Depth Anything folder")
    if (args.hands_depth is None) == (args.hands_depth_model is None):
        raise ValueError(
            "give exactly one depth source: --depth DIR (metric depth per episode) or --depth-model DIR "
            "(a local metric Depth Anything folder)"
        )
    check_pose_model(args.pose_model)
    if args.hands_depth_model is not None:
        check_metric_depth_model(args.hands_depth_model)


def run_estimate_hands(args: argparse.Namespace) -> int:
    check_request(args)  # before any video, weights or output

    from egoworld.sim.estimate_hands import estimate_folder, plan_folder
    from egoworld.sim.hand_estimation import HandEstimator, MetricDepthModel, WholeBodyPoseModel
    from egoworld.sim.prepare_depth import SuppliedDepth

    plan = plan_folder(args.hands_root, depth_dir=args.hands_depth, overwrite=args.overwrite)
    skipped = (
        f"; skipped {len(plan.skipped)} that already hold hands (--overwrite replaces them)"
        if plan.skipped
        else ""
    )
    if not plan.jobs:
        print(f"nothing to estimate under {args.hands_root}{skipped}")
        return 0
    pose = WholeBodyPoseModel(args.pose_model, device=args.device, dataset_index=args.dataset_index)
    estimator = HandEstimator(pose, min_score=args.min_score)
    if args.hands_depth is not None:
        depth = SuppliedDepth(args.hands_depth)
    else:
        depth = MetricDepthModel(args.hands_depth_model, device=args.device)
    summary = estimate_folder(plan, estimator, depth, progress=not args.no_progress)
    none = (
        f"; no hand found in {len(summary['no_hands'])} (left unchanged: {', '.join(summary['no_hands'])})"
        if summary["no_hands"]
        else ""
    )
    print(
        f"wrote hands for {len(summary['written'])} episodes ({summary['frames']} frames, "
        f"{100 * summary['known']:.0f}% of hand joints found) under {args.hands_root}{skipped}{none}"
    )
    return 0
