"""Rectified flow (flow matching) as used by Cosmos Predict2 and Wan.

    x_t = (1 - t) * x0 + t * eps,    t in [0, 1]
    v   = eps - x0                   (the network's target)
    x0  = x_t - t * v

Two ways to draw the noise level of a training sample (`noise`):

- "logit-normal" (Wan; egoworld's default for models built without a pipeline): t from diffusers'
  training utilities (logit-normal, as the SD3/Wan recipes), then shifted like the sampler:
  t' = shift*t / (1 + (shift-1)*t).
- "cosmos-predict2" (the default of imported Cosmos models): Cosmos Predict2 trains on EDM noise
  levels, x = x0 + sigma * eps with ln(sigma) ~ N(0, 1) (`RectifiedFlowAB2Scheduler.sample_sigma`),
  scaled for video by sqrt(latent frames) (`adjust_video_noise`), and reads them as rectified-flow
  time t = sigma / (1 + sigma): the `Cosmos2VideoToWorldPipeline` preconditioning c_in = c_skip = 1 - t,
  c_out = -t makes c_in * x = x_t and x0_pred = x_t - t * F. Its EDM loss
  lambda(sigma) ||x0_pred - x0||^2 with lambda = (sigma^2 + 1) / sigma^2 (sigma_data = 1) is, in
  velocity form, w(t) ||F - v||^2 with w(t) = t^2 + (1 - t)^2 (`loss(..., t=t)` applies it).

Models built here (not imported) may instead predict the clean sample (`prediction="x0"`,
`model.flow_prediction`, as "x-prediction" in Li & He 2025, "Back to Basics: Let Denoising Generative
Models Denoise"): the network's output is x0_hat, its velocity v = (x_t - x0_hat) / t, and the loss
is the velocity loss of that v, ||x0_hat - x0||^2 / t^2 with t clamped at `X0_LOSS_MIN_T`. A velocity
(or EDM-preconditioned) network must reproduce the noise eps in its output; a small DiT whose token
width is below its patch's size (the `small` preset on the packed pixel codec: 192 numbers per
token, width 128) cannot, and the sampler then keeps the noise it cannot represent (docs/results.md).
An x0 network's samples end in what it can represent: the noise there shrinks with t.

The base models read t on different scales: Wan takes 1000*t, Cosmos Predict2 takes t itself
(`timestep_scale`). Sampling uses diffusers' `FlowMatchEulerDiscreteScheduler` (or UniPC in flow mode),
or exactly the scheduler an imported pipeline saved (`scheduler_from_config`).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from diffusers.training_utils import compute_density_for_timestep_sampling

from egoworld import noise as _noise

NOISE_KINDS = ("logit-normal", "cosmos-predict2")
PREDICTIONS = ("velocity", "x0")
X0_LOSS_MIN_T = 0.05  # the x0 network's velocity loss divides by max(t, this), as Li & He


def sigma_to_t(sigma: torch.Tensor) -> torch.Tensor:
    """EDM noise level -> rectified-flow time, t = sigma / (1 + sigma) (Cosmos Predict2's scaling)."""
    return sigma / (sigma + 1)


@dataclass
class RectifiedFlow:
    """Interpolation, velocity target, t sampling, loss weighting and the flow sampler.

    Args:
        shift: the flow schedule's shift (logit-normal t and the built-in samplers).
        weighting_scheme, logit_mean, logit_std: diffusers' `compute_density_for_timestep_sampling`
            arguments of the "logit-normal" noise.
        timestep_scale: what the base model reads as its timestep, per unit of t (Wan 1000, Cosmos 1).
        noise: "logit-normal" or "cosmos-predict2" (see the module docstring).
        prediction: what the network outputs: "velocity" (Cosmos, Wan) or "x0" (see the module docstring).
        log_sigma_mean, log_sigma_std: ln(sigma) ~ N(mean, std^2) of the "cosmos-predict2" noise
            (Cosmos Predict2: 0 and 1).
    """

    shift: float = 3.0
    weighting_scheme: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    timestep_scale: float = 1000.0  # Wan: 1000 * t; Cosmos Predict2: t (scale 1)
    noise: str = "logit-normal"
    log_sigma_mean: float = 0.0
    log_sigma_std: float = 1.0
    prediction: str = "velocity"

    def __post_init__(self):
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"flow noise {self.noise!r} is not known; expected one of {NOISE_KINDS}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(
                f"flow prediction {self.prediction!r} is not known; expected one of {PREDICTIONS}"
            )

    def sample_sigma(
        self, n: int, *, generator: torch.Generator | None = None, device=None, video_frames: int = 1
    ) -> torch.Tensor:
        """Cosmos Predict2's training noise levels [n]: exp(N(mean, std^2)) * sqrt(latent frames)."""
        ln_sigma = _noise.randn((n,), generator, device) * self.log_sigma_std + self.log_sigma_mean
        return ln_sigma.exp() * math.sqrt(video_frames)

    def sample_t(
        self, n: int, *, generator: torch.Generator | None = None, device=None, video_frames: int = 1
    ) -> torch.Tensor:
        """Training times t [n] in (0, 1). `video_frames` (latent frames of the clip) only matters for
        the "cosmos-predict2" noise (its sqrt(frames) video noise multiplier)."""
        if self.noise == "cosmos-predict2":
            sigma = self.sample_sigma(n, generator=generator, device=device, video_frames=video_frames)
            return sigma_to_t(sigma)
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

    def velocity_from_output(self, x_t: torch.Tensor, out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The velocity the sampler takes from the network's output at time t (broadcastable): the
        output itself, or (x_t - x0_hat) / t for an x0 network (t clamped at 1e-6 only, so that an
        Euler step to t = 0 lands exactly on x0_hat)."""
        if self.prediction == "velocity":
            return out
        return (x_t - out) / t.clamp_min(1e-6)

    def output_loss(
        self,
        out: torch.Tensor,
        x0: torch.Tensor,
        eps: torch.Tensor,
        t: torch.Tensor,
        weight_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss per sample [B] of the network's output at times t [B]: `loss` of the velocity, for
        an x0 network that of (x_t - x0_hat) / max(t, X0_LOSS_MIN_T) against (x_t - x0) / max(...)."""
        if self.prediction == "velocity":
            return self.loss(out, self.target(x0, eps), weight_mask, t=t)
        t_c = t.float().clamp_min(X0_LOSS_MIN_T).view(-1, *([1] * (x0.ndim - 1)))
        return self.loss(-out / t_c, -x0 / t_c, weight_mask, t=t)  # (x_t - a) - (x_t - b) = b - a

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """Per-sample loss weight: Cosmos Predict2's EDM weight in velocity form, t^2 + (1-t)^2; else 1."""
        if self.noise == "cosmos-predict2":
            return t.square() + (1 - t).square()
        return torch.ones_like(t)

    def loss(
        self,
        v_pred: torch.Tensor,
        v: torch.Tensor,
        weight_mask: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean squared velocity error per sample [B]; `weight_mask` (broadcastable, 0/1) drops
        conditioning frames from the loss; with `t` [B] each sample is weighted by `weight(t)`."""
        err = (v_pred.float() - v.float()).square()
        if weight_mask is None:
            per_sample = err.flatten(1).mean(1)
        else:
            mask = weight_mask.float().expand_as(err)
            per_sample = (err * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)
        if t is not None:
            per_sample = per_sample * self.weight(t.float().flatten())
        return per_sample

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


def scheduler_from_config(config: dict[str, Any], **register: Any):
    """The diffusers scheduler an imported pipeline saved (its scheduler_config.json as a dict).

    Keys the scheduler class does not take are left out (pipelines such as Cosmos2VideoToWorld register
    extra attributes, e.g. sigma_max, in the config they save); `register` values are then registered on
    the scheduler's config, as a pipeline's `__init__` does.
    """
    import diffusers
    from diffusers import SchedulerMixin

    name = config.get("_class_name")
    cls = getattr(diffusers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise ValueError(
            f"scheduler class {name!r} is not a diffusers scheduler; expected a scheduler_config.json such "
            "as FlowMatchEulerDiscreteScheduler's or UniPCMultistepScheduler's"
        )
    accepted = set(inspect.signature(cls.__init__).parameters)
    scheduler = cls.from_config({k: v for k, v in config.items() if k in accepted or k.startswith("_")})
    if register:
        scheduler.register_to_config(**register)
    return scheduler
