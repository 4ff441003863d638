"""`egoworld sim estimate-hands`: fill in the hands of plain-layout episodes that have only video + K.

For every ``<name>.mp4`` + ``<name>.npz`` under a folder (`egoworld.sim.plain_video`'s layout,
searched the same way) whose npz holds `K` but no `hands`, the frames are read with PyAV
(`egoworld.data.video.VideoReader`), the hands estimated (`egoworld.sim.hand_estimation`: 2-D
COCO-WholeBody keypoints lifted with metric depth) and the npz rewritten with `hands`
[N, 2, 21, 3] and `hand_confidence` [N, 2, 21], every other key unchanged
(`plain_video.write_hands`: a new file beside the old one, renamed onto it). An npz that already
holds `hands` is skipped unless ``overwrite``.

Every episode is checked before any model runs or any file is written (K, the `cam_to_world`
length against the video, the depth files' shapes against the videos), so bad input is one
ValueError / FileNotFoundError and no file changed. Each npz is then replaced whole, one episode
after the other: a failure while estimating (a video that stops decoding part-way, say) leaves the
episodes before it written and the rest as they were. An episode where no hand is found in any
frame is left unchanged (the plain reader refuses hands that are NaN everywhere) and reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CHUNK = 32  # video frames decoded (and estimated) at a time
LAYOUT = "plain layout for estimate-hands: <name>.mp4 + <name>.npz with K, see docs/egosim.md"


@dataclass
class Job:
    """One episode to estimate: its files, name, frame count and frame size, and K [3, 3]."""

    name: str
    video: Path
    npz: Path
    frames: int
    size_hw: tuple[int, int]
    K: np.ndarray


@dataclass
class Plan:
    """The episodes to estimate and those skipped because they already hold `hands`."""

    jobs: list[Job] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def plan_folder(root: str | Path, *, depth_dir: str | Path | None = None, overwrite: bool = False) -> Plan:
    """Find and check every plain-layout episode under `root` (nothing is written); `depth_dir`
    (per-episode metric depth, `SuppliedDepth`) is checked against each video and skipped when it
    lies under `root`."""
    from egoworld.data.video import VideoReader
    from egoworld.sim import plain_video
    from egoworld.sim.egodex import episode_name, pair_videos
    from egoworld.sim.prepare_depth import SuppliedDepth

    root = Path(root)
    depth = SuppliedDepth(depth_dir) if depth_dir is not None else None
    skip = [depth_dir] if depth_dir is not None else []
    pairs = pair_videos(root, ".npz", skip, holds="intrinsics", layout=LAYOUT)
    if not pairs:
        raise FileNotFoundError(f"no episodes under {root}; expected <name>.mp4 + <name>.npz (with K) pairs")
    plan = Plan()
    for video, npz in pairs:
        name = episode_name(video, root)
        K, has_hands, poses = plain_video.read_intrinsics(npz)
        if has_hands and not overwrite:
            plan.skipped.append(name)
            continue
        with VideoReader(video) as reader:
            n = len(reader)
            size_hw = tuple(int(s) for s in reader.read([0]).shape[1:3])
        if poses is not None and poses != n:
            raise ValueError(f"{npz}: cam_to_world has {poses} poses; expected {n}, one per frame of {video}")
        if depth is not None:
            depth.check(name, n, size_hw)
        plan.jobs.append(Job(name, video, npz, n, size_hw, K))
    return plan


def _depth(depth: Any, name: str, idx: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Metric depth [F, H, W] of video frames `idx` of episode `name`: a `SuppliedDepth`'s files, or
    a depth model (e.g. `hand_estimation.MetricDepthModel`) run on the `frames` [F, H, W, 3]."""
    from egoworld.sim.prepare_depth import SuppliedDepth

    return depth.frames(name, idx) if isinstance(depth, SuppliedDepth) else depth(frames)


def estimate_episode(
    job: Job, estimator: Any, depth: Any, *, progress: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Hands [N, 2, 21, 3] and confidence [N, 2, 21] of one episode, `CHUNK` frames at a time;
    `depth` is a `SuppliedDepth` or a callable frames [F, H, W, 3] → metric depth [F, H, W]."""
    from egoworld.data.video import VideoReader

    hands = np.full((job.frames, 2, 21, 3), np.nan)
    confidence = np.zeros((job.frames, 2, 21))
    with VideoReader(job.video) as reader:
        for start in range(0, job.frames, CHUNK):
            idx = np.arange(start, min(start + CHUNK, job.frames))
            frames = reader.read(idx)  # [F, H, W, 3] uint8
            depth_F = _depth(depth, job.name, idx, frames)  # [F, H, W] metres
            hands[idx], confidence[idx] = estimator(frames, depth_F, job.K)
            if progress is not None:
                progress.update(len(idx))
    return hands, confidence


def estimate_folder(plan: Plan, estimator: Any, depth: Any, *, progress: bool = False) -> dict[str, Any]:
    """Estimate and write the hands of every planned episode; returns a summary: "written" (names),
    "no_hands" (names left unchanged: no hand in any frame), "skipped", "frames", "known" (the
    fraction of hand joints found over the written episodes' frames)."""
    from tqdm.auto import tqdm

    from egoworld.sim.plain_video import write_hands

    summary: dict[str, Any] = {"written": [], "no_hands": [], "skipped": list(plan.skipped), "frames": 0}
    known = total = 0
    bar = tqdm(
        total=sum(j.frames for j in plan.jobs), desc="estimate-hands", unit="frame", disable=not progress
    )
    for job in plan.jobs:
        hands, confidence = estimate_episode(job, estimator, depth, progress=bar)
        found = np.isfinite(hands).all(-1)  # [N, 2, 21]
        if not found.any():
            logger.warning(
                "%s: no hand found in any of its %d frames; %s left unchanged", job.name, job.frames, job.npz
            )
            summary["no_hands"].append(job.name)
            continue
        write_hands(job.npz, hands, confidence)
        summary["written"].append(job.name)
        summary["frames"] += job.frames
        known += int(found.sum())
        total += found.size
    bar.close()
    summary["known"] = known / total if total else 0.0
    return summary
