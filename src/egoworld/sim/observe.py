"""Observation model O (EgoSim §3.2): Wan-2.1-Fun-InP widened to 52 input channels.

The DiT reads, concatenated along channels (paper: z_in = Concat(z_t, z_bg, z_hand, M)), in the
Wan InP order with the hand latent appended so that the first 36 channels stay the InP layout::

    z_t  noisy latent            C    (16 real, 4 tiny)
    M    mask                    4    the InP layout: 1 = known pixel (= 1 − unobserved), the 4 video
                                      frames each latent frame covers as channels, frame 0 repeated 4×
    z_bg scene latent × (1 − M)  C    the state rendered along the camera path, unobserved pixels black
    z_hand skeleton latent       C    the hand/gripper skeleton video
                                 ----
                                 3C + 4 = 52 (tiny: 16)

`expand_inp_to_52` adds the last C input channels, zero-initialised, to the pretrained InP
`patch_embedding`, so a fresh 52-channel model returns the 36-channel model's output (test:
`tests/sim/test_observe.py`). Training is rectified flow on the velocity v = eps − z_0
(`objectives.flow`), Wan reads 1000·t; sampling uses diffusers' `FlowMatchEulerDiscreteScheduler`
(50 steps, CFG 1.0 as the paper ⇒ one conditional pass per step). The first video frame may be
given (the current observation): it is then written into z_bg and marked known in M.

Pixels cross this module as `video_BFCHW` float in [-1, 1]; the mask as `[B, F, 1, H, W]` (or
`[B, F, H, W]`) with 1 = not covered by the state.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from torch import nn

from egoworld import noise
from egoworld.codecs import WanCodec
from egoworld.io_utils import atomic_dir
from egoworld.objectives.flow import RectifiedFlow
from egoworld.weights import load_local

logger = logging.getLogger(__name__)

CONFIG_NAME = "egoworld_observation.json"
MASK_CHANNELS = 4  # Wan InP: one channel per video frame of a latent frame


# --------------------------------------------------------------------------- codec for pixel space


class PixelCodec(nn.Module):
    """A lossless pixel-space codec in the Wan latent layout, for tiny models trained on a CPU.

    Latent frame 0 holds video frame 0 (repeated 4×), latent frame k the video frames 4k−3 … 4k,
    each pixel-unshuffled by `downscale`: `[B, F, 3, H, W]` → `[B, 4·3·s², T, H/s, W/s]`,
    T = (F − 1)/4 + 1. Decoding is the exact inverse (frame 0 is the mean of its copies). It stands
    in for the Wan VAE where no pretrained VAE is at hand and training one is out of reach.
    """

    temporal_compression = 4

    def __init__(self, downscale: int = 4):
        super().__init__()
        self.downscale = int(downscale)
        self.vae = None

    @property
    def spatial_compression(self) -> int:
        return self.downscale

    @property
    def latent_channels(self) -> int:
        return 4 * 3 * self.downscale**2

    def encode(self, video_BFCHW: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, f, c, h, w = video_BFCHW.shape
        frames = torch.cat([video_BFCHW[:, :1].expand(b, 4, c, h, w), video_BFCHW[:, 1:]], 1)
        t = frames.shape[1] // 4
        x = F.pixel_unshuffle(frames.reshape(b * t * 4, c, h, w).float(), self.downscale)
        x = x.reshape(b, t, 4 * x.shape[1], x.shape[2], x.shape[3])
        return x.transpose(1, 2).contiguous()  # [B, C, T, h, w]

    def encode_condition(self, video_BFCHW: torch.Tensor) -> torch.Tensor:
        return self.encode(video_BFCHW)

    def decode(self, latents_BCThw: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = latents_BCThw.shape
        x = latents_BCThw.transpose(1, 2).reshape(b * t * 4, c // 4, h, w)
        frames = F.pixel_shuffle(x, self.downscale).reshape(b, t, 4, 3, h * self.downscale, -1)
        first = frames[:, 0].mean(1, keepdim=True)  # [B, 1, 3, H, W]
        rest = frames[:, 1:].flatten(1, 2)
        return torch.cat([first, rest], 1).clamp(-1, 1)  # [B, F, 3, H, W]


# --------------------------------------------------------------------------- 36 → 52 channels


def expand_inp_to_52(
    model: WanTransformer3DModel, extra: int | None = None, *, share_weights: bool = False
) -> WanTransformer3DModel:
    """A new `WanTransformer3DModel` with `extra` zero-initialised input channels after the old ones.

    `extra` defaults to the latent width (`out_channels`): 36 → 52 for Wan-2.1-Fun-InP, 12 → 16
    for the tiny InP preset. All weights are copied; the new `patch_embedding` columns are zero, so
    the output equals the old model's whatever the new channels hold (bit for bit in the tests).
    `share_weights=True` reuses the old tensors instead of copying them (no second copy of a large
    model; the old model must then not be trained or used on its own).
    """
    from accelerate import init_empty_weights

    old_in = int(model.config.in_channels)
    extra = int(model.config.out_channels) if extra is None else int(extra)
    if extra < 1:
        raise ValueError(f"extra={extra}; expected at least one new input channel")
    config = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
    config["in_channels"] = old_in + extra
    with init_empty_weights():  # parameters on `meta`, buffers (RoPE tables) built for real
        new = WanTransformer3DModel(**config)
    state = model.state_dict()
    if not share_weights:
        state = {k: v.clone() for k, v in state.items()}
    w = state["patch_embedding.weight"]  # [D, C_in, p_t, p_h, p_w]
    wide = torch.zeros((w.shape[0], old_in + extra, *w.shape[2:]), dtype=w.dtype, device=w.device)
    wide[:, :old_in] = w
    state["patch_embedding.weight"] = wide
    new.load_state_dict(state, assign=True, strict=True)
    return new.to(w.device)


def load_inp_transformer(path: str | Path, torch_dtype: torch.dtype | None = None) -> WanTransformer3DModel:
    """Load a pretrained Wan InP / i2v transformer (in_channels = 2C + 4) from a local diffusers folder.

    `path` is a diffusers pipeline folder (with `transformer/`) or the transformer folder itself.
    """
    path = Path(path)
    folder = path / "transformer" if (path / "transformer" / "config.json").is_file() else path
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no Wan InP transformer at {path}: expected {path / 'transformer' / 'config.json'} (a diffusers "
            "pipeline folder, e.g. a diffusers conversion of alibaba-pai/Wan2.1-Fun-1.3B-InP copied here) "
            f"or {path / 'config.json'}; nothing is downloaded"
        )
    model = load_local(WanTransformer3DModel, folder, torch_dtype=torch_dtype)
    c = model.config
    if c.in_channels != 2 * c.out_channels + MASK_CHANNELS:
        raise ValueError(
            f"{folder} holds a transformer with in_channels={c.in_channels}, out_channels={c.out_channels}; "
            f"expected the InP layout in_channels = 2 * out_channels + 4 = {2 * c.out_channels + 4}"
        )
    return model


# --------------------------------------------------------------------------- configuration


@dataclass
class ObservationConfig:
    """What an observation model is: backbone, codec, clip shape, inputs used, sampling defaults.

    Args:
        preset: name in `PRESETS` (also the transformer size).
        num_frames: video frames per clip, 4k + 1 (the paper: 61).
        height, width: frame size in pixels (the paper: 480 × 832).
        fps: frame rate of the clips (the paper: 16).
        codec: "wan-vae" (the Wan 2.1 VAE) or "pixel" (`PixelCodec`, tiny CPU models only).
        vae_preset: `egoworld.backbones.wan.VAE_PRESETS` name for "wan-vae".
        pixel_downscale: spatial factor of `PixelCodec`.
        transformer: keyword overrides of the 36-channel base (`backbones.wan.TRANSFORMER_PRESETS[base]`).
        base: the InP transformer preset widened to 52 channels.
        flow_shift: shift of the flow schedule (Wan: 3.0 at 480p).
        num_inference_steps, guidance: sampling defaults (the paper: 50 steps, CFG 1.0).
        use_scene: feed the rendered scene (False = the "w/o scene render" ablation: only the first
            frame is known, the Wan i2v setting).
        use_mask: feed M (False = the "w/o mask" ablation: the 4 mask channels are zero).
        condition_first_frame: write the current observation into frame 0 (known) in training.
        action_dropout: probability of replacing the skeleton by a black video in training (for CFG).
        use_image_encoder: CLIP penultimate features of the first frame (Wan-Fun-InP has them).
        text_tokens: length of the (zero) text embedding; 512 for models with image cross-attention.
    """

    preset: str = "tiny"
    num_frames: int = 9
    height: int = 32
    width: int = 32
    fps: int = 16
    codec: str = "wan-vae"
    vae_preset: str = "tiny"
    pixel_downscale: int = 4
    base: str = "tiny-i2v"
    transformer: dict[str, Any] = dataclasses.field(default_factory=dict)
    flow_shift: float = 3.0
    num_inference_steps: int = 50
    guidance: float = 1.0
    use_scene: bool = True
    use_mask: bool = True
    condition_first_frame: bool = True
    action_dropout: float = 0.0
    use_image_encoder: bool = False
    text_tokens: int = 1

    def validate(self) -> None:
        if self.num_frames < 5 or (self.num_frames - 1) % 4:
            raise ValueError(
                f"num_frames={self.num_frames}; expected 4k + 1 >= 5 (the Wan layout is 4x in time)"
            )
        if self.codec not in ("wan-vae", "pixel"):
            raise ValueError(f"codec={self.codec!r}; expected 'wan-vae' or 'pixel'")
        step = 8 if self.codec == "wan-vae" else self.pixel_downscale
        if self.height % (2 * step) or self.width % (2 * step):
            raise ValueError(
                f"frame size {self.height}x{self.width}; expected multiples of {2 * step} "
                f"(codec {self.codec} compresses {step}x, the DiT patches 2x)"
            )
        if not 0.0 <= self.action_dropout < 1.0:
            raise ValueError(f"action_dropout={self.action_dropout}; expected in [0, 1)")

    @property
    def latent_frames(self) -> int:
        return (self.num_frames - 1) // 4 + 1


PRESETS: dict[str, dict[str, Any]] = {
    # Wan tiny VAE (4 latent channels): 4 + 4 + 4 + 4 = 16 input channels; tests
    "tiny": dict(num_frames=9, height=32, width=32, codec="wan-vae", vae_preset="tiny", base="tiny-i2v"),
    # lossless pixel codec at 32x32 for CPU training (docs/egosim.md); 48 + 4 + 48 + 48 = 148 channels
    "tiny-pixel": dict(
        num_frames=9,
        height=32,
        width=32,
        codec="pixel",
        pixel_downscale=2,
        base="tiny",
        transformer=dict(
            num_attention_heads=3,
            attention_head_dim=64,
            ffn_dim=384,
            num_layers=4,
            patch_size=(1, 2, 2),
            rope_max_seq_len=64,
        ),
    ),
    # the paper's clip shape on the 1.3B Fun-InP (config only here: needs the local weights)
    "wan2.1-fun-1.3b-inp": dict(
        num_frames=61,
        height=480,
        width=832,
        codec="wan-vae",
        vae_preset="wan2.1",
        base="wan2.1-fun-1.3b-inp",
        use_image_encoder=True,
        text_tokens=512,
    ),
    # the paper's backbone: Wan-2.1-Fun-14B-InP (same layout as Wan 2.1 i2v 14B)
    "wan2.1-fun-14b-inp": dict(
        num_frames=61,
        height=480,
        width=832,
        codec="wan-vae",
        vae_preset="wan2.1",
        base="wan2.1-i2v-14b",
        use_image_encoder=True,
        text_tokens=512,
    ),
}


def preset_config(name: str, **overrides) -> ObservationConfig:
    """The `ObservationConfig` of a named preset, with field overrides."""
    from egoworld.backbones.base import pick_preset

    config = ObservationConfig(preset=name, **{**pick_preset(PRESETS, name), **overrides})
    config.validate()
    return config


def _latent_channels(config: ObservationConfig) -> int:
    if config.codec == "pixel":
        return 4 * 3 * config.pixel_downscale**2
    from egoworld.backbones.wan import VAE_PRESETS

    return int(VAE_PRESETS[config.vae_preset].get("z_dim", 16))


def transformer_config(config: ObservationConfig) -> dict[str, Any]:
    """The 52-channel DiT's constructor arguments (nothing is built): the base widened by C."""
    from egoworld.backbones.base import pick_preset
    from egoworld.backbones.wan import TRANSFORMER_PRESETS

    base = {**pick_preset(TRANSFORMER_PRESETS, config.base), **config.transformer}
    c = _latent_channels(config)
    base["out_channels"] = c
    base["in_channels"] = 3 * c + MASK_CHANNELS
    if "patch_size" in base:
        base["patch_size"] = tuple(base["patch_size"])
    return base


def _build_base(config: ObservationConfig) -> WanTransformer3DModel:
    """The randomly initialised 2C + 4 channel (InP) base of a preset."""
    args = transformer_config(config)
    args["in_channels"] -= args["out_channels"]
    return WanTransformer3DModel(**args)


def _build_codec(config: ObservationConfig) -> nn.Module:
    if config.codec == "pixel":
        return PixelCodec(config.pixel_downscale)
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


def mask_latents(unobserved_BF1HW: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """Wan InP mask channels `[B, 4, T, h, w]` from the unobserved-pixel mask `[B, F, 1, H, W]`.

    Value 1 = known (1 − M); frame 0 is repeated 4× so latent frame k gets video frames 4k−3 … 4k
    as its 4 channels; each channel is area-averaged to the latent resolution.
    """
    known = 1.0 - unobserved_BF1HW.float()
    b, f, _, hh, ww = known.shape
    frames = torch.cat([known[:, :1].expand(b, 4, 1, hh, ww), known[:, 1:]], 1)  # [B, 4T, 1, H, W]
    t = frames.shape[1] // 4
    m = F.interpolate(frames.reshape(b * t, 4, hh, ww), size=latent_hw, mode="area")
    return m.reshape(b, t, 4, *latent_hw).transpose(1, 2)  # [B, 4, T, h, w]


class ObservationModel(nn.Module):
    """Codec + 52-channel Wan InP DiT + rectified flow: `loss(batch)` and `generate(...)`."""

    def __init__(
        self,
        config: ObservationConfig,
        transformer: WanTransformer3DModel,
        codec: nn.Module,
        image_encoder: nn.Module | None = None,
    ):
        super().__init__()
        config.validate()
        self.config = config
        self.transformer = transformer
        self.codec = codec.requires_grad_(False)  # the VAE (and CLIP) stay frozen, as the paper
        self.image_encoder = image_encoder.requires_grad_(False) if image_encoder is not None else None
        self.objective = RectifiedFlow(shift=config.flow_shift, timestep_scale=1000.0)
        c = self.codec.latent_channels
        if transformer.config.in_channels != 3 * c + MASK_CHANNELS:
            raise ValueError(
                f"transformer in_channels={transformer.config.in_channels}; expected 3 * {c} + 4 = "
                f"{3 * c + MASK_CHANNELS} (noisy + mask + scene + skeleton)"
            )

    # construction ------------------------------------------------------------------------

    @classmethod
    def build(cls, config: ObservationConfig | str = "tiny", **overrides) -> ObservationModel:
        """A randomly initialised model of a preset (an InP base widened to 52 channels)."""
        config = preset_config(config, **overrides) if isinstance(config, str) else config
        config.validate()
        transformer = expand_inp_to_52(_build_base(config), share_weights=True)
        image_encoder = None
        if config.use_image_encoder and transformer.config.image_dim:
            from egoworld.image_encoder import ImageEncoder, tiny_clip

            dim = transformer.config.image_dim
            image_encoder = ImageEncoder(tiny_clip(projection_dim=dim, hidden_size=dim))
        return cls(config, transformer, _build_codec(config), image_encoder)

    @classmethod
    def from_inp(
        cls, path: str | Path, config: ObservationConfig | str = "wan2.1-fun-1.3b-inp", **overrides
    ) -> ObservationModel:
        """Pretrained Wan-Fun-InP weights from a local diffusers folder (`transformer/`, `vae/`,
        `image_encoder/`), widened to 52 channels."""
        config = preset_config(config, **overrides) if isinstance(config, str) else config
        path = Path(path)
        transformer = expand_inp_to_52(load_inp_transformer(path), share_weights=True)
        if not (path / "vae" / "config.json").is_file():
            raise FileNotFoundError(f"no Wan VAE at {path / 'vae'}; expected the pipeline's vae/ folder")
        codec = WanCodec(load_local(AutoencoderKLWan, path / "vae"))
        image_encoder = None
        if config.use_image_encoder:
            image_encoder = _load_clip(path / "image_encoder")
        return cls(config, transformer, codec, image_encoder)

    def save_pretrained(self, directory: str | Path) -> Path:
        """config + transformer + VAE + image encoder (safetensors), written atomically.

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
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ObservationModel:
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
        transformer = load_local(WanTransformer3DModel, directory / "transformer")
        if config.codec == "pixel":
            codec = PixelCodec(config.pixel_downscale)
        else:
            codec = WanCodec(load_local(AutoencoderKLWan, directory / "vae"))
        image_encoder = (
            _load_clip(directory / "image_encoder") if (directory / "image_encoder").is_dir() else None
        )
        return cls(config, transformer, codec, image_encoder).eval()

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

    def conditions(
        self,
        scene_BFCHW: torch.Tensor,
        mask_BF1HW: torch.Tensor,
        skeleton_BFCHW: torch.Tensor,
        first_frame: torch.Tensor | None = None,  # [B, 3, H, W]
    ) -> dict[str, torch.Tensor | None]:
        """The InP condition `y` = [M (4), z_bg (C), z_hand (C)] `[B, 2C + 4, T, h, w]`, text and image."""
        c = self.config
        m = self.check_videos(scene_BFCHW, mask_BF1HW, skeleton_BFCHW).to(scene_BFCHW.device)
        scene = scene_BFCHW.float()
        if not c.use_scene:
            scene = torch.full_like(scene, -1.0)
            m = torch.ones_like(m)
        if first_frame is not None:
            scene = torch.cat([first_frame[:, None].float(), scene[:, 1:]], 1)
            m = torch.cat([torch.zeros_like(m[:, :1]), m[:, 1:]], 1)
        masked = torch.where(m > 0.5, torch.full_like(scene, -1.0), scene)  # unobserved → black
        z_bg = self.codec.encode_condition(masked)  # [B, C, T, h, w]
        z_hand = self.codec.encode_condition(skeleton_BFCHW.float())
        mask = mask_latents(m, tuple(z_bg.shape[-2:])).to(z_bg)
        if not c.use_mask:
            mask = torch.zeros_like(mask)
        b = scene.shape[0]
        text = z_bg.new_zeros(b, c.text_tokens, self.transformer.config.text_dim)
        image = None
        if self.image_encoder is not None:
            image = self.image_encoder.penultimate(scene[:, 0])
        return {"y": torch.cat([mask, z_bg, z_hand], 1), "text": text, "image": image}

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

    def encode_batch(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None):
        """(z_0 `[B, C, T, h, w]`, conditions) of a batch; the codec is frozen, so these can be cached."""
        target = batch["target"]
        if tuple(target.shape) != tuple(batch["scene"].shape):
            raise ValueError(f"target video {list(target.shape)}; expected {list(batch['scene'].shape)}")
        first = target[:, 0] if self.config.condition_first_frame else None
        with torch.no_grad():
            cond = self.conditions(batch["scene"], batch["mask"], batch["skeleton"], first)
            x0 = self.codec.encode(target.float(), generator)
        return x0, cond

    def loss_on_latents(
        self, x0: torch.Tensor, cond: dict, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Rectified-flow loss (mean over the batch) on cached latents and conditions."""
        b = x0.shape[0]
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

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """L_gen on one batch: `target`, `scene`, `skeleton` `[B, F, 3, H, W]` in [-1, 1] and `mask`
        `[B, F, 1, H, W]` (1 = unobserved)."""
        x0, cond = self.encode_batch(batch, generator)
        return self.loss_on_latents(x0, cond, generator)

    def forward(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.loss(batch, generator)

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
    ) -> torch.Tensor:
        """Sample a clip `[B, F, 3, H, W]` in [-1, 1] from the scene video, mask and skeleton video.

        guidance = 1.0 (the paper) runs the conditional branch only; > 1 adds classifier-free
        guidance against a black skeleton video (meaningful only if trained with `action_dropout`).
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
        )
        uncond = None
        if guidance != 1.0:
            y = cond["y"].clone()
            y[:, MASK_CHANNELS + self.codec.latent_channels :] = self._black_skeleton_latent(y).to(y)
            uncond = {**cond, "y": y}
        b, ch = scene_video.shape[0], self.codec.latent_channels
        h, w = (s // self.codec.spatial_compression for s in (c.height, c.width))
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        latents = torch.randn((b, ch, c.latent_frames, h, w), generator=generator).to(dev)
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


def _load_clip(folder: Path):
    from transformers import CLIPVisionModelWithProjection

    from egoworld.image_encoder import ImageEncoder

    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no CLIP image encoder at {folder}; expected the pipeline's image_encoder/ folder "
            "(or set use_image_encoder=False)"
        )
    return ImageEncoder(load_local(CLIPVisionModelWithProjection, folder))


# --------------------------------------------------------------------------- a small trainer


def to_model_video(frames_THWC: Any) -> torch.Tensor:
    """uint8 `[T, H, W, 3]` (numpy) → float `[1, T, 3, H, W]` in [-1, 1]."""
    x = torch.as_tensor(frames_THWC)
    return (x.permute(0, 3, 1, 2).float() / 127.5 - 1.0)[None]


def to_uint8_video(video_BFCHW: torch.Tensor) -> Any:
    """float `[1, F, 3, H, W]` in [-1, 1] → uint8 `[F, H, W, 3]` (numpy)."""
    x = ((video_BFCHW[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def batch_from_clips(clips: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack clips of uint8 `target`/`scene`/`skeleton` `[T, H, W, 3]` and bool `mask` `[T, H, W]`
    (e.g. `egoworld.sim.loop.observation_clip`) into a model batch (`[B, F, 3, H, W]` in [-1, 1],
    mask `[B, F, 1, H, W]`)."""
    if not clips:
        raise ValueError("no clips; expected at least one")
    batch = {k: torch.cat([to_model_video(c[k]) for c in clips]) for k in ("target", "scene", "skeleton")}
    batch["mask"] = torch.stack([torch.as_tensor(c["mask"]) for c in clips])[:, :, None].float()
    return batch


def encode_clips(
    model: ObservationModel, clips: list[dict[str, Any]], batch_size: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached training tensors: latents `[N, C, T, h, w]` and InP conditions `[N, 2C + 4, T, h, w]`."""
    xs, ys = [], []
    for i in range(0, len(clips), batch_size):
        x0, cond = model.encode_batch(batch_from_clips(clips[i : i + batch_size]))
        xs.append(x0)
        ys.append(cond["y"])
    return torch.cat(xs), torch.cat(ys)


def train_observation_model(
    model: ObservationModel,
    latents: torch.Tensor,
    conditions: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 8,
    lr: float = 3e-4,
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    seed: int = 0,
    time_budget_s: float | None = None,
    log_every: int = 50,
    progress: bool = False,
) -> list[float]:
    """Train the DiT on cached latents `[N, C, T, h, w]` and InP conditions `[N, 2C + 4, T, h, w]`.

    AdamW over the transformer only (codec frozen), gradient clipping; stops after `steps` or
    `time_budget_s` seconds. With `progress`, a tqdm bar on stderr shows the steps and the running
    loss (mean of the last `log_every` steps). Returns the loss of every step.
    """
    if latents.shape[0] != conditions.shape[0] or latents.shape[0] < 1:
        raise ValueError(
            f"{latents.shape[0]} latents and {conditions.shape[0]} conditions; expected the same number >= 1"
        )
    if model.image_encoder is not None:
        raise ValueError(
            "cached-latent training carries no CLIP image features; this model has an image encoder "
            "(train it with model.loss(batch) instead)"
        )
    model.train()
    params = [p for p in model.transformer.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    text = latents.new_zeros(1, model.config.text_tokens, model.transformer.config.text_dim)
    losses: list[float] = []
    start = time.perf_counter()
    n = latents.shape[0]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(steps), desc="train-observe", unit="step")
    for step in range(int(steps)):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=generator)
        cond = {"y": conditions[idx], "text": text.expand(len(idx), -1, -1), "image": None}
        loss = model.loss_on_latents(latents[idx], cond, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        losses.append(float(loss.detach()))
        if bar is not None:
            recent = losses[-max(1, log_every) :]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", refresh=False)
            bar.update(1)
        if log_every and (step + 1) % log_every == 0:
            recent = losses[-log_every:]
            logger.info(
                "step %d: loss %.4f (%.0f s)",
                step + 1,
                sum(recent) / len(recent),
                time.perf_counter() - start,
            )
        if time_budget_s is not None and time.perf_counter() - start > time_budget_s:
            logger.info("time budget of %.0f s reached after %d steps", time_budget_s, step + 1)
            break
    if bar is not None:
        bar.close()
    model.eval()
    return losses
