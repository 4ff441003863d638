"""EDM (Karras et al. 2022) as used by Stable Video Diffusion: v-prediction with sigma_data = 1.

    x = x0 + sigma * n,   ln(sigma) ~ N(P_mean, P_std^2)
    D(x; sigma) = c_skip * x + c_out * F(c_in * x; c_noise)
    c_in = 1/sqrt(sigma^2+1), c_skip = 1/(sigma^2+1), c_out = -sigma/sqrt(sigma^2+1), c_noise = ln(sigma)/4
    loss = lambda(sigma) * ||D(x; sigma) - x0||^2,   lambda(sigma) = (sigma^2+1)/sigma^2

Sampling uses diffusers' `EulerDiscreteScheduler` configured as SVD's, whose `scale_model_input`,
timesteps and `step` implement exactly these c_in, c_noise, c_skip and c_out (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import EulerDiscreteScheduler

from egoworld import noise


@dataclass
class EDM:
    """Preconditioning, noise-level sampling and loss of EDM with sigma_data = 1 (SVD's setting)."""

    P_mean: float = 0.7  # SVD fine-tuning recipes shift EDM's -1.2 towards higher noise for video
    P_std: float = 1.6
    sigma_min: float = 0.002
    sigma_max: float = 700.0

    @staticmethod
    def precondition(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """c_skip, c_out, c_in, c_noise for noise levels sigma (any shape)."""
        c_skip = 1 / (sigma**2 + 1)
        c_out = -sigma / (sigma**2 + 1).sqrt()
        c_in = 1 / (sigma**2 + 1).sqrt()
        c_noise = 0.25 * sigma.log()
        return c_skip, c_out, c_in, c_noise

    def sample_sigma(self, n: int, *, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        ln_sigma = noise.randn((n,), generator, device) * self.P_std + self.P_mean
        return ln_sigma.exp()

    @staticmethod
    def weight(sigma: torch.Tensor) -> torch.Tensor:
        return (sigma**2 + 1) / sigma**2

    def loss(self, denoised: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """lambda(sigma) * mean squared error, per sample [B]; sigma is [B]."""
        err = (denoised.float() - x0.float()).square().flatten(1).mean(1)
        return self.weight(sigma.float()) * err

    def scheduler(self) -> EulerDiscreteScheduler:
        """The sampler of the SVD pipeline (continuous timesteps c_noise, Karras sigmas)."""
        return EulerDiscreteScheduler(
            num_train_timesteps=1000,
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            prediction_type="v_prediction",
            interpolation_type="linear",
            use_karras_sigmas=True,
            sigma_min=self.sigma_min,
            sigma_max=self.sigma_max,
            timestep_spacing="leading",
            timestep_type="continuous",
            steps_offset=1,
        )
