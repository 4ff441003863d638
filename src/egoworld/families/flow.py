"""Cosmos Predict2 and Wan i2v world models: rectified-flow training and sampling.

Both predict the velocity v = eps - x0 on x_t = (1 - t) x0 + t eps (`objectives.flow`), on Wan-VAE
latents [B, C, T, h, w], and condition on the first video frame (= latent frame 0), each its own way:

Cosmos Predict2 (Video2World): the conditioning latent frame enters *clean* with the tiny
  t_cond = sigma_c / (1 + sigma_c), sigma_c = 1e-4, a `condition_mask` channel marks it, and it is
  excluded from the loss; Cosmos reads t itself as the timestep.
Wan i2v / Fun-InP: the noisy latents are concatenated with a 4-channel mask (1 on the first
  frame) and the VAE latents of [first frame, zeros...]; the CLIP penultimate features of the
  first frame go in as `encoder_hidden_states_image`; Wan reads 1000 t.
Text: the frozen text encoder's embedding of the empty prompt (`wm.prompt_embeds`, computed when a
pipeline is imported), or a single zero token for models built without a text encoder (world models
are driven by actions, not text).

A model imported from a pipeline folder (`WorldModel.from_diffusers` stores the pipeline's scheduler
config in `config.extra["scheduler"]`) samples exactly as the pipeline does (tests/parity):
  Cosmos = `Cosmos2VideoToWorldPipeline`: the image repeated to the chunk length and VAE-encoded
    (sampled from the generator), initial noise * sigma_max, the scheduler's Karras sigmas on the
    EDM scale (sigma_max 80, sigma_min 0.002, the last sigma replaced by sigma_min), t = sigma/(1+sigma),
    c_in = c_skip = 1 - t, c_out = -t around the transformer, the clean first latent frame put back
    into every x0 prediction, an Euler step on eps = (x - x0)/sigma, `fps` (= config.fps) to the RoPE;
  Wan = `WanImageToVideoPipeline` (Wan 2.1 i2v layout): the saved scheduler (UniPC flow or
    FlowMatchEuler) and its timesteps, the CLIP image processor of the pipeline
    (`config.extra["image_processor"]`) in front of the image encoder.
and trains Cosmos with Cosmos Predict2's noise levels (`config.extra["train_noise"]`, default
"cosmos-predict2" when imported, "logit-normal" the option; see `objectives.flow`).
A model built without a pipeline (`WorldModel.build`) keeps egoworld's recipe: logit-normal t shifted
by `flow_shift`, sampled with `config.sampler` (FlowMatchEuler or UniPC) at that shift; with
`flow_prediction: x0` its network predicts the clean sample (`objectives.flow`).
No classifier-free guidance: the pipelines' guidance is on text, which a world model does not use.
"""

from __future__ import annotations

import torch

from egoworld import noise
from egoworld.objectives.flow import NOISE_KINDS, RectifiedFlow, scheduler_from_config

SIGMA_CONDITIONING = 1e-4
# What Cosmos2VideoToWorldPipeline.__init__ registers on its scheduler before sampling.
COSMOS2_SCHEDULER_CONFIG = dict(
    sigma_max=80.0, sigma_min=0.002, sigma_data=1.0, final_sigmas_type="sigma_min"
)


class _FlowFamily:
    video_layout = "BCTHW"
    timestep_scale = 1000.0
    scheduler_registers: dict = {}

    def __init__(self, config):
        self.config = config
        # the imported pipeline's scheduler config: present = sample exactly as the pipeline
        self.saved_scheduler = config.extra.get("scheduler") or None
        kind = config.extra.get("train_noise", self.default_noise())
        if kind not in NOISE_KINDS:
            raise ValueError(f"extra.train_noise={kind!r} is not known; expected one of {list(NOISE_KINDS)}")
        if config.flow_prediction != "velocity" and self.saved_scheduler:
            raise ValueError(
                f"flow_prediction={config.flow_prediction!r} is for models built here; an imported "
                "pipeline's transformer predicts the velocity (set flow_prediction: velocity)"
            )
        self.objective = RectifiedFlow(
            shift=config.flow_shift,
            timestep_scale=self.timestep_scale,
            noise=kind,
            prediction=config.flow_prediction,
        )

    def default_noise(self) -> str:
        return "logit-normal"

    def scheduler(self):
        """The imported pipeline's scheduler (plus what its `__init__` registers), else the built-in one."""
        if self.saved_scheduler:
            return scheduler_from_config(self.saved_scheduler, **self.scheduler_registers)
        return self.objective.scheduler(self.config.sampler)

    @staticmethod
    def text(wm, batch: int, dim: int, like: torch.Tensor) -> torch.Tensor:
        """The empty-prompt embedding [B, L, D] (imported pipelines), else one zero token [B, 1, D]."""
        if wm.prompt_embeds is not None:
            return wm.prompt_embeds.to(device=like.device, dtype=like.dtype).expand(batch, -1, -1)
        return like.new_zeros(batch, 1, dim)

    def training_conditions(self, wm, video_BFCHW, x0) -> dict:
        return self.conditions(wm, video_BFCHW[:, 0], x0)

    def loss(self, wm, video_BFCHW, actions, state=None, generator=None) -> torch.Tensor:
        x0 = wm.codec.encode(video_BFCHW, generator)  # [B, C, T, h, w]
        b = x0.shape[0]
        cond = self.training_conditions(wm, video_BFCHW, x0)
        t = self.objective.sample_t(b, generator=generator, device=x0.device, video_frames=x0.shape[2])
        eps = noise.randn(x0.shape, generator, x0.device)
        x_t = self.objective.interpolate(x0, eps, t.view(-1, 1, 1, 1, 1))
        out = self.velocity(wm, x_t, t * self.timestep_scale, cond, actions, state)
        return self.objective.output_loss(out, x0, eps, t, cond.get("loss_mask"))

    def flow_velocity(self, wm, x_t, t, cond, actions, state, model_t=None) -> torch.Tensor:
        """The velocity at time t [B] in [0, 1]: the network's output (`velocity`, which reads
        `model_t`, by default t on the model's scale), converted when it predicts x0 (`flow_prediction`)."""
        model_t = t * self.timestep_scale if model_t is None else model_t
        out = self.velocity(wm, x_t, model_t, cond, actions, state)
        return self.objective.velocity_from_output(x_t, out, t.view(-1, 1, 1, 1, 1).to(out))

    def sampler_timestep(self, sched, i: int, timestep: torch.Tensor) -> torch.Tensor:
        """What the base model reads at step i: t on the model's scale (built-in samplers)."""
        return sched.sigmas[i] * self.timestep_scale

    @torch.no_grad()
    def sample(self, wm, image_BCHW, actions, state, num_inference_steps, guidance, generator, progress=None):
        b, ch = image_BCHW.shape[0], wm.codec.latent_channels
        frames = (actions.shape[1] - 1) // 4 + 1
        h, w = (s // wm.codec.spatial_compression for s in image_BCHW.shape[-2:])
        latents = noise.randn((b, ch, frames, h, w), generator, image_BCHW.device)
        cond = self.conditions(wm, image_BCHW, latents)
        sched = self.scheduler()
        sched.set_timesteps(num_inference_steps, device=latents.device)
        for i, timestep in enumerate(sched.timesteps):
            model_t = self.sampler_timestep(sched, i, timestep).to(latents.device).expand(b)
            t = sched.sigmas[i].to(latents.device).expand(b)
            v = self.flow_velocity(wm, latents, t, cond, actions, state, model_t=model_t)
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
    scheduler_registers = COSMOS2_SCHEDULER_CONFIG

    def default_noise(self) -> str:
        return "cosmos-predict2" if self.saved_scheduler else "logit-normal"

    def conditions(self, wm, image_BCHW, like_BCThw, z0=None) -> dict:
        """z0: the clean conditioning latent [B, C, 1, h, w]; by default the VAE mode of the image."""
        b, _, frames, h, w = like_BCThw.shape
        if z0 is None:
            z0 = wm.codec.encode_condition(image_BCHW[:, None])  # [B, C, 1, h, w]
        indicator = torch.zeros(1, 1, frames, 1, 1, device=z0.device)
        indicator[:, :, 0] = 1.0
        sigma_c = torch.tensor(SIGMA_CONDITIONING, dtype=torch.float32, device=z0.device)
        return {
            "z0": z0,
            "indicator": indicator,
            "loss_mask": 1 - indicator,
            "condition_mask": indicator.expand(b, 1, frames, h, w),
            "padding_mask": z0.new_zeros(1, 1, h, w),
            "text": self.text(wm, b, wm.denoiser.config.text_embed_dim, z0),
            "t_cond": sigma_c / (sigma_c + 1),
        }

    def training_conditions(self, wm, video_BFCHW, x0) -> dict:
        if self.objective.noise == "cosmos-predict2":
            # Cosmos Predict2 conditions on the clip's own (clean) first latent frame
            return self.conditions(wm, None, x0, z0=x0[:, :, :1])
        return super().training_conditions(wm, video_BFCHW, x0)

    def velocity(self, wm, x_t, t, cond, actions, state):
        """The transformer's output for x_t [B, C, T, h, w] at time t [B] (Cosmos reads t itself)."""
        ind = cond["indicator"]
        x_in = ind * cond["z0"] + (1 - ind) * x_t  # the conditioning frame enters clean
        timestep = ind * cond["t_cond"] + (1 - ind) * t.view(-1, 1, 1, 1, 1)  # [B, 1, T, 1, 1]
        dtype = wm.denoiser.dtype
        # the pipeline passes its `fps` to the RoPE; models built without a pipeline never did
        extra = {"fps": self.config.fps} if self.saved_scheduler else {}
        return wm.denoiser(
            hidden_states=x_in.to(dtype),
            timestep=timestep.to(dtype),
            encoder_hidden_states=cond["text"].to(dtype),
            condition_mask=cond["condition_mask"].to(dtype),
            padding_mask=cond["padding_mask"].to(dtype),
            actions=actions,
            state=state,
            **extra,
        ).sample.float()

    def pin(self, latents, cond):
        ind = cond["indicator"]
        return ind * cond["z0"] + (1 - ind) * latents

    @torch.no_grad()
    def sample(self, wm, image_BCHW, actions, state, num_inference_steps, guidance, generator, progress=None):
        if not self.saved_scheduler:
            return super().sample(
                wm, image_BCHW, actions, state, num_inference_steps, guidance, generator, progress
            )
        return self._sample_as_pipeline(
            wm, image_BCHW, actions, state, num_inference_steps, generator, progress
        )

    def _sample_as_pipeline(self, wm, image_BCHW, actions, state, steps, generator, progress):
        """`Cosmos2VideoToWorldPipeline.__call__` (one conditioning frame, no guidance), step by step."""
        b, num_frames, device = image_BCHW.shape[0], actions.shape[1], image_BCHW.device
        sched = self.scheduler()
        # prepare_latents: the image padded to num_frames by repeating it, VAE-encoded and *sampled* with
        # the generator (before the initial noise is drawn), normalised; latent frame 0 conditions
        video = image_BCHW[:, None].expand(-1, num_frames, -1, -1, -1)  # [B, F, 3, H, W]
        z = wm.codec.encode(video, generator)  # [B, C, T, h, w]
        latents = noise.randn(z.shape, generator, device) * sched.config.sigma_max
        cond = self.conditions(wm, None, latents, z0=z[:, :, :1])
        # the pipeline's schedule: N sigmas through the scheduler (Karras between sigma_max and sigma_min)
        float64 = not torch.backends.mps.is_available()  # as the pipeline (MPS has no float64)
        sigmas = torch.linspace(0, 1, steps, dtype=torch.float64 if float64 else torch.float32)
        sched.set_timesteps(sigmas=sigmas, device=device)
        if sched.config.final_sigmas_type == "sigma_min":
            sched.sigmas[-1] = sched.sigmas[-2]  # as the pipeline: the last step does not move (dt = 0)
        ind = cond["indicator"]
        for i, timestep in enumerate(sched.timesteps):
            sigma = sched.sigmas[i]
            if sched.sigmas[i + 1] == sigma:
                # dt = 0 (the pipeline's last step): x + 0 * eps is x whatever the model says, so the
                # transformer call is skipped; the step still runs to keep the scheduler's state
                eps = torch.zeros_like(latents)
            else:
                t = sigma / (sigma + 1)
                c_in, c_skip, c_out = 1 - t, 1 - t, -t
                out = self.velocity(wm, latents * c_in, t.expand(b), cond, actions, state)
                x0 = (c_skip * latents + c_out * out).to(wm.denoiser.dtype)
                x0 = ind * cond["z0"] + (1 - ind) * x0  # the clean conditioning frame in every x0
                eps = (latents - x0) / sigma
            latents = sched.step(eps, timestep, latents).prev_sample
            if progress is not None:
                progress.update(1)
        return wm.codec.decode(latents)


class WanI2VFamily(_FlowFamily):
    name = "wan"
    timestep_scale = 1000.0

    def __init__(self, config):
        super().__init__(config)
        self._processor = None

    def clip_processor(self):
        """The imported pipeline's CLIP image processor (`config.extra["image_processor"]`), or None."""
        cfg = self.config.extra.get("image_processor")
        if not cfg:
            return None
        if self._processor is None:
            import transformers

            name = cfg.get("image_processor_type", "CLIPImageProcessor")
            cls = getattr(transformers, str(name), None)
            if cls is None or not hasattr(cls, "from_dict"):
                raise ValueError(
                    f"extra.image_processor names {name!r}; expected a transformers image processor class "
                    "such as CLIPImageProcessor"
                )
            self._processor = cls.from_dict(cfg)
        return self._processor

    def conditions(self, wm, image_BCHW, like_BCThw) -> dict:
        b, _, frames, h, w = like_BCThw.shape
        num_video = 4 * (frames - 1) + 1
        first = image_BCHW[:, None]
        video = torch.cat([first, first.new_zeros(b, num_video - 1, *first.shape[2:])], dim=1)
        y = wm.codec.encode_condition(video)  # [B, C, T, h, w]
        mask = y.new_zeros(b, 4, frames, h, w)  # the pipeline's mask_lat_size: 1 on latent frame 0
        mask[:, :, 0] = 1.0
        cond = {
            "y": torch.cat([mask, y], dim=1),
            "text": self.text(wm, b, wm.denoiser.config.text_dim, y),
            "image": None,
        }
        if wm.image_encoder is not None:
            cond["image"] = wm.image_encoder.penultimate(image_BCHW, self.clip_processor())
        return cond

    def sampler_timestep(self, sched, i: int, timestep: torch.Tensor) -> torch.Tensor:
        return timestep  # the pipeline feeds the scheduler's own timesteps (UniPC rounds them to integers)

    def velocity(self, wm, x_t, timestep, cond, actions, state):
        """The transformer's output; `timestep` [B] on Wan's scale (1000 t), passed as the pipeline does
        (not cast to the model's dtype: bfloat16 would round 876.5 to 876)."""
        dtype = wm.denoiser.dtype
        return wm.denoiser(
            hidden_states=torch.cat([x_t, cond["y"]], dim=1).to(dtype),
            timestep=timestep,
            encoder_hidden_states=cond["text"].to(dtype),
            encoder_hidden_states_image=None if cond["image"] is None else cond["image"].to(dtype),
            actions=actions,
            state=state,
        ).sample.float()
