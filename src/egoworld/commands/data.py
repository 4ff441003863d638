"""`egoworld data`: check, stats and convert datasets.

egoworld data check PATH [--format nwm|recon_h5|onex|lerobot] [--deep]
egoworld data stats PATH --out stats.json [--format F] [--mode meanstd|minmax] [--fps 5] ...
egoworld data convert SRC DST            (RECON HDF5 -> NWM layout; or SRC --out DST)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from egoworld.cli import add_command, float_in, int_in

FORMATS = ("nwm", "recon_h5", "onex", "lerobot")


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "data",
        help="check, summarise, convert datasets",
        description="Check, summarise and convert datasets (NWM, RECON HDF5, 1X v2.0, LeRobot v2/v3).",
        examples="egoworld data check /data/recon\n"
        "egoworld data stats /data/recon --out stats.json\n"
        "egoworld data convert /data/recon_raw /data/recon",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    check = add_command(
        sub,
        "check",
        help="validate a dataset and list every problem",
        description="Validate a dataset and list every problem as `file: reason` (exit 1 if any).\n"
        "Files are untrusted: sizes and declared shapes are checked before reading (docs/data.md).",
        examples="egoworld data check /data/recon --deep",
    )
    check.add_argument("path", help="dataset folder (or one RECON .hdf5 file)")
    check.add_argument("--format", choices=FORMATS, help="dataset layout (default: detected)")
    check.add_argument("--deep", action="store_true", help="decode every video frame (slow)")
    check.set_defaults(func=run_check)

    stats = add_command(
        sub,
        "stats",
        help="compute action normalization statistics",
        description="Compute per-dimension action statistics (as the loaders produce the actions)\n"
        "and write them as JSON for training (the output must lie outside the dataset).",
        examples="egoworld data stats /data/scand --out scand_stats.json --mode minmax --frame-step 2",
    )
    stats.add_argument("path", help="dataset folder (or one RECON .hdf5 file)")
    stats.add_argument("--out", required=True, help="JSON file to write (outside the dataset)")
    stats.add_argument("--format", choices=FORMATS, help="dataset layout (default: detected)")
    stats.add_argument("--mode", choices=("meanstd", "minmax"), default="meanstd")
    stats.add_argument("--dataset-name", help="NWM dataset name (sets the metric waypoint spacing)")
    stats.add_argument(
        "--spacing", type=float_in(0.0, lo_open=True), help="NWM/RECON metres per action unit (> 0)"
    )
    stats.add_argument("--action-mode", choices=("delta", "cumulative"), default="delta")
    stats.add_argument(
        "--frame-step", type=int_in(1), default=1, help="raw frames per clip frame (NWM, LeRobot; >= 1)"
    )
    stats.add_argument("--fps", type=float_in(0.0, lo_open=True), default=5.0, help="1X target frame rate")
    stats.add_argument("--context", type=int_in(1), default=1, help="context frames per clip (>= 1)")
    stats.add_argument("--horizon", type=int_in(0), default=7, help="predicted frames per clip (>= 0)")
    stats.set_defaults(func=run_stats)

    convert = add_command(
        sub,
        "convert",
        help="convert RECON HDF5 files to the NWM layout",
        description="Convert RECON HDF5 trajectories to the NWM layout\n"
        "(<dst>/<traj>/{i.jpg, traj_data.pkl}). The output appears whole or not at all,\n"
        "and never inside the input.",
        examples="egoworld data convert /data/recon_raw /data/recon\n"
        "egoworld data convert /data/recon_raw/run1.hdf5 --out /data/recon_run1",
    )
    convert.add_argument("src", help="RECON .hdf5 file or folder of them")
    convert.add_argument("dst", nargs="?", help="new NWM dataset folder (or give --out)")
    convert.add_argument("--out", help="new NWM dataset folder (same as DST)")
    convert.set_defaults(func=run_convert)


def _existing(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset path not found: {p}")
    return p


def run_check(args: argparse.Namespace) -> int:
    _existing(args.path)
    from egoworld.data.check import check_dataset

    report = check_dataset(args.path, format=args.format, deep=args.deep)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _validate_stats_args(args: argparse.Namespace) -> None:
    from egoworld.data.untrusted import refuse_output_over_input

    _existing(args.path)  # numeric ranges are checked while parsing (int_in, float_in)
    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; expected a JSON file path")
    refuse_output_over_input(out, args.path, "--out")


def run_stats(args: argparse.Namespace) -> int:
    _validate_stats_args(args)
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
    if (args.dst is None) == (args.out is None):
        raise ValueError("give the output folder once: as DST or as --out")
    dst = args.dst or args.out
    _existing(args.src)
    from egoworld.data.recon_h5 import convert_recon_to_nwm

    names = convert_recon_to_nwm(args.src, dst)
    print(f"wrote {len(names)} trajectories to {dst}")
    return 0
