"""`check_dataset`: every problem in a dataset folder, each with its file and reason.

Checks never raise on bad data (only on a path that does not exist or an unknown format);
they collect `Problem`s and a summary (episodes, frames, action ranges).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

FORMATS = ("nwm", "recon_h5", "onex", "lerobot")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Report:
    """What `check_dataset` found."""

    path: Path
    format: str
    problems: list[Problem] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"{self.path} ({self.format})"]
        out += [f"  {k}: {v}" for k, v in self.summary.items()]
        out.append(f"  problems: {len(self.problems)}")
        out += [f"  - {p}" for p in self.problems]
        return out


def detect_format(path: str | Path) -> str:
    """Guess the layout of a dataset folder (or a single RECON .hdf5 file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset path not found: {path}")
    if path.is_file():
        if path.suffix in (".hdf5", ".h5"):
            return "recon_h5"
        raise ValueError(f"{path}: cannot tell the dataset format of this file; pass --format ({FORMATS})")
    if (path / "meta" / "info.json").is_file():
        return "lerobot"
    if (path / "robot_states").is_dir() or (path / "segment_indices").is_dir():
        return "onex"
    if (path / "traj_data.pkl").is_file() or any((p / "traj_data.pkl").is_file() for p in _subdirs(path)):
        return "nwm"
    if any(p.suffix in (".hdf5", ".h5") for p in path.iterdir()):
        return "recon_h5"
    raise ValueError(f"{path}: not a known dataset layout; pass --format, one of {FORMATS}")


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _action_ranges(arrays: list[np.ndarray]) -> str:
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        return "n/a"
    a = np.concatenate(arrays)
    return ", ".join(f"[{lo:.3g}, {hi:.3g}]" for lo, hi in zip(a.min(0), a.max(0)))


def check_dataset(path: str | Path, format: str | None = None, deep: bool = False) -> Report:
    """Validate a dataset; `deep` also decodes every video frame (JPEGs are always decoded)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset path not found: {path}")
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; expected one of {FORMATS}")
    report = Report(path=path, format=fmt)
    check = {"nwm": _check_nwm, "recon_h5": _check_recon, "onex": _check_onex, "lerobot": _check_lerobot}[fmt]
    try:
        check(path, report, deep)
    except Exception as err:  # a file no check foresaw: still a listed problem, never a traceback
        logger.debug("check of %s stopped", path, exc_info=True)
        report.problems.append(Problem(path, f"check stopped early: {type(err).__name__}: {err}"))
    logger.info("checked %s: %d problems", path, len(report.problems))
    return report


def check_nwm_trajectory(traj_dir: Path) -> tuple[list[Problem], dict[str, np.ndarray] | None]:
    """Problems of one NWM trajectory folder, and its poses when they are readable."""
    from egoworld.data.nwm import TRAJ_FILE, image_indices, parse_traj_data, read_jpeg
    from egoworld.data.safe_pickle import safe_load

    pkl = traj_dir / TRAJ_FILE
    problems: list[Problem] = []
    have = image_indices(traj_dir)
    if not pkl.is_file():
        return [Problem(pkl, "file missing")], None
    try:
        position, yaw = parse_traj_data(safe_load(pkl), str(pkl))
    except ValueError as err:
        return [Problem(pkl, str(err).removeprefix(f"{pkl}: "))], None
    t = len(yaw)
    missing = sorted(set(range(t)) - set(have))
    if missing:
        head = ", ".join(f"{i}.jpg" for i in missing[:8]) + (", ..." if len(missing) > 8 else "")
        problems.append(Problem(traj_dir, f"missing frames {head} ({len(missing)} of {t})"))
    extra = [i for i in have if i >= t]
    if extra:
        problems.append(
            Problem(traj_dir, f"{len(have)} images but {t} positions in {TRAJ_FILE}; expected equal")
        )
    for i in have:
        try:
            read_jpeg(traj_dir / f"{i}.jpg")
        except ValueError as err:
            problems.append(Problem(traj_dir / f"{i}.jpg", str(err).split(": ", 1)[-1]))
    return problems, {"position": position, "yaw": yaw}


def _check_nwm(path: Path, report: Report, deep: bool) -> None:
    from egoworld.actions.spaces import METRIC_WAYPOINT_SPACING, nav_deltas
    from egoworld.data.nwm import WORLD_FILE, name_and_spacing

    if (path / "traj_data.pkl").is_file():
        trajs, root = [path], path.parent
    else:
        trajs, root = _subdirs(path), path
    try:
        name, spacing = name_and_spacing(root, None, None)
    except ValueError as err:
        report.problems.append(Problem(root / WORLD_FILE, str(err).removeprefix(f"{root / WORLD_FILE}: ")))
        name, spacing = root.name, None
    known = spacing is not None or name in METRIC_WAYPOINT_SPACING
    if spacing is None:
        spacing = METRIC_WAYPOINT_SPACING.get(name, 1.0)
    n_traj, n_frames, actions = 0, 0, []
    for d in trajs:
        has_images = any(p.suffix == ".jpg" for p in d.iterdir())
        if not (d / "traj_data.pkl").exists() and not has_images:
            continue  # e.g. data_splits/
        problems, poses = check_nwm_trajectory(d)
        report.problems.extend(problems)
        n_traj += 1
        if poses is not None:
            n_frames += len(poses["yaw"])
            if len(poses["yaw"]) > 1:
                actions.append(nav_deltas(poses["position"], poses["yaw"], spacing))
    if n_traj == 0:
        report.problems.append(Problem(path, "no trajectories (expected <traj>/traj_data.pkl and <i>.jpg)"))
    report.summary.update(
        episodes=n_traj,
        frames=n_frames,
        spacing=f"{spacing} m ({name})" if known else f"unknown for {name!r}; ranges in metres",
        action_ranges=f"(dx, dy, dyaw) {_action_ranges(actions)}",
    )


def _check_recon(path: Path, report: Report, deep: bool) -> None:
    from egoworld.actions.spaces import METRIC_WAYPOINT_SPACING, nav_deltas
    from egoworld.data.recon_h5 import (
        decode_recon_image,
        list_recon_files,
        read_recon_poses,
        recon_datasets,
    )
    from egoworld.data.safe_h5 import open_h5

    files = list_recon_files(path)
    if not files:
        report.problems.append(Problem(path, "no .hdf5 files"))
    n_frames, actions = 0, []
    for f in files:
        try:
            poses = read_recon_poses(f)
            with open_h5(f) as h5:
                images = recon_datasets(h5, f)[0]
                for i in range(poses["num_images"]):
                    decode_recon_image(images, i, str(f))
        except (ValueError, OSError) as err:
            report.problems.append(Problem(f, str(err).removeprefix(f"{f}: ")))
            continue
        n_frames += poses["num_images"]
        if poses["num_images"] > 1:
            actions.append(nav_deltas(poses["position"], poses["yaw"], METRIC_WAYPOINT_SPACING["recon"]))
    report.summary.update(
        episodes=len(files), frames=n_frames, action_ranges=f"(dx, dy, dyaw) {_action_ranges(actions)}"
    )


def _check_onex(path: Path, report: Report, deep: bool) -> None:
    from egoworld.actions.spaces import humanoid_deltas
    from egoworld.data.clip import contiguous_runs
    from egoworld.data.onex import check_onex, find_shards, load_shard_arrays

    report.problems.extend(check_onex(path, deep=deep))
    frames, segments, actions = 0, 0, []
    for i in find_shards(path):
        try:
            states, seg = load_shard_arrays(path, i)
        except (ValueError, OSError):
            continue  # already reported
        frames += len(seg)
        for _, first, n in contiguous_runs(seg):
            segments += 1
            if n > 1:
                actions.append(humanoid_deltas(np.asarray(states[first : first + n])))
    report.summary.update(
        shards=len(find_shards(path)),
        segments=segments,
        frames=frames,
        action_ranges=f"(state differences at the source rate) {_action_ranges(actions)}",
    )


def _problem(err: Exception, root: Path, fallback: Path) -> Problem:
    """A Problem from an error whose message starts with a file under `root` (else `fallback`)."""
    text = str(err)
    head, sep, rest = text.partition(": ")
    if sep and head.startswith(str(root)) and Path(head).exists():
        return Problem(Path(head), rest)
    return Problem(fallback, text)


def _check_lerobot(path: Path, report: Report, deep: bool) -> None:
    """What `LeRobotDataset` needs, so that `data check` passes exactly the datasets the loader reads:
    meta/info.json, the data parquet columns, an `action` feature, a camera, and every camera's
    frames (video files, or images in the parquet: first and last of each episode, all if `deep`)."""
    from egoworld.data.lerobot import cameras, data_files, read_episode_table, read_info

    try:
        info = read_info(path)
    except (ValueError, FileNotFoundError) as err:
        report.problems.append(_problem(err, path, path / "meta" / "info.json"))
        return
    feats = info["features"]
    columns = [k for k in ("action", "observation.state") if k in feats]
    try:
        files = data_files(path)
        episodes = read_episode_table(path, info, columns, files)
    except ValueError as err:
        report.problems.append(_problem(err, path, path / "data"))
        return
    for c in columns:
        bad = [e for e in sorted(episodes) if not np.isfinite(episodes[e][c]).all()]
        if bad:
            report.problems.append(Problem(path / "data", f"{c!r} holds NaN/inf in episodes {bad[:8]}"))
    cams = cameras(info)
    if not cams:
        report.problems.append(
            Problem(path / "meta" / "info.json", f"no video or image feature (features: {sorted(feats)})")
        )
    if "action" not in feats:
        report.problems.append(
            Problem(path / "meta" / "info.json", "no 'action' feature; training needs one")
        )
    for key in cams:
        if feats[key]["dtype"] == "video":
            report.problems.extend(_lerobot_video_problems(path, info, key, episodes, deep))
        else:
            report.problems.extend(_lerobot_image_problems(path, files, key, episodes, deep))
    acts = [episodes[e]["action"] for e in episodes] if "action" in columns else []
    report.summary.update(
        version=info["codebase_version"],
        episodes=len(episodes),
        frames=sum(len(v["frame_index"]) for v in episodes.values()),
        video_keys=[k for k in cams if feats[k]["dtype"] == "video"],
        image_keys=[k for k in cams if feats[k]["dtype"] == "image"],
        action_ranges=_action_ranges(acts),
    )


def _lerobot_video_problems(path: Path, info: dict, key: str, episodes: dict, deep: bool) -> list[Problem]:
    """Each episode's video entry, and each mp4 opened, counted and decoded (first and last frame, or
    all if `deep`); a v3.0 file must hold every frame its episodes point to."""
    from egoworld.data.lerobot import video_locations
    from egoworld.data.onex import check_video
    from egoworld.data.video import VideoReader

    try:
        locs = video_locations(path, info, key, sorted(episodes))
    except ValueError as err:
        return [_problem(err, path, path / "meta")]
    problems, needed = [], {}
    v2 = info["codebase_version"].startswith("v2")
    for e in sorted(episodes):
        if e not in locs:
            problems.append(Problem(path / "meta", f"episode {e} has no {key} video entry"))
            continue
        f, t0 = locs[e]
        end = int(round(t0 * float(info["fps"]))) + int(episodes[e]["frame_index"].max()) + 1
        needed[f] = max(needed.get(f, 0), end)
    for f, end in needed.items():
        found = check_video(f, end if v2 else None, deep=deep)
        if not found and not v2:
            with VideoReader(f) as reader:
                if len(reader) < end:
                    found = [
                        Problem(f, f"{len(reader)} video frames; its episodes need {end} (from_timestamp)")
                    ]
        problems.extend(found)
    return problems


def _lerobot_image_problems(
    path: Path, files: list[Path], key: str, episodes: dict, deep: bool
) -> list[Problem]:
    """The image column of every data file, and its frames decoded as the loader decodes them
    (first and last of each episode, or all if `deep`)."""
    from egoworld.data.lerobot import ParquetImages

    try:
        images = ParquetImages(path, files, key)
    except ValueError as err:
        return [_problem(err, path, path / "data")]
    problems = []
    for e in sorted(episodes):
        ep = episodes[e]
        n = len(ep["data_row"])
        picks = np.arange(n) if deep else np.unique([0, n - 1])
        try:
            for part in np.array_split(picks, max(1, len(picks) // 64)):  # memory: 64 frames at a time
                images.read(ep["data_file"][part], ep["data_row"][part])
        except ValueError as err:
            problems.append(_problem(err, path, path / "data"))
    return problems
