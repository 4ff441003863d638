"""Rectified flow (flow matching) as used by Cosmos Predict2 and Wan.

    x_t = (1 - t) * x0 + t * eps,    t in [0, 1]
    v   = eps - x0                   (the network's target)
    x0  = x_t - t * v

t is drawn through diffusers' training utilities (logit-normal by default, as SD3/Wan recipes),
then shifted like the sampler: t' = shift*t / (1 + (shift-1)*t). The base models read t on
different scales: Wan takes 1000*t, Cosmos Predict2 takes t itself (`timestep_scale`).
Sampling uses diffusers' `FlowMatchEulerDiscreteScheduler` (or UniPC in flow mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from diffusers.training_utils import compute_density_for_timestep_sampling


@dataclass
class RectifiedFlow:
    """Interpolation, velocity target, t sampling and the flow sampler."""

    shift: float = 3.0
    weighting_scheme: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    timestep_scale: float = 1000.0  # Wan: 1000 * t; Cosmos Predict2: t (scale 1)

    def sample_t(self, n: int, *, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        u = compute_density_for_timestep_sampling(
            self.weighting_scheme,
            n,
            logit_mean=self.logit_mean,
            logit_std=self.logit_std,
            mode_scale=1.29,
            device=generator.device if generator is not None else (device or "cpu"),
            generator=generator,
        ).to(device or "cpu")  # drawn where the generator lives (see egoworld.noise)
        return self.shift * u / (1 + (self.shift - 1) * u)

    @staticmethod
    def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (1 - t) * x0 + t * eps

    @staticmethod
    def target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return eps - x0

    @staticmethod
    def x0_from_velocity(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x_t - t * v

    def loss(
        self, v_pred: torch.Tensor, v: torch.Tensor, weight_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean squared velocity error per sample [B]; `weight_mask` (broadcastable, 0/1) drops
        conditioning frames from the loss."""
        err = (v_pred.float() - v.float()).square()
        if weight_mask is None:
            return err.flatten(1).mean(1)
        mask = weight_mask.float().expand_as(err)
        return (err * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)

    def scheduler(self, kind: str = "euler"):
        if kind == "euler":
            return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=self.shift)
        if kind == "unipc":
            return UniPCMultistepScheduler(
                prediction_type="flow_prediction",
                use_flow_sigmas=True,
                flow_shift=self.shift,
                num_train_timesteps=1000,
            )
        raise ValueError(f"sampler {kind!r} is not known; expected 'euler' or 'unipc'")
