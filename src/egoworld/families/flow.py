"""Cosmos Predict2 and Wan i2v world models: rectified-flow training and sampling.

Both predict the velocity v = eps - x0 on x_t = (1 - t) x0 + t eps (`objectives.flow`), on Wan-VAE
latents [B, C, T, h, w], and condition on the first video frame (= latent frame 0), each its own way:

Cosmos Predict2 (Video2World): the conditioning latent frame enters *clean* with the tiny
  t_cond = sigma_c / (1 + sigma_c), sigma_c = 1e-4, a `condition_mask` channel marks it, and it is
  excluded from the loss; Cosmos reads t itself as the timestep.
Wan i2v / Fun-InP: the noisy latents are concatenated with a 4-channel mask (1 on the first
  frame) and the VAE latents of [first frame, zeros...]; the CLIP penultimate features of the
  first frame go in as `encoder_hidden_states_image`; Wan reads 1000 t.
No text is used: the text embedding is a single zero token (world models are driven by actions).
"""

from __future__ import annotations

import torch

from egoworld import noise
from egoworld.objectives.flow import RectifiedFlow

SIGMA_CONDITIONING = 1e-4


class _FlowFamily:
    video_layout = "BCTHW"

    def __init__(self, config):
        self.config = config
        self.objective = RectifiedFlow(shift=config.flow_shift, timestep_scale=self.timestep_scale)

    def loss(self, wm, video_BFCHW, actions, state=None, generator=None) -> torch.Tensor:
        x0 = wm.codec.encode(video_BFCHW, generator)  # [B, C, T, h, w]
        b = x0.shape[0]
        cond = self.conditions(wm, video_BFCHW[:, 0], x0, generator)
        t = self.objective.sample_t(b, generator=generator, device=x0.device).view(-1, 1, 1, 1, 1)
        eps = noise.randn(x0.shape, generator, x0.device)
        x_t = self.objective.interpolate(x0, eps, t)
        v_pred = self.velocity(wm, x_t, t.flatten(), cond, actions, state)
        return self.objective.loss(v_pred, self.objective.target(x0, eps), cond.get("loss_mask"))

    @torch.no_grad()
    def sample(self, wm, image_BCHW, actions, state, num_inference_steps, guidance, generator, progress=None):
        b, ch = image_BCHW.shape[0], wm.codec.latent_channels
        frames = (actions.shape[1] - 1) // 4 + 1
        h, w = (s // wm.codec.spatial_compression for s in image_BCHW.shape[-2:])
        latents = noise.randn((b, ch, frames, h, w), generator, image_BCHW.device)
        cond = self.conditions(wm, image_BCHW, latents, generator)
        sched = self.objective.scheduler(self.config.sampler)
        sched.set_timesteps(num_inference_steps, device=latents.device)
        for i, timestep in enumerate(sched.timesteps):
            t = sched.sigmas[i].to(latents.device).expand(b)
            v = self.velocity(wm, latents, t, cond, actions, state)
            latents = sched.step(v, timestep, latents).prev_sample
            latents = self.pin(latents, cond)
            if progress is not None:
                progress.update(1)
        return wm.codec.decode(latents)

    def pin(self, latents, cond):
        return latents


class CosmosFamily(_FlowFamily):
    name = "cosmos"
    timestep_scale = 1.0

    def conditions(self, wm, image_BCHW, like_BCThw, generator=None) -> dict:
        b, _, frames, h, w = like_BCThw.shape
        z0 = wm.codec.encode_condition(image_BCHW[:, None])  # [B, C, 1, h, w]
        indicator = torch.zeros(1, 1, frames, 1, 1, device=z0.device)
        indicator[:, :, 0] = 1.0
        return {
            "z0": z0,
            "indicator": indicator,
            "loss_mask": 1 - indicator,
            "condition_mask": indicator.expand(b, 1, frames, h, w),
            "padding_mask": z0.new_zeros(1, 1, h, w),
            "text": z0.new_zeros(b, 1, wm.denoiser.config.text_embed_dim),
        }

    def velocity(self, wm, x_t, t, cond, actions, state):
        ind = cond["indicator"]
        x_in = ind * cond["z0"] + (1 - ind) * x_t  # the conditioning frame enters clean
        t_cond = SIGMA_CONDITIONING / (1 + SIGMA_CONDITIONING)
        timestep = ind * t_cond + (1 - ind) * t.view(-1, 1, 1, 1, 1)  # [B, 1, T, 1, 1]
        dtype = wm.denoiser.dtype
        return wm.denoiser(
            hidden_states=x_in.to(dtype),
            timestep=(timestep * self.timestep_scale).to(dtype),
            encoder_hidden_states=cond["text"].to(dtype),
            condition_mask=cond["condition_mask"].to(dtype),
            padding_mask=cond["padding_mask"].to(dtype),
            actions=actions,
            state=state,
        ).sample.float()

    def pin(self, latents, cond):
        ind = cond["indicator"]
        return ind * cond["z0"] + (1 - ind) * latents


class WanI2VFamily(_FlowFamily):
    name = "wan"
    timestep_scale = 1000.0

    def conditions(self, wm, image_BCHW, like_BCThw, generator=None) -> dict:
        b, _, frames, h, w = like_BCThw.shape
        num_video = 4 * (frames - 1) + 1
        first = image_BCHW[:, None]
        video = torch.cat([first, first.new_zeros(b, num_video - 1, *first.shape[2:])], dim=1)
        y = wm.codec.encode_condition(video)  # [B, C, T, h, w]
        mask = y.new_zeros(b, 4, frames, h, w)
        mask[:, :, 0] = 1.0
        cond = {
            "y": torch.cat([mask, y], dim=1),
            "text": y.new_zeros(b, 1, wm.denoiser.config.text_dim),
            "image": None,
        }
        if wm.image_encoder is not None:
            cond["image"] = wm.image_encoder.penultimate(image_BCHW)
        return cond

    def velocity(self, wm, x_t, t, cond, actions, state):
        dtype = wm.denoiser.dtype
        return wm.denoiser(
            hidden_states=torch.cat([x_t, cond["y"]], dim=1).to(dtype),
            timestep=(t * self.timestep_scale).to(dtype),
            encoder_hidden_states=cond["text"].to(dtype),
            encoder_hidden_states_image=None if cond["image"] is None else cond["image"].to(dtype),
            actions=actions,
            state=state,
        ).sample.float()
