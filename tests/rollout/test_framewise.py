"""The NWM-style frame-wise baseline: shapes, one denoiser call per frame per step, size matching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egoworld.baselines import (
    FramewiseConfig,
    FramewiseDiT,
    FramewiseWorldModel,
    count_denoiser_parameters,
    match_parameter_count,
)


@pytest.fixture(scope="module")
def baseline():
    torch.manual_seed(0)
    return FramewiseWorldModel(FramewiseConfig(height=32, width=48, num_inference_steps=3)).eval()


def test_denoiser_shapes():
    torch.manual_seed(0)
    net = FramewiseDiT(FramewiseConfig(height=32, width=48))
    x = torch.randn(2, 4, 8, 12)  # [B, C, h, w]: 4x VAE
    out = net(x, torch.tensor([500.0, 10.0]), torch.randn(2, 4, 4, 8, 12), torch.randn(2, 3))
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="3 context frames; expected 4"):
        net(x, torch.tensor([1.0, 1.0]), torch.randn(2, 3, 4, 8, 12), torch.randn(2, 3))


def test_rollout_calls_the_denoiser_once_per_frame_per_step(baseline):
    calls = []
    handle = baseline.denoiser.register_forward_pre_hook(lambda m, args: calls.append(args[2].shape))
    image = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    actions = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    frames = baseline.rollout(image, actions, seed=0)
    handle.remove()
    assert frames.shape == (6, 32, 48, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], image)
    assert len(calls) == 5 * 3  # 5 future frames x 3 steps
    assert all(tuple(s) == (1, 4, 4, 8, 12) for s in calls)  # always 4 context frames
    np.testing.assert_array_equal(frames, baseline.rollout(image, actions, seed=0))


def test_rollout_rejects_bad_inputs(baseline):
    image = np.zeros((32, 48, 3), np.uint8)
    with pytest.raises(ValueError, match=r"expected \(32, 48, 3\)"):
        baseline.rollout(np.zeros((32, 32, 3), np.uint8), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"expected \[N >= 2, 3\]"):
        baseline.rollout(image, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        baseline.rollout(image, np.full((3, 3), np.nan))


def test_parameter_count_is_matched_by_width():
    config = FramewiseConfig(hidden_dim=64, num_heads=4)
    matched = match_parameter_count(1_000_000, config, head_dim=16)
    assert matched.depth == config.depth and matched.hidden_dim == 16 * matched.num_heads
    count = count_denoiser_parameters(matched)
    step = count_denoiser_parameters(
        FramewiseConfig(hidden_dim=matched.hidden_dim + 16, num_heads=matched.num_heads + 1)
    )
    assert abs(count - 1_000_000) <= step - count  # within one head's worth of width
    assert count == sum(p.numel() for p in FramewiseWorldModel(matched).denoiser.parameters())


def test_config_is_validated():
    with pytest.raises(ValueError, match="height=36; expected a multiple of 8"):
        FramewiseConfig(height=36).validate()
    with pytest.raises(ValueError, match="vae='xl'"):
        FramewiseConfig(vae="xl").validate()
