"""The latency benchmark's settings (the measuring itself runs in tests/rollout/test_bench.py and in
the GPU suite's dry run)."""

from __future__ import annotations

import pytest
import torch

from egoworld.bench.latency import LatencySettings, pass_frames


def test_settings_defaults_and_normalisation():
    s = LatencySettings(horizons=(16, 8, 16)).validate()
    assert s.horizons == (8, 16)
    assert (s.model_steps, s.baseline_model_steps, s.dtype) == (4, 4, torch.float32)
    real = LatencySettings(presets="real", steps=None, baseline_steps=3, precision="bf16")
    assert (real.model_steps, real.baseline_model_steps, real.dtype) == (10, 3, torch.bfloat16)
    assert pass_frames(64, 16) == 17  # overlapping passes of at most --max-pass new frames


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(horizons=(0, 8)), "horizons [0, 8]; expected frame counts >= 1"),
        (dict(families=("svd", "sora")), "unknown ['sora']"),
        (dict(attention="fast"), "attention 'fast'"),
        (dict(precision="fp8"), "precision 'fp8'"),
        (dict(device="mps"), "device 'mps'; expected cpu or cuda"),
        (dict(device="tpu"), "device 'tpu'; expected cpu or cuda"),
        (dict(repeats=0), "repeats 0"),
        (dict(baseline_resolution="huge"), "baseline_resolution 'huge'"),
    ],
)
def test_settings_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError) as err:
        LatencySettings(**kwargs).validate()
    assert message in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        LatencySettings(device="cuda").validate()
