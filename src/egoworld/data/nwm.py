"""NWM / GNM processed navigation layout (RECON, SCAND, TartanDrive, SACSoN/HuRoN, go_stanford).

    <dataset>/<traj>/0.jpg, 1.jpg, ..., T-1.jpg
    <dataset>/<traj>/traj_data.pkl      {"position": [T, 2], "yaw": [T]}
    data_splits/<dataset>/{train,test}/traj_names.txt   one trajectory name per line

`traj_data.pkl` is untrusted: it is read with `egoworld.data.safe_pickle`, never `pickle.load`.
Actions: 3-DoF (dx, dy, dyaw) from `egoworld.actions.spaces` (per-step deltas, or cumulative
from the last context frame with `action_mode="cumulative"`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from egoworld.actions.normalization import ActionNormalizer
from egoworld.actions.spaces import METRIC_WAYPOINT_SPACING, nav_cumulative, nav_deltas
from egoworld.data.clip import Clip, WindowSpec, build_windows, resize_center_crop, with_leading_zero
from egoworld.data.safe_pickle import safe_load
from egoworld.data.untrusted import image_size_of, inside, positive_number, read_json_object

logger = logging.getLogger(__name__)

TRAJ_FILE = "traj_data.pkl"
WORLD_FILE = "egoworld_world.json"  # written by `egoworld worlds generate` (egoworld.worlds.generate)
ACTION_MODES = ("delta", "cumulative")
_JPG = re.compile(r"^(\d+)\.jpg$")


def image_indices(traj_dir: Path) -> list[int]:
    """Integer names of the `<i>.jpg` files in a trajectory folder, sorted."""
    return sorted(int(m.group(1)) for p in traj_dir.iterdir() if (m := _JPG.match(p.name)))


def parse_traj_data(data: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a loaded traj_data dict -> position [T, 2] float64, yaw [T] float64."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a dict with 'position' and 'yaw', got {type(data).__name__}")
    missing = [k for k in ("position", "yaw") if k not in data]
    if missing:
        raise ValueError(f"{where}: missing keys {missing} (has {sorted(map(str, data))})")
    position, yaw = (_float_array(data[k], k, where) for k in ("position", "yaw"))
    if position.ndim != 2 or position.shape[1] < 2:
        raise ValueError(f"{where}: 'position' must be [T, 2], got shape {position.shape}")
    if yaw.size != position.shape[0] or (yaw.ndim > 1 and max(yaw.shape[1:], default=1) != 1):
        raise ValueError(f"{where}: 'yaw' must be [T={position.shape[0]}], got shape {yaw.shape}")
    if position.shape[0] == 0:
        raise ValueError(f"{where}: empty trajectory (0 positions)")
    if not (np.isfinite(position).all() and np.isfinite(yaw).all()):
        raise ValueError(f"{where}: position/yaw contain NaN or inf")
    return position[:, :2], yaw.reshape(-1)


def _float_array(value: Any, key: str, where: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError) as err:
        raise ValueError(
            f"{where}: {key!r} is not an array of numbers ({type(value).__name__}: {err}); expected "
            + ("[T, 2] positions" if key == "position" else "[T] yaw angles in radians")
        ) from None


def world_description(root: str | Path) -> dict[str, Any] | None:
    """`<root>/egoworld_world.json` of a world `egoworld worlds generate` wrote, checked; None if absent.

    The NWM readers take the dataset name and the metric waypoint spacing from it.
    """
    path = Path(root) / WORLD_FILE
    if not path.is_file():
        return None
    desc = read_json_object(path)
    if "metric_waypoint_spacing" in desc:
        positive_number(desc["metric_waypoint_spacing"], "'metric_waypoint_spacing'", str(path))
    name = desc.get("dataset_name")
    if name is not None and not (isinstance(name, str) and name):
        raise ValueError(f"{path}: 'dataset_name' is {name!r}; expected a non-empty string")
    return desc


def name_and_spacing(root: Path, dataset_name: str | None, spacing: float | None) -> tuple[str, float | None]:
    """The dataset name (given, from egoworld_world.json, else the folder name) and the spacing
    (given, else the one egoworld_world.json records, else None: the known table).

    A generated world's spacing is its folder's, whatever name a config gives it: a mixture of
    several generated worlds names each one apart (`dataset_name`) and keeps their spacing."""
    desc = world_description(root) or {}
    name = dataset_name or desc.get("dataset_name") or root.name
    if spacing is None and "metric_waypoint_spacing" in desc:
        spacing = float(desc["metric_waypoint_spacing"])
    return name, spacing


def load_trajectory(traj_dir: str | Path) -> dict[str, Any]:
    """Read one NWM trajectory folder (no image decoding).

    Returns:
        dict(position=[T, 2] float64, yaw=[T] float64, image_paths=[T paths]).

    Raises:
        FileNotFoundError: no folder or no traj_data.pkl.
        ValueError: unsafe/garbled pickle, empty trajectory, missing frames, or a different
            number of images than positions.
    """
    traj_dir = Path(traj_dir)
    pkl = traj_dir / TRAJ_FILE
    if not pkl.is_file():
        raise FileNotFoundError(f"{traj_dir}: no {TRAJ_FILE} (not an NWM trajectory folder)")
    position, yaw = parse_traj_data(safe_load(pkl), str(pkl))
    t = len(yaw)
    have = image_indices(traj_dir)
    missing = sorted(set(range(t)) - set(have))
    if missing:
        raise ValueError(f"{traj_dir}: missing frames {_fmt(missing)} (expected 0.jpg..{t - 1}.jpg)")
    if len(have) != t:
        raise ValueError(f"{traj_dir}: {len(have)} images but {t} positions in {TRAJ_FILE}; expected equal")
    return {"position": position, "yaw": yaw, "image_paths": [traj_dir / f"{i}.jpg" for i in range(t)]}


def _looks_like_trajectory(d: Path) -> bool:
    """Has traj_data.pkl or numbered JPEGs (a trajectory, possibly broken)."""
    return (d / TRAJ_FILE).exists() or any(_JPG.match(p.name) for p in d.iterdir())


def _fmt(items: list[int], k: int = 8) -> str:
    head = ", ".join(map(str, items[:k]))
    return f"[{head}{', ...' if len(items) > k else ''}] ({len(items)} in all)"


def read_jpeg(path: Path) -> np.ndarray:
    """RGB uint8 [H, W, 3]; ValueError naming the file if it cannot be decoded.

    The header is checked first (at most MAX_IMAGE_SIDE pixels a side), so a tiny file that
    declares a huge image is refused before anything is allocated.
    """
    import cv2

    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise ValueError(f"{path}: cannot read image ({err.strerror or err})") from None
    if not buf.size:
        raise ValueError(f"{path}: corrupt or unreadable JPEG (empty file)")
    try:
        image_size_of(buf.tobytes(), kind="JPEG")
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: corrupt or unreadable JPEG (cannot be decoded)")
    return img[:, :, ::-1]


def read_split(path: str | Path) -> list[str]:
    """Trajectory names, one per line, from a `traj_names.txt`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def resolve_spacing(dataset_name: str, spacing: float | None) -> float:
    """The metric waypoint spacing given, or the known one for `dataset_name`."""
    if spacing is not None:
        return positive_number(spacing, "spacing", "metric waypoint spacing")
    if dataset_name not in METRIC_WAYPOINT_SPACING:
        raise ValueError(
            f"unknown metric waypoint spacing for dataset {dataset_name!r}; pass spacing= (CLI: --spacing "
            f"metres, or --dataset-name one of the known: {METRIC_WAYPOINT_SPACING})"
        )
    return METRIC_WAYPOINT_SPACING[dataset_name]


class PoseClipDataset(Dataset):
    """Clips from pose trajectories with one image per pose; subclasses supply the images.

    Each trajectory is a dict(position=[T, 2], yaw=[T], name=str) plus whatever `_frames` needs.
    """

    def __init__(
        self,
        trajectories: list[dict[str, Any]],
        *,
        dataset_name: str,
        spacing: float,
        spec: WindowSpec,
        resolution,
        action_mode: str = "delta",
        normalizer: ActionNormalizer | None = None,
        output: str = "tensors",
    ):
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if output not in ("tensors", "clip"):
            raise ValueError(f"output must be 'tensors' or 'clip', got {output!r}")
        if normalizer is not None:
            normalizer.check_compatible(3, dataset=dataset_name, spacing=spacing, action_mode=action_mode)
        self.trajectories = trajectories
        self.dataset_name, self.spacing, self.spec = dataset_name, spacing, spec
        self.resolution, self.action_mode = resolution, action_mode
        self.normalizer, self.output = normalizer, output
        runs = [(i, 0, len(t["yaw"])) for i, t in enumerate(trajectories)]
        self.windows = build_windows(runs, spec)
        logger.info("%s: %d trajectories, %d windows", dataset_name, len(trajectories), len(self.windows))

    def __len__(self) -> int:
        return len(self.windows)

    def _frames(self, traj: dict[str, Any], indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def actions_for(self, traj: dict[str, Any], indices: np.ndarray) -> np.ndarray:
        """[T, 3] clip actions for raw `indices` of `traj` (normalized if a normalizer is set)."""
        pos, yaw = traj["position"][indices], traj["yaw"][indices]
        if self.action_mode == "delta":
            actions = with_leading_zero(nav_deltas(pos, yaw, self.spacing))
            if self.normalizer is not None:
                actions[1:] = self.normalizer.normalize(actions[1:])
        else:
            start = self.spec.context - 1
            actions = nav_cumulative(pos, yaw, self.spacing, start=start)
            if self.normalizer is not None:  # the start row stays zero, as row 0 of delta clips
                rows = np.arange(len(actions)) != start
                actions[rows] = self.normalizer.normalize(actions[rows])
        return actions.astype(np.float32)

    def step_actions(self):
        """Unnormalized per-step (dx, dy, dyaw) of the whole dataset as [N, 3] arrays, whatever the
        action mode (the range of one step, e.g. for `egoworld play`'s key steps)."""
        for traj in self.trajectories:
            idx = np.arange(0, len(traj["yaw"]), self.spec.frame_step)
            if len(idx) > 1:
                yield nav_deltas(traj["position"][idx], traj["yaw"][idx], self.spacing)

    def all_actions(self):
        """Unnormalized actions of the whole dataset as [N, 3] arrays (for statistics)."""
        origin = self.spec.context - 1  # cumulative: the frame the poses are relative to (its row is 0)
        if self.action_mode == "delta":
            yield from self.step_actions()
            return
        for traj in self.trajectories:
            for _, start in build_windows([(0, 0, len(traj["yaw"]))], self.spec):
                idx = self.spec.indices(start)
                poses = nav_cumulative(traj["position"][idx], traj["yaw"][idx], self.spacing, start=origin)
                yield np.delete(poses, origin, axis=0)

    def get_clip(self, i: int) -> Clip:
        if not -len(self) <= i < len(self):
            raise IndexError(f"clip index {i} out of range for {len(self)} clips")
        ti, start = self.windows[i]
        traj = self.trajectories[ti]
        idx = self.spec.indices(start)
        frames = resize_center_crop(self._frames(traj, idx), self.resolution)  # [T, H, W, 3]
        return Clip(
            frames=frames,
            actions=self.actions_for(traj, idx),
            state=None,
            episode=traj["name"],
            segment=0,
            frame_indices=idx,
            meta={"dataset": self.dataset_name, "spacing": self.spacing, "action_mode": self.action_mode},
        )

    def __getitem__(self, i: int):
        clip = self.get_clip(i)
        return clip if self.output == "clip" else clip.to_tensors()


class NWMDataset(PoseClipDataset):
    """Clips from an NWM-layout dataset folder.

    Args:
        root: the `<dataset>` folder holding one sub-folder per trajectory.
        split: None (every trajectory folder), "train"/"test" (read
            `<splits_dir>/<split>/traj_names.txt`, splits_dir defaulting to
            `<root>/../data_splits/<dataset_name>`), or a path to a traj_names.txt.
        dataset_name: key into METRIC_WAYPOINT_SPACING (default: the `dataset_name` of the folder's
            egoworld_world.json for a generated world, else the folder name).
        context, horizon, stride, frame_step: see `WindowSpec`.
        resolution: (height, width) or int; frames are resized and centre-cropped; None keeps them.
        action_mode: "delta" (per step) or "cumulative" (relative to the last context frame).
        spacing: metres per action unit (default: the dataset's metric waypoint spacing, or the one
            a generated world's egoworld_world.json records).
        normalizer: optional `ActionNormalizer`, checked against dataset/spacing/mode.
        output: "tensors" (dict of torch tensors, see `Clip.to_tensors`) or "clip".
    """

    def __init__(
        self,
        root: str | Path,
        split: str | Path | None = None,
        dataset_name: str | None = None,
        context: int = 1,
        horizon: int = 7,
        stride: int = 1,
        frame_step: int = 1,
        resolution: int | tuple[int, int] | None = 256,
        action_mode: str = "delta",
        spacing: float | None = None,
        normalizer: ActionNormalizer | None = None,
        splits_dir: str | Path | None = None,
        output: str = "tensors",
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"NWM dataset folder not found: {self.root}")
        name, spacing = name_and_spacing(self.root, dataset_name, spacing)
        names = self._trajectory_names(split, name, splits_dir)
        trajectories, problems = [], []
        for n in names:
            try:
                traj = load_trajectory(self.root / n)
            except (ValueError, FileNotFoundError) as err:
                problems.append(str(err))
                continue
            traj["name"] = n
            trajectories.append(traj)
        if problems:
            more = (
                f" (and {len(problems) - 1} more; run `egoworld data check {self.root}`)"
                if len(problems) > 1
                else ""
            )
            raise ValueError(f"{problems[0]}{more}")
        if not trajectories:
            raise ValueError(f"{self.root}: no trajectories (expected <traj>/{TRAJ_FILE} folders)")
        super().__init__(
            trajectories,
            dataset_name=name,
            spacing=resolve_spacing(name, spacing),
            spec=WindowSpec(context=context, horizon=horizon, frame_step=frame_step, stride=stride),
            resolution=resolution,
            action_mode=action_mode,
            normalizer=normalizer,
            output=output,
        )

    def _trajectory_names(self, split, name: str, splits_dir) -> list[str]:
        if split is None:
            return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _looks_like_trajectory(p))
        split_path = Path(split)
        if str(split) in ("train", "test", "val"):
            base = Path(splits_dir) if splits_dir else self.root.parent / "data_splits" / name
            own = (
                self.root / "data_splits" / ((world_description(self.root) or {}).get("dataset_name") or name)
            )
            if splits_dir is None and not base.is_dir() and own.is_dir():
                base = own  # generated worlds keep their splits inside, under the name they were written with
            split_path = base / str(split) / "traj_names.txt"
        names = read_split(split_path)
        for n in names:  # a name from the split file must not lead out of the dataset folder
            inside(self.root, self.root / n, f"{split_path}: trajectory {n!r}")
        return names

    def _frames(self, traj: dict[str, Any], indices: np.ndarray) -> np.ndarray:
        return np.stack([read_jpeg(traj["image_paths"][i]) for i in indices])  # [T, H, W, 3]
