"""Action normalization statistics over a whole dataset, as the loaders produce the actions."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from egoworld.actions.normalization import ActionNormalizer

logger = logging.getLogger(__name__)


def open_dataset(path: str | Path, format: str | None = None, **kwargs):
    """The clip dataset for `path` (format detected when None); kwargs go to its constructor."""
    from egoworld.data.check import detect_format

    fmt = format or detect_format(path)
    if fmt == "nwm":
        from egoworld.data.nwm import NWMDataset

        return NWMDataset(path, **kwargs)
    if fmt == "recon_h5":
        from egoworld.data.recon_h5 import ReconH5Dataset

        return ReconH5Dataset(path, **kwargs)
    if fmt == "onex":
        from egoworld.data.onex import OneXDataset

        return OneXDataset(path, **kwargs)
    if fmt == "lerobot":
        from egoworld.data.lerobot import LeRobotDataset

        return LeRobotDataset(path, **kwargs)
    raise ValueError(f"unknown dataset format {fmt!r}; expected nwm, recon_h5, onex or lerobot")


def dataset_meta(ds) -> dict:
    """Facts the statistics depend on; `ActionNormalizer.check_compatible` compares them at load."""
    meta = {"dataset": getattr(ds, "dataset_name", None)}
    if hasattr(ds, "spacing"):
        meta.update(spacing=ds.spacing, action_mode=ds.action_mode, frame_step=ds.spec.frame_step)
    if type(ds).__name__ == "OneXDataset":
        meta.update(fps=float(ds.fps))
    if type(ds).__name__ == "LeRobotDataset":
        meta.update(action_key=ds.action_key, frame_step=ds.spec.frame_step)
    return {k: v for k, v in meta.items() if v is not None}


def compute_stats(
    path: str | Path, format: str | None = None, mode: str = "meanstd", **kwargs
) -> ActionNormalizer:
    """Fit an `ActionNormalizer` to every action of the dataset at `path` (no images decoded)."""
    kwargs.setdefault("resolution", None)
    ds = open_dataset(path, format, **kwargs)
    seen = [0]

    def checked():
        for a in ds.all_actions():
            a = np.asarray(a)
            if a.size and not np.isfinite(a).all():
                raise ValueError(f"{path}: the actions contain NaN or inf; run `egoworld data check {path}`")
            seen[0] += len(a)
            yield a

    try:
        norm = ActionNormalizer.fit(checked(), mode=mode, meta=dataset_meta(ds))
    except ValueError:
        if seen[0]:
            raise
        raise ValueError(
            f"{path}: no actions to compute statistics from; expected episodes with at least two frames "
            "at the chosen frame step (and fps)"
        ) from None
    logger.info("statistics from %d actions of %s", norm.count, path)
    return norm
