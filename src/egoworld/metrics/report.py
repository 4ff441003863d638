"""Evaluation reports: a Markdown table, CSV, JSON and a plot of each metric against horizon.

Results are `{video name: {metric: {"2": v, "4": v, …, "overall": v}}}`; a metric measured only
over the whole clip (Cam ERR) has just "overall". The report folder is written through
`egoworld.io_utils.atomic_dir`: it appears complete or not at all, so a failed run never leaves
files that look like finished results.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from egoworld.io_utils import atomic_dir

logger = logging.getLogger(__name__)

Results = Mapping[str, Mapping[str, Mapping[str, float]]]

LOWER_IS_BETTER = {"lpips", "dreamsim", "depth_abs_rel", "depth_rmse", "cam_ate", "cam_rot_deg"}


def mean_over_videos(results: Results) -> dict[str, dict[str, float]]:
    """Average each metric and horizon over videos, ignoring NaN (undefined) entries."""
    acc: dict[str, dict[str, list[float]]] = {}
    for per_metric in results.values():
        for metric, per_key in per_metric.items():
            for key, value in per_key.items():
                acc.setdefault(metric, {}).setdefault(key, []).append(float(value))
    out: dict[str, dict[str, float]] = {}
    for metric, per_key in acc.items():
        out[metric] = {}
        for key, values in per_key.items():
            arr = np.asarray(values, dtype=np.float64)
            arr = arr[~np.isnan(arr)]
            out[metric][key] = float(arr.mean()) if arr.size else float("nan")
    return out


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Mapping):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def markdown_table(mean: Mapping[str, Mapping[str, float]], horizons: Sequence[int]) -> str:
    """Rows = metrics, columns = Frame h … and Overall (values averaged over videos)."""
    cols = [str(h) for h in horizons] + ["overall"]
    lines = [
        "| Metric | " + " | ".join(f"Frame {h}" for h in horizons) + " | Overall |",
        "|---|" + "---|" * len(cols),
    ]
    for metric, per_key in mean.items():
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
        lines.append(
            f"| {metric} {arrow} | " + " | ".join(_fmt(per_key.get(c, float("nan"))) for c in cols) + " |"
        )
    return "\n".join(lines) + "\n"


def _plot(mean: Mapping[str, Mapping[str, float]], horizons: Sequence[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in mean if any(str(h) in mean[m] for h in horizons)]
    if not metrics:
        return
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ys = [mean[metric].get(str(h), float("nan")) for h in horizons]
        ax.plot(list(horizons), ys, marker="o")
        ax.set_title(metric)
        ax.set_xlabel("frame (horizon)")
        ax.set_xticks(list(horizons))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(
    out_dir: str | Path, results: Results, horizons: Sequence[int], *, meta: Mapping | None = None
) -> dict[str, dict[str, float]]:
    """Write results.json, results.csv, results.md and metrics_vs_horizon.png into `out_dir`, atomically.

    An existing `out_dir` is replaced only if it is empty or holds an earlier report (results.json).
    Returns the per-metric means over videos.
    """
    out_dir = Path(out_dir)
    mean = mean_over_videos(results)
    with atomic_dir(out_dir, replaces="results.json") as tmp:
        payload = {"horizons": list(horizons), "mean": mean, "per_video": results, "meta": dict(meta or {})}
        (tmp / "results.json").write_text(json.dumps(_json_safe(payload), indent=2) + "\n")
        with open(tmp / "results.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["video", "metric", "horizon", "value"])
            for name, per_metric in list(results.items()) + [("mean", mean)]:
                for metric, per_key in per_metric.items():
                    for key, value in per_key.items():
                        writer.writerow([name, metric, key, repr(float(value))])
        md = f"# egoworld eval\n\n{len(results)} video(s); mean over videos.\n\n" + markdown_table(
            mean, horizons
        )
        (tmp / "results.md").write_text(md)
        _plot(mean, horizons, tmp / "metrics_vs_horizon.png")
    logger.info("wrote report to %s", out_dir)
    return mean
