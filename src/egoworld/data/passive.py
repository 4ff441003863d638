"""Passive (unlabeled) videos: a folder of mp4 files read as action-free training clips.

    <root>/videos/<name>.mp4     (the layout `egoworld worlds generate --task passive` writes)
    <root>/<name>.mp4            (any flat folder of mp4 files works too)

Clips are windows of consecutive (optionally subsampled) frames, resized and centre-cropped to the
model's resolution, with all-zero actions `[T, action_dim]`: a world model trained on them with
its action learning rate at 0 keeps its zero-initialised action encoder at exactly zero and is a
plain image-to-video model (the "passive prior" of EgoWM §3). `to_tensors()` gives the same dict
as every other reader (`frames` float [T, 3, H, W] in [-1, 1], `actions` [T, D]).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from egoworld.actions.normalization import ActionNormalizer
from egoworld.data.clip import Clip, WindowSpec, build_windows, resize_center_crop
from egoworld.data.video import VideoReader

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")
DATASET_NAME = "passive"


def find_videos(root: str | Path) -> list[Path]:
    """The video files of a passive dataset, sorted by name (`<root>/videos/*` first, else `<root>/*`)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"passive video folder not found: {root}")
    folder = root / "videos" if (root / "videos").is_dir() else root
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no videos; expected files ending in {VIDEO_SUFFIXES}")
    return files


def zero_action_normalizer(action_dim: int) -> ActionNormalizer:
    """Identity statistics for a dataset without actions (mean 0, std 1): nothing to fit."""
    if action_dim < 1:
        raise ValueError(f"action_dim={action_dim}; expected >= 1")
    zeros, ones = np.zeros(action_dim), np.ones(action_dim)
    return ActionNormalizer(
        mode="meanstd", mean=zeros, std=ones, min=-ones, max=ones, count=0, meta={"dataset": DATASET_NAME}
    )


class PassiveVideoDataset(Dataset):
    """Windows of unlabeled videos with zero actions.

    Args:
        root: a folder holding `videos/*.mp4` (or mp4 files directly).
        context, horizon, stride, frame_step: see `WindowSpec` (a clip has context + horizon frames).
        resolution: (height, width) or int; frames are resized and centre-cropped; None keeps them.
        action_dim: width of the zero actions (the model's action_dim).
        cache: decode each video once and keep its resized frames in memory (uint8; a 64-frame
            32x32 video is 200 kB). Without it every clip seeks and decodes its own frames.
        output: "tensors" (dict of torch tensors, see `Clip.to_tensors`) or "clip".
    """

    def __init__(
        self,
        root: str | Path,
        *,
        context: int = 1,
        horizon: int = 7,
        stride: int = 1,
        frame_step: int = 1,
        resolution: int | tuple[int, int] | None = 64,
        action_dim: int = 3,
        cache: bool = True,
        output: str = "tensors",
    ):
        if output not in ("tensors", "clip"):
            raise ValueError(f"output must be 'tensors' or 'clip', got {output!r}")
        if action_dim < 1:
            raise ValueError(f"action_dim={action_dim}; expected >= 1")
        self.root = Path(root)
        self.paths = find_videos(self.root)
        self.spec = WindowSpec(context=context, horizon=horizon, frame_step=frame_step, stride=stride)
        self.resolution, self.action_dim = resolution, action_dim
        self.cache, self.output = cache, output
        self.dataset_name = DATASET_NAME
        self.lengths = [len(VideoReader(p)) for p in self.paths]
        self.windows = build_windows([(i, 0, n) for i, n in enumerate(self.lengths)], self.spec)
        self._frames: dict[int, np.ndarray] = {}
        logger.info("%s: %d videos, %d windows", self.root, len(self.paths), len(self.windows))

    def __len__(self) -> int:
        return len(self.windows)

    def all_actions(self):
        """No actions to fit statistics on (see `zero_action_normalizer`)."""
        return iter(())

    def _video(self, i: int) -> np.ndarray:
        """All frames of video i, resized: uint8 [T, h, w, 3] (decoded once when caching)."""
        if i not in self._frames:
            with VideoReader(self.paths[i]) as reader:
                frames = resize_center_crop(reader.read(np.arange(self.lengths[i])), self.resolution)
            if not self.cache:
                return frames
            self._frames[i] = frames
        return self._frames[i]

    def get_clip(self, i: int) -> Clip:
        if not -len(self) <= i < len(self):
            raise IndexError(f"clip index {i} out of range for {len(self)} clips")
        vi, start = self.windows[i]
        idx = self.spec.indices(start)
        if self.cache:
            frames = self._video(vi)[idx]
        else:
            with VideoReader(self.paths[vi]) as reader:
                frames = resize_center_crop(reader.read(idx), self.resolution)
        return Clip(
            frames=np.ascontiguousarray(frames),  # [T, H, W, 3]
            actions=np.zeros((len(idx), self.action_dim), np.float32),  # [T, D]
            state=None,
            episode=self.paths[vi].stem,
            segment=0,
            frame_indices=idx,
            meta={"dataset": DATASET_NAME, "source": str(self.paths[vi])},
        )

    def __getitem__(self, i: int):
        clip = self.get_clip(i)
        return clip if self.output == "clip" else clip.to_tensors()
