"""Encoding a batch in chunks bounds VAE memory and gives the same latents (same noise draws)."""

from __future__ import annotations

import pytest
import torch

from egoworld.backbones import svd, wan
from egoworld.codecs import SVDCodec, WanCodec


@pytest.mark.parametrize("kind", ["svd", "wan"])
def test_chunked_encode_matches_one_call(kind):
    torch.manual_seed(0)
    if kind == "svd":
        codec, video = SVDCodec(svd.build_vae("tiny")), torch.rand(2, 3, 3, 16, 16) * 2 - 1
    else:
        codec, video = WanCodec(wan.build_vae("tiny")), torch.rand(3, 5, 3, 16, 16) * 2 - 1
    whole = codec.encode(video, torch.Generator().manual_seed(1))
    codec.encode_chunk = 1
    parts = codec.encode(video, torch.Generator().manual_seed(1))
    assert parts.shape == whole.shape
    torch.testing.assert_close(parts, whole, atol=1e-5, rtol=1e-5)  # batch-size kernel rounding only
    codec.encode_chunk = 0
    with pytest.raises(ValueError, match="encode_chunk=0"):
        codec.encode(video)
