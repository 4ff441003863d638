"""The one clip abstraction every reader returns, and the windowing shared by all readers.

Action convention (all formats): `actions[t]` is the action taken between frame t-1 and
frame t of the clip; `actions[0]` is all zeros (nothing happened before the first frame).
`state` is the robot state at frame 0 (the initial state of EgoWM Eq. 6), or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Clip:
    """A window of consecutive (possibly subsampled) frames with their actions.

    Args:
        frames: uint8 [T, H, W, 3] RGB.
        actions: float32 [T, D]; actions[t] moves frame t-1 to frame t, actions[0] = 0.
        state: float32 [S] state at frame 0, or None.
        episode: episode / trajectory / shard id.
        segment: contiguous segment id inside the episode (0 when the format has none).
        frame_indices: int64 [T] indices of the frames in the episode's raw frame numbering.
        meta: anything else (dataset name, fps, spacing, source path).
    """

    frames: np.ndarray  # [T, H, W, 3] uint8
    actions: np.ndarray  # [T, D] float32
    state: np.ndarray | None  # [S] float32
    episode: str
    segment: int
    frame_indices: np.ndarray  # [T] int64
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        f, a = self.frames, self.actions
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [T, H, W, 3], got {f.dtype} {f.shape}")
        if a.ndim != 2 or a.shape[0] != f.shape[0]:
            raise ValueError(f"actions must be [T={f.shape[0]}, D], got shape {a.shape}")
        if len(self.frame_indices) != f.shape[0]:
            raise ValueError(f"frame_indices has {len(self.frame_indices)} entries, expected {f.shape[0]}")

    def __len__(self) -> int:
        return self.frames.shape[0]

    def to_tensors(self) -> dict[str, Any]:
        """Torch tensors for a DataLoader: frames float32 [T, 3, H, W] in [-1, 1], actions [T, D],
        state [S] (absent when None), plus `frame_indices` [T] and `episode`."""
        import torch

        frames = torch.from_numpy(np.ascontiguousarray(self.frames)).permute(0, 3, 1, 2)
        out: dict[str, Any] = {
            "frames": frames.float().div_(127.5).sub_(1.0),  # [T, 3, H, W]
            "actions": torch.from_numpy(np.ascontiguousarray(self.actions, dtype=np.float32)),  # [T, D]
            "frame_indices": torch.from_numpy(np.asarray(self.frame_indices, dtype=np.int64)),
            "episode": self.episode,
            "segment": int(self.segment),
        }
        if self.state is not None:
            out["state"] = torch.from_numpy(np.asarray(self.state, dtype=np.float32))  # [S]
        return out


@dataclass(frozen=True)
class WindowSpec:
    """How clips are cut from a run of raw frames.

    Args:
        context: frames given to the model.
        horizon: frames to predict; a clip has context + horizon frames.
        frame_step: raw frames between consecutive clip frames (frame-rate subsampling,
            e.g. 6 for 1X 30 -> 5 FPS).
        stride: clip frames between the starts of consecutive windows (EgoWM App. B:
            RECON 5, SCAND 1, TartanDrive 1, 1X 5).
    """

    context: int = 1
    horizon: int = 7
    frame_step: int = 1
    stride: int = 1

    def __post_init__(self) -> None:
        for name in ("context", "frame_step", "stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.horizon < 0:
            raise ValueError(f"horizon must be >= 0, got {self.horizon}")

    @property
    def length(self) -> int:
        return self.context + self.horizon

    @property
    def span(self) -> int:
        """Raw frames covered by one window, first to last inclusive."""
        return (self.length - 1) * self.frame_step + 1

    def starts(self, n_frames: int) -> np.ndarray:
        """Raw start indices of every window that fits inside a run of `n_frames` frames."""
        last = n_frames - self.span
        if last < 0:
            return np.zeros(0, dtype=np.int64)
        return np.arange(0, last + 1, self.stride * self.frame_step, dtype=np.int64)

    def indices(self, start: int) -> np.ndarray:
        """Raw frame indices [T] of the window beginning at `start`."""
        return start + self.frame_step * np.arange(self.length, dtype=np.int64)


def frame_step_for(src_fps: float, dst_fps: float | None) -> int:
    """Raw frames per clip frame to go from `src_fps` to `dst_fps` (must divide evenly)."""
    if dst_fps is None or dst_fps == src_fps:
        return 1
    if dst_fps <= 0 or dst_fps > src_fps:
        raise ValueError(f"target fps must be in (0, {src_fps}], got {dst_fps}")
    ratio = src_fps / dst_fps
    if abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(f"target fps {dst_fps} must divide source fps {src_fps} evenly")
    return int(round(ratio))


def contiguous_runs(segment_ids: np.ndarray) -> list[tuple[int, int, int]]:
    """(segment id, first index, length) for each run of equal consecutive ids in [N]."""
    ids = np.asarray(segment_ids).reshape(-1)
    if len(ids) == 0:
        return []
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    bounds = np.concatenate([[0], cuts, [len(ids)]])
    return [(int(ids[a]), int(a), int(b - a)) for a, b in zip(bounds[:-1], bounds[1:])]


def build_windows(runs: list[tuple[Any, int, int]], spec: WindowSpec) -> list[tuple[Any, int]]:
    """Windows that stay inside each run.

    Args:
        runs: (key, first raw index, length) per episode or segment.

    Returns:
        (key, raw start index) per window; never spans two runs.
    """
    out: list[tuple[Any, int]] = []
    for key, first, n in runs:
        out.extend((key, int(first + s)) for s in spec.starts(n))
    return out


def with_leading_zero(deltas: np.ndarray) -> np.ndarray:
    """[T-1, D] per-step actions -> [T, D] in the clip convention (actions[0] = 0)."""
    deltas = np.asarray(deltas, dtype=np.float32)
    return np.concatenate([np.zeros((1, deltas.shape[1]), np.float32), deltas], axis=0)


def parse_resolution(resolution: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """None, an int (square) or (height, width)."""
    if resolution is None:
        return None
    if isinstance(resolution, int):
        resolution = (resolution, resolution)
    h, w = (int(v) for v in resolution)
    if h < 1 or w < 1:
        raise ValueError(f"resolution must be positive (height, width), got {resolution}")
    return h, w


def resize_center_crop(frames: np.ndarray, resolution: int | tuple[int, int] | None) -> np.ndarray:
    """Scale so the frame covers (height, width), then crop the centre. [T, H, W, 3] -> [T, h, w, 3]."""
    size = parse_resolution(resolution)
    if size is None:
        return frames
    import cv2

    h, w = size
    t, H, W, _ = frames.shape
    if (H, W) == (h, w):
        return frames
    scale = max(h / H, w / W)
    nh, nw = max(h, round(H * scale)), max(w, round(W * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = np.empty((t, h, w, 3), np.uint8)
    y0, x0 = (nh - h) // 2, (nw - w) // 2
    for i in range(t):
        out[i] = cv2.resize(frames[i], (nw, nh), interpolation=interp)[y0 : y0 + h, x0 : x0 + w]
    return out
