"""Reloaded weights compute exactly what the saved ones computed (issue 12's fresh-machine failure)."""

from __future__ import annotations

import torch
from diffusers import UNetSpatioTemporalConditionModel

from egoworld.backbones.svd import build_unet
from egoworld.weights import ALIGNMENT, load_local, own_storage


def test_loaded_parameters_are_aligned_and_owned(tmp_path):
    torch.manual_seed(0)
    unet = build_unet("tiny").eval()
    unet.save_pretrained(tmp_path / "unet", safe_serialization=True)
    plain = UNetSpatioTemporalConditionModel.from_pretrained(tmp_path / "unet")
    loaded = load_local(UNetSpatioTemporalConditionModel, tmp_path / "unet").eval()
    assert all(t.data_ptr() % ALIGNMENT == 0 for t in [*loaded.parameters(), *loaded.buffers()])
    for (name, a), b in zip(unet.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    # the loaded model computes bit for bit what the saved one does
    x = torch.randn(1, 2, 8, 8, 8)
    t, emb, ids = torch.tensor([0.3]), torch.randn(1, 1, unet.config.cross_attention_dim), torch.ones(1, 3)
    with torch.no_grad():
        assert torch.equal(unet(x, t, emb, ids).sample, loaded(x, t, emb, ids).sample)
    # own_storage on the plain loader's model gives the same aligned, equal weights
    own_storage(plain)
    assert all(p.data_ptr() % ALIGNMENT == 0 for p in plain.parameters())
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), loaded.parameters()))
