"""WorldModel: each family trains, rolls out deterministically, saves and loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egoworld.world_model import WorldModel, WorldModelConfig

FAMILIES = {"svd": 4, "cosmos": 5, "wan": 5}


def _config(family: str, **kw) -> WorldModelConfig:
    return WorldModelConfig(
        family=family,
        num_frames=FAMILIES[family],
        height=32,
        width=32,
        hidden_dim=32,
        num_inference_steps=2,
        **kw,
    )


@pytest.fixture(scope="module", params=list(FAMILIES))
def model(request):
    torch.manual_seed(0)
    return WorldModel.build(_config(request.param)).eval()


def test_loss_is_finite_and_reaches_the_action_encoder(model):
    f = model.config.num_frames
    batch = dict(frames=torch.rand(2, f, 3, 32, 32) * 2 - 1, actions=torch.randn(2, f, 3))
    model.train()
    loss = model.loss(batch, torch.Generator().manual_seed(0))
    loss.backward()
    model.eval()
    assert torch.isfinite(loss)
    assert model.denoiser.action_encoder.proj_out.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.codec.parameters())
    model.zero_grad(set_to_none=True)


def test_rollout_is_deterministic_for_a_seed_and_save_load_reproduces_it(model, tmp_path):
    f = model.config.num_frames
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    actions = np.random.default_rng(1).normal(size=(2 * f - 1, 3)).astype(np.float32)
    a = model.rollout(image, actions, seed=3)
    b = model.rollout(image, actions, seed=3)
    assert a.shape == (2 * f - 1, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.array_equal(a[0], image) or np.abs(a[0].astype(int) - image).max() <= 1
    model.save_pretrained(tmp_path / "wm")
    loaded = WorldModel.from_pretrained(tmp_path / "wm")
    assert np.array_equal(loaded.rollout(image, actions, seed=3), a)


def test_chunked_rollout_feeds_each_chunk_its_own_action_slice(model):
    f = model.config.num_frames
    seen: list[torch.Tensor] = []
    handle = model.denoiser.action_encoder.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].clone())
    )
    actions = np.arange(3 * (f - 1) + 1, dtype=np.float32)[:, None].repeat(3, axis=1)
    model.rollout(np.zeros((32, 32, 3), np.uint8), actions, normalized=True, num_inference_steps=1)
    handle.remove()
    chunk_inputs = seen
    assert len(chunk_inputs) == 3  # one denoiser call per chunk with 1 step and no guidance
    for k, s in enumerate(chunk_inputs):
        expected = torch.as_tensor(actions[k * (f - 1) : k * (f - 1) + f]).clone()
        expected[0] = 0.0  # each chunk starts from its condition frame, like a training clip
        torch.testing.assert_close(s[0].cpu(), expected)


@pytest.mark.parametrize(
    "image,actions,match",
    [
        (
            np.zeros((16, 16, 3), np.uint8),
            np.zeros((5, 3)),
            r"image has shape \(16, 16, 3\); expected \(32, 32, 3\)",
        ),
        (np.zeros((32, 32, 3), np.uint8), np.zeros((5, 2)), r"expected \[N, 3\]"),
        (np.zeros((32, 32, 3), np.uint8), np.full((5, 3), np.nan), "NaN or Inf"),
        (np.zeros((32, 32, 3), np.uint8), np.zeros((1, 3)), "at least 2"),
    ],
)
def test_bad_rollout_inputs(model, image, actions, match):
    with pytest.raises(ValueError, match=match):
        model.rollout(image, actions)


def test_config_errors():
    with pytest.raises(ValueError, match="expected 4k\\+1"):
        WorldModel.build(WorldModelConfig(family="wan", num_frames=8))
    with pytest.raises(ValueError, match="family='nwm' is not known"):
        WorldModel.build(WorldModelConfig(family="nwm"))
    with pytest.raises(ValueError, match="the wan pixel codec packs 8x and the DiT patches 2x"):
        WorldModel.build(
            WorldModelConfig(
                family="wan", num_frames=5, codec="pixel", pixel_downscale=8, height=40, width=40
            )
        )


def test_incomplete_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="egoworld_world_model.json not found"):
        WorldModel.from_pretrained(tmp_path)
