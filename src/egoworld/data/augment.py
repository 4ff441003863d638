"""Mirror augmentation for navigation clips: left <-> right, exactly.

A walk seen in a mirror is another valid walk: flipping every frame horizontally and negating the
lateral component and the yaw of every action, (x, y, yaw) -> (x, -y, -yaw), gives the clip a
camera would record walking the mirrored path through the mirrored world. Training on both halves
removes any one-sided bias of the walks, so a model cannot lower its loss by predicting "the usual
turn": only reading the actions tells it which way the view moves.

The mirrored copies are deterministic (index i + n is clip i mirrored), so data order, resume and
validation splits stay exact functions of the seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from egoworld.actions.normalization import ActionNormalizer
from egoworld.actions.spaces import NAV_ACTION_DIM, mirror_nav


def mirror_clip_tensors(item: dict[str, Any], normalizer: ActionNormalizer | None) -> dict[str, Any]:
    """One clip from `Clip.to_tensors` (frames [T, 3, H, W], actions [T, 3]) mirrored left <-> right.

    Actions are mirrored on the raw scale (normalised actions are de-normalised, mirrored and
    normalised again, so statistics with a non-zero mean stay exact); row 0, the start frame, stays zero.
    """
    actions = item["actions"].numpy().astype(np.float64)
    if actions.ndim != 2 or actions.shape[1] != NAV_ACTION_DIM:
        raise ValueError(
            f"mirroring needs navigation actions [T, {NAV_ACTION_DIM}]; got {tuple(actions.shape)}"
        )
    raw = actions.copy()
    if normalizer is not None:
        raw[1:] = normalizer.denormalize(actions[1:])
    mirrored = mirror_nav(raw).astype(np.float64)
    if normalizer is not None:
        mirrored[1:] = normalizer.normalize(mirrored[1:])
    mirrored[0] = actions[0]
    out = dict(item)
    out["frames"] = torch.flip(item["frames"], dims=[-1])  # [T, 3, H, W]: flip the width axis
    out["actions"] = torch.from_numpy(mirrored.astype(np.float32))
    out["episode"] = f"{item['episode']}/mirrored"
    return out


class MirroredNavClips(Dataset):
    """`dataset` followed by every one of its clips mirrored: 2n clips (data.mirror: true).

    Args:
        dataset: navigation clips as tensors (an `NWMDataset`, or a `Subset` of one).
        normalizer: the statistics the dataset normalises its actions with (None: raw actions).
    """

    def __init__(self, dataset: Dataset, normalizer: ActionNormalizer | None):
        self.dataset, self.normalizer = dataset, normalizer

    def __len__(self) -> int:
        return 2 * len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        n = len(self.dataset)
        if not -2 * n <= i < 2 * n:
            raise IndexError(f"clip index {i} out of range for {2 * n} clips")
        i %= 2 * n
        item = self.dataset[i % n]
        return item if i < n else mirror_clip_tensors(item, self.normalizer)
