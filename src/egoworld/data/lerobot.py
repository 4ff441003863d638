"""LeRobotDataset folders (v2.0/v2.1 and v3.0), read with pyarrow, PyAV and PIL.

    meta/info.json     codebase_version, fps, features, data_path / video_path templates
    v2.x: data/chunk-XXX/episode_XXXXXX.parquet, videos/chunk-XXX/<key>/episode_XXXXXX.mp4,
          meta/episodes.jsonl
    v3.0: data/chunk-XXX/file-XXX.parquet (many episodes per file),
          videos/<key>/chunk-XXX/file-XXX.mp4 (episodes back to back),
          meta/episodes/chunk-XXX/file-XXX.parquet (per-episode file and timestamp ranges)

A camera is a `video` feature (frames in the mp4s) or an `image` feature (datasets recorded with
use_videos=False: each frame is a PNG/JPEG in the data parquet, a Hugging Face `Image` struct
{bytes, path}). Image, action and state keys are chosen by name. Clip actions follow the clip
convention: actions[t] is the dataset's action recorded at the previous clip frame (raw index of
frame t-1), actions[0] = 0; state is the state column at frame 0.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from egoworld.actions.normalization import ActionNormalizer
from egoworld.data import untrusted
from egoworld.data.clip import Clip, WindowSpec, build_windows, resize_center_crop, with_leading_zero
from egoworld.data.untrusted import count, format_path_template, inside, positive_number, read_json_object
from egoworld.data.video import VideoReader

logger = logging.getLogger(__name__)


V2_TEMPLATE_FIELDS = ("episode_chunk", "episode_index", "video_key")
V3_TEMPLATE_FIELDS = ("chunk_index", "file_index", "video_key")
CAMERA_DTYPES = ("video", "image")
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")  # what PIL may parse from an image feature


def read_info(root: Path) -> dict[str, Any]:
    """meta/info.json with its major version, fps, features and templates checked."""
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (not a LeRobotDataset folder)")
    info = read_json_object(path)
    version = info.get("codebase_version", "")
    if not isinstance(version, str) or not version.startswith(("v2", "v3")):
        raise ValueError(f"{path}: codebase_version {version!r} not supported; expected v2.x or v3.0")
    for key in ("fps", "features"):
        if key not in info:
            raise ValueError(f"{path}: missing {key!r}")
    positive_number(info["fps"], "'fps'", str(path), upper=10_000)
    feats = info["features"]
    if not isinstance(feats, dict) or not all(isinstance(v, dict) for v in feats.values()):
        raise ValueError(f"{path}: 'features' must map each feature name to an object with a 'dtype'")
    if "chunks_size" in info:
        count(info["chunks_size"], "'chunks_size'", str(path), lower=1)
    for key in ("video_path", "data_path"):
        if key in info and info[key] is not None and not isinstance(info[key], str):
            raise ValueError(f"{path}: {key!r} is {info[key]!r}; expected a path template string")
    return info


def major_version(info: dict[str, Any]) -> int:
    return int(str(info["codebase_version"])[1])


def cameras(info: dict[str, Any]) -> list[str]:
    """Camera features: video features first, then image features, each in metadata order."""
    feats = info["features"]
    return [k for dtype in CAMERA_DTYPES for k, v in feats.items() if v.get("dtype") == dtype]


def open_parquet(path: Path):
    """A pyarrow ParquetFile whose declared row count and size were checked against the limits of
    `untrusted` (from the footer, before anything is decoded); ValueError naming the file."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        meta = pf.metadata
    except Exception as err:  # pyarrow raises several types for damaged files
        raise ValueError(f"{path}: not a readable parquet file ({err})") from None
    if meta.num_rows > untrusted.MAX_PARQUET_ROWS:
        limit = untrusted.MAX_PARQUET_ROWS
        raise ValueError(f"{path}: declares {meta.num_rows} rows; at most {limit} per file")
    declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    allowed = max(untrusted.MAX_PARQUET_EXPANSION * path.stat().st_size, 2**26)
    if declared > allowed:
        raise ValueError(
            f"{path}: declares {declared} bytes of data in a {path.stat().st_size}-byte file; expected "
            f"at most {untrusted.MAX_PARQUET_EXPANSION}x expansion"
        )
    return pf


def read_parquet(path: Path, columns: list[str] | None = None):
    """A pyarrow Table of `columns` (all when None) of a parquet file inside the dataset (checked by
    `open_parquet` first); ValueError naming the file."""
    pf = open_parquet(path)
    names = pf.schema_arrow.names
    if columns is not None:
        missing = [c for c in columns if c not in names]
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (has {names})")
    try:
        return pf.read(columns=columns)
    except Exception as err:
        raise ValueError(f"{path}: not a readable parquet file ({err})") from None


def column_array(table, name: str, where: str = "") -> np.ndarray:
    """A parquet column of scalars or fixed-length lists of numbers -> float32 [N, D]."""
    import pyarrow as pa

    col = table.column(name).combine_chunks()
    n = len(col)
    if n == 0:
        return np.zeros((0, 0), np.float32)
    try:
        t = col.type
        if pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
            flat = col.flatten().to_numpy(zero_copy_only=False)
            if n and flat.size % n:
                raise ValueError("rows of different lengths; expected fixed-length vectors")
            return flat.astype(np.float32).reshape(n, -1)
        return col.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, 1)
    except (ValueError, TypeError, pa.ArrowException) as err:
        raise ValueError(f"{where}column {name!r} ({col.type}) is not numeric vectors: {err}") from None


def _int_column(table, name: str, f: Path) -> np.ndarray:
    import pyarrow as pa

    col = table.column(name)
    if not pa.types.is_integer(col.type):
        raise ValueError(f"{f}: column {name!r} is {col.type}; expected integers")
    values = col.to_numpy(zero_copy_only=False)
    if col.null_count or (len(values) and (values.min() < 0 or values.max() > 2**62)):
        raise ValueError(f"{f}: column {name!r} holds nulls or values outside [0, 2**62]; expected indices")
    return values.astype(np.int64)


def _data_files(root: Path, sub: str) -> list[Path]:
    files = sorted((root / sub).rglob("*.parquet"))
    for f in files:
        inside(root, f, f"{root / sub}: parquet file")
    return files


def data_files(root: Path) -> list[Path]:
    """The data parquet files (data/**/*.parquet, sorted), each inside `root`."""
    return _data_files(root, "data")


def read_episode_table(
    root: Path, info: dict[str, Any], columns: list[str], files: list[Path] | None = None
) -> dict[int, dict[str, np.ndarray]]:
    """Every data parquet under data/ (or `files`), grouped by episode and sorted by frame_index.

    Each episode maps the `columns` to float32 [N, D] and "frame_index", "data_file" (position in
    `files`) and "data_row" (row inside that file) to int64 [N].
    """
    files = data_files(root) if files is None else files
    if not files:
        raise ValueError(f"{root / 'data'}: no parquet files")
    parts: dict[int, list[dict[str, np.ndarray]]] = {}
    for i, f in enumerate(files):
        table = read_parquet(f, ["episode_index", "frame_index", *columns])
        ep = _int_column(table, "episode_index", f)
        arrays = {c: column_array(table, c, f"{f}: ") for c in columns}
        arrays["frame_index"] = _int_column(table, "frame_index", f)
        arrays["data_file"] = np.full(len(ep), i, np.int64)
        arrays["data_row"] = np.arange(len(ep), dtype=np.int64)
        for e in np.unique(ep):
            rows = ep == e
            parts.setdefault(int(e), []).append({k: v[rows] for k, v in arrays.items()})
    out = {}
    for e, chunks in parts.items():
        widths = {k: {c[k].shape[1:] for c in chunks} for k in columns}
        bad = [k for k, w in widths.items() if len(w) > 1]
        if bad:
            raise ValueError(f"{root / 'data'}: episode {e} has rows of different widths in {bad}")
        merged = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        order = np.argsort(merged["frame_index"], kind="stable")
        out[e] = {k: v[order] for k, v in merged.items()}
    if not out:
        raise ValueError(f"{root / 'data'}: the parquet files hold no rows; expected at least one episode")
    return out


def video_locations(
    root: Path, info: dict[str, Any], key: str, episodes: list[int]
) -> dict[int, tuple[Path, float]]:
    """(mp4 path, start time in seconds) of each episode's video for feature `key`.

    Every path is built from the `video_path` template of meta/info.json and must resolve inside
    `root`; a template with unknown fields, or a path leading outside, is a ValueError.
    """
    where = f"{root / 'meta' / 'info.json'}: video_path"
    template = info.get("video_path")
    if not template:
        raise ValueError(f"{root}/meta/info.json has no video_path; cannot read video feature {key!r}")

    def located(values: dict[str, Any]) -> Path:
        path = root / format_path_template(template, values, where)
        return inside(root, path, f"{where} {template!r} for {key!r}")

    if major_version(info) == 2:
        size = int(info.get("chunks_size", 1000))
        fields = dict.fromkeys(V2_TEMPLATE_FIELDS, 0)
        format_path_template(template, fields, where)  # unknown fields: one error, before any episode
        return {
            e: (located({"episode_chunk": e // size, "video_key": key, "episode_index": e}), 0.0)
            for e in episodes
        }
    format_path_template(template, dict.fromkeys(V3_TEMPLATE_FIELDS, 0), where)
    files = _data_files(root, "meta/episodes")
    if not files:
        raise ValueError(f"{root}/meta/episodes: no parquet files (required by v3.0)")
    cols = [f"videos/{key}/chunk_index", f"videos/{key}/file_index", f"videos/{key}/from_timestamp"]
    out = {}
    for f in files:
        table = read_parquet(f, ["episode_index", *cols])
        ep = _int_column(table, "episode_index", f)
        chunk, file = (_int_column(table, c, f) for c in cols[:2])
        t0 = column_array(table, cols[2], f"{f}: ")[:, 0].astype(np.float64)
        if not np.isfinite(t0).all() or (len(t0) and (t0.min() < 0 or t0.max() > 1e7)):
            raise ValueError(f"{f}: column {cols[2]!r} holds values outside [0, 1e7] s; expected start times")
        paths: dict[tuple[int, int], Path] = {}
        for e, c, i, t in zip(ep.tolist(), chunk.tolist(), file.tolist(), t0.tolist()):
            if (c, i) not in paths:
                paths[c, i] = located({"video_key": key, "chunk_index": c, "file_index": i})
            out[int(e)] = (paths[c, i], float(t))
    return out


def decode_image(data: bytes, where: str) -> np.ndarray:
    """uint8 [H, W, 3] RGB of one encoded PNG, JPEG or WebP frame. The header is checked against
    `untrusted.MAX_IMAGE_SIDE` before any pixel is decoded; ValueError starting with `where`."""
    import io
    import warnings

    from PIL import Image

    try:
        untrusted.image_size_of(data)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as img:
                return np.array(img.convert("RGB"))
    except Exception as err:  # PIL raises many types for damaged or unsupported data
        raise ValueError(
            f"{where}: cannot decode the image ({type(err).__name__}: {err}); expected PNG, JPEG or WebP"
        ) from None


def _is_image_column(t) -> bool:
    import pyarrow as pa

    binary = (pa.binary(), pa.large_binary())
    if pa.types.is_struct(t):
        names = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
        if "bytes" not in names and "path" not in names:
            return False
        ok_path = names.get("path", pa.string()) in (pa.string(), pa.large_string())
        return names.get("bytes", pa.binary()) in binary and ok_path
    return t in binary


class ParquetImages:
    """Frames of one `image` feature, stored in the data parquet files.

    Each cell is a Hugging Face `Image` struct {bytes, path} (or plain bytes). Embedded bytes are
    used when present; otherwise `path` must be relative and resolve inside the dataset folder.
    Construction checks only the column type of every file; frames are decoded when read. Parquet
    reads whole row groups (lerobot v3.0 writes one per episode), so the last one read is kept.

    Args:
        root: the dataset folder.
        files: the data parquet files, as passed to `read_episode_table`.
        key: the image feature (a column of every data file).
    """

    def __init__(self, root: Path, files: list[Path], key: str):
        self.root, self.files, self.key = Path(root), list(files), key
        self._last: tuple[tuple[Path, int], Any] | None = None  # ((file, row group), cells)
        for f in self.files:
            schema = open_parquet(f).schema_arrow
            if key not in schema.names:
                raise ValueError(f"{f}: no column {key!r} (has {schema.names}); expected the image feature")
            t = schema.field(key).type
            if not _is_image_column(t):
                raise ValueError(
                    f"{f}: column {key!r} is {t}; expected images as struct<bytes: binary, path: string>"
                )

    def _bytes(self, cell: dict | bytes | None, where: str) -> bytes:
        if isinstance(cell, bytes):
            return cell
        data, rel = (cell or {}).get("bytes"), (cell or {}).get("path")
        if data is not None:
            return data
        if not rel:
            raise ValueError(f"{where}: holds no image (neither bytes nor path)")
        if Path(rel).is_absolute():
            raise ValueError(
                f"{where}: image path {rel!r} is absolute; expected a path inside the dataset folder"
            )
        path = inside(self.root, self.root / rel, f"{where}: image path {rel!r}")
        if not path.is_file():
            raise ValueError(f"{where}: image file {str(path)!r} not found")
        untrusted.check_file_size(path, 3 * untrusted.MAX_IMAGE_SIDE**2 + 2**20, "the image file")
        return path.read_bytes()

    def _read_file(self, f: Path, rows: np.ndarray) -> dict[int, np.ndarray]:
        pf = open_parquet(f)
        meta = pf.metadata
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        if len(rows) and rows.max() >= starts[-1]:
            raise ValueError(f"{f}: has {starts[-1]} rows; row {int(rows.max())} of {self.key!r} requested")
        out: dict[int, np.ndarray] = {}
        groups = np.searchsorted(starts, rows, side="right") - 1
        for g in np.unique(groups).tolist():
            cells = self._row_group(pf, f, g)
            wanted = rows[groups == g]
            for r, cell in zip(wanted.tolist(), cells.take(wanted - starts[g]).to_pylist()):
                where = f"{f}: row {r} of {self.key!r}"
                out[r] = decode_image(self._bytes(cell, where), where)
        return out

    def _row_group(self, pf, f: Path, g: int):
        if self._last is None or self._last[0] != (f, g):
            try:
                cells = pf.read_row_group(g, columns=[self.key]).column(0)
            except Exception as err:  # pyarrow raises several types for damaged files
                raise ValueError(f"{f}: not a readable parquet file ({err})") from None
            self._last = ((f, g), cells)
        return self._last[1]

    def __getstate__(self):
        return {**self.__dict__, "_last": None}

    def read(self, file_ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Frames at (data file, row) pairs, in order, as uint8 [N, H, W, 3] RGB."""
        file_ids, rows = np.asarray(file_ids, np.int64), np.asarray(rows, np.int64)
        decoded = {}
        for i in np.unique(file_ids).tolist():
            got = self._read_file(self.files[i], np.unique(rows[file_ids == i]))
            decoded.update({(i, r): img for r, img in got.items()})
        frames = [decoded[i, r] for i, r in zip(file_ids.tolist(), rows.tolist())]
        sizes = sorted({f.shape for f in frames})
        if len(sizes) > 1:
            raise ValueError(
                f"{self.files[int(file_ids[0])]}: frames of {self.key!r} have different sizes {sizes}; "
                "expected one size"
            )
        return np.stack(frames)  # [N, H, W, 3]


class LeRobotDataset(Dataset):
    """Clips from a local LeRobotDataset folder (v2.x or v3.0), video or image mode.

    Args:
        root: folder holding meta/, data/ and videos/.
        image_key: camera to read: a `video` feature (frames in mp4s) or an `image` feature (frames
            in the data parquet). Default: the first video feature, else the first image feature.
        action_key: action column (default "action").
        state_key: state column; "auto" (default): "observation.state" when the dataset has it, else no
            state; None: no state.
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
        state_key: str | None = "auto",
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
        cams = cameras(info)
        if image_key is None:
            if not cams:
                raise ValueError(f"{self.root}: no video or image features (features: {sorted(feats)})")
            image_key = cams[0]
        if image_key not in cams:
            raise ValueError(
                f"image_key {image_key!r} is not a video feature or an image feature; camera features: {cams}"
            )
        if state_key == "auto":  # a dataset without a state gives clips without one
            state_key = "observation.state" if "observation.state" in feats else None
        for k in (action_key, state_key):
            if k is not None and k not in feats:
                raise ValueError(f"{k!r} is not a feature of {self.root} (features: {sorted(feats)})")
        self.info, self.fps = info, float(info["fps"])
        self.image_key, self.action_key, self.state_key = image_key, action_key, state_key
        columns = [action_key] + ([state_key] if state_key else [])
        files = data_files(self.root)
        self.episodes = read_episode_table(self.root, info, columns, files)
        self.episode_ids = sorted(self.episodes)
        self.videos: dict[int, tuple[Path, float]] = {}  # episode -> (mp4, start time in s)
        self.images: ParquetImages | None = None
        if feats[image_key]["dtype"] == "video":
            self.videos = self._locate_videos()
        else:
            self.images = ParquetImages(self.root, files, image_key)
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

    def _locate_videos(self) -> dict[int, tuple[Path, float]]:
        videos = video_locations(self.root, self.info, self.image_key, self.episode_ids)
        absent = [e for e in self.episode_ids if e not in videos]
        if absent:
            raise ValueError(f"{self.root}: no video entry for episodes {absent[:5]}")
        missing = sorted({str(p) for p, _ in videos.values() if not p.is_file()})
        if missing:
            raise ValueError(
                f"{missing[0]}: video file not found ({len(missing)} {self.image_key!r} videos missing)"
            )
        return videos

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
        if self.images is not None:
            frames = self.images.read(ep["data_file"][idx], ep["data_row"][idx])  # [T, H, W, 3]
        else:
            path, t0 = self.videos[e]
            video_idx = int(round(t0 * self.fps)) + ep["frame_index"][idx]
            frames = self._reader(path).read(video_idx)  # [T, H, W, 3]
        frames = resize_center_crop(frames, self.resolution)
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
