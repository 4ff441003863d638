"""`WorldModel` = codec (VAE) + action-conditioned denoiser + image encoder + objective.

    loss(batch):   frames [B, F, 3, H, W] in [-1, 1], actions [B, F, D], state [B, S]? -> scalar
    rollout(...):  image + actions [N, D] -> frames uint8 [N, H, W, 3]

Rollouts are generated in chunks of `config.num_frames` video frames; each chunk is conditioned
on the last frame of the previous one and gets its own slice of the actions, so N = 1 + k(F - 1)
frames come from k chunks (SVD: F = 8 as the paper; Cosmos/Wan: one pass of up to 4(T-1)+1 frames).
Actions are normalised with the statistics stored in the model (`normalization.json`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from egoworld.actions.normalization import ActionNormalizer
from egoworld.codecs import PackedPixelCodec, PixelCodec, SVDCodec, WanCodec
from egoworld.conditioning import ActionConditionedModel, condition_on_actions
from egoworld.families.flow import CosmosFamily, WanI2VFamily
from egoworld.families.svd import SVDFamily
from egoworld.image_encoder import ImageEncoder, tiny_clip
from egoworld.io_utils import atomic_dir
from egoworld.model_config import CONFIG_NAME, WorldModelConfig
from egoworld.weights import load_local

FAMILIES = {"svd": SVDFamily, "cosmos": CosmosFamily, "wan": WanI2VFamily}
PROMPT_FILE = "prompt_embeds.safetensors"


def _packed_pixel_codec(config: WorldModelConfig) -> PackedPixelCodec:
    """The DiT families' pixel codec of `config` (`model.codec: pixel`)."""
    return PackedPixelCodec(config.pixel_downscale, config.pixel_residual)


def _build_components(config: WorldModelConfig):
    """Randomly initialised base model, VAE and image encoder of the configured family and size."""
    from egoworld.backbones import cosmos, svd, wan

    if config.family == "svd" and config.codec == "pixel":
        base, codec = svd.build_unet(config.preset, in_channels=6, out_channels=3), PixelCodec()
        clip_dim = base.config.cross_attention_dim
    elif config.family == "svd":
        base, vae = svd.build_unet(config.preset), svd.build_vae(config.preset)
        codec = SVDCodec(vae)
        clip_dim = base.config.cross_attention_dim
    elif config.family == "cosmos" and config.codec == "pixel":
        codec = _packed_pixel_codec(config)
        c = codec.latent_channels
        base, clip_dim = cosmos.build_transformer(config.preset, in_channels=c + 1, out_channels=c), 0
    elif config.family == "cosmos":
        base, codec, clip_dim = (
            cosmos.build_transformer(config.preset),
            WanCodec(cosmos.build_vae(config.preset)),
            0,
        )
    else:
        preset = "tiny-i2v" if config.preset == "tiny" else config.preset
        if config.codec == "pixel":  # noisy + 4 mask channels + the packed [first frame, zeros...]
            codec = _packed_pixel_codec(config)
            c = codec.latent_channels
            base = wan.build_transformer(preset, in_channels=2 * c + 4, out_channels=c)
        else:
            base = wan.build_transformer(preset)
            codec = WanCodec(wan.build_vae("tiny" if config.preset == "tiny" else "wan2.1"))
        clip_dim = base.config.image_dim or 0
    image_encoder = None
    if config.use_image_encoder and clip_dim:
        clip = tiny_clip(projection_dim=clip_dim, hidden_size=clip_dim if config.family == "wan" else 32)
        image_encoder = ImageEncoder(clip)
    return base, codec, image_encoder


class WorldModel(nn.Module):
    """An action-conditioned video world model built on a diffusers backbone (EgoWM)."""

    def __init__(
        self,
        config: WorldModelConfig,
        denoiser: ActionConditionedModel,
        codec: nn.Module,
        image_encoder: ImageEncoder | None = None,
        normalizer: ActionNormalizer | None = None,
    ):
        super().__init__()
        config.validate()
        self.config = config
        self.denoiser = denoiser
        self.codec = codec.requires_grad_(False)  # the VAE and CLIP stay frozen
        if hasattr(codec, "encode_chunk"):
            codec.encode_chunk = config.vae_encode_chunk
        self.image_encoder = image_encoder.requires_grad_(False) if image_encoder is not None else None
        self.family = FAMILIES[config.family](config)
        if config.family == "svd":
            from egoworld.backbones.svd import set_norm_groups

            set_norm_groups(denoiser.base, config.norm_groups)
        denoiser.action_encoder.center = config.action_center
        if normalizer is not None:
            normalizer.check_compatible(config.action_dim)
        self.normalizer = normalizer
        # Cosmos / Wan pipelines' text condition: the frozen text encoder's embedding of the empty
        # prompt [1, L, D], computed once at import (world models are driven by actions, not text)
        self.prompt_embeds: torch.Tensor | None = None

    @classmethod
    def build(cls, config: WorldModelConfig, normalizer: ActionNormalizer | None = None) -> WorldModel:
        """A randomly initialised world model of the configured preset (no weights needed)."""
        config.validate()
        base, codec, image_encoder = _build_components(config)
        denoiser = condition_on_actions(
            base,
            config.action_dim,
            state_dim=config.state_dim,
            encoder=config.encoder,
            hidden_dim=config.hidden_dim,
        )
        return cls(config, denoiser, codec, image_encoder, normalizer)

    @classmethod
    def from_diffusers(
        cls,
        pipeline_dir: str | Path,
        *,
        action_dim: int,
        normalizer: ActionNormalizer | None = None,
        torch_dtype: torch.dtype | None = None,
        **config_fields,
    ) -> WorldModel:
        """A world model from a diffusers pipeline folder (what the pipeline's `save_pretrained` writes).

        The pipeline's denoiser gets a fresh (zero-output) action encoder; its VAE, CLIP image encoder,
        feature-extractor normalisation and scheduler config are kept, so sampling reproduces the
        pipeline (tests/parity). `config_fields` set the rest of `WorldModelConfig` (num_frames,
        height, width, state_dim, encoder, fps, ...); `family`, `codec` and `preset` come from the folder.
        """
        from egoworld.pipeline_import import load_pipeline_parts

        parts = load_pipeline_parts(pipeline_dir, torch_dtype=torch_dtype)
        fixed = {"family": parts.family, "codec": "vae", "preset": "imported"}
        clash = {k: v for k, v in config_fields.items() if k in fixed and v != fixed[k]}
        if clash:
            raise ValueError(
                f"{pipeline_dir} is a {parts.pipeline_class} ({fixed}); the config asks for {clash}"
            )
        extra = dict(config_fields.pop("extra", None) or {})
        extra.update(pipeline=parts.pipeline_class, scheduler=parts.scheduler_config)
        if parts.image_mean:
            extra.update(image_mean=list(parts.image_mean), image_std=list(parts.image_std))
        if parts.image_processor:
            extra.update(image_processor=parts.image_processor)  # Wan: the pipeline's CLIP preprocessing
        fields = {**parts.config_defaults, **config_fields, **fixed, "action_dim": action_dim, "extra": extra}
        fields.setdefault("use_image_encoder", parts.image_encoder is not None)
        config = WorldModelConfig(**fields)
        config.validate()
        denoiser = condition_on_actions(
            parts.denoiser,
            action_dim,
            state_dim=config.state_dim,
            encoder=config.encoder,
            hidden_dim=config.hidden_dim,
        )
        codec = SVDCodec(parts.vae) if parts.family == "svd" else WanCodec(parts.vae)
        image_encoder = None
        if parts.image_encoder is not None and config.use_image_encoder:
            image_encoder = ImageEncoder(parts.image_encoder, parts.image_mean, parts.image_std)
        model = cls(config, denoiser, codec, image_encoder, normalizer)
        if parts.prompt_embeds is not None:
            model.prompt_embeds = parts.prompt_embeds
        return model

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def trainable_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(base denoiser parameters, action parameters); the VAE and CLIP stay frozen."""
        return list(self.denoiser.base_parameters()), list(self.denoiser.action_parameters())

    # training -----------------------------------------------------------------------------

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """The base model's own objective on one batch; the mean over samples."""
        video = batch["frames"]  # [B, F, 3, H, W] in [-1, 1]
        actions = batch["actions"]  # [B, F, D], normalised
        per_sample = self.family.loss(self, video, actions, batch.get("state"), generator)
        return per_sample.mean()

    def forward(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The training loss (so that DDP/FSDP wrappers see a forward call)."""
        return self.loss(batch, generator)

    # rollout ------------------------------------------------------------------------------

    @property
    def action_mode(self) -> str:
        """How the denoiser reads navigation actions: "delta" (per step) or "cumulative" (each frame's
        pose relative to its chunk's first frame); recorded in the action statistics at training."""
        meta = self.normalizer.meta if self.normalizer is not None else {}
        return str(meta.get("action_mode", "delta"))

    def chunk_actions(
        self, actions: np.ndarray | torch.Tensor, normalized: bool = False
    ) -> list[torch.Tensor]:
        """Per-step actions [N, D] -> the model-scale actions of each rollout chunk, [F, D] each.

        Chunk k covers frames k(F-1) .. k(F-1)+F-1 (the last one padded by repeating its last action)
        and its row 0, the condition frame, is zero. A "cumulative" model gets each chunk's steps
        composed into poses relative to the chunk's first frame (`nav_deltas_to_cumulative`), so every
        model takes the same per-step actions. `normalized` actions are already at the model's scale
        (for a cumulative model: the poses of one chunk, as its training clips hold them).
        """
        f = self.config.num_frames
        a = torch.as_tensor(actions, dtype=torch.float32).cpu()
        n = a.shape[0]
        chunks = max(1, math.ceil((n - 1) / (f - 1)))
        cumulative = self.action_mode == "cumulative"
        if cumulative and normalized and chunks > 1:
            raise ValueError(
                f"{n} normalized actions span {chunks} chunks; a cumulative model takes normalized poses "
                f"for one chunk of {f} frames (give per-step actions with normalized=False)"
            )
        if not cumulative:
            a = a if normalized else self.normalize_actions(a.numpy())
        out = []
        for k in range(chunks):
            chunk = a[k * (f - 1) : k * (f - 1) + f]
            if chunk.shape[0] < f:  # pad the last chunk by repeating its last action
                chunk = torch.cat([chunk, chunk[-1:].expand(f - chunk.shape[0], -1)])
            if cumulative and not normalized:
                from egoworld.actions.spaces import nav_deltas_to_cumulative

                chunk = self.normalize_actions(nav_deltas_to_cumulative(chunk.numpy()))
            out.append(torch.cat([torch.zeros_like(chunk[:1]), chunk[1:]]))  # row 0: the condition frame
        return out

    def normalize_actions(self, actions: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw [N, D] actions -> the model scale; row 0 (the start frame) stays zero, as in training clips."""
        a = np.array(actions, dtype=np.float32)
        if self.normalizer is not None and a.ndim == 2 and a.shape[-1] == self.normalizer.action_dim:
            a[1:] = self.normalizer.normalize(a[1:])
        if a.ndim == 2 and len(a):
            a[0] = 0.0
        return torch.from_numpy(a)

    @torch.no_grad()
    def rollout(
        self,
        image: torch.Tensor | np.ndarray,
        actions: torch.Tensor | np.ndarray,
        state: torch.Tensor | np.ndarray | None = None,
        *,
        num_inference_steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        normalized: bool = False,
        progress: bool = False,
    ) -> np.ndarray:
        """Roll the model out from one image under raw (or `normalized`) actions.

        image: uint8 [H, W, 3] at the model's resolution (see `egoworld.rollout.load_image`).
        actions: [N, action_dim]; actions[i] moves frame i-1 to frame i and actions[0] belongs to the
            start frame (zero), the convention of `egoworld.data.clip.Clip`. Returns uint8 [N, H, W, 3].
        """
        c = self.config
        a = torch.as_tensor(actions, dtype=torch.float32).cpu()
        self._check_rollout_inputs(image, a, state, num_inference_steps, guidance)
        steps = c.num_inference_steps if num_inference_steps is None else int(num_inference_steps)
        generator = torch.Generator(device="cpu").manual_seed(seed)  # the same noise on any device
        a_chunks = self.chunk_actions(a, normalized)  # [F, D] each, model scale
        states = self.chunk_states(state, a if normalized else self.normalize_actions(a))
        n, chunks = a.shape[0], len(a_chunks)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=chunks * steps, desc="rollout", unit="step")
        cond = self._image_tensor(image)  # [1, 3, H, W]
        frames = [cond[0]]
        for k in range(chunks):
            video = self._sample(
                cond, a_chunks[k], states[k], steps, guidance, generator, bar
            )  # [1, F, 3, H, W]
            frames.extend(video[0, 1:])
            cond = video[:, -1]
        if bar is not None:
            bar.close()
        out = torch.stack(frames[:n])
        return ((out + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()

    @torch.no_grad()
    def sample_chunk(
        self,
        image: np.ndarray,
        actions: np.ndarray | torch.Tensor,
        state: np.ndarray | torch.Tensor | None = None,
        *,
        seed: int = 0,
        num_inference_steps: int | None = None,
        guidance: float | None = None,
        normalized: bool = False,
    ) -> torch.Tensor:
        """One generated chunk as floats: image uint8 [H, W, 3], actions [num_frames, D] ->
        frames [1, num_frames, 3, H, W] in [-1, 1] (frame 0 re-creates the image). The unit the
        parity tests compare with the diffusers pipelines."""
        a = torch.as_tensor(actions, dtype=torch.float32).cpu()
        self._check_rollout_inputs(image, a, state, num_inference_steps, guidance)
        if a.shape[0] != self.config.num_frames:
            raise ValueError(f"{a.shape[0]} actions; a chunk takes num_frames={self.config.num_frames}")
        st = None if state is None else torch.as_tensor(np.asarray(state, dtype=np.float32))
        steps = self.config.num_inference_steps if num_inference_steps is None else int(num_inference_steps)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        (chunk,) = self.chunk_actions(a, normalized)
        return self._sample(self._image_tensor(image), chunk, st, steps, guidance, generator, None)

    def _image_tensor(self, image) -> torch.Tensor:
        """uint8 [H, W, 3] -> [1, 3, H, W] in [-1, 1] on the model's device."""
        pixels = np.array(image, dtype=np.float32)  # a copy: arrays from PIL images are read-only
        img = torch.from_numpy(pixels).permute(2, 0, 1)[None]
        return img.div(127.5).sub(1).to(self.device)

    def _sample(self, cond_BCHW, actions_FD, state_S, steps, guidance, generator, bar) -> torch.Tensor:
        guidance = self.config.guidance if guidance is None else guidance
        st = None if state_S is None else state_S[None].to(self.device)
        a = actions_FD[None].to(self.device)  # [1, F, D], row 0 zero (`chunk_actions`)
        return self.family.sample(self, cond_BCHW, a, st, steps, guidance, generator, bar)

    def chunk_states(self, state, actions_normalized: torch.Tensor) -> list[torch.Tensor | None]:
        """The state at the start of each chunk (Eq. 6 conditions every chunk on its own start state).

        When actions are state differences (action_dim == state_dim, the 1X convention), the state at
        frame j is the initial state plus the raw actions up to j; otherwise every chunk gets the
        initial state (nothing predicts it).
        """
        c = self.config
        n, f = actions_normalized.shape[0], c.num_frames
        chunks = max(1, math.ceil((n - 1) / (f - 1)))
        if state is None:
            return [None] * chunks
        s0 = torch.as_tensor(np.asarray(state, dtype=np.float32))
        if c.state_dim != c.action_dim:
            return [s0] * chunks
        raw = actions_normalized.numpy().copy()
        if self.normalizer is not None:
            raw[1:] = self.normalizer.denormalize(raw[1:])
        raw[0] = 0.0
        walked = s0 + torch.from_numpy(np.cumsum(raw, axis=0))  # [N, S]: state at each frame
        return [walked[k * (f - 1)] for k in range(chunks)]

    def _check_rollout_inputs(self, image, actions: torch.Tensor, state, steps=None, guidance=None) -> None:
        from egoworld.rollout import check_image, check_sampling  # numpy only

        c = self.config
        check_sampling(steps, guidance)  # steps in [1, 1000] or None; finite guidance >= 0
        check_image(image, c.height, c.width)  # uint8 [H, W, 3]; a float image is refused
        if actions.ndim != 2 or actions.shape[1] != c.action_dim:
            raise ValueError(f"actions have shape {tuple(actions.shape)}; expected [N, {c.action_dim}]")
        if actions.shape[0] < 2:
            raise ValueError(f"{actions.shape[0]} actions; expected at least 2 (start frame + one step)")
        if not torch.isfinite(actions).all():
            raise ValueError("actions contain NaN or Inf; expected finite values")
        if (state is None) != (c.state_dim is None):
            raise ValueError(
                f"state {'missing' if state is None else 'given'}; this model has state_dim={c.state_dim}"
            )

    # saving and loading -------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> None:
        """config + denoiser (base + action encoder) + VAE + image encoder + statistics, atomically."""
        with atomic_dir(directory, replaces=CONFIG_NAME) as tmp:
            (tmp / CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(self.config), indent=2))
            self.denoiser.save_pretrained(tmp / "denoiser")
            if self.codec.vae is not None:
                self.codec.vae.save_pretrained(tmp / "vae", safe_serialization=True)
            if self.image_encoder is not None:
                self.image_encoder.clip.save_pretrained(tmp / "image_encoder", safe_serialization=True)
            if self.normalizer is not None:
                (tmp / "normalization.json").write_text(json.dumps(self.normalizer.to_dict(), indent=2))
            if self.prompt_embeds is not None:
                save_file({"prompt_embeds": self.prompt_embeds.contiguous().cpu()}, tmp / PROMPT_FILE)

    @classmethod
    def from_pretrained(cls, directory: str | Path, torch_dtype: torch.dtype | None = None) -> WorldModel:
        from diffusers import AutoencoderKLTemporalDecoder, AutoencoderKLWan
        from transformers import CLIPVisionModel, CLIPVisionModelWithProjection

        directory = Path(directory)
        cfg_path = directory / CONFIG_NAME
        if not cfg_path.is_file():
            raise FileNotFoundError(
                f"{cfg_path} not found; expected a world-model folder written by save_pretrained"
            )
        try:
            config = WorldModelConfig(**json.loads(cfg_path.read_text()))
            config.validate()
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError, ValueError) as err:
            raise ValueError(f"{cfg_path} is not a valid world-model config ({err})") from err
        for part in ("denoiser",) if config.codec == "pixel" else ("denoiser", "vae"):
            if not (directory / part).is_dir():
                raise FileNotFoundError(f"{directory / part} is missing; the model folder is incomplete")
        denoiser = ActionConditionedModel.from_pretrained(directory / "denoiser", torch_dtype=torch_dtype)
        if config.codec == "pixel":
            codec = PixelCodec() if config.family == "svd" else _packed_pixel_codec(config)
        elif config.family == "svd":
            codec = SVDCodec(load_local(AutoencoderKLTemporalDecoder, directory / "vae"))
        else:
            codec = WanCodec(load_local(AutoencoderKLWan, directory / "vae"))
        image_encoder = None
        if (directory / "image_encoder").is_dir():
            # the class that was saved: SVD's CLIP has a projection, Wan i2v's is a plain CLIPVisionModel
            saved = json.loads((directory / "image_encoder" / "config.json").read_text()).get("architectures")
            clip_cls = CLIPVisionModel if saved == ["CLIPVisionModel"] else CLIPVisionModelWithProjection
            clip = load_local(clip_cls, directory / "image_encoder")
            image_encoder = ImageEncoder(clip, config.extra.get("image_mean"), config.extra.get("image_std"))
        normalizer = None
        if (directory / "normalization.json").is_file():
            normalizer = ActionNormalizer.load(directory / "normalization.json")  # checked in __init__
        model = cls(config, denoiser, codec, image_encoder, normalizer).eval()
        if (directory / PROMPT_FILE).is_file():
            model.prompt_embeds = load_file(directory / PROMPT_FILE)["prompt_embeds"].clone()
        return model
