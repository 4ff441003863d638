"""Action encoders: shapes, zero initialisation, temporal windows."""

from __future__ import annotations

import pytest
import torch

from egoworld.actions.encoders import ActionEncoder, SinCosFeatures, latent_frames


def test_sincos_features_use_32_frequencies_per_scalar():
    feats = SinCosFeatures(32)(torch.randn(2, 5, 3))
    assert feats.shape == (2, 5, 3 * 64)
    assert feats.abs().max() <= 1.0


@pytest.mark.parametrize("encoder", ["sincos", "mlp"])
@pytest.mark.parametrize("compression,frames,latents", [(1, 8, 8), (4, 17, 5), (4, 1, 1)])
def test_fresh_encoder_outputs_zeros_per_latent_frame(encoder, compression, frames, latents):
    enc = ActionEncoder(
        action_dim=3, embed_dim=24, encoder=encoder, temporal_compression=compression, hidden_dim=16
    )
    out = enc(torch.randn(2, frames, 3))
    assert out.shape == (2, latents, 24)
    assert torch.equal(out, torch.zeros_like(out))
    assert latent_frames(frames, compression) == latents


def test_latent_frame_windows_match_the_causal_vae():
    """Latent frame 0 sees video frame 0 alone; latent j sees video frames 4j-3 .. 4j."""
    enc = ActionEncoder(action_dim=2, embed_dim=8, encoder="mlp", temporal_compression=4, hidden_dim=8)
    torch.nn.init.normal_(enc.proj_out.weight)
    a = torch.randn(1, 13, 2)
    base = enc(a)
    for k in range(13):
        b = a.clone()
        b[0, k] += 1.0
        changed = ((enc(b) - base).abs().amax(dim=(0, 2)) > 0).nonzero().flatten().tolist()
        assert changed == [0 if k == 0 else (k + 3) // 4], (k, changed)


@pytest.mark.parametrize("encoder,compression", [("sincos", 1), ("mlp", 4)])
def test_a_centred_encoder_is_the_plain_one_minus_its_embedding_of_zero_actions(encoder, compression):
    enc = ActionEncoder(
        action_dim=3, embed_dim=24, encoder=encoder, temporal_compression=compression, hidden_dim=16
    )
    torch.nn.init.normal_(enc.proj_out.weight)
    torch.nn.init.normal_(enc.proj_out.bias)  # an offset the centred path cannot carry
    a = torch.randn(2, 9, 3)
    plain, plain_zero = enc(a), enc(torch.zeros_like(a))
    enc.center = True
    torch.testing.assert_close(enc(a), plain - plain_zero, atol=1e-5, rtol=1e-5)
    assert torch.equal(enc(torch.zeros_like(a)), torch.zeros_like(plain))
