"""1X world model challenge v2.0 raw shards (humanoid EVE, 25-D state).

    <root>/metadata.json                      {"hz": 30, ...} for the whole set
    <root>/metadata/metadata_{i}.json         {"shard_num_frames": N, ...}
    <root>/videos/video_{i}.mp4               N frames, 512x512, 30 FPS
    <root>/robot_states/states_{i}.bin        float32 [N, 25] (layout: HUMANOID_STATE_LAYOUT)
    <root>/segment_indices/segment_idx_{i}.bin int32 [N]; a change marks a cut between recordings

Clips are subsampled (30 -> 5 FPS by default), never cross a segment, and carry
actions = state differences at the subsampled rate and state = the 25-D state at frame 0.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from egoworld.actions.normalization import ActionNormalizer
from egoworld.actions.spaces import HUMANOID_STATE_DIM, humanoid_deltas
from egoworld.data.check import Problem
from egoworld.data.clip import (
    Clip,
    WindowSpec,
    build_windows,
    contiguous_runs,
    frame_step_for,
    resize_center_crop,
    with_leading_zero,
)
from egoworld.data.untrusted import count, positive_number, read_json_object
from egoworld.data.video import VideoReader

logger = logging.getLogger(__name__)

DEFAULT_HZ = 30.0


def shard_paths(root: Path, i: int) -> dict[str, Path]:
    return {
        "video": root / "videos" / f"video_{i}.mp4",
        "states": root / "robot_states" / f"states_{i}.bin",
        "segments": root / "segment_indices" / f"segment_idx_{i}.bin",
        "metadata": root / "metadata" / f"metadata_{i}.json",
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return read_json_object(path)
    except OSError as err:
        raise ValueError(f"{path}: not readable ({err.strerror or err})") from None


def find_shards(root: Path) -> list[int]:
    """Shard numbers present under videos/, robot_states/ or metadata/."""
    found: set[int] = set()
    for sub, pattern in (
        ("videos", r"^video_(\d+)\.mp4$"),
        ("robot_states", r"^states_(\d+)\.bin$"),
        ("segment_indices", r"^segment_idx_(\d+)\.bin$"),
        ("metadata", r"^metadata_(\d+)\.json$"),
    ):
        d = root / sub
        if d.is_dir():
            found.update(int(m.group(1)) for p in d.iterdir() if (m := re.match(pattern, p.name)))
    return sorted(found)


def dataset_hz(root: Path) -> float:
    meta = root / "metadata.json"
    if not meta.is_file():
        logger.warning("%s missing; assuming %s Hz", meta, DEFAULT_HZ)
        return DEFAULT_HZ
    return positive_number(_read_json(meta).get("hz", DEFAULT_HZ), "'hz'", str(meta), upper=10_000)


def shard_num_frames(root: Path, i: int) -> int:
    """Frames in shard i, from metadata_{i}.json (else from the size of states_{i}.bin)."""
    paths = shard_paths(root, i)
    if paths["metadata"].is_file():
        meta = _read_json(paths["metadata"])
        if "shard_num_frames" not in meta:
            raise ValueError(f"{paths['metadata']}: no 'shard_num_frames' key (has {sorted(meta)})")
        return count(meta["shard_num_frames"], "'shard_num_frames'", str(paths["metadata"]))
    size = paths["states"].stat().st_size
    return size // (4 * HUMANOID_STATE_DIM)


def bin_problems(path: Path, n: int, dtype: str, width: int) -> list[str]:
    """Reasons a raw .bin is not `dtype [n, width]` (empty list when it is)."""
    if not path.is_file():
        return ["file missing"]
    size, want = path.stat().st_size, n * width * np.dtype(dtype).itemsize
    if size != want:
        shape = f"[{n}, {width}]" if width > 1 else f"[{n}]"
        return [f"{size} bytes, expected {want} ({dtype} {shape}); wrong size or dtype"]
    return []


def load_shard_arrays(root: Path, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Memory-mapped states float32 [N, 25] and segment ids int32 [N]; ValueError if malformed."""
    paths = shard_paths(root, i)
    n = shard_num_frames(root, i)
    if n <= 0:
        raise ValueError(f"{paths['metadata']}: shard {i} has {n} frames; expected > 0")
    for key, dtype, width in (("states", "float32", HUMANOID_STATE_DIM), ("segments", "int32", 1)):
        bad = bin_problems(paths[key], n, dtype, width)
        if bad:
            raise ValueError(f"{paths[key]}: {bad[0]}")
    states = np.memmap(paths["states"], dtype=np.float32, mode="r", shape=(n, HUMANOID_STATE_DIM))
    segments = np.memmap(paths["segments"], dtype=np.int32, mode="r", shape=(n,))
    return states, segments


class OneXDataset(Dataset):
    """Clips from 1X world model v2.0 raw shards (`dataset_name` "1x").

    Args:
        root: folder with videos/, robot_states/, segment_indices/, metadata/ and metadata.json.
        context, horizon: clip length = context + horizon frames at `fps`.
        stride: clip frames between window starts (EgoWM App. B uses 5).
        fps: target frame rate (30 -> 5 by default: every 6th raw frame).
        resolution: (height, width) or int; None keeps 512x512.
        shards: shard numbers to use (default: all found).
        normalizer: optional `ActionNormalizer` for the 25-D actions.
        output: "tensors" (see `Clip.to_tensors`) or "clip".
    """

    @staticmethod
    def fps_for_step(root: str | Path, frame_step: int) -> float:
        """The target fps that takes every `frame_step`-th raw frame of the dataset at `root`."""
        if frame_step < 1:
            raise ValueError(f"frame_step={frame_step}; expected an integer >= 1")
        return dataset_hz(Path(root)) / frame_step

    def __init__(
        self,
        root: str | Path,
        context: int = 1,
        horizon: int = 7,
        stride: int = 5,
        fps: float | None = 5,
        resolution: int | tuple[int, int] | None = 256,
        shards: list[int] | None = None,
        normalizer: ActionNormalizer | None = None,
        output: str = "tensors",
    ):
        self.root = Path(root)
        self.dataset_name = "1x"  # fps: a float divides the recording rate (see `fps_for_step`)
        if not self.root.is_dir():
            raise FileNotFoundError(f"1X dataset folder not found: {self.root}")
        if output not in ("tensors", "clip"):
            raise ValueError(f"output must be 'tensors' or 'clip', got {output!r}")
        self.hz = dataset_hz(self.root)
        self.fps = fps or self.hz
        self.spec = WindowSpec(context, horizon, frame_step_for(self.hz, fps), stride)
        self.shards = shards if shards is not None else find_shards(self.root)
        if not self.shards:
            raise ValueError(f"{self.root}: no shards (expected videos/video_<i>.mp4)")
        if normalizer is not None:
            normalizer.check_compatible(HUMANOID_STATE_DIM, dataset="1x", fps=float(self.fps))
        self.resolution, self.normalizer, self.output = resolution, normalizer, output
        runs = []
        for i in self.shards:
            video = shard_paths(self.root, i)["video"]
            if not video.is_file():
                raise FileNotFoundError(f"{video}: video of shard {i} missing")
            _, segments = load_shard_arrays(self.root, i)
            runs.extend(((i, seg), first, n) for seg, first, n in contiguous_runs(segments))
        self.windows = build_windows(runs, self.spec)
        self._readers: dict[int, VideoReader] = {}
        self._arrays: dict[int, np.ndarray] = {}
        logger.info("1X: %d shards, %d segments, %d windows", len(self.shards), len(runs), len(self.windows))

    def __len__(self) -> int:
        return len(self.windows)

    def _states(self, shard: int) -> np.ndarray:
        if shard not in self._arrays:
            self._arrays[shard] = load_shard_arrays(self.root, shard)[0]
        return self._arrays[shard]

    def _reader(self, shard: int) -> VideoReader:
        if shard not in self._readers:
            self._readers[shard] = VideoReader(shard_paths(self.root, shard)["video"])
        return self._readers[shard]

    def all_actions(self):
        """Unnormalized [N, 25] action arrays over every segment (for statistics)."""
        for i in self.shards:
            states, segments = load_shard_arrays(self.root, i)
            for _, first, n in contiguous_runs(segments):
                idx = first + np.arange(0, n, self.spec.frame_step)
                if len(idx) > 1:
                    yield humanoid_deltas(states[idx])

    def get_clip(self, k: int) -> Clip:
        if not -len(self) <= k < len(self):
            raise IndexError(f"clip index {k} out of range for {len(self)} clips")
        (shard, seg), start = self.windows[k]
        idx = self.spec.indices(start)
        states = np.asarray(self._states(shard)[idx], dtype=np.float32)  # [T, 25]
        actions = with_leading_zero(humanoid_deltas(states))
        if self.normalizer is not None:
            actions[1:] = self.normalizer.normalize(actions[1:])
        frames = resize_center_crop(self._reader(shard).read(idx), self.resolution)  # [T, H, W, 3]
        return Clip(
            frames=frames,
            actions=actions.astype(np.float32),
            state=states[0].copy(),
            episode=f"shard_{shard}",
            segment=seg,
            frame_indices=idx,
            meta={"dataset": "1x", "fps": self.fps, "shard": shard},
        )

    def __getitem__(self, k: int):
        clip = self.get_clip(k)
        return clip if self.output == "clip" else clip.to_tensors()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_readers"], state["_arrays"] = {}, {}
        return state


def check_onex(root: str | Path, deep: bool = False) -> list[Problem]:
    """Every problem in a 1X raw folder: missing files, .bin of wrong size/dtype, bad metadata,
    corrupt or short videos, NaN states. `deep` decodes every video frame."""
    root = Path(root)
    problems: list[Problem] = []
    if not root.is_dir():
        return [Problem(root, "folder not found")]
    if not (root / "metadata.json").is_file():
        problems.append(
            Problem(root / "metadata.json", f"missing; the frame rate is assumed {DEFAULT_HZ} Hz")
        )
    else:
        try:
            dataset_hz(root)
        except ValueError as err:
            problems.append(Problem(root / "metadata.json", str(err)))
    shards = find_shards(root)
    if not shards:
        problems.append(
            Problem(root, "no shards (expected videos/video_<i>.mp4 and robot_states/states_<i>.bin)")
        )
    for i in shards:
        paths = shard_paths(root, i)
        try:
            if not paths["metadata"].is_file():
                problems.append(Problem(paths["metadata"], "file missing"))
            if not paths["metadata"].is_file() and not paths["states"].is_file():
                continue
            n = shard_num_frames(root, i)
        except (ValueError, OSError) as err:
            problems.append(Problem(paths["metadata"], str(err)))
            continue
        if n <= 0:
            problems.append(Problem(paths["metadata"], f"shard_num_frames is {n}; empty shard"))
            continue
        for key, dtype, width in (("states", "float32", HUMANOID_STATE_DIM), ("segments", "int32", 1)):
            problems.extend(Problem(paths[key], r) for r in bin_problems(paths[key], n, dtype, width))
        if paths["states"].is_file() and not bin_problems(paths["states"], n, "float32", HUMANOID_STATE_DIM):
            states = np.memmap(paths["states"], dtype=np.float32, mode="r", shape=(n, HUMANOID_STATE_DIM))
            bad = np.flatnonzero(~np.isfinite(states).all(axis=1))
            if len(bad):
                problems.append(
                    Problem(paths["states"], f"{len(bad)} rows with NaN/inf, first at frame {bad[0]}")
                )
        problems.extend(check_video(paths["video"], n, deep=deep))
    return problems


def check_video(path: Path, n_expected: int | None, deep: bool = False) -> list[Problem]:
    """Problems with one mp4: missing, unreadable, wrong frame count, undecodable frames."""
    if not path.is_file():
        return [Problem(path, "file missing")]
    try:
        with VideoReader(path) as reader:
            n = len(reader)
            if n_expected is not None and n != n_expected:
                return [Problem(path, f"{n} video frames, expected {n_expected} (one per state row)")]
            if n == 0:
                return [Problem(path, "video has no frames")]
            if deep:
                decoded = reader.decode_all()  # frame by frame: memory does not grow with the video
                if decoded != n:
                    return [Problem(path, f"{decoded} frames decode, the container declares {n}")]
            else:
                reader.read([0, n - 1])
    except ValueError as err:
        return [Problem(path, str(err).removeprefix(f"{path}: "))]
    return []
