"""The internet-prior experiment's outputs: results.json, a Markdown table and a rollout figure.

Table cells are "mean ± std" over sampling seeds of the per-seed mean over evaluation worlds
(`experiments.evaluation.summarize`); the reference rows have one deterministic "seed".
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
from pathlib import Path

import numpy as np

from egoworld.io_utils import atomic_path

logger = logging.getLogger(__name__)

FIGURE_FRAMES = (0, 2, 4, 8, 12, 16)
FIGURE_ROWS = ("prior+finetune", "scratch", "prior (no actions)")


def _cell(mean_std, digits: int) -> str:
    mean, std = mean_std
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(results: dict, horizons, metric: str, digits: int) -> str:
    """One table: rows (model, domain), columns metric@horizon."""
    head = "| model | domain | " + " | ".join(f"{metric.upper()}@{h}" for h in horizons) + " |"
    lines = [head, "|" + "---|" * (len(horizons) + 2)]
    for (row, domain), entry in results.items():
        by_h = entry["summary"].get(metric, {})
        if metric != "scs" and row.startswith("GT video"):
            continue  # identical to the ground truth: infinite PSNR, SSIM 1
        cells = [_cell(by_h.get(str(h), [float("nan")] * 2), digits) for h in horizons]
        lines.append(f"| {row} | {domain} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(results: dict, horizon: int) -> dict[str, dict]:
    """The issue's three targets at frame `horizon` (SCS), with the numbers they compare.

    "Above" means well above: the gap between the means must exceed the sum of the two standard
    deviations over seeds (a gap inside the seed-to-seed spread is not counted as met).
    """

    def scs(row, domain="in-domain"):
        return results[(row, domain)]["summary"]["scs"][str(horizon)]  # [mean, std]

    def above(a, b) -> dict:
        return {"values": [a[0], b[0]], "stds": [a[1], b[1]], "met": bool(a[0] - b[0] > a[1] + b[1])}

    ft, painted = scs("prior+finetune"), scs("prior+finetune", "paintings")
    ratio = painted[0] / ft[0] if ft[0] else float("nan")
    return {
        "action-conditioned above unconditioned": above(ft, scs("prior (no actions)")),
        "prior+finetune above scratch": above(ft, scs("scratch")),
        "paintings >= 80% of in-domain": {
            "values": [painted[0], ft[0]],
            "stds": [painted[1], ft[1]],
            "ratio": ratio,
            "met": bool(ratio >= 0.8),
        },
    }


def following_table(following: dict) -> str:
    """The mirrored-action test's rows: (row, domain) -> gap [mean, std] and share of wins."""
    lines = [
        "| model | domain | PSNR true − mirrored actions (dB) | worlds × seeds where true actions win |",
        "|---|---|---|---|",
    ]
    for (row, domain), entry in following.items():
        lines.append(f"| {row} | {domain} | {_cell(entry['gap'], 2)} | {entry['share_positive']:.0%} |")
    return "\n".join(lines)


def follows_target(following: dict) -> dict:
    """Target (1): the fine-tuned model follows its actions in its domain, i.e. its mean gap (true −
    mirrored) exceeds the gap's spread over seeds."""
    gap = following[("prior+finetune", "in-domain")]["gap"]
    return {"values": [gap[0], 0.0], "stds": [gap[1], 0.0], "met": bool(gap[0] > gap[1])}


def rollout_figure(out: Path, results_rows, budget, path: Path) -> Path:
    """GT next to each model for the first evaluation world of each domain (seed 0), as a PNG."""
    import cv2

    from egoworld.experiments.internet_prior import MODELS

    frames = [f for f in FIGURE_FRAMES if f < budget.eval_frames]
    scale = max(1, 96 // budget.size)
    label_w, tile = 150, budget.size * scale
    blocks = []
    for domain in ("in-domain", "paintings"):
        gt = np.load(out / "eval" / f"gt-tracked__{domain}.npz")["seed0"][0]  # [T, H, W, 3]
        rows = [("ground truth", gt)]
        for name in FIGURE_ROWS:
            if (name, domain) in results_rows:
                rows.append((name, np.load(out / "eval" / f"{MODELS[name]}__{domain}.npz")["seed0"][0]))
        for name, video in rows:
            tiles = [cv2.resize(video[f], (tile, tile), interpolation=cv2.INTER_NEAREST) for f in frames]
            strip = np.concatenate(tiles, axis=1)
            label = np.full((tile, label_w, 3), 255, np.uint8)
            cv2.putText(
                label, name, (4, tile // 2 - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA
            )
            cv2.putText(
                label,
                domain,
                (4, tile // 2 + 12),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.38,
                (90, 90, 90),
                1,
                cv2.LINE_AA,
            )
            blocks.append(np.concatenate([label, strip], axis=1))
        blocks.append(np.full((6, blocks[-1].shape[1], 3), 255, np.uint8))
    header = np.full((22, blocks[0].shape[1], 3), 255, np.uint8)
    for i, f in enumerate(frames):
        cv2.putText(
            header,
            f"frame {f}",
            (label_w + i * tile + 4, 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.42,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    image = np.concatenate([header, *blocks[:-1]], axis=0)
    with atomic_path(path, suffix=".png") as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path


def write_report(
    out: Path, budget, results: dict, config_dir: Path, following: dict, settings: dict | None = None
) -> dict:
    """results.json, results.md and rollouts.png in `out` (`following`: the mirrored-action rows of
    `internet_prior.follows_actions`; `settings`: each stage's settings beyond its config file,
    `internet_prior.stage_settings`); returns the results.json content."""
    settings = settings or {}
    horizons = [h for h in budget.horizons if h < budget.eval_frames]
    last = max(horizons)
    times_path = out / "times.json"
    times = json.loads(times_path.read_text()) if times_path.is_file() else {}
    goal = {"prior+finetune follows its actions (true − mirrored, dB)": follows_target(following)}
    goal.update(targets(results, last))
    doc = {
        "budget": dataclasses.asdict(budget),
        "configs": str(config_dir),
        "stage_settings": settings,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
        },
        "wall_seconds": times,
        "targets_at_frame": last,
        "targets": goal,
        "rows": {f"{row} | {domain}": entry["summary"] for (row, domain), entry in results.items()},
        "follows_actions": {f"{row} | {domain}": entry for (row, domain), entry in following.items()},
        "trim_at": {d: results[("prior+finetune", d)]["trim_at"] for d in ("in-domain", "paintings")},
    }
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=1))
    md = [
        "## SCS (Eq. 7, ×100; GT instance masks vs flow-tracked masks on the prediction) ↑",
        markdown_table(results, horizons, "scs", 1),
        "",
        "## PSNR (dB, 224×224) ↑",
        markdown_table(results, horizons, "psnr", 2),
        "",
        "## SSIM ↑",
        markdown_table(results, horizons, "ssim", 3),
        "",
        "## Follows its actions: PSNR under the true minus the mirrored actions, frames 4–16 ↑",
        following_table(following),
        "",
        f"## Targets (SCS at frame {last}, and the mirrored-action gap)",
        *[
            f"- {name}: {'met' if g['met'] else 'NOT met'} "
            f"({' vs '.join(f'{v:.1f} ± {d:.1f}' for v, d in zip(g['values'], g['stds']))})"
            for name, g in goal.items()
        ],
        "",
        "## Wall time (s)",
        *[f"- {k}: {v:.0f}" for k, v in times.items()],
        "",
        f"## Training settings: {config_dir} and the budget, and beyond them",
        *[
            f"- {stage}: " + (", ".join(f"{k}={v}" for k, v in changed.items()) or "nothing")
            for stage, changed in settings.items()
        ],
    ]
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text("\n".join(md) + "\n")
    rollout_figure(out, results, budget, out / "rollouts.png")
    logger.info("wrote %s/results.{json,md} and rollouts.png", out)
    return doc
