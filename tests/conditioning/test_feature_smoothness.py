"""The sin/cos action features are smooth in the action (the EgoWM release: 16 frequencies, scale 1)."""

from __future__ import annotations

import torch

from egoworld.actions.encoders import ActionEncoder, SinCosFeatures


def test_release_features_move_little_for_a_small_action_change():
    a = torch.linspace(-1, 1, 201)[:, None]
    feats = SinCosFeatures()(a)  # defaults: 16 frequencies at scale 1 -> 32 features per scalar
    assert feats.shape == (201, 32)
    step = (feats[1:] - feats[:-1]).norm(dim=-1)  # action change of 0.01
    assert step.max() < 0.05
    legacy = SinCosFeatures(num_frequencies=32, scale=1000.0)(a)
    assert (legacy[1:] - legacy[:-1]).norm(dim=-1).mean() > 3.0  # the old setting: nearly a hash


def test_feature_scale_round_trips_and_old_configs_keep_theirs(tmp_path):
    enc = ActionEncoder(action_dim=3, embed_dim=8, hidden_dim=16)
    assert enc.config.num_frequencies == 16 and enc.config.feature_scale == 1.0
    legacy = ActionEncoder(action_dim=3, embed_dim=8, hidden_dim=16, num_frequencies=32, feature_scale=1000.0)
    legacy.save_pretrained(tmp_path / "enc")
    loaded = ActionEncoder.from_pretrained(tmp_path / "enc")
    assert loaded.features[0].scale == 1000.0 and loaded.features[0].num_frequencies == 32
