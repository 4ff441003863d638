"""Small DiT world models on the packed pixel codec (`model.codec: pixel` for Cosmos and Wan): they
build, train, sample and round-trip through save/load; the codec itself is tested in tests/sim."""

import numpy as np
import pytest
import torch

from egoworld.codecs import PackedPixelCodec
from egoworld.model_config import WorldModelConfig
from egoworld.world_model import WorldModel


def _config(family: str, preset: str, **overrides) -> WorldModelConfig:
    fields = dict(
        family=family,
        preset=preset,
        codec="pixel",
        num_frames=5,
        height=16,
        width=16,
        action_dim=3,
        hidden_dim=16,
        use_image_encoder=False,
        num_inference_steps=2,
    )
    return WorldModelConfig(**{**fields, **overrides})


@pytest.mark.parametrize("family,preset", [("cosmos", "tiny"), ("wan", "tiny")])
def test_a_pixel_dit_trains_samples_and_reloads(family, preset, tmp_path):
    torch.manual_seed(0)
    wm = WorldModel.build(_config(family, preset))
    assert isinstance(wm.codec, PackedPixelCodec) and wm.codec.latent_channels == 4 * 3 * 2**2
    g = torch.Generator().manual_seed(0)
    batch = {"frames": torch.rand(2, 5, 3, 16, 16, generator=g) * 2 - 1, "actions": torch.randn(2, 5, 3)}
    loss = wm.loss(batch, torch.Generator().manual_seed(1))
    loss.backward()
    action_grad = sum(p.grad.abs().sum() for p in wm.denoiser.action_parameters() if p.grad is not None)
    assert torch.isfinite(loss) and action_grad > 0  # the actions reach the loss through the DiT
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    actions = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    wm.eval()
    chunk = wm.sample_chunk(image, actions, seed=3)
    assert chunk.shape == (1, 5, 3, 16, 16) and torch.isfinite(chunk).all()
    wm.save_pretrained(tmp_path / "m")
    assert not (tmp_path / "m" / "vae").exists()  # nothing to save for a lossless codec
    loaded = WorldModel.from_pretrained(tmp_path / "m")
    assert loaded.config == wm.config and isinstance(loaded.codec, PackedPixelCodec)
    assert torch.equal(loaded.sample_chunk(image, actions, seed=3), chunk)


def test_pixel_dit_sizes_are_checked():
    with pytest.raises(ValueError, match="packs 4x and the DiT patches 2x: expected multiples of 8"):
        _config("cosmos", "tiny", pixel_downscale=4, height=20, width=16).validate()
    with pytest.raises(ValueError, match="pixel_downscale=0; expected a positive integer"):
        _config("cosmos", "tiny", pixel_downscale=0).validate()


def test_the_residual_pixel_codec_stores_the_change_and_is_lossless():
    codec = PackedPixelCodec(2, residual=2.0)
    video = torch.rand(2, 9, 3, 16, 16) * 2 - 1
    still = video[:, :1].expand(-1, 9, -1, -1, -1)
    z = codec.encode(video)
    assert torch.allclose(codec.decode(z), video, atol=1e-6)
    z_still = codec.encode(still)  # nothing moves: every latent frame after the first is zero
    assert torch.equal(z_still[:, :, 1:], torch.zeros_like(z_still[:, :, 1:]))
    assert torch.equal(z_still[:, :, :1], PackedPixelCodec(2).encode(still)[:, :, :1])
    moved = video[:, 5] - video[:, 0]  # frame 5 is the first of latent frame 2, stored as 2 x the change
    assert torch.allclose(z[:, :12, 2], 2.0 * torch.nn.functional.pixel_unshuffle(moved, 2), atol=1e-6)
    assert torch.equal(codec.encode_condition(video), PackedPixelCodec(2).encode(video))  # no subtraction


@pytest.mark.parametrize("family", ["cosmos", "wan"])
@pytest.mark.parametrize("prediction", ["velocity", "x0"])
def test_a_residual_pixel_dit_trains_samples_and_reloads(family, prediction, tmp_path):
    torch.manual_seed(0)
    wm = WorldModel.build(_config(family, "tiny", pixel_residual=2.0, flow_prediction=prediction))
    assert wm.codec.residual == 2.0 and wm.family.objective.prediction == prediction
    batch = {"frames": torch.rand(2, 5, 3, 16, 16) * 2 - 1, "actions": torch.randn(2, 5, 3)}
    assert torch.isfinite(wm.loss(batch, torch.Generator().manual_seed(1)))
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    actions = np.zeros((5, 3), np.float32)
    wm.eval()
    chunk = wm.sample_chunk(image, actions, seed=3)
    wm.save_pretrained(tmp_path / "m")
    loaded = WorldModel.from_pretrained(tmp_path / "m")
    assert loaded.codec.residual == 2.0 and torch.equal(loaded.sample_chunk(image, actions, seed=3), chunk)


def test_pixel_residual_is_checked():
    with pytest.raises(ValueError, match="pixel_residual=0.0; expected null, or a positive scale"):
        _config("cosmos", "tiny", pixel_residual=0.0).validate()
    with pytest.raises(ValueError, match="with codec 'pixel' and family 'cosmos' or 'wan'"):
        _config("svd", "tiny", pixel_residual=2.0).validate()
    with pytest.raises(ValueError, match="residual=-1; expected None or a positive scale"):
        PackedPixelCodec(2, residual=-1)
    with pytest.raises(ValueError, match="flow_prediction='eps'; expected 'velocity', or 'x0'"):
        _config("wan", "tiny", flow_prediction="eps").validate()
    with pytest.raises(ValueError, match="'x0' with family 'cosmos' or 'wan'"):
        _config("svd", "tiny", flow_prediction="x0").validate()


def test_an_imported_pipelines_model_is_not_preconditioned():
    from egoworld.families.flow import CosmosFamily

    scheduler = {"_class_name": "FlowMatchEulerDiscreteScheduler"}  # what from_diffusers stores
    config = _config("cosmos", "tiny", flow_prediction="x0", extra={"scheduler": scheduler})
    with pytest.raises(ValueError, match="an imported pipeline's transformer predicts the velocity"):
        CosmosFamily(config)
