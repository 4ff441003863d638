"""Observation model O (EgoSim §3.2): Wan-2.1-Fun-InP widened to 52 input channels.

The DiT reads, concatenated along channels (paper: z_in = Concat(z_t, z_bg, z_hand, M)), in the
Wan InP order with the hand latent appended so that the first 36 channels stay the InP input::

    z_t  noisy latent            C    (16 real, 4 tiny)
    M    mask                    4    the InP layout: 1 = known pixel, frame 0 repeated 4×, the 4
                                      video frames of a latent frame as channels, trilinear to the grid
    z_bg masked scene latent     C    the state rendered along the camera path, unknown pixels 0
    z_hand skeleton latent       C    the hand/gripper skeleton video
                                 ----
                                 3C + 4 = 52 (tiny: 16)

plus the cross-attention inputs of Wan i2v: the prompt's T5/UMT5 embedding (computed once from a
local encoder, `egoworld.sim.prompts`; or one per clip, `prompt_embeds` `[B, L, text_dim]`, when
training on each clip's own prompt, `egoworld.sim.clip_prompts`) and CLIP features of the first
frame. The InP conventions (masked video, mask layout and resampling, CLIP input) are stated in
`egoworld.sim.inp_inputs`; a parity test (`tests/sim/test_inp_parity.py`) checks the first 36
channels, the text and the image features against `WanImageToVideoPipeline`.

`expand_inp_to_52` adds the last C input channels, zero-initialised, to the pretrained InP
`patch_embedding`, so a fresh 52-channel model returns the 36-channel model's output. Training is
rectified flow on the velocity v = eps − z_0 (`objectives.flow`), Wan reads 1000·t; sampling uses
diffusers' `FlowMatchEulerDiscreteScheduler` (50 steps, CFG 1.0 as the paper ⇒ one conditional
pass per step). The first video frame may be given (the current observation): it is then written
into the masked video and marked known in M.

Pixels cross this module as `video_BFCHW` float in [-1, 1]; the mask as `[B, F, 1, H, W]` (or
`[B, F, H, W]`) with 1 = not covered by the state (unknown).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from torch import nn

from egoworld import noise
from egoworld.codecs import PackedPixelCodec, WanCodec
from egoworld.io_utils import atomic_dir
from egoworld.objectives.flow import RectifiedFlow
from egoworld.sim.clip_tensors import batch_from_clips, to_model_video, to_uint8_video
from egoworld.sim.inp_inputs import MASK_CHANNELS, binarize, clip_features, inp_condition, mask_latents
from egoworld.sim.inp_weights import (
    expand_inp_to_52,
    inp_transformer_folder,
    load_clip,
    load_image_processor,
    load_inp_transformer,
)
from egoworld.sim.observe_config import (
    PRESETS,
    ObservationConfig,
    preset_config,
    transformer_config,
)
from egoworld.sim.prompts import (
    PROMPT_FILE,
    cached_prompts,
    load_empty_prompt_embeds,
    load_prompt_embeds,
    save_prompt_embeds,
)
from egoworld.weights import load_local

__all__ = [
    "CONFIG_NAME",
    "MASK_CHANNELS",
    "PRESETS",
    "ObservationConfig",
    "ObservationModel",
    "PackedPixelCodec",
    "batch_from_clips",
    "expand_inp_to_52",
    "load_inp_transformer",
    "mask_latents",
    "preset_config",
    "to_model_video",
    "to_uint8_video",
    "transformer_config",
]

CONFIG_NAME = "egoworld_observation.json"
WAN_TEXT_TOKENS = 512  # diffusers' Wan attention splits CLIP and text tokens assuming 512 text tokens


def _build_base(config: ObservationConfig) -> WanTransformer3DModel:
    """The randomly initialised 2C + 4 channel (InP) base of a preset."""
    args = transformer_config(config)
    args["in_channels"] -= args["out_channels"]
    return WanTransformer3DModel(**args)


def _build_codec(config: ObservationConfig) -> nn.Module:
    if config.codec == "pixel":
        return PackedPixelCodec(config.pixel_downscale)
    from egoworld.backbones.wan import build_vae

    return WanCodec(build_vae(config.vae_preset))


def _as_mask(mask: torch.Tensor, like_BFCHW: torch.Tensor) -> torch.Tensor:
    b, f, _, h, w = like_BFCHW.shape
    m = mask[:, :, None] if mask.ndim == 4 else mask
    if tuple(m.shape) != (b, f, 1, h, w):
        raise ValueError(
            f"mask has shape {list(mask.shape)}; expected [{b}, {f}, 1, {h}, {w}] or [{b}, {f}, {h}, {w}]"
        )
    return m.float()


def _sub_folder(root: Path, name: str) -> Path:
    """`root/name` when it exists (a pipeline folder), else `root` (the component folder itself)."""
    return root / name if (root / name).is_dir() else root


def _embed_prompts(
    folder: Path, config: ObservationConfig, **kwargs
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the prompt's embedding, the empty prompt's or None) from one load of the text encoder; the
    empty prompt is embedded only when text dropout needs it (for an empty prompt the model takes
    the prompt's own)."""
    extra = [""] if config.prompt and config.text_dropout > 0 else []
    embeds = cached_prompts(folder, [config.prompt, *extra], config.text_max_length, **kwargs)
    return embeds[0], (embeds[1] if extra else None)


class ObservationModel(nn.Module):
    """Codec + 52-channel Wan InP DiT + rectified flow: `loss(batch)` and `generate(...)`.

    Args:
        config: the `ObservationConfig`.
        transformer: the 52-channel `WanTransformer3DModel` (any dtype).
        codec: `WanCodec` or `PackedPixelCodec` (frozen).
        image_encoder: `egoworld.image_encoder.ImageEncoder` (frozen CLIP), or None.
        prompt_embeds: the prompt's text embedding `[1, L, text_dim]` (frozen T5/UMT5), or None for
            an all-zero embedding of `config.text_tokens` tokens (models built without a text encoder).
        empty_prompt_embeds: the empty prompt's embedding `[1, L, text_dim]` (what `text_dropout`
            trains with); not needed when the prompt is empty or `prompt_embeds` is None.
        image_processor: the pipeline's `CLIPImageProcessor` (needed by `clip_preprocess="processor"`).
    """

    def __init__(
        self,
        config: ObservationConfig,
        transformer: WanTransformer3DModel,
        codec: nn.Module,
        image_encoder: nn.Module | None = None,
        *,
        prompt_embeds: torch.Tensor | None = None,
        empty_prompt_embeds: torch.Tensor | None = None,
        image_processor=None,
    ):
        super().__init__()
        config.validate()
        self.config = config
        self.transformer = transformer
        self.codec = codec.requires_grad_(False)  # the VAE, CLIP and T5 stay frozen, as the paper
        self.image_encoder = image_encoder.requires_grad_(False) if image_encoder is not None else None
        self.image_processor = image_processor
        self.objective = RectifiedFlow(shift=config.flow_shift, timestep_scale=1000.0)
        c = self.codec.latent_channels
        if transformer.config.in_channels != 3 * c + MASK_CHANNELS:
            raise ValueError(
                f"transformer in_channels={transformer.config.in_channels}; expected 3 * {c} + 4 = "
                f"{3 * c + MASK_CHANNELS} (noisy + mask + scene + skeleton)"
            )
        self._register_prompts(prompt_embeds, empty_prompt_embeds)

    def _register_prompts(self, prompt_embeds: torch.Tensor | None, empty: torch.Tensor | None) -> None:
        """Check and keep the prompt's and the empty prompt's embeddings `[1, L, text_dim]` (buffers,
        not in the state dict); see the constructor's arguments."""
        config, text_dim = self.config, int(self.transformer.config.text_dim)
        if prompt_embeds is None:  # no text encoder: the prompt and the empty prompt are both zeros
            prompt_embeds = torch.zeros(1, config.text_tokens, text_dim)
            empty = prompt_embeds
        elif not config.prompt:
            empty = prompt_embeds
        if prompt_embeds.ndim != 3 or prompt_embeds.shape[0] != 1 or prompt_embeds.shape[2] != text_dim:
            raise ValueError(
                f"prompt embedding of shape {list(prompt_embeds.shape)}; expected [1, L, {text_dim}] "
                "(the text encoder's width must be the transformer's text_dim)"
            )
        if self.image_encoder is not None and prompt_embeds.shape[1] != WAN_TEXT_TOKENS:
            raise ValueError(
                f"prompt embedding of {prompt_embeds.shape[1]} tokens; a Wan model with CLIP cross-attention "
                f"reads exactly {WAN_TEXT_TOKENS} text tokens (text_max_length / text_tokens = 512)"
            )
        if empty is not None:
            if tuple(empty.shape) != tuple(prompt_embeds.shape):
                raise ValueError(
                    f"empty prompt embedding of shape {list(empty.shape)}; expected the prompt "
                    f"embedding's {list(prompt_embeds.shape)}"
                )
            empty = empty.detach().float().clone()
        elif config.text_dropout > 0:
            raise ValueError(
                f"text_dropout={config.text_dropout} with the prompt {config.prompt!r} needs the empty "
                "prompt's embedding; build or load the model with its text encoder (a model saved before "
                "text dropout existed has only the prompt's)"
            )
        self.register_buffer("prompt_embeds", prompt_embeds.detach().float().clone(), persistent=False)
        self.register_buffer("empty_prompt_embeds", empty, persistent=False)

    def set_prompt(
        self, prompt: str, text_encoder: str | Path, *, cache_dir: str | Path | None = None
    ) -> None:
        """Condition on `prompt` from now on in place of `config.prompt` (e.g. a rollout that says what
        its clips show): the prompt and the empty prompt are embedded by the local T5/UMT5 folder
        `text_encoder` (one load; `cache_dir` as `egoworld.sim.prompts.cached_prompts`), at
        `config.text_max_length` tokens, and `config.prompt` becomes `prompt`."""
        config = dataclasses.replace(self.config, prompt=prompt)
        embeds = cached_prompts(
            text_encoder, [prompt, ""] if prompt else [prompt], config.text_max_length, cache_dir=cache_dir
        )
        device, old = self.prompt_embeds.device, self.config
        self.config = config
        try:
            self._register_prompts(embeds[0], embeds[-1])
        except ValueError:
            self.config = old
            raise
        self.prompt_embeds = self.prompt_embeds.to(device)
        self.empty_prompt_embeds = self.empty_prompt_embeds.to(device)

    # construction ------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        config: ObservationConfig | str = "tiny",
        *,
        text_encoder: str | Path | None = None,
        prompt_embeds: tuple[torch.Tensor, torch.Tensor | None] | None = None,
        **overrides,
    ) -> ObservationModel:
        """A randomly initialised model of a preset (an InP base widened to 52 channels).

        text_encoder: a local T5/UMT5 folder (`egoworld.sim.prompts`) to embed `config.prompt`; None
        gives the all-zero text embedding of `config.text_tokens` tokens.
        prompt_embeds: (the prompt's, the empty prompt's or None) embeddings `[1, L, text_dim]` already
            computed (e.g. with the training clips' prompts in one load of the encoder, as
            `egoworld.sim.clip_prompts.clip_prompt_embeddings` gives them); the text encoder is then
            not loaded.
        """
        config = preset_config(config, **overrides) if isinstance(config, str) else config
        config.validate()
        transformer = expand_inp_to_52(_build_base(config), share_weights=True)
        image_encoder = processor = None
        if config.use_image_encoder and transformer.config.image_dim:
            from transformers import CLIPImageProcessor

            from egoworld.image_encoder import ImageEncoder, tiny_clip

            dim = transformer.config.image_dim
            image_encoder = ImageEncoder(tiny_clip(projection_dim=dim, hidden_size=dim))
            s = int(image_encoder.clip.config.image_size)
            processor = CLIPImageProcessor(size={"shortest_edge": s}, crop_size={"height": s, "width": s})
        prompt, empty = prompt_embeds or (None, None)
        if text_encoder is not None and prompt_embeds is None:
            prompt, empty = _embed_prompts(text_encoder, config)
        return cls(
            config,
            transformer,
            _build_codec(config),
            image_encoder,
            prompt_embeds=prompt,
            empty_prompt_embeds=empty,
            image_processor=processor,
        )

    @classmethod
    def from_inp(
        cls,
        path: str | Path,
        config: ObservationConfig | str = "wan2.1-fun-1.3b-inp",
        *,
        torch_dtype: torch.dtype | None = None,
        encoder_dtype: torch.dtype = torch.float32,
        text_encoder: str | Path | None = None,
        image_encoder: str | Path | None = None,
        prompt_cache: str | Path | None = None,
        prompt_embeds: tuple[torch.Tensor, torch.Tensor | None] | None = None,
        **overrides,
    ) -> ObservationModel:
        """Pretrained Wan-Fun-InP weights from a local diffusers folder, widened to 52 channels.

        Args:
            path: a diffusers Wan 2.1 i2v / Fun-InP pipeline folder: `transformer/`, `vae/`, and by
                default `text_encoder/` + `tokenizer/`, `image_encoder/` + `image_processor/`.
            config: preset name or `ObservationConfig`; `overrides` change its fields.
            torch_dtype: dtype of the DiT (and of T5 while it embeds the prompt), e.g. torch.bfloat16;
                None loads float32.
            encoder_dtype: dtype of the VAE and CLIP (float32 as the diffusers Wan i2v examples).
            text_encoder: folder of the T5/UMT5 encoder and tokenizer if not `path`.
            image_encoder: folder of the CLIP `image_encoder/` (+ `image_processor/`) if not `path`.
            prompt_cache: folder caching the prompt embedding (`egoworld.sim.prompts`).
            prompt_embeds: (prompt, empty prompt or None) embeddings already computed, as in `build`;
                T5 is then not loaded.

        CLIP is loaded whenever the transformer cross-attends to images (`image_dim`), and the config
        then records `use_image_encoder=True`; T5 is always needed (the InP model reads a prompt).
        """
        if isinstance(config, str):
            config = preset_config(config, **overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        config.validate()
        if config.codec != "wan-vae":
            raise ValueError(f"codec={config.codec!r}; Wan-Fun-InP weights come with the Wan VAE ('wan-vae')")
        path = Path(path)
        # every missing part fails before anything large is loaded
        image_dim = json.loads((inp_transformer_folder(path) / "config.json").read_text()).get("image_dim")
        if not (path / "vae" / "config.json").is_file():
            raise FileNotFoundError(f"no Wan VAE at {path / 'vae'}; expected the pipeline's vae/ folder")
        clip_root = Path(image_encoder) if image_encoder is not None else path
        clip_dir = _sub_folder(clip_root, "image_encoder")
        if image_dim and not (clip_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"no CLIP image encoder at {clip_root / 'image_encoder'}; expected it because the "
                f"transformer cross-attends to CLIP features (image_dim={image_dim}); pass "
                "image_encoder=FOLDER if it lives elsewhere"
            )
        # T5 first: loaded, used once and freed before the DiT (lower peak host memory for the 14B)
        prompt, empty = prompt_embeds or _embed_prompts(
            Path(text_encoder) if text_encoder is not None else path,
            config,
            cache_dir=prompt_cache,
            torch_dtype=torch_dtype,
        )
        transformer = expand_inp_to_52(load_inp_transformer(path, torch_dtype), share_weights=True)
        codec = WanCodec(load_local(AutoencoderKLWan, path / "vae", torch_dtype=encoder_dtype))
        clip = processor = None
        if image_dim:
            clip = load_clip(clip_dir, encoder_dtype)
            processor = load_image_processor(clip_root / "image_processor") or load_image_processor(clip_dir)
        config = dataclasses.replace(config, use_image_encoder=bool(image_dim))
        return cls(
            config,
            transformer,
            codec,
            clip,
            prompt_embeds=prompt,
            empty_prompt_embeds=empty,
            image_processor=processor,
        )

    def save_pretrained(self, directory: str | Path) -> Path:
        """config + transformer + VAE + CLIP (+ its processor) + prompt embedding, written atomically.

        An existing `directory` is replaced only when it is empty or holds an earlier observation
        model (its config file); any other folder raises FileExistsError before anything is written.
        """
        with atomic_dir(directory, replaces=CONFIG_NAME) as tmp:
            (tmp / CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(self.config), indent=2))
            self.transformer.save_pretrained(tmp / "transformer", safe_serialization=True)
            if getattr(self.codec, "vae", None) is not None:
                self.codec.vae.save_pretrained(tmp / "vae", safe_serialization=True)
            if self.image_encoder is not None:
                self.image_encoder.clip.save_pretrained(tmp / "image_encoder", safe_serialization=True)
            if self.image_processor is not None:
                self.image_processor.save_pretrained(tmp / "image_processor")
            empty = self.empty_prompt_embeds if self.config.prompt else None
            save_prompt_embeds(tmp / PROMPT_FILE, self.prompt_embeds.float(), self.config.prompt, empty=empty)
        return Path(directory)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        *,
        torch_dtype: torch.dtype | None = None,
        encoder_dtype: torch.dtype | None = None,
    ) -> ObservationModel:
        """A model written by `save_pretrained`; the DiT in `torch_dtype`, VAE and CLIP in `encoder_dtype`."""
        directory = Path(directory)
        if not (directory / CONFIG_NAME).is_file():
            raise FileNotFoundError(
                f"no observation model at {directory}: {CONFIG_NAME} is missing (expected a folder "
                "written by ObservationModel.save_pretrained or `egoworld sim train-observe`)"
            )
        try:
            raw = json.loads((directory / CONFIG_NAME).read_text())
            config = ObservationConfig(**raw)
        except (json.JSONDecodeError, TypeError) as err:
            raise ValueError(f"{directory / CONFIG_NAME} is not a valid observation config: {err}") from err
        transformer = load_local(WanTransformer3DModel, directory / "transformer", torch_dtype=torch_dtype)
        if config.codec == "pixel":
            codec = PackedPixelCodec(config.pixel_downscale)
        else:
            codec = WanCodec(load_local(AutoencoderKLWan, directory / "vae", torch_dtype=encoder_dtype))
        clip = None
        if (directory / "image_encoder").is_dir():
            clip = load_clip(directory / "image_encoder", encoder_dtype)
        processor = load_image_processor(directory / "image_processor")
        prompt = empty = None
        if (directory / PROMPT_FILE).is_file():
            prompt = load_prompt_embeds(directory / PROMPT_FILE)[0]
            empty = load_empty_prompt_embeds(directory / PROMPT_FILE)
        return cls(
            config,
            transformer,
            codec,
            clip,
            prompt_embeds=prompt,
            empty_prompt_embeds=empty,
            image_processor=processor,
        ).eval()

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    # conditioning ------------------------------------------------------------------------

    def check_videos(self, scene: torch.Tensor, mask: torch.Tensor, skeleton: torch.Tensor) -> torch.Tensor:
        """Check `[B, F, 3, H, W]` scene/skeleton videos and the mask; returns the mask `[B, F, 1, H, W]`."""
        c = self.config
        if scene.ndim != 5 or scene.shape[2] != 3:
            raise ValueError(f"scene video has shape {list(scene.shape)}; expected [B, F, 3, H, W]")
        if tuple(skeleton.shape) != tuple(scene.shape):
            raise ValueError(f"skeleton video has shape {list(skeleton.shape)}; expected {list(scene.shape)}")
        f, h, w = scene.shape[1], scene.shape[3], scene.shape[4]
        if (f, h, w) != (c.num_frames, c.height, c.width):
            raise ValueError(
                f"videos of {f} frames at {h}x{w}; this model expects {c.num_frames} frames at "
                f"{c.height}x{c.width}"
            )
        return _as_mask(mask, scene)

    def text_embeddings(self, batch: int, prompt_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """The text embedding `[batch, L, text_dim]`: the model's prompt (frozen; computed once) for
        every clip, or `prompt_embeds` `[batch, L, text_dim]` (one per clip, e.g. each training clip's
        own prompt, `egoworld.sim.clip_prompts`) after checking its shape against the model's prompt."""
        if prompt_embeds is None:
            return self.prompt_embeds.expand(batch, -1, -1)
        want = (batch, *self.prompt_embeds.shape[1:])
        if tuple(prompt_embeds.shape) != want:
            raise ValueError(
                f"prompt_embeds has shape {list(prompt_embeds.shape)}; expected {list(want)} (one text "
                "embedding per clip, as long and as wide as the model's own prompt embedding)"
            )
        return prompt_embeds.to(self.prompt_embeds)

    def image_features(self, first_frame_BCHW: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """CLIP penultimate features `[B, N, D]` of the first frame; zeros without one; None without CLIP."""
        if self.image_encoder is None:
            return None
        if first_frame_BCHW is None:
            cfg = self.image_encoder.clip.config
            tokens = (cfg.image_size // cfg.patch_size) ** 2 + 1
            return self.prompt_embeds.new_zeros(batch, tokens, cfg.hidden_size)
        return clip_features(
            self.image_encoder, first_frame_BCHW, self.image_processor, self.config.clip_preprocess
        )

    def conditions(
        self,
        scene_BFCHW: torch.Tensor,
        mask_BF1HW: torch.Tensor,
        skeleton_BFCHW: torch.Tensor,
        first_frame: torch.Tensor | None = None,  # [B, 3, H, W]
        prompt_embeds: torch.Tensor | None = None,  # [B, L, text_dim]
    ) -> dict[str, torch.Tensor | None]:
        """The condition `y` = [M (4), z_bg (C), z_hand (C)] `[B, 2C + 4, T, h, w]`, text (the model's
        prompt, or `prompt_embeds` per clip: `text_embeddings`) and image."""
        c = self.config
        unknown = binarize(self.check_videos(scene_BFCHW, mask_BF1HW, skeleton_BFCHW).to(scene_BFCHW.device))
        scene = scene_BFCHW.float()
        b = scene.shape[0]
        if not c.use_scene:  # w/o scene render: the Wan i2v input (first frame known, the rest zero)
            unknown = torch.ones_like(unknown)
        if first_frame is not None:
            if tuple(first_frame.shape) != (b, 3, c.height, c.width):
                raise ValueError(
                    f"first frame has shape {list(first_frame.shape)}; "
                    f"expected [{b}, 3, {c.height}, {c.width}]"
                )
            scene = torch.cat([first_frame[:, None].float(), scene[:, 1:]], 1)
            unknown = torch.cat([torch.zeros_like(unknown[:, :1]), unknown[:, 1:]], 1)
        y = inp_condition(self.codec, scene, unknown)  # [B, 4 + C, T, h, w]
        if not c.use_mask:
            y = torch.cat([torch.zeros_like(y[:, :MASK_CHANNELS]), y[:, MASK_CHANNELS:]], 1)
        z_hand = self.codec.encode_condition(skeleton_BFCHW.float()).to(y)
        return {
            "y": torch.cat([y, z_hand], 1),
            "text": self.text_embeddings(b, prompt_embeds),
            "image": self.image_features(first_frame, b),
        }

    def _black_skeleton_latent(self, y: torch.Tensor) -> torch.Tensor:
        c = self.config
        black = y.new_full((1, c.num_frames, 3, c.height, c.width), -1.0)
        return self.codec.encode_condition(black)

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        """v_θ(z_in, t) `[B, C, T, h, w]` for x_t `[B, C, T, h, w]` and t `[B]` in [0, 1]."""
        dtype = self.transformer.dtype
        image = cond.get("image")
        return self.transformer(
            hidden_states=torch.cat([x_t, cond["y"]], 1).to(dtype),
            timestep=(t * self.objective.timestep_scale).to(dtype),
            encoder_hidden_states=cond["text"].to(dtype),
            encoder_hidden_states_image=None if image is None else image.to(dtype),
        ).sample.float()

    # training ----------------------------------------------------------------------------

    def encode_batch(
        self,
        batch: dict[str, torch.Tensor],
        generator: torch.Generator | None = None,
        prompt_embeds: torch.Tensor | None = None,
    ):
        """(z_0 `[B, C, T, h, w]`, conditions) of a batch; the codec is frozen, so these can be cached.

        prompt_embeds: per-clip text embeddings `[B, L, text_dim]`; None: the batch's
        "prompt_embeds" when it has them (the trainer's collate with `observation.clip_prompts`),
        else the model's prompt for every clip."""
        target = batch["target"]
        if tuple(target.shape) != tuple(batch["scene"].shape):
            raise ValueError(f"target video {list(target.shape)}; expected {list(batch['scene'].shape)}")
        first = target[:, 0] if self.config.condition_first_frame else None
        if prompt_embeds is None:
            prompt_embeds = batch.get("prompt_embeds")
        with torch.no_grad():
            cond = self.conditions(batch["scene"], batch["mask"], batch["skeleton"], first, prompt_embeds)
            x0 = self.codec.encode(target.float(), generator)
        return x0, cond

    def loss_on_latents(
        self, x0: torch.Tensor, cond: dict, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Rectified-flow loss (mean over the batch) on cached latents and conditions."""
        b = x0.shape[0]
        cond = self.drop_text_and_image(cond, generator)
        if self.config.action_dropout > 0:
            drop = noise.rand((b,), generator, x0.device) < self.config.action_dropout
            if drop.any():
                y = cond["y"].clone()
                c = x0.shape[1]
                y[drop, MASK_CHANNELS + c :] = self._black_skeleton_latent(y).to(y)
                cond = {**cond, "y": y}
        t = self.objective.sample_t(b, generator=generator, device=x0.device)
        eps = noise.randn(x0.shape, generator, x0.device)
        x_t = self.objective.interpolate(x0, eps, t.view(-1, 1, 1, 1, 1))
        v_pred = self.velocity(x_t, t, cond)
        return self.objective.loss(v_pred, self.objective.target(x0, eps)).mean()

    def drop_text_and_image(self, cond: dict, generator: torch.Generator | None = None) -> dict:
        """Fun-InP's training-time dropout: per clip, the empty prompt's embedding in place of the
        prompt's (probability `text_dropout`) and zero CLIP features (`image_dropout`); draws from
        `generator` only for a dropout > 0, so runs without it see the same random stream."""
        c = self.config
        b = cond["y"].shape[0]
        if c.text_dropout > 0:
            drop = noise.rand((b,), generator, cond["text"].device) < c.text_dropout
            if drop.any():
                empty = self.empty_prompt_embeds.to(cond["text"]).expand(b, -1, -1)
                cond = {**cond, "text": torch.where(drop[:, None, None], empty, cond["text"])}
        if c.image_dropout > 0 and cond.get("image") is not None:
            keep = noise.rand((b,), generator, cond["image"].device) >= c.image_dropout
            cond = {**cond, "image": cond["image"] * keep[:, None, None].to(cond["image"])}
        return cond

    def loss(
        self,
        batch: dict[str, torch.Tensor],
        generator: torch.Generator | None = None,
        prompt_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """L_gen on one batch: `target`, `scene`, `skeleton` `[B, F, 3, H, W]` in [-1, 1] and `mask`
        `[B, F, 1, H, W]` (1 = unobserved); per-clip text embeddings `prompt_embeds` `[B, L, text_dim]`
        (or the batch's "prompt_embeds"; neither: the model's prompt), as `encode_batch`."""
        x0, cond = self.encode_batch(batch, generator, prompt_embeds)
        return self.loss_on_latents(x0, cond, generator)

    def forward(
        self,
        batch: dict[str, torch.Tensor],
        generator: torch.Generator | None = None,
        prompt_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.loss(batch, generator, prompt_embeds)

    # sampling ----------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        scene_video: torch.Tensor,
        mask: torch.Tensor,
        skeleton_video: torch.Tensor,
        *,
        first_frame: torch.Tensor | None = None,
        num_inference_steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        prompt_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample a clip `[B, F, 3, H, W]` in [-1, 1] from the scene video, mask and skeleton video.

        prompt_embeds: text embeddings `[B, L, text_dim]` per clip (None: the model's prompt).

        guidance = 1.0 (the paper) runs the conditional branch only; > 1 adds classifier-free
        guidance against a black skeleton video (meaningful only if trained with `action_dropout`).
        The initial noise is drawn on the CPU from `seed` (as the diffusers pipelines with a CPU
        generator), so it is the same on every device.
        """
        c = self.config
        steps = int(num_inference_steps or c.num_inference_steps)
        guidance = c.guidance if guidance is None else float(guidance)
        if steps < 1:
            raise ValueError(f"num_inference_steps={steps}; expected >= 1")
        dev = self.device
        cond = self.conditions(
            scene_video.to(dev),
            mask.to(dev),
            skeleton_video.to(dev),
            None if first_frame is None else first_frame.to(dev),
            None if prompt_embeds is None else prompt_embeds.to(dev),
        )
        uncond = None
        if guidance != 1.0:
            y = cond["y"].clone()
            y[:, MASK_CHANNELS + self.codec.latent_channels :] = self._black_skeleton_latent(y).to(y)
            uncond = {**cond, "y": y}
        b, ch = scene_video.shape[0], self.codec.latent_channels
        h, w = (s // self.codec.spatial_compression for s in (c.height, c.width))
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        latents = noise.randn((b, ch, c.latent_frames, h, w), generator, dev)
        sched = self.objective.scheduler("euler")  # FlowMatchEulerDiscreteScheduler
        sched.set_timesteps(steps, device=dev)
        for i, timestep in enumerate(sched.timesteps):
            t = sched.sigmas[i].to(dev).expand(b)
            v = self.velocity(latents, t, cond)
            if uncond is not None:
                v_u = self.velocity(latents, t, uncond)
                v = v_u + guidance * (v - v_u)
            latents = sched.step(v, timestep, latents).prev_sample
        return self.codec.decode(latents)  # [B, F, 3, H, W]
