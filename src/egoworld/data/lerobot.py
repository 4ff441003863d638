"""LeRobotDataset folders (v2.0/v2.1 and v3.0), read with pyarrow and PyAV.

    meta/info.json     codebase_version, fps, features, data_path / video_path templates
    v2.x: data/chunk-XXX/episode_XXXXXX.parquet, videos/chunk-XXX/<key>/episode_XXXXXX.mp4,
          meta/episodes.jsonl
    v3.0: data/chunk-XXX/file-XXX.parquet (many episodes per file),
          videos/<key>/chunk-XXX/file-XXX.mp4 (episodes back to back),
          meta/episodes/chunk-XXX/file-XXX.parquet (per-episode file and timestamp ranges)

Image, action and state keys are chosen by name. Clip actions follow the clip convention:
actions[t] is the dataset's action recorded at the previous clip frame (raw index of
frame t-1), actions[0] = 0; state is the state column at frame 0.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from egoworld.actions.normalization import ActionNormalizer
from egoworld.data.clip import Clip, WindowSpec, build_windows, resize_center_crop, with_leading_zero
from egoworld.data.video import VideoReader

logger = logging.getLogger(__name__)


def read_info(root: Path) -> dict[str, Any]:
    """meta/info.json with its major version checked (2 or 3)."""
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (not a LeRobotDataset folder)")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    version = str(info.get("codebase_version", ""))
    if not version.startswith(("v2", "v3")):
        raise ValueError(f"{path}: codebase_version {version!r} not supported; expected v2.x or v3.0")
    for key in ("fps", "features"):
        if key not in info:
            raise ValueError(f"{path}: missing {key!r}")
    return info


def major_version(info: dict[str, Any]) -> int:
    return int(str(info["codebase_version"])[1])


def column_array(table, name: str) -> np.ndarray:
    """A parquet column of scalars or fixed-length lists -> float32 [N, D]."""
    import pyarrow as pa

    col = table.column(name).combine_chunks()
    n = len(col)
    if (
        pa.types.is_list(col.type)
        or pa.types.is_fixed_size_list(col.type)
        or pa.types.is_large_list(col.type)
    ):
        flat = col.flatten().to_numpy(zero_copy_only=False)
        if n and flat.size % n:
            raise ValueError(f"column {name!r} has rows of different lengths; expected fixed-length vectors")
        return flat.astype(np.float32).reshape(n, -1)
    return col.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, 1)


def read_episode_table(
    root: Path, info: dict[str, Any], columns: list[str]
) -> dict[int, dict[str, np.ndarray]]:
    """Every data parquet under data/, grouped by episode and sorted by frame_index."""
    import pyarrow.parquet as pq

    files = sorted((root / "data").rglob("*.parquet"))
    if not files:
        raise ValueError(f"{root / 'data'}: no parquet files")
    parts: dict[int, list[dict[str, np.ndarray]]] = {}
    for f in files:
        try:
            table = pq.read_table(f)
        except Exception as err:  # pyarrow raises several types for damaged files
            raise ValueError(f"{f}: not a readable parquet file ({err})") from err
        missing = [c for c in ["episode_index", "frame_index", *columns] if c not in table.column_names]
        if missing:
            raise ValueError(f"{f}: missing columns {missing} (has {table.column_names})")
        ep = table.column("episode_index").to_numpy()
        arrays = {c: column_array(table, c) for c in columns}
        arrays["frame_index"] = table.column("frame_index").to_numpy().astype(np.int64)
        for e in np.unique(ep):
            rows = ep == e
            parts.setdefault(int(e), []).append({k: v[rows] for k, v in arrays.items()})
    out = {}
    for e, chunks in parts.items():
        merged = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        order = np.argsort(merged["frame_index"], kind="stable")
        out[e] = {k: v[order] for k, v in merged.items()}
    return out


def video_locations(
    root: Path, info: dict[str, Any], key: str, episodes: list[int]
) -> dict[int, tuple[Path, float]]:
    """(mp4 path, start time in seconds) of each episode's video for feature `key`."""
    template = info.get("video_path")
    if not template:
        raise ValueError(f"{root}/meta/info.json has no video_path; cannot read video feature {key!r}")
    if major_version(info) == 2:
        size = int(info.get("chunks_size", 1000))
        return {
            e: (root / template.format(episode_chunk=e // size, video_key=key, episode_index=e), 0.0)
            for e in episodes
        }
    import pyarrow.parquet as pq

    files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    if not files:
        raise ValueError(f"{root}/meta/episodes: no parquet files (required by v3.0)")
    cols = [f"videos/{key}/chunk_index", f"videos/{key}/file_index", f"videos/{key}/from_timestamp"]
    out = {}
    for f in files:
        table = pq.read_table(f)
        missing = [c for c in ["episode_index", *cols] if c not in table.column_names]
        if missing:
            raise ValueError(f"{f}: missing columns {missing}")
        rows = zip(*(table.column(c).to_pylist() for c in ["episode_index", *cols]))
        for e, chunk, file, t0 in rows:
            out[int(e)] = (
                root / template.format(video_key=key, chunk_index=chunk, file_index=file),
                float(t0),
            )
    return out


class LeRobotDataset(Dataset):
    """Clips from a local LeRobotDataset folder (v2.x or v3.0).

    Args:
        root: folder holding meta/, data/ and videos/.
        image_key: video feature to read (default: the first feature of dtype "video").
        action_key: action column (default "action").
        state_key: state column (default "observation.state"; None for no state).
        context, horizon, stride, frame_step: see `WindowSpec`.
        resolution: (height, width) or int; None keeps the source size.
        normalizer: optional `ActionNormalizer`.
        output: "tensors" (see `Clip.to_tensors`) or "clip".
    """

    def __init__(
        self,
        root: str | Path,
        image_key: str | None = None,
        action_key: str = "action",
        state_key: str | None = "observation.state",
        context: int = 1,
        horizon: int = 7,
        stride: int = 1,
        frame_step: int = 1,
        resolution: int | tuple[int, int] | None = 256,
        normalizer: ActionNormalizer | None = None,
        output: str = "tensors",
    ):
        self.root = Path(root)
        self.dataset_name = "lerobot"
        if not self.root.is_dir():
            raise FileNotFoundError(f"LeRobot dataset folder not found: {self.root}")
        if output not in ("tensors", "clip"):
            raise ValueError(f"output must be 'tensors' or 'clip', got {output!r}")
        info = read_info(self.root)
        feats = info["features"]
        videos = [k for k, v in feats.items() if v.get("dtype") == "video"]
        if image_key is None:
            if not videos:
                raise ValueError(f"{self.root}: no video features (features: {sorted(feats)})")
            image_key = videos[0]
        if image_key not in videos:
            raise ValueError(f"image_key {image_key!r} is not a video feature; video features: {videos}")
        for k in (action_key, state_key):
            if k is not None and k not in feats:
                raise ValueError(f"{k!r} is not a feature of {self.root} (features: {sorted(feats)})")
        self.info, self.fps = info, float(info["fps"])
        self.image_key, self.action_key, self.state_key = image_key, action_key, state_key
        columns = [action_key] + ([state_key] if state_key else [])
        self.episodes = read_episode_table(self.root, info, columns)
        self.episode_ids = sorted(self.episodes)
        self.videos = video_locations(self.root, info, image_key, self.episode_ids)
        absent = [e for e in self.episode_ids if e not in self.videos]
        if absent:
            raise ValueError(f"{self.root}: no video entry for episodes {absent[:5]}")
        action_dim = self.episodes[self.episode_ids[0]][action_key].shape[1]
        if normalizer is not None:
            normalizer.check_compatible(action_dim)
        self.spec = WindowSpec(context, horizon, frame_step, stride)
        self.resolution, self.normalizer, self.output = resolution, normalizer, output
        runs = [(e, 0, len(self.episodes[e]["frame_index"])) for e in self.episode_ids]
        self.windows = build_windows(runs, self.spec)
        self._readers: dict[Path, VideoReader] = {}
        logger.info(
            "LeRobot %s: %d episodes, %d windows", info["codebase_version"], len(runs), len(self.windows)
        )

    def __len__(self) -> int:
        return len(self.windows)

    def all_actions(self):
        """Recorded [N, D] actions of every episode (for statistics)."""
        for e in self.episode_ids:
            yield self.episodes[e][self.action_key]

    def _reader(self, path: Path) -> VideoReader:
        if path not in self._readers:
            self._readers[path] = VideoReader(path)
        return self._readers[path]

    def get_clip(self, k: int) -> Clip:
        if not -len(self) <= k < len(self):
            raise IndexError(f"clip index {k} out of range for {len(self)} clips")
        e, start = self.windows[k]
        ep = self.episodes[e]
        idx = self.spec.indices(start)
        actions = with_leading_zero(ep[self.action_key][idx[:-1]])  # [T, D]
        if self.normalizer is not None:
            actions[1:] = self.normalizer.normalize(actions[1:])
        path, t0 = self.videos[e]
        video_idx = int(round(t0 * self.fps)) + ep["frame_index"][idx]
        frames = resize_center_crop(self._reader(path).read(video_idx), self.resolution)  # [T, H, W, 3]
        state = ep[self.state_key][idx[0]].astype(np.float32) if self.state_key else None
        return Clip(
            frames=frames,
            actions=actions.astype(np.float32),
            state=state,
            episode=str(e),
            segment=0,
            frame_indices=idx,
            meta={"dataset": "lerobot", "fps": self.fps / self.spec.frame_step, "image_key": self.image_key},
        )

    def __getitem__(self, k: int):
        clip = self.get_clip(k)
        return clip if self.output == "clip" else clip.to_tensors()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_readers"] = {}
        return state
