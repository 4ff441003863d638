"""RECON raw HDF5 trajectories: read directly, or convert to the NWM layout.

Each `<name>.hdf5` file is one trajectory:

    images/rgb_left    [T] JPEG-encoded bytes (variable length) or [T, H, W, 3] uint8
    jackal/position    [T, 3] (x, y, z) metres; x, y are used
    jackal/yaw         [T] radians
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from egoworld.actions.normalization import ActionNormalizer
from egoworld.data.clip import WindowSpec
from egoworld.data.nwm import TRAJ_FILE, PoseClipDataset, parse_traj_data, resolve_spacing
from egoworld.io_utils import atomic_dir

logger = logging.getLogger(__name__)

IMAGE_KEY = "images/rgb_left"
POSITION_KEY = "jackal/position"
YAW_KEY = "jackal/yaw"
SUFFIXES = (".hdf5", ".h5")


def list_recon_files(root: str | Path) -> list[Path]:
    """The .hdf5/.h5 files of a RECON folder (or the single file given)."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"RECON path not found: {root}")
    return sorted(p for p in root.iterdir() if p.suffix in SUFFIXES and p.is_file())


def _open(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err


def read_recon_poses(path: str | Path) -> dict[str, Any]:
    """Poses and image count of one RECON file: dict(position [T, 2], yaw [T], num_images)."""
    path = Path(path)
    with _open(path) as f:
        missing = [k for k in (IMAGE_KEY, POSITION_KEY, YAW_KEY) if k not in f]
        if missing:
            raise ValueError(f"{path}: missing HDF5 datasets {missing}")
        position, yaw = parse_traj_data({"position": f[POSITION_KEY][()], "yaw": f[YAW_KEY][()]}, str(path))
        n_images = int(f[IMAGE_KEY].shape[0])
    if n_images != len(yaw):
        raise ValueError(f"{path}: {n_images} images but {len(yaw)} positions; expected equal")
    return {"position": position, "yaw": yaw, "num_images": n_images}


def _entry_bytes(entry: Any) -> bytes:
    if isinstance(entry, bytes):
        return entry
    if isinstance(entry, np.void):
        return entry.tobytes()
    return np.asarray(entry).tobytes()


def decode_recon_image(dataset, i: int, where: str) -> np.ndarray:
    """Image i of an `images/rgb_left` dataset as RGB uint8 [H, W, 3]."""
    import cv2

    if dataset.ndim == 4:
        return np.asarray(dataset[i], dtype=np.uint8)
    buf = np.frombuffer(_entry_bytes(dataset[i]), dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise ValueError(f"{where}: image {i} is a corrupt or unreadable JPEG")
    return img[:, :, ::-1]


class ReconH5Dataset(PoseClipDataset):
    """Clips read straight from RECON HDF5 files (same arguments as `NWMDataset`)."""

    def __init__(
        self,
        root: str | Path,
        context: int = 1,
        horizon: int = 7,
        stride: int = 1,
        frame_step: int = 1,
        resolution: int | tuple[int, int] | None = 256,
        action_mode: str = "delta",
        spacing: float | None = None,
        normalizer: ActionNormalizer | None = None,
        output: str = "tensors",
    ):
        files = list_recon_files(root)
        if not files:
            raise ValueError(f"{root}: no .hdf5 files")
        trajectories = []
        for p in files:
            traj = read_recon_poses(p)
            traj.update(name=p.stem, path=p)
            trajectories.append(traj)
        self._handles: dict[Path, Any] = {}
        self._pid = os.getpid()
        super().__init__(
            trajectories,
            dataset_name="recon",
            spacing=resolve_spacing("recon", spacing),
            spec=WindowSpec(context=context, horizon=horizon, frame_step=frame_step, stride=stride),
            resolution=resolution,
            action_mode=action_mode,
            normalizer=normalizer,
            output=output,
        )

    def _handle(self, path: Path):
        if self._pid != os.getpid():  # forked into a DataLoader worker: never share HDF5 handles
            self._handles, self._pid = {}, os.getpid()
        if path not in self._handles:
            self._handles[path] = _open(path)
        return self._handles[path]

    def _frames(self, traj: dict[str, Any], indices: np.ndarray) -> np.ndarray:
        ds = self._handle(traj["path"])[IMAGE_KEY]
        return np.stack([decode_recon_image(ds, int(i), str(traj["path"])) for i in indices])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state


def convert_recon_to_nwm(src: str | Path, dst: str | Path, *, jpeg_quality: int = 95) -> list[str]:
    """Write RECON HDF5 trajectories as an NWM dataset folder `dst/<stem>/{i.jpg, traj_data.pkl}`.

    JPEG bytes are copied unchanged (after checking they decode); raw arrays are encoded.
    The folder appears whole or not at all. Returns the trajectory names written.
    """
    import cv2

    files = list_recon_files(src)
    if not files:
        raise ValueError(f"{src}: no .hdf5 files to convert")
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} exists and is not empty; choose a new output folder")
    names = []
    with atomic_dir(dst) as tmp:
        for p in files:
            poses = read_recon_poses(p)
            out = tmp / p.stem
            out.mkdir()
            with _open(p) as f:
                ds = f[IMAGE_KEY]
                for i in range(poses["num_images"]):
                    img = decode_recon_image(ds, i, str(p))  # validates JPEG bytes too
                    if ds.ndim == 4:
                        ok, enc = cv2.imencode(
                            ".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
                        )
                        if not ok:
                            raise ValueError(f"{p}: could not encode image {i} as JPEG")
                        data = enc.tobytes()
                    else:
                        data = _entry_bytes(ds[i])
                    (out / f"{i}.jpg").write_bytes(data)
            with open(out / TRAJ_FILE, "wb") as fh:
                pickle.dump({"position": poses["position"], "yaw": poses["yaw"]}, fh)
            names.append(p.stem)
            logger.info("converted %s (%d frames)", p, poses["num_images"])
    return names
