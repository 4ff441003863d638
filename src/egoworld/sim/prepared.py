"""Prepared training data of the observation model on disk: shards of clips, a manifest, a check.

A prepared folder (`egoworld sim prepare`) holds::

    egoworld_sim_data.json      the manifest: format, version, clip shape, settings, shards, prompts,
                                clips
    shard_00000.npz …           N clips each, stacked on a leading axis:
        target         uint8   [N, T, H, W, 3]  the recorded clip; target[:, 0] is the first frame
                                                (the current observation the model is given)
        scene          uint8   [N, T, H, W, 3]  the state rendered along the clip's cameras (0 = uncovered)
        mask           bool    [N, T, H, W]     True where the state does not cover the pixel
        skeleton       uint8   [N, T, H, W, 3]  the hand skeleton video
        K              float64 [N, 3, 3]        intrinsics at H x W
        cam_to_world   float64 [N, T, 4, 4]     camera-to-world (OpenCV axes)
        hand_keypoints float32 [N, T, 2, 21, 3] left/right hand, world metres, NaN = unknown

The first four keys are the clip of `egoworld.sim.loop.observation_clip`, which
`egoworld.sim.observe.batch_from_clips` stacks into a training batch: `load_clips` returns one dict
per clip, with its text prompt under "prompt" (a str, or None).

Prompts live in the manifest, not the shards, so a trainer knows every prompt before it reads a
clip: ``prompts`` lists the distinct prompts (in order of first use) and a clip's entry in ``clips``
has ``"prompt": i`` (an index into that list) when the clip has one (EgoDex's LLM description, a
plain npz's `prompt`; `egoworld.sim.episode_prompts`). `clip_prompts` reads them back, one per clip
in shard order; a manifest written before prompts existed gives None for every clip.

`write_clips` writes clips made in memory (e.g. by `benchmarks/bench_egosim.py`) in this format, so
that `egoworld train` reads them as `observation.data`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "egoworld_sim_data.json"
FORMAT = "egoworld.sim.prepared"
VERSION = 1
CLIP_KEYS = ("target", "scene", "mask", "skeleton")  # observation_clip's keys
EXTRA_KEYS = ("K", "cam_to_world", "hand_keypoints")
_SHARD = re.compile(r"shard_(\d{5})\.npz")


def _layout(n: int, t: int, h: int, w: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """Expected (shape, dtype kind/name) of every array of a shard of n clips."""
    return {
        "target": ((n, t, h, w, 3), "uint8"),
        "scene": ((n, t, h, w, 3), "uint8"),
        "mask": ((n, t, h, w), "bool"),
        "skeleton": ((n, t, h, w, 3), "uint8"),
        "K": ((n, 3, 3), "float64"),
        "cam_to_world": ((n, t, 4, 4), "float64"),
        "hand_keypoints": ((n, t, 2, 21, 3), "float32"),
    }


class ShardWriter:
    """Collects clip dicts and writes them as `shard_XXXXX.npz` files of `per_shard` clips."""

    def __init__(self, folder: Path, per_shard: int):
        if per_shard < 1:
            raise ValueError(f"clips per shard = {per_shard}; expected >= 1")
        self.folder, self.per_shard = Path(folder), int(per_shard)
        self.pending: list[dict[str, np.ndarray]] = []
        self.shards: list[dict[str, Any]] = []

    def add(self, clip: dict[str, np.ndarray]) -> tuple[int, int]:
        """Queue one clip; returns (shard index, index in the shard) it will have."""
        where = (len(self.shards), len(self.pending))
        self.pending.append(clip)
        if len(self.pending) >= self.per_shard:
            self.flush()
        return where

    def flush(self) -> None:
        if not self.pending:
            return
        name = f"shard_{len(self.shards):05d}.npz"
        arrays = {k: np.stack([c[k] for c in self.pending]) for k in CLIP_KEYS + EXTRA_KEYS}
        np.savez_compressed(self.folder / name, **arrays)
        self.shards.append({"file": name, "clips": len(self.pending)})
        self.pending = []


def load_shard(path: str | Path) -> list[dict[str, np.ndarray]]:
    """The clips of one shard as dicts (`batch_from_clips` takes a list of them); never a pickle."""
    from egoworld.io_utils import check_npz_sizes

    path = Path(path)
    check_npz_sizes(path, "shard")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    missing = [k for k in CLIP_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"shard {path} lacks {missing}; expected the arrays {list(CLIP_KEYS + EXTRA_KEYS)}")
    n = len(arrays["target"])
    return [{k: v[i] for k, v in arrays.items()} for i in range(n)]


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a prepared folder, its format and version checked."""
    from egoworld.data.untrusted import read_json_object

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(
            f"{folder} holds no {MANIFEST}; expected a folder written by `egoworld sim prepare`"
        )
    meta = read_json_object(folder / MANIFEST)
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(
            f"{folder / MANIFEST}: format {meta.get('format')!r} version {meta.get('version')!r}; "
            f"expected {FORMAT!r} version {VERSION}"
        )
    return meta


def load_clips(folder: str | Path) -> list[dict[str, Any]]:
    """Every clip of a prepared folder, in manifest order, each with its "prompt" (str or None)."""
    folder = Path(folder)
    meta = read_manifest(folder)
    clips: list[dict[str, Any]] = []
    for shard in meta.get("shards", []):
        clips += load_shard(folder / str(shard["file"]))
    for clip, prompt in zip(clips, clip_prompts(meta)):
        clip["prompt"] = prompt
    return clips


class PromptTable:
    """The manifest's ``prompts`` list, built clip by clip: `index(prompt)` gives what a clip entry
    stores (None for a clip without a prompt)."""

    def __init__(self):
        self.prompts: list[str] = []
        self._index: dict[str, int] = {}

    def index(self, prompt: str | None) -> int | None:
        if prompt is None:
            return None
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"clip prompt {prompt!r}; expected a non-empty str or None")
        if prompt not in self._index:
            self._index[prompt] = len(self.prompts)
            self.prompts.append(prompt)
        return self._index[prompt]


def clip_prompts(meta: dict[str, Any]) -> list[str | None]:
    """Each clip's prompt (or None), in shard order (shard after shard, clip after clip), from a
    manifest; ValueError naming the manifest entry when its prompts are malformed."""
    prompts = meta.get("prompts", [])
    if not isinstance(prompts, list) or not all(isinstance(p, str) and p for p in prompts):
        raise ValueError(f"{MANIFEST}: prompts is not a list of non-empty strings")
    try:
        shards = [int(s["clips"]) for s in meta.get("shards", [])]
        entries = {(int(e["shard"]), int(e["index"])): e.get("prompt") for e in meta.get("clips", [])}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{MANIFEST}: malformed shards or clips ({err!r})") from None
    out: list[str | None] = []
    for s, n in enumerate(shards):
        for i in range(n):
            k = entries.get((s, i))
            ok = k is None or (isinstance(k, int) and not isinstance(k, bool) and 0 <= k < len(prompts))
            if not ok:
                raise ValueError(
                    f"{MANIFEST}: clip {i} of shard {s} has prompt {k!r}; expected an index into prompts "
                    f"(0 … {len(prompts) - 1}) or none"
                )
            out.append(None if k is None else prompts[k])
    return out


def prompt_summary(prompts: list[str | None]) -> str:
    """ "N of M clips, K distinct" for the `--check` summary."""
    given = [p for p in prompts if p is not None]
    return f"{len(given)} of {len(prompts)} clips, {len(set(given))} distinct"


def _check_shard(path: Path, n: int, t: int, h: int, w: int) -> list[str]:
    """Problems of one shard against the manifest (clip count n, clip shape t, h, w)."""
    from egoworld.io_utils import check_npz_sizes
    from egoworld.sim.camera import validate_intrinsics, validate_poses

    if not path.is_file():
        return [f"{path.name}: missing (listed in {MANIFEST})"]
    try:
        check_npz_sizes(path, "shard")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as err:
        return [f"{path.name}: unreadable ({err})"]
    problems = []
    for key, (shape, dtype) in _layout(n, t, h, w).items():
        a = arrays.get(key)
        if a is None:
            problems.append(f"{path.name}: no '{key}' array")
        elif a.shape != shape or a.dtype != np.dtype(dtype):
            problems.append(
                f"{path.name}: '{key}' is {a.dtype} {list(a.shape)}; expected {dtype} {list(shape)}"
            )
    if problems:
        return problems
    covered_black = arrays["scene"][arrays["mask"]]
    if covered_black.size and covered_black.max() > 0:
        problems.append(f"{path.name}: scene has colour at unobserved (mask) pixels; expected black there")
    for i in range(n):
        try:
            validate_intrinsics(arrays["K"][i])
            validate_poses(arrays["cam_to_world"][i])
        except ValueError as err:
            problems.append(f"{path.name}: clip {i}: {err}")
    return problems


def check_prepared(folder: str | Path) -> tuple[list[str], dict[str, Any]]:
    """(problems, summary) of a prepared folder: manifest, every shard's arrays, clip counts.

    Raises only when `folder` is not a prepared folder at all (no readable manifest)."""
    folder = Path(folder)
    meta = read_manifest(folder)
    problems: list[str] = []
    try:
        t, h, w = (int(meta[k]) for k in ("frames", "height", "width"))
        shards = [(str(s["file"]), int(s["clips"])) for s in meta["shards"]]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{folder / MANIFEST}: malformed manifest ({err!r})") from None
    listed = set()
    for name, n in shards:
        if not _SHARD.fullmatch(name):
            problems.append(f"{MANIFEST}: shard name {name!r} is not shard_XXXXX.npz")
            continue
        listed.add(name)
        problems += _check_shard(folder / name, n, t, h, w)
    extra = sorted(p.name for p in folder.glob("shard_*.npz") if p.name not in listed)
    problems += [f"{name}: not listed in {MANIFEST}" for name in extra]
    total = sum(n for _, n in shards)
    if len(meta.get("clips", [])) != total:
        problems.append(f"{MANIFEST}: lists {len(meta.get('clips', []))} clips; the shards hold {total}")
    try:
        prompts = prompt_summary(clip_prompts(meta))
    except ValueError as err:
        problems.append(str(err))
        prompts = "unreadable"
    summary = {
        "clips": total,
        "shards": len(shards),
        "clip shape": f"{t} frames at {h}x{w}",
        "episodes": meta.get("episodes"),
        "layout": meta.get("layout"),
        "poses": meta.get("poses", "supplied"),
        "depth": meta.get("depth"),
        "prompts": prompts,
    }
    return problems, summary


def write_clips(folder: str | Path, clips: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Write in-memory clips (every key of `CLIP_KEYS + EXTRA_KEYS`, one clip's shapes as in the
    module docstring without N, and optionally "prompt": a str or None) as a prepared folder that
    `egoworld train` reads as `observation.data`; `meta` adds to the manifest (e.g. layout, render,
    voxel_size, fuse_frames, depth). Written beside `folder` and moved in place when complete;
    `folder` must be new, empty or an earlier prepared folder."""
    from egoworld.io_utils import atomic_dir

    if not clips:
        raise ValueError("no clips to write; expected at least one")
    t, h, w = clips[0]["target"].shape[:3]
    table = PromptTable()
    prompts = [table.index(c.get("prompt")) for c in clips]  # bad prompts fail before anything is written
    with atomic_dir(folder, replaces=MANIFEST) as tmp:
        writer = ShardWriter(tmp, per_shard=64)
        index = [writer.add(c) for c in clips]
        writer.flush()
        shape = {"frames": int(t), "height": int(h), "width": int(w)}
        entries = [clip_entry({"shard": s, "index": i}, k) for (s, i), k in zip(index, prompts)]
        meta = {**meta, **shape, "shards": writer.shards, "prompts": table.prompts, "clips": entries}
        write_manifest(tmp, meta)


def clip_entry(entry: dict[str, Any], prompt: int | None) -> dict[str, Any]:
    """A manifest clip entry with its prompt index (none when the clip has no prompt)."""
    return entry if prompt is None else {**entry, "prompt": prompt}


def write_manifest(folder: Path, meta: dict[str, Any]) -> None:
    meta = {"format": FORMAT, "version": VERSION, **meta}
    (Path(folder) / MANIFEST).write_text(json.dumps(meta, indent=1) + "\n")


def check_clip_shape(folder: str | Path, meta: dict[str, Any], frames: int, height: int, width: int) -> None:
    """ValueError unless the prepared folder's clips (its manifest `meta`) have the model's shape."""
    have = tuple(int(meta.get(k, -1)) for k in ("frames", "height", "width"))
    if have != (frames, height, width):
        raise ValueError(
            f"{folder} holds clips of {have[0]} frames at {have[1]}x{have[2]}; the model needs {frames} "
            f"frames at {height}x{width} "
            f"(run `egoworld sim prepare --frames {frames} --size {height} {width}`)"
        )


def load_training_clips(folder: str | Path, frames: int, height: int, width: int) -> list[dict[str, Any]]:
    """`load_clips` for a model of clip length `frames` at `height` x `width`; a mismatch is a ValueError."""
    check_clip_shape(folder, read_manifest(folder), frames, height, width)
    return load_clips(folder)
