"""Mirror augmentation: the second half of the clips is the first half seen in a mirror."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egoworld.actions.normalization import ActionNormalizer
from egoworld.actions.spaces import mirror_nav
from egoworld.data.augment import MirroredNavClips, mirror_clip_tensors
from egoworld.data.nwm import NWMDataset


@pytest.mark.parametrize("mode", ["delta", "cumulative"])
def test_mirrored_half_flips_frames_and_mirrors_raw_actions(nwm_root, mode):
    raw = NWMDataset(nwm_root, context=1, horizon=3, action_mode=mode, resolution=16)
    # statistics with a non-zero mean: mirroring must happen on the raw scale to stay exact
    stats = ActionNormalizer.fit(
        raw.all_actions(), meta={"dataset": "recon", "spacing": 0.25, "action_mode": mode}
    )
    assert np.abs(stats.mean[1:]).max() > 0.01
    ds = NWMDataset(nwm_root, context=1, horizon=3, action_mode=mode, resolution=16, normalizer=stats)
    both = MirroredNavClips(ds, stats)
    n = len(ds)
    assert len(both) == 2 * n
    for i in (0, n - 1):
        item, twin = both[i], both[i + n]
        assert torch.equal(item["frames"], ds[i]["frames"])
        assert torch.equal(twin["frames"], torch.flip(item["frames"], dims=[-1]))  # [T, 3, H, W] width axis
        want = mirror_nav(stats.denormalize(item["actions"].numpy()[1:].astype(np.float64)))
        np.testing.assert_allclose(stats.denormalize(twin["actions"].numpy()[1:]), want, atol=1e-5)
        assert torch.equal(twin["actions"][0], item["actions"][0])  # the start row is not an action
        # mirroring twice gives the clip back
        again = mirror_clip_tensors(twin, stats)
        assert torch.equal(again["frames"], item["frames"])
        np.testing.assert_allclose(again["actions"].numpy(), item["actions"].numpy(), atol=1e-5)
    with pytest.raises(IndexError, match="out of range"):
        both[2 * n]


def test_mirroring_refuses_actions_that_are_not_navigation():
    item = {"frames": torch.zeros(3, 3, 8, 8), "actions": torch.zeros(3, 25), "episode": "e"}
    with pytest.raises(ValueError, match=r"navigation actions \[T, 3\]"):
        mirror_clip_tensors(item, None)
