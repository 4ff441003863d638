"""Metric depth for `egoworld sim prepare`: supplied per episode, or estimated and aligned per frame.

EgoDex has no depth. Two sources:

- `SuppliedDepth(folder)`: one file per episode at ``<folder>/<episode name>.npy`` (``[N, H0, W0]``
  float32/float64 metres, or uint16 millimetres) or ``.npz`` holding that array as ``depth``; the
  episode name is its path under the dataset root without suffix (``task/3`` →
  ``<folder>/task/3.npy``). 0 or non-finite = unknown. Used as metric, no alignment.
- `EstimatedDepth(model_dir)`: a local Depth Anything folder through transformers
  (`AutoModelForDepthEstimation`, `egoworld.metrics.geometry.DepthAnythingEstimator`), run on the
  prepared frames, then aligned per frame to metric scale with the hand joints as anchors
  (`align_to_anchors`): each confident joint in front of the camera and inside the image gives its
  camera depth z at its pixel. Relative models predict disparity d up to scale and shift, so
  1/z ≈ a·d + b is fitted (least squares, then again without the anchors whose residual is over
  3× the median: joints hidden behind an object or the other hand); with fewer than
  `MIN_SHIFT_ANCHORS` anchors or anchors spanning less than `MIN_SHIFT_SPAN` in depth the shift is
  not observable and b = 0 (scale only). Metric models (config ``depth_estimation_type ==
  "metric"``) get a scale only, the median of z / prediction. A frame with fewer than
  `MIN_ANCHORS` anchors gets no depth (it is not fused). The anchors are the joints' centres, about
  a centimetre behind the skin the model sees; the fit does not correct for it.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MIN_ANCHORS = 3
MIN_SHIFT_ANCHORS = 6
MIN_SHIFT_SPAN = 1.25  # max z / min z of the anchors needed to fit a shift
ANCHOR_CONFIDENCE = 0.5


def _depth_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of an episode depth file (.npy, or the `depth` member of an .npz), unread."""
    from numpy.lib import format as npy_format

    from egoworld.io_utils import check_npy_size, check_npz_sizes

    def header(fh):
        version = npy_format.read_magic(fh)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _, dtype = read(fh)
        return tuple(int(s) for s in shape), np.dtype(dtype)

    if path.suffix == ".npy":
        check_npy_size(path, "depth file")
        with open(path, "rb") as fh:
            return header(fh)
    check_npz_sizes(path, "depth file")
    with zipfile.ZipFile(path) as zf:
        if "depth.npy" not in zf.namelist():
            raise ValueError(f"depth file {path} has no 'depth' array; expected depth [N, H, W] in metres")
        with zf.open("depth.npy") as fh:
            return header(fh)


class SuppliedDepth:
    """Per-episode metric depth files (see the module docstring)."""

    kind = "supplied"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(
                f"--depth {self.folder} is not a folder; expected <episode name>.npy depth files"
            )
        self._cache: tuple[str, np.ndarray] | None = None

    def path(self, name: str) -> Path:
        for suffix in (".npy", ".npz"):
            p = self.folder / f"{name}{suffix}"
            if p.is_file():
                return p
        raise FileNotFoundError(
            f"no depth for episode {name!r}: expected {self.folder / name}.npy ([N, H, W] metres) or .npz"
        )

    def check(self, name: str, frames: int, size_hw: tuple[int, int]) -> None:
        """ValueError unless the episode's depth file declares [frames, H, W] numbers (nothing read)."""
        path = self.path(name)
        shape, dtype = _depth_header(path)
        if shape != (frames, *size_hw) or dtype.kind not in "fu":
            raise ValueError(
                f"depth file {path} holds {dtype} {list(shape)}; expected float metres or uint16 millimetres "
                f"[{frames}, {size_hw[0]}, {size_hw[1]}] (one map per video frame)"
            )

    def _array(self, name: str) -> np.ndarray:
        if self._cache is None or self._cache[0] != name:
            path = self.path(name)
            if path.suffix == ".npy":
                data = np.load(path, mmap_mode="r", allow_pickle=False)
            else:
                with np.load(path, allow_pickle=False) as z:
                    data = z["depth"]
            self._cache = (name, data)
        return self._cache[1]

    def frames(self, name: str, indices: np.ndarray) -> np.ndarray:
        """Depth [F, H0, W0] float32 metres of video frames `indices` (0 where unknown)."""
        raw = np.asarray(self._array(name)[np.asarray(indices)])
        depth = raw.astype(np.float32) * (np.float32(1e-3) if raw.dtype.kind == "u" else np.float32(1.0))
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0
        return depth


def align_to_anchors(
    prediction_HW: np.ndarray, uv: np.ndarray, z: np.ndarray, kind: str = "disparity"
) -> tuple[np.ndarray | None, dict]:
    """Metric depth [H, W] from a model's prediction and anchors (pixels `uv` [J, 2], depths `z` [J]).

    `kind` "disparity" (relative models) fits 1/z = a·d + b; "depth" (metric models) fits z = s·p.
    Returns (depth or None when fewer than `MIN_ANCHORS` usable anchors, fit info).
    """
    pred = np.asarray(prediction_HW, dtype=np.float64)
    H, W = pred.shape
    uv, z = np.asarray(uv, dtype=np.float64).reshape(-1, 2), np.asarray(z, dtype=np.float64).reshape(-1)
    ok = np.isfinite(uv).all(-1) & np.isfinite(z) & (z > 0)
    px = np.rint(np.where(ok[:, None], uv, -1)).astype(int)
    ok &= (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
    x = np.full(len(z), np.nan)
    x[ok] = pred[px[ok, 1], px[ok, 0]]
    ok &= np.isfinite(x) & (x > 0)
    info: dict = {"anchors": int(ok.sum())}
    if ok.sum() < MIN_ANCHORS:
        return None, info
    x, zz = x[ok], z[ok]
    if kind == "depth":
        s = float(np.median(zz / x))
        info.update(scale=s)
        return (s * pred).astype(np.float32), info
    if kind != "disparity":
        raise ValueError(f"prediction kind {kind!r}; expected 'disparity' or 'depth'")
    y = 1.0 / zz
    a, b = _fit(x, y, shift=len(x) >= MIN_SHIFT_ANCHORS and zz.max() / zz.min() >= MIN_SHIFT_SPAN)
    info.update(scale=a, shift=b)
    inv = a * pred + b
    depth = np.where(np.isfinite(inv) & (inv > 0), 1.0 / np.where(inv > 0, inv, 1.0), 0.0)
    return depth.astype(np.float32), info


def _fit(x: np.ndarray, y: np.ndarray, shift: bool) -> tuple[float, float]:
    """y ≈ a·x + b (b = 0 without `shift`), refitted once without residuals over 3× the median."""

    def solve(sel):
        if shift:
            A = np.stack([x[sel], np.ones(sel.sum())], 1)
            a, b = np.linalg.lstsq(A, y[sel], rcond=None)[0]
        else:
            a, b = float(np.median(y[sel] / x[sel])), 0.0
        return float(a), float(b)

    sel = np.ones(len(x), bool)
    a, b = solve(sel)
    r = np.abs(a * x + b - y)
    keep = r <= 3 * max(np.median(r), 1e-12)
    if keep.sum() >= MIN_ANCHORS and not keep.all():
        a, b = solve(keep)
    if a <= 0:  # a fit that inverts the depth order: fall back to a scale
        a, b = float(np.median(y / x)), 0.0
    return a, b


class EstimatedDepth:
    """Depth Anything (a local transformers folder) aligned per frame to the hand joints."""

    kind = "estimated"

    def __init__(self, model_dir: str | Path, *, device: str = "cpu"):
        from egoworld.data.untrusted import read_json_object
        from egoworld.metrics.geometry import DepthAnythingEstimator

        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"--depth-model {self.model_dir}: config.json is missing; expected a local Depth Anything "
                "folder written by save_pretrained (e.g. a copy of depth-anything/Depth-Anything-V2-Small-hf)"
            )
        config = read_json_object(self.model_dir / "config.json")
        family = config.get("model_type") or config.get("_class_name") or "unknown"
        if family != "depth_anything":
            raise ValueError(
                f"--depth-model {self.model_dir} holds a {family!r} model; expected a Depth Anything folder "
                "(config.json model_type 'depth_anything', e.g. depth-anything/Depth-Anything-V2-Small-hf)"
            )
        try:
            self.estimator = DepthAnythingEstimator(
                self.model_dir, output="depth", device=device
            )  # raw output
        except (ValueError, KeyError, OSError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"--depth-model {self.model_dir} cannot be loaded ({first})") from None
        metric = getattr(self.estimator.model.config, "depth_estimation_type", "relative") == "metric"
        self.prediction = "depth" if metric else "disparity"

    def __call__(
        self, frames_FHWC: np.ndarray, anchors_uv: np.ndarray, anchors_z: np.ndarray
    ) -> tuple[np.ndarray, list[dict]]:
        """Metric depth [F, H, W] (zeros where a frame had too few anchors) and each frame's fit.

        `anchors_uv` [F, J, 2] and `anchors_z` [F, J] (NaN = not an anchor)."""
        pred = self.estimator(frames_FHWC)  # [F, H, W] raw model output
        out = np.zeros(pred.shape, np.float32)
        fits = []
        for f in range(len(pred)):
            depth, info = align_to_anchors(pred[f], anchors_uv[f], anchors_z[f], self.prediction)
            if depth is not None:
                out[f] = depth
            else:
                logger.info("frame %d: %d depth anchors, too few to align; not fused", f, info["anchors"])
            fits.append(info)
        return out, fits
