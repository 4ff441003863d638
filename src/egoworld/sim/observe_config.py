"""What an observation model is (`ObservationConfig`), its named presets, and the 52-channel DiT's size."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from egoworld.sim.inp_inputs import CLIP_PREPROCESS, MASK_CHANNELS

RENDER_METHODS = ("splat", "raycast")  # = egoworld.sim.render.METHODS (that module imports torch)


@dataclass
class TrainingSettings:
    """How the states behind a model's training clips were made (`egoworld sim` uses the same) and
    which text they were conditioned on.

    Saved inside the model's config (`egoworld_observation.json`, key ``training``). The clip length
    and resolution are the config's own ``num_frames``, ``height`` and ``width``. None = not recorded
    (a model saved before these fields existed, or built without training).

    Args:
        render: the renderer Π of the scene videos and masks, "splat" or "raycast".
        voxel_size: TSDF voxel edge of the states, metres.
        trunc_voxel_multiplier: TSDF truncation the states were fused with, voxels.
        depth_max: farthest depth fused, metres.
        fuse_frames: frames of each clip fused into its state (1: the clip's first frame).
        depth: where the fused depth came from: "ground truth", "supplied" or "estimated (…)".
        data: what the clips were made from, e.g. "tabletop episodes" or "prepared (egodex)".
        clip_prompts: True when each clip was conditioned on its own text prompt (`observation.
            clip_prompts`; clips without one, and `egoworld sim` unless told `--prompt`, use the
            model's `prompt`), False when every clip was conditioned on the model's `prompt`.
    """

    render: str | None = None
    voxel_size: float | None = None
    trunc_voxel_multiplier: float | None = None
    depth_max: float | None = None
    fuse_frames: int | None = None
    depth: str | None = None
    data: str | None = None
    clip_prompts: bool | None = None

    def validate(self) -> None:
        if self.render is not None and self.render not in RENDER_METHODS:
            raise ValueError(f"training render={self.render!r}; expected one of {list(RENDER_METHODS)}")
        for name in ("voxel_size", "trunc_voxel_multiplier", "depth_max"):
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
            if v is not None and not ok:
                raise ValueError(f"training {name}={v!r}; expected a positive number or null")
        f = self.fuse_frames
        if f is not None and (not isinstance(f, int) or isinstance(f, bool) or f < 1):
            raise ValueError(f"training fuse_frames={f!r}; expected an integer >= 1 or null")
        for name in ("depth", "data"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ValueError(f"training {name}={getattr(self, name)!r}; expected a string or null")
        if self.clip_prompts is not None and not isinstance(self.clip_prompts, bool):
            raise ValueError(f"training clip_prompts={self.clip_prompts!r}; expected true, false or null")

    @classmethod
    def from_prepared(cls, manifest: dict[str, Any]) -> TrainingSettings:
        """The settings of clips written by `egoworld sim prepare` (its manifest)."""
        from egoworld.sim.state import ESTIMATED_DEPTH_TRUNC_MULTIPLIER, StateConfig

        depth = str(manifest.get("depth", "supplied"))
        default = StateConfig()
        estimated = depth.startswith("estimated")
        return cls(
            render=manifest.get("render"),
            voxel_size=manifest.get("voxel_size"),
            trunc_voxel_multiplier=(
                ESTIMATED_DEPTH_TRUNC_MULTIPLIER if estimated else default.trunc_voxel_multiplier
            ),
            depth_max=default.depth_max,
            fuse_frames=manifest.get("fuse_frames"),
            depth=depth,
            data=f"prepared ({manifest.get('layout', 'unknown')})",
        )


@dataclass
class ObservationConfig:
    """What an observation model is: backbone, codec, clip shape, inputs used, sampling defaults.

    Args:
        preset: name in `PRESETS` (also the transformer size).
        num_frames: video frames per clip, 4k + 1 (the paper: 61).
        height, width: frame size in pixels (the paper: 480 × 832).
        fps: frame rate of the clips (the paper: 16).
        codec: "wan-vae" (the Wan 2.1 VAE) or "pixel" (`egoworld.codecs.PackedPixelCodec`, tiny CPU
            models only).
        vae_preset: `egoworld.backbones.wan.VAE_PRESETS` name for "wan-vae".
        pixel_downscale: spatial factor of `PackedPixelCodec`.
        transformer: keyword overrides of the 36-channel base (`backbones.wan.TRANSFORMER_PRESETS[base]`).
        base: the InP transformer preset widened to 52 channels.
        flow_shift: shift of the flow schedule (Wan: 3.0 at 480p).
        num_inference_steps, guidance: sampling defaults (the paper: 50 steps, CFG 1.0).
        use_scene: feed the rendered scene (False = the "w/o scene render" ablation: only the first
            frame is known, the Wan i2v setting).
        use_mask: feed M (False = the "w/o mask" ablation: the 4 mask channels are zero).
        condition_first_frame: write the current observation into frame 0 (known) in training.
        action_dropout: probability of replacing the skeleton by a black video in training (for CFG).
        image_dropout: probability per training clip of zero CLIP features (Fun-InP's training code
            zeroes them for 10 % of its samples: 0.1; 0 = never).
        text_dropout: probability per training clip of the empty prompt's embedding in place of the
            prompt's (Fun-InP's dataset drops the caption of 10 % of its samples: 0.1; 0 = never).
            With a non-empty prompt the model needs the empty prompt's embedding, computed by the
            same text encoder (`egoworld.sim.prompts`).
        use_image_encoder: CLIP penultimate features of the first frame (Wan-Fun-InP has them).
        clip_preprocess: how the first frame reaches CLIP: "processor" (the pipeline's
            `CLIPImageProcessor`, as `WanImageToVideoPipeline`) or "stretch" (bicubic resize of the
            whole frame, as the Fun-InP training code); see `egoworld.sim.inp_inputs`.
        prompt: the text prompt, embedded once by the frozen T5/UMT5 encoder (`egoworld.sim.prompts`).
        text_max_length: token length of the prompt embedding (Wan: 512; models with CLIP cross-
            attention need exactly 512).
        text_tokens: length of the all-zero text embedding of a model built without a text encoder.
        training: how the training clips' states were made (`TrainingSettings`; None: not recorded).
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
    image_dropout: float = 0.0
    text_dropout: float = 0.0
    use_image_encoder: bool = False
    clip_preprocess: str = "processor"
    prompt: str = ""
    text_max_length: int = 512
    text_tokens: int = 1
    training: TrainingSettings | None = None

    def __post_init__(self) -> None:
        if isinstance(self.training, dict):  # read back from JSON; unknown keys are a TypeError
            self.training = TrainingSettings(**self.training)
        if self.training is not None and not isinstance(self.training, TrainingSettings):
            raise TypeError(f"training={self.training!r}; expected a mapping of TrainingSettings fields")

    def validate(self) -> None:
        if self.training is not None:
            self.training.validate()
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
        for name in ("action_dropout", "image_dropout", "text_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}={getattr(self, name)}; expected in [0, 1)")
        if self.clip_preprocess not in CLIP_PREPROCESS:
            raise ValueError(f"clip_preprocess={self.clip_preprocess!r}; expected one of {CLIP_PREPROCESS}")
        if self.text_max_length < 1 or self.text_tokens < 1:
            raise ValueError(
                f"text_max_length={self.text_max_length}, text_tokens={self.text_tokens}; expected >= 1"
            )

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


def latent_channels(config: ObservationConfig) -> int:
    """C, the latent width of the preset's codec."""
    if config.codec == "pixel":
        return 4 * 3 * config.pixel_downscale**2
    from egoworld.backbones.wan import VAE_PRESETS

    return int(VAE_PRESETS[config.vae_preset].get("z_dim", 16))


def transformer_config(config: ObservationConfig) -> dict[str, Any]:
    """The 52-channel DiT's constructor arguments (nothing is built): the base widened by C."""
    from egoworld.backbones.base import pick_preset
    from egoworld.backbones.wan import TRANSFORMER_PRESETS

    base = {**pick_preset(TRANSFORMER_PRESETS, config.base), **config.transformer}
    c = latent_channels(config)
    base["out_channels"] = c
    base["in_channels"] = 3 * c + MASK_CHANNELS
    if "patch_size" in base:
        base["patch_size"] = tuple(base["patch_size"])
    return base
