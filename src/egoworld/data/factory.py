"""Build the training / validation datasets a `TrainConfig` asks for.

Clips have `model.num_frames` frames (1 context frame + the rest to predict) at the model's
resolution. Action statistics are fitted on the training data and stored with the model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset, Subset

from egoworld.actions.normalization import ActionNormalizer

logger = logging.getLogger(__name__)

FORMATS = ("nwm", "onex", "lerobot", "worlds-nav", "passive")


def ensure_worlds_nav(data_cfg, size: int) -> Path:
    """The synthetic navigation dataset at `data.path`, generated on first use (MuJoCo, seeded)."""
    from egoworld.worlds.generate import WorldSpec, generate

    path = Path(data_cfg.path)
    marker = path / "egoworld_world.json"
    if marker.is_file():  # an existing generated dataset is used as it is
        if json.loads(marker.read_text()).get("task") != "nav":
            raise ValueError(f"{path} holds a generated dataset of another task; expected task 'nav'")
        return path
    spec = WorldSpec(
        task="nav",
        episodes=data_cfg.episodes,
        frames=data_cfg.frames_per_episode,
        size=size,
        seed=data_cfg.seed,
    )
    generate(spec, path, progress=False)
    return path


def _open(data_cfg, model_cfg, normalizer: ActionNormalizer | None):
    from egoworld.data.lerobot import LeRobotDataset
    from egoworld.data.nwm import NWMDataset
    from egoworld.data.onex import OneXDataset

    resolution = (model_cfg.height, model_cfg.width)
    horizon = model_cfg.num_frames - 1
    fmt = data_cfg.format
    if fmt not in FORMATS:
        raise ValueError(f"data.format={fmt!r} is not known; expected one of {FORMATS}")
    if fmt == "worlds-nav":
        root = ensure_worlds_nav(data_cfg, max(model_cfg.height, model_cfg.width))
        meta = json.loads((root / "egoworld_world.json").read_text())
        return NWMDataset(
            root,
            dataset_name=meta.get("dataset_name", "worlds"),
            spacing=float(meta.get("metric_waypoint_spacing", 0.25)),
            context=1,
            horizon=horizon,
            stride=data_cfg.stride,
            frame_step=data_cfg.frame_step,
            resolution=resolution,
            normalizer=normalizer,
        )
    path = Path(data_cfg.path)
    if not path.exists():
        raise FileNotFoundError(f"data.path {path} does not exist; expected a {fmt} dataset folder")
    if fmt == "nwm":
        return NWMDataset(
            path,
            split=data_cfg.split,
            dataset_name=data_cfg.dataset_name,
            context=1,
            horizon=horizon,
            stride=data_cfg.stride,
            frame_step=data_cfg.frame_step,
            resolution=resolution,
            normalizer=normalizer,
        )
    if fmt == "passive":
        from egoworld.data.passive import PassiveVideoDataset

        return PassiveVideoDataset(path, context=1, horizon=horizon, stride=data_cfg.stride,
                                   frame_step=data_cfg.frame_step, resolution=resolution,
                                   action_dim=model_cfg.action_dim)  # fmt: skip
    if fmt == "onex":
        return OneXDataset(path, context=1, horizon=horizon, stride=data_cfg.stride, resolution=resolution,
                           normalizer=normalizer)  # fmt: skip
    return LeRobotDataset(path, context=1, horizon=horizon, stride=data_cfg.stride, resolution=resolution,
                          normalizer=normalizer)  # fmt: skip


def fit_normalizer(data_cfg, model_cfg) -> ActionNormalizer:
    """Per-dimension mean/std of the training actions (without normalization applied).

    Passive videos have no actions: their statistics are the identity (mean 0, std 1).
    """
    if data_cfg.format == "passive":
        from egoworld.data.passive import zero_action_normalizer

        return zero_action_normalizer(model_cfg.action_dim)
    raw = _open(data_cfg, model_cfg, None)
    meta = {"dataset": getattr(raw, "dataset_name", data_cfg.format)}
    if getattr(raw, "spacing", None) is not None:
        meta["spacing"] = float(raw.spacing)
    return ActionNormalizer.fit(raw.all_actions(), meta=meta)


def build_datasets(data_cfg, model_cfg, normalizer: ActionNormalizer) -> tuple[Dataset, Dataset | None]:
    """(train, validation) with normalised actions; the split is a fixed function of data.seed."""
    ds = _open(data_cfg, model_cfg, normalizer)
    if len(ds) == 0:
        raise ValueError(f"{data_cfg.path}: no clips of {model_cfg.num_frames} frames; need longer episodes")
    sample = ds[0]
    width = sample["actions"].shape[-1]
    if width != model_cfg.action_dim:
        raise ValueError(f"the dataset's actions have {width} dims; model.action_dim={model_cfg.action_dim}")
    n_val = int(round(len(ds) * data_cfg.val_fraction))
    if n_val == 0 or n_val >= len(ds):
        return ds, None
    order = np.random.default_rng(data_cfg.seed).permutation(len(ds))
    return Subset(ds, order[n_val:].tolist()), Subset(ds, order[:n_val].tolist())
