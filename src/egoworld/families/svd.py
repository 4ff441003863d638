"""An SVD world model: EDM training and Euler sampling with SVD's own conditioning.

Conditioning, as the SVD image-to-video pipeline builds it:
  - the first frame, noise-augmented in pixel space (`cond_aug`), VAE-encoded (mode, *unscaled*),
    concatenated on channels to every frame's noisy latent: sample = [c_in * x, z_cond] [B, F, 2C, h, w];
  - the CLIP image embedding of the clean first frame as `encoder_hidden_states` [B, 1, D];
  - `added_time_ids` = (fps - 1, motion bucket, cond_aug) [B, 3].
Classifier-free guidance on the image condition: the unconditional branch zeroes z_cond and the
CLIP embedding (trained with `cfg_dropout`), guidance rising linearly over frames as in SVD.
"""

from __future__ import annotations

import torch
from diffusers import EulerDiscreteScheduler

from egoworld import noise
from egoworld.objectives.edm import EDM


class SVDFamily:
    name = "svd"
    video_layout = "BFCHW"

    def __init__(self, config):
        self.config = config
        self.objective = EDM(P_mean=config.P_mean, P_std=config.P_std)

    def _conditions(self, wm, image_BCHW: torch.Tensor, generator=None):
        c = self.config
        aug = noise.randn(image_BCHW.shape, generator, image_BCHW.device)
        z_cond = wm.codec.encode_condition(image_BCHW + c.cond_aug * aug)  # [B, C, h, w], unscaled
        if wm.image_encoder is not None:
            emb = wm.image_encoder.embeds(image_BCHW)  # [B, 1, D]
        else:
            emb = image_BCHW.new_zeros(image_BCHW.shape[0], 1, wm.denoiser.config.cross_attention_dim)
        ids = torch.tensor([c.fps - 1, c.motion_bucket_id, c.cond_aug], device=image_BCHW.device)
        return z_cond, emb.to(wm.denoiser.dtype), ids.expand(image_BCHW.shape[0], 3)

    def _denoise(self, wm, x, sigma, z_cond, emb, ids, actions, state):
        """D(x; sigma) with EDM preconditioning; x [B, F, C, h, w], sigma [B]."""
        c_skip, c_out, c_in, c_noise = (v.view(-1, 1, 1, 1, 1) for v in self.objective.precondition(sigma))
        z = z_cond[:, None].expand(-1, x.shape[1], -1, -1, -1)
        sample = torch.cat([c_in * x, z], dim=2).to(wm.denoiser.dtype)
        F_x = wm.denoiser(sample, c_noise.flatten(), emb, ids, actions=actions, state=state).sample
        return c_skip * x + c_out * F_x.float()

    def loss(self, wm, video_BFCHW, actions, state=None, generator=None) -> torch.Tensor:
        b = video_BFCHW.shape[0]
        x0 = wm.codec.encode(video_BFCHW, generator)  # [B, F, C, h, w]
        z_cond, emb, ids = self._conditions(wm, video_BFCHW[:, 0], generator)
        drop = noise.rand((b,), generator, x0.device) < self.config.cfg_dropout
        keep = (~drop).float()
        z_cond, emb = z_cond * keep.view(-1, 1, 1, 1), emb * keep.view(-1, 1, 1).to(emb.dtype)
        sigma = self.objective.sample_sigma(b, generator=generator, device=x0.device)
        n = noise.randn(x0.shape, generator, x0.device)
        x = x0 + sigma.view(-1, 1, 1, 1, 1) * n
        denoised = self._denoise(wm, x, sigma, z_cond, emb, ids, actions, state)
        return self.objective.loss(denoised, x0, sigma)

    def scheduler(self) -> EulerDiscreteScheduler:
        """An imported pipeline's own scheduler config (exactly its sampler), else SVD's (`EDM`)."""
        saved = self.config.extra.get("scheduler")
        return EulerDiscreteScheduler.from_config(saved) if saved else self.objective.scheduler()

    @torch.no_grad()
    def sample(self, wm, image_BCHW, actions, state, num_inference_steps, guidance, generator, progress=None):
        num_frames = actions.shape[1]
        z_cond, emb, ids = self._conditions(wm, image_BCHW, generator)
        sched = self.scheduler()
        sched.set_timesteps(num_inference_steps, device=image_BCHW.device)
        b, ch = image_BCHW.shape[0], wm.codec.latent_channels
        h, w = (s // wm.codec.spatial_compression for s in image_BCHW.shape[-2:])
        latents = noise.randn((b, num_frames, ch, h, w), generator, image_BCHW.device)
        latents = latents * sched.init_noise_sigma
        use_cfg = guidance > 1.0
        # the SVD pipeline: guidance grows linearly from 1 at the first frame to `guidance` at the last;
        # the EgoWM authors: `guidance` on every frame
        low = guidance if self.config.guidance_schedule == "constant" else 1.0
        scale = torch.linspace(low, guidance, num_frames, device=latents.device).view(1, -1, 1, 1, 1)
        for t in sched.timesteps:
            x_in = sched.scale_model_input(latents, t)
            cond = self._model(wm, x_in, t, z_cond, emb, ids, actions, state)
            if use_cfg:
                uncond = self._model(
                    wm, x_in, t, torch.zeros_like(z_cond), torch.zeros_like(emb), ids, actions, state
                )
                cond = uncond + scale * (cond - uncond)
            latents = sched.step(cond, t, latents).prev_sample
            if progress is not None:
                progress.update(1)
        return wm.codec.decode(latents)

    @staticmethod
    def _model(wm, x_in, t, z_cond, emb, ids, actions, state):
        z = z_cond[:, None].expand(-1, x_in.shape[1], -1, -1, -1)
        sample = torch.cat([x_in, z], dim=2).to(wm.denoiser.dtype)
        t = t.expand(x_in.shape[0]).to(x_in.device)
        return wm.denoiser(sample, t, emb, ids, actions=actions, state=state).sample.float()
