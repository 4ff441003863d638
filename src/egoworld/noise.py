"""Random draws that work whatever device the generator and the tensors live on.

`torch.randn(shape, generator=g, device=d)` fails when `g` lives elsewhere than `d` ("Expected a
'cuda' device type for generator"): a CPU generator and CUDA latents crash the first GPU step. Every
draw in the library goes through these helpers, which draw on the generator's own device and move
the result to `device` (diffusers' `randn_tensor` does the same for Gaussian noise). A CPU generator
therefore gives the same noise on any device, as the diffusers pipelines do; a generator on the
model's device (the trainer's) avoids the copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from diffusers.utils.torch_utils import randn_tensor


def _draw(fn: Callable, shape, generator: torch.Generator | None, device, **kw) -> torch.Tensor:
    device = torch.device(device if device is not None else "cpu")
    source = generator.device if generator is not None else device
    return fn(tuple(shape), generator=generator, device=source, **kw).to(device)


def randn(
    shape: Sequence[int], generator: torch.Generator | None = None, device=None, dtype=torch.float32
) -> torch.Tensor:
    """Standard normal noise of `shape` on `device`, drawn from `generator` wherever it lives."""
    device = torch.device(device if device is not None else "cpu")
    return randn_tensor(tuple(shape), generator=generator, device=device, dtype=dtype)


def rand(shape: Sequence[int], generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Uniform [0, 1) samples of `shape` on `device`."""
    return _draw(torch.rand, shape, generator, device)


def randint(
    high: int, shape: Sequence[int], generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """Integers in [0, high) of `shape` on `device`."""
    return _draw(lambda s, **kw: torch.randint(0, high, s, **kw), shape, generator, device)
