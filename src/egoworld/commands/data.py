"""`egoworld data`: check, stats and convert datasets.

egoworld data check PATH [--format nwm|recon_h5|onex|lerobot] [--deep]
egoworld data stats PATH --out stats.json [--format F] [--mode meanstd|minmax] [--fps 5] ...
egoworld data convert SRC DST            (RECON HDF5 -> NWM layout)
"""

from __future__ import annotations

import argparse

FORMATS = ("nwm", "recon_h5", "onex", "lerobot")


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="check, summarise, convert datasets")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    check = sub.add_parser("check", help="validate a dataset and list every problem")
    check.add_argument("path")
    check.add_argument("--format", choices=FORMATS, help="dataset layout (default: detected)")
    check.add_argument("--deep", action="store_true", help="decode every video frame (slow)")
    check.set_defaults(func=run_check)

    stats = sub.add_parser("stats", help="compute action normalization statistics")
    stats.add_argument("path")
    stats.add_argument("--out", required=True, help="JSON file to write")
    stats.add_argument("--format", choices=FORMATS)
    stats.add_argument("--mode", choices=("meanstd", "minmax"), default="meanstd")
    stats.add_argument("--dataset-name", help="NWM dataset name (sets the metric waypoint spacing)")
    stats.add_argument("--spacing", type=float, help="NWM/RECON metres per action unit")
    stats.add_argument("--action-mode", choices=("delta", "cumulative"), default="delta")
    stats.add_argument("--frame-step", type=int, default=1, help="raw frames per clip frame (NWM, LeRobot)")
    stats.add_argument("--fps", type=float, default=5.0, help="1X target frame rate")
    stats.add_argument("--context", type=int, default=1)
    stats.add_argument("--horizon", type=int, default=7)
    stats.set_defaults(func=run_stats)

    convert = sub.add_parser("convert", help="convert RECON HDF5 files to the NWM layout")
    convert.add_argument("src", help="RECON .hdf5 file or folder of them")
    convert.add_argument("dst", help="new NWM dataset folder (<dst>/<traj>/{i.jpg, traj_data.pkl})")
    convert.set_defaults(func=run_convert)


def run_check(args: argparse.Namespace) -> int:
    from egoworld.data.check import check_dataset

    report = check_dataset(args.path, format=args.format, deep=args.deep)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def run_stats(args: argparse.Namespace) -> int:
    from egoworld.data.check import detect_format
    from egoworld.data.stats import compute_stats

    fmt = args.format or detect_format(args.path)
    kwargs: dict = {"context": args.context, "horizon": args.horizon}
    if fmt in ("nwm", "recon_h5"):
        kwargs.update(action_mode=args.action_mode, spacing=args.spacing, frame_step=args.frame_step)
        if fmt == "nwm" and args.dataset_name:
            kwargs["dataset_name"] = args.dataset_name
    elif fmt == "onex":
        kwargs["fps"] = args.fps
    else:
        kwargs["frame_step"] = args.frame_step
    norm = compute_stats(args.path, fmt, mode=args.mode, **kwargs)
    norm.save(args.out)
    print(f"wrote {args.out}: {norm.action_dim}-D {norm.mode} statistics from {norm.count} actions")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from egoworld.data.recon_h5 import convert_recon_to_nwm

    names = convert_recon_to_nwm(args.src, args.dst)
    print(f"wrote {len(names)} trajectories to {args.dst}")
    return 0
