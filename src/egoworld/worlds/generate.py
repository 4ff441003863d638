"""Generate a synthetic dataset: validate, render episodes in parallel processes, write atomically.

The output folder appears whole or not at all. `egoworld_world.json` at its root records what made
it, so running the same request again is a no-op and a different request never overwrites it.

Memory does not grow with the request: every task streams frames to disk as they are rendered
(image files, mp4 encoders, `.npy` ground truth appended frame by frame by `writers.NpyStream`),
so a job holds one frame plus per-frame poses and keypoints. Disk does grow: `estimate_bytes`.
"""

from __future__ import annotations

import importlib
import json
import logging
import multiprocessing as mp
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from egoworld.io_utils import atomic_dir
from egoworld.worlds import GENERATOR_VERSION, TASKS

log = logging.getLogger(__name__)

WORLD_FILE = "egoworld_world.json"
MIN_SIZE, MAX_SIZE = 16, 1024
MAX_FRAMES, MAX_EPISODES, MAX_WORKERS = 100_000, 1_000_000, 256


@dataclass
class WorldSpec:
    """What to generate. Args:
    task: one of `TASKS`.
    episodes: number of episodes (>= 1).
    frames: frames per episode (>= 2).
    size: square image side in pixels (even, 16..1024).
    seed: base seed; episode i is a function of (seed, i, task) only.
    textures: optional folder of images used as wall, floor, object and painting textures.
    workers: parallel processes (does not change the output).
    options: task options, e.g. {"trajectory": "circle"} for nav, {"effector": "gripper"} for tabletop.
    """

    task: str
    episodes: int
    frames: int
    size: int
    seed: int = 0
    textures: str | None = None
    workers: int = 1
    options: dict = field(default_factory=dict)


def _check_int(name: str, value, lo: int, hi: int, extra: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}]{extra}; got {value!r}")


def validate(spec: WorldSpec) -> None:
    """Raise ValueError naming the bad field, its value and what is expected."""
    if spec.task not in TASKS:
        raise ValueError(f"unknown task {spec.task!r}; expected one of {', '.join(TASKS)}")
    _check_int("size", spec.size, MIN_SIZE, MAX_SIZE)
    if spec.size % 2:
        raise ValueError(f"size must be even (video encoders need even sides); got {spec.size}")
    _check_int("episodes", spec.episodes, 1, MAX_EPISODES)
    _check_int("frames", spec.frames, 2, MAX_FRAMES)
    _check_int("workers", spec.workers, 1, MAX_WORKERS)
    _check_int("seed", spec.seed, 0, 2**63 - 1)
    module = task_module(spec.task)
    if getattr(module, "NEEDS_TEXTURES", False) and spec.textures is None:
        raise ValueError(f"task {spec.task!r} needs --textures DIR: the folder of pictures it is made from")
    if hasattr(module, "validate_options"):
        module.validate_options(spec.options)
    elif spec.options:
        raise ValueError(f"task {spec.task!r} takes no options; got {sorted(spec.options)}")


# approximate bytes per pixel per frame written to disk, by task (ground truth dominates)
_BYTES_PER_PIXEL = {"nav": 10.0, "tabletop": 8.0, "humanoid": 10.0, "passive": 0.5, "turns": 0.5}


def estimate_bytes(spec: WorldSpec) -> int:
    """Rough size of the dataset on disk (float32 depth, uint16 ids, uint8 rgb copies, images)."""
    return int(_BYTES_PER_PIXEL[spec.task] * spec.size * spec.size * spec.frames * spec.episodes)


def task_module(task: str):
    return importlib.import_module(f"egoworld.worlds.{task}")


def describe(spec: WorldSpec, texture_digest: str) -> dict:
    """The identity of a dataset: two requests with equal descriptions produce equal folders."""
    return {
        "format": "egoworld_world",
        "generator_version": GENERATOR_VERSION,
        "task": spec.task,
        "seed": spec.seed,
        "episodes": spec.episodes,
        "frames": spec.frames,
        "size": spec.size,
        "image_size": [spec.size, spec.size],
        "textures": texture_digest,
        "options": dict(sorted(spec.options.items())),
    }


def existing(out: Path) -> dict | None:
    """The description in `out/egoworld_world.json`, None if `out` is missing or empty.

    Raises FileExistsError when `out` holds files that are not an egoworld world.
    """
    if not out.exists():
        return None
    if not out.is_dir():
        raise FileExistsError(f"output path {str(out)!r} is a file; expected a folder (new or empty)")
    if not any(out.iterdir()):
        return None
    try:
        return json.loads((out / WORLD_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise FileExistsError(
            f"output folder {str(out)!r} is not empty and holds no readable {WORLD_FILE}; "
            "expected a new or empty folder (nothing was overwritten)"
        ) from err


def dataset_identity(desc: dict) -> dict:
    """The fields of a dataset description that decide whether an existing folder is the same dataset."""
    keys = (
        "format",
        "generator_version",
        "task",
        "seed",
        "episodes",
        "frames",
        "size",
        "textures",
        "options",
    )
    return {k: desc.get(k) for k in keys}


def _run_job(job: tuple[str, str, dict]) -> dict:
    task, out, kwargs = job
    return task_module(task).run_job(Path(out), **kwargs)


def generate(spec: WorldSpec, out: str | Path, *, progress: bool = True) -> dict:
    """Generate `spec` into folder `out`; returns the dataset description with "status".

    status is "created", or "unchanged" when `out` already holds the same dataset.
    """
    from tqdm.auto import tqdm

    from egoworld.worlds import textures as tex

    validate(spec)
    out = Path(out)
    images = tex.load_folder(spec.textures) if spec.textures is not None else None
    desc = describe(spec, tex.digest(images) if images else "procedural")
    old = existing(out)
    if old is not None:
        if dataset_identity(old) == dataset_identity(desc):
            log.info("%s already holds this dataset", out)
            return {**old, "status": "unchanged"}
        diff = {k: (old.get(k), v) for k, v in dataset_identity(desc).items() if old.get(k) != v}
        raise FileExistsError(
            f"output folder {str(out)!r} already holds a different dataset "
            f"(field: (existing, requested) = {diff}); choose another --out (nothing was overwritten)"
        )
    need = estimate_bytes(spec)
    free = shutil.disk_usage(out.parent if out.parent.exists() else Path.cwd()).free
    log.info("generating about %.1f GB into %s", need / 1e9, out)
    if need > free:
        log.warning(
            "the dataset needs about %.1f GB; %.1f GB are free where %s goes", need / 1e9, free / 1e9, out
        )
    module = task_module(spec.task)
    jobs = [
        (
            spec.task,
            "",
            {
                **kw,
                "seed": spec.seed,
                "frames": spec.frames,
                "size": spec.size,
                "textures": images,
                **spec.options,
            },
        )
        for kw in module.job_list(spec.episodes)
    ]
    with atomic_dir(out) as tmp:
        jobs = [(task, str(tmp), kw) for task, _, kw in jobs]
        bar = tqdm(total=len(jobs), desc=f"worlds {spec.task}", unit="job", disable=not progress)
        if spec.workers == 1:
            results = []
            for job in jobs:
                results.append(_run_job(job))
                bar.update()
        else:
            with mp.get_context("spawn").Pool(min(spec.workers, len(jobs))) as pool:
                results = []
                for result in pool.imap(_run_job, jobs):
                    results.append(result)
                    bar.update()
        bar.close()
        extra = module.finalize(tmp, spec, results) if hasattr(module, "finalize") else {}
        desc = {**desc, **extra, "items": results}
        (tmp / WORLD_FILE).write_text(json.dumps(desc, indent=1) + "\n")
    log.info("wrote %d %s jobs to %s", len(jobs), spec.task, out)
    return {**desc, "status": "created"}


__all__ = ["WorldSpec", "generate", "validate", "describe", "estimate_bytes"]
