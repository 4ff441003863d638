"""Load evaluation videos (mp4 through PyAV, or a folder of frames) and pair predictions with GT.

A video crosses this module as uint8 `[T, H, W, 3]` RGB. In a folder of videos, each entry is a
video file (`.mp4`, `.mov`, `.avi`, `.mkv`, `.webm`) or a sub-folder of image frames (`.png`,
`.jpg`, `.jpeg`, sorted by the numbers in their names); its *name* is the file stem or the
folder name. Predictions and ground truth are matched by name. Side files `<name>.npz`
(ground-truth depth, poses, intrinsics, instance masks; see docs/metrics.md) are not videos.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


def _natural_key(path: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", path.name)]


def _frame_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=_natural_key)


def load_video(path: str | Path) -> np.ndarray:
    """Read a video file or a folder of frames as uint8 `[T, H, W, 3]` RGB."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}")
    if path.is_dir():
        return _load_frame_folder(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"{path}: unsupported video type {path.suffix!r}; expected one of {VIDEO_SUFFIXES}")
    import av

    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except av.error.FFmpegError as err:  # type: ignore[attr-defined]
        raise ValueError(f"{path}: cannot decode video ({err})") from err
    if not frames:
        raise ValueError(f"{path}: video has no frames (expected at least 1)")
    return np.stack(frames)


def _load_frame_folder(folder: Path) -> np.ndarray:
    import cv2

    files = _frame_files(folder)
    if not files:
        raise ValueError(f"{folder}: no frames found (expected files ending in {FRAME_SUFFIXES})")
    frames = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"{f}: unreadable image")
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    shapes = {fr.shape for fr in frames}
    if len(shapes) > 1:
        raise ValueError(f"{folder}: frames have different sizes {sorted(shapes)} (expected one size)")
    return np.stack(frames)


def write_frame_folder(frames: np.ndarray, folder: str | Path) -> Path:
    """Write uint8 `[T, H, W, 3]` RGB frames as `00000.png, 00001.png, …` into `folder`."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(np.asarray(frames, dtype=np.uint8)):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def list_videos(folder: str | Path) -> dict[str, Path]:
    """Map name → path for every video file or frame folder directly inside `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder of videos: {folder}")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
            name = p.stem
        elif p.is_dir() and _frame_files(p):
            name = p.name
        else:
            continue
        if name in found:
            raise ValueError(f"{folder}: two videos share the name {name!r}: {found[name].name} and {p.name}")
        found[name] = p
    return found


@dataclass(frozen=True)
class VideoPair:
    """A predicted video and its ground truth, matched by name."""

    name: str
    pred: Path
    gt: Path


def match_videos(pred_dir: str | Path, gt_dir: str | Path) -> list[VideoPair]:
    """Pair the videos of two folders by name; every name must appear in both."""
    pred = list_videos(pred_dir)
    gt = list_videos(gt_dir)
    if not pred:
        raise ValueError(f"{pred_dir}: no videos found (expected mp4 files or folders of frames)")
    if not gt:
        raise ValueError(f"{gt_dir}: no videos found (expected mp4 files or folders of frames)")
    only_pred = sorted(set(pred) - set(gt))
    only_gt = sorted(set(gt) - set(pred))
    if only_pred or only_gt:
        raise ValueError(
            f"unmatched video names: only in --pred {only_pred}, only in --gt {only_gt} "
            "(expected the same names in both folders)"
        )
    return [VideoPair(name, pred[name], gt[name]) for name in sorted(pred)]


def check_same_shape(pred: np.ndarray, gt: np.ndarray, name: str = "video") -> None:
    """Raise `ValueError` unless two `[T, H, W, 3]` videos have the same length and size."""
    if pred.shape[0] != gt.shape[0]:
        raise ValueError(
            f"{name}: predicted video has {pred.shape[0]} frames, ground truth has {gt.shape[0]}"
        )
    if pred.shape[1:] != gt.shape[1:]:
        raise ValueError(
            f"{name}: predicted frames are {pred.shape[2]}x{pred.shape[1]}, ground truth "
            f"{gt.shape[2]}x{gt.shape[1]} (expected the same size)"
        )


def load_side_file(video_path: Path) -> dict[str, np.ndarray]:
    """Ground-truth arrays stored beside a video as `<name>.npz` (empty dict if there is none)."""
    name = video_path.stem if video_path.is_file() else video_path.name
    side = video_path.parent / f"{name}.npz"
    if not side.is_file():
        return {}
    with np.load(side, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
