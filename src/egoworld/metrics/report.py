"""Per-horizon tables and evaluation reports: Markdown, CSV, JSON and a plot against horizon.

`by_horizon` turns per-frame values into one video's row `{"2": v, "4": v, …, "overall": v}`.
Results are `{video name: {metric: {"2": v, …, "overall": v}}}`; a metric measured only over
the whole clip (Cam ERR) has just "overall". Means over videos skip undefined (NaN) entries, so
each mean carries `n`, the number of videos it averages (fewer at long horizons once videos end
or are trimmed). The report folder is written through `egoworld.io_utils.atomic_dir`: it appears
complete or not at all, so a failed run never leaves files that look like finished results.
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


def by_horizon(
    values, horizons: Sequence[int], *, first_frame: int = 1, end: int | None = None
) -> dict[str, float]:
    """One video's row of a horizon table from per-frame values.

    Args:
        values: `[T]` (one value per frame) or `[T, K]` (K values per frame, e.g. SCS's IoU per
            object); NaN marks an undefined entry.
        horizons: frame indices; horizon h is the frame with index h (frame 0 is the shared first
            observation).
        first_frame: the first frame "overall" averages.
        end: frames from this index on are not scored (SCS's trim frame); None: all frames.

    Returns {"h": mean of frame h's values (NaN at/after `end` or past the last frame), …,
    "overall": mean of every defined value of frames first_frame … end−1}.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2:
        raise ValueError(f"per-frame values must be [T] or [T, K]; got shape {np.shape(values)}")
    t = len(v)
    stop = t if end is None else max(0, min(int(end), t))

    def mean(a: np.ndarray) -> float:
        a = a[~np.isnan(a)]
        return float(a.mean()) if a.size else float("nan")

    out: dict[str, float] = {}
    for h in horizons:
        h = int(h)
        if h < 0:
            raise ValueError(f"horizon must be a non-negative frame index; got {h}")
        out[str(h)] = mean(v[h]) if h < stop else float("nan")
    out["overall"] = mean(v[first_frame:stop].ravel())
    return out


def mean_over_videos(results: Results) -> dict[str, dict[str, float]]:
    """Average each metric and horizon over videos, ignoring NaN (undefined) entries."""
    return _mean_and_count(results)[0]


def count_over_videos(results: Results) -> dict[str, dict[str, int]]:
    """How many videos have a defined (non-NaN) value for each metric and horizon."""
    return _mean_and_count(results)[1]


def _mean_and_count(results: Results) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
    acc: dict[str, dict[str, list[float]]] = {}
    for per_metric in results.values():
        for metric, per_key in per_metric.items():
            for key, value in per_key.items():
                acc.setdefault(metric, {}).setdefault(key, []).append(float(value))
    mean: dict[str, dict[str, float]] = {}
    count: dict[str, dict[str, int]] = {}
    for metric, per_key in acc.items():
        mean[metric], count[metric] = {}, {}
        for key, values in per_key.items():
            arr = np.asarray(values, dtype=np.float64)
            arr = arr[~np.isnan(arr)]
            mean[metric][key] = float(arr.mean()) if arr.size else float("nan")
            count[metric][key] = int(arr.size)
    return mean, count


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


def markdown_table(
    mean: Mapping[str, Mapping[str, float]],
    horizons: Sequence[int],
    counts: Mapping[str, Mapping[str, int]] | None = None,
    total: int | None = None,
) -> str:
    """Rows = metrics, columns = Frame h … and Overall (values averaged over videos).

    With `counts` (videos averaged per cell) and `total` (videos evaluated), a cell that averages
    fewer than `total` videos shows its count, e.g. `62.26 (n=1)`, and a note says so.
    """
    cols = [str(h) for h in horizons] + ["overall"]
    lines = [
        "| Metric | " + " | ".join(f"Frame {h}" for h in horizons) + " | Overall |",
        "|---|" + "---|" * len(cols),
    ]
    partial = False
    for metric, per_key in mean.items():
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
        cells = []
        for c in cols:
            cell = _fmt(per_key.get(c, float("nan")))
            n = None if counts is None else counts.get(metric, {}).get(c)
            if total is not None and n is not None and 0 < n < total:
                cell += f" (n={n})"
                partial = True
            cells.append(cell)
        lines.append(f"| {metric} {arrow} | " + " | ".join(cells) + " |")
    if partial:
        lines.append(
            f"\n(n=k: the mean of the k of {total} videos defined there; "
            "the others ended or were trimmed before that frame.)"
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

    results.json has "mean" and "n" (videos averaged) per metric and horizon; results.csv has a
    column n (1/0 on a video's rows: defined or not; the count on the "mean" rows). An existing
    `out_dir` is replaced only if it is empty or holds an earlier report (results.json).
    Returns the per-metric means over videos.
    """
    out_dir = Path(out_dir)
    mean, counts = _mean_and_count(results)
    with atomic_dir(out_dir, replaces="results.json") as tmp:
        payload = {
            "horizons": list(horizons),
            "mean": mean,
            "n": counts,
            "per_video": results,
            "meta": dict(meta or {}),
        }
        (tmp / "results.json").write_text(json.dumps(_json_safe(payload), indent=2) + "\n")
        with open(tmp / "results.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["video", "metric", "horizon", "value", "n"])
            for name, per_metric in results.items():
                for metric, per_key in per_metric.items():
                    for key, value in per_key.items():
                        writer.writerow([name, metric, key, repr(float(value)), int(not math.isnan(value))])
            for metric, per_key in mean.items():
                for key, value in per_key.items():
                    writer.writerow(["mean", metric, key, repr(float(value)), counts[metric][key]])
        md = f"# egoworld eval\n\n{len(results)} video(s); mean over videos.\n\n" + markdown_table(
            mean, horizons, counts, len(results)
        )
        notes = (meta or {}).get("notes") or []
        if notes:
            md += "\n" + "".join(f"Note: {note}\n" for note in notes)
        (tmp / "results.md").write_text(md)
        _plot(mean, horizons, tmp / "metrics_vs_horizon.png")
    logger.info("wrote report to %s", out_dir)
    return mean
