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
from egoworld.data import untrusted
from egoworld.data.clip import WindowSpec
from egoworld.data.nwm import TRAJ_FILE, PoseClipDataset, parse_traj_data, resolve_spacing
from egoworld.data.safe_h5 import check_h5_storage, h5_dataset, open_h5
from egoworld.data.untrusted import image_size_of, refuse_output_over_input
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


def recon_datasets(f, path: Path) -> tuple[Any, Any, Any]:
    """(images, position, yaw) datasets of an open RECON file, their declared shapes, types and
    sizes checked against each other and the limits in `egoworld.data.untrusted` (nothing read)."""
    found = {k: h5_dataset(f, k, path) for k in (IMAGE_KEY, POSITION_KEY, YAW_KEY)}
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise ValueError(f"{path}: missing HDF5 datasets {missing}")
    images, position, yaw = found[IMAGE_KEY], found[POSITION_KEY], found[YAW_KEY]
    if images.ndim == 4:
        _, h, w, c = images.shape
        if (
            images.dtype != np.uint8
            or c != 3
            or not (0 < h <= untrusted.MAX_IMAGE_SIDE and 0 < w <= untrusted.MAX_IMAGE_SIDE)
        ):
            raise ValueError(
                f"{path}: {IMAGE_KEY} is {images.dtype} {images.shape}; expected uint8 [T, H, W, 3] with "
                f"H, W <= {untrusted.MAX_IMAGE_SIDE}"
            )
    elif images.ndim != 1 or images.dtype.kind not in ("O", "V", "S"):
        raise ValueError(
            f"{path}: {IMAGE_KEY} is {images.dtype} {images.shape}; expected [T] JPEG bytes or "
            "uint8 [T, H, W, 3]"
        )
    n = images.shape[0]
    if n > untrusted.MAX_H5_FRAMES:
        raise ValueError(
            f"{path}: {IMAGE_KEY} declares {n} frames; at most {untrusted.MAX_H5_FRAMES} per file"
        )
    if position.ndim != 2 or not 2 <= position.shape[1] <= 16 or position.dtype.kind not in "fiu":
        raise ValueError(
            f"{path}: {POSITION_KEY} is {position.dtype} {position.shape}; expected numbers [T, 3]"
        )
    if not (yaw.ndim == 1 or (yaw.ndim == 2 and yaw.shape[1] == 1)) or yaw.dtype.kind not in "fiu":
        raise ValueError(f"{path}: {YAW_KEY} is {yaw.dtype} {yaw.shape}; expected numbers [T]")
    if position.shape[0] != yaw.shape[0]:
        raise ValueError(
            f"{path}: {position.shape[0]} positions but {yaw.shape[0]} yaw values; expected equal"
        )
    if n != yaw.shape[0]:
        raise ValueError(f"{path}: {n} images but {yaw.shape[0]} positions; expected equal")
    for key, ds in found.items():
        check_h5_storage(ds, key, path)
    return images, position, yaw


def read_recon_poses(path: str | Path) -> dict[str, Any]:
    """Poses and image count of one RECON file: dict(position [T, 2], yaw [T], num_images)."""
    path = Path(path)
    with open_h5(path) as f:
        images, position, yaw = recon_datasets(f, path)
        try:
            data = {"position": position[()], "yaw": yaw[()]}
        except OSError as err:
            raise ValueError(f"{path}: cannot read the poses ({err})") from None
        position, yaw = parse_traj_data(data, str(path))
        n_images = int(images.shape[0])
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

    try:
        entry = dataset[i]
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"{where}: cannot read image {i} of {IMAGE_KEY} ({err})") from None
    if dataset.ndim == 4:
        return np.asarray(entry, dtype=np.uint8)
    data = _entry_bytes(entry)
    if not data:
        raise ValueError(f"{where}: image {i} is a corrupt or unreadable JPEG (no bytes)")
    try:
        image_size_of(data, kind="JPEG")
    except ValueError as err:
        reason = str(err)
        raise ValueError(
            f"{where}: image {i} {'is a ' if reason.startswith('corrupt') else ''}{reason}"
        ) from None
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
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
            self._handles[path] = open_h5(path)
        return self._handles[path]

    def _frames(self, traj: dict[str, Any], indices: np.ndarray) -> np.ndarray:
        ds = h5_dataset(self._handle(traj["path"]), IMAGE_KEY, traj["path"])
        return np.stack([decode_recon_image(ds, int(i), str(traj["path"])) for i in indices])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state


def convert_recon_to_nwm(src: str | Path, dst: str | Path, *, jpeg_quality: int = 95) -> list[str]:
    """Write RECON HDF5 trajectories as an NWM dataset folder `dst/<stem>/{i.jpg, traj_data.pkl}`.

    JPEG bytes are copied unchanged (after checking they decode); raw arrays are encoded.
    The folder appears whole or not at all; `dst` must not be `src` or inside it. Returns the
    trajectory names written.
    """
    import cv2

    refuse_output_over_input(dst, src, "output folder")
    files = list_recon_files(src)
    if not files:
        raise ValueError(f"{src}: no .hdf5 files to convert")
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise FileExistsError(f"{dst} exists and is a file; choose a new output folder")
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} exists and is not empty; choose a new output folder")
    names = []
    with atomic_dir(dst) as tmp:
        for p in files:
            poses = read_recon_poses(p)
            out = tmp / p.stem
            out.mkdir()
            with open_h5(p) as f:
                ds = recon_datasets(f, p)[0]
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
