"""`WorldModelConfig`: what a world model is, in a module that imports neither torch nor diffusers.

`egoworld.world_model` re-exports it; `egoworld.train_config` uses it so that `egoworld train`
can check a config file and its overrides before the heavy imports.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

# The keys of `egoworld.world_model.FAMILIES` (a test checks that the two agree).
FAMILY_NAMES = ("cosmos", "svd", "wan")
# `egoworld.actions.encoders.ENCODERS` (a test checks that the two agree).
ENCODER_NAMES = ("sincos", "mlp")
SAMPLERS = ("euler", "unipc")
GUIDANCE_SCHEDULES = ("linear", "constant")
CONFIG_NAME = "egoworld_world_model.json"  # the file that marks a world-model folder


def _type_name(kind: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def check_types(obj: Any, prefix: str = "") -> None:
    """Check every field of a config dataclass against its annotation; ints are accepted (and stored) as
    floats where a float is expected. Raises ValueError naming the field, its value and the type expected.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        kind, value = hints[f.name], getattr(obj, f.name)
        args = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else ()
        optional = type(None) in args
        if optional:
            if value is None:
                continue
            kind = next(a for a in args if a is not type(None))
        kind = typing.get_origin(kind) or kind
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            setattr(obj, f.name, value)
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if not ok:
            expected = _type_name(kind) + (" or null" if optional else "")
            raise ValueError(f"{prefix}{f.name}={value!r}: expected {expected}")


def check_range(
    prefix: str,
    name: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ValueError unless `value` is finite and within [low, high] (or the open ends asked for)."""
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return
    if low is not None and high is not None:
        want = f"a finite value in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        want = f"a finite value {'>' if low_open else '>='} {low:g}"
    else:
        want = "a finite value"
    raise ValueError(f"{prefix}{name}={value!r}: expected {want}")


@dataclass
class WorldModelConfig:
    """What a world model is: backbone family and size, action space, clip shape, sampling defaults.

    Args:
        family: "svd" (UNet, EDM), "cosmos" (Cosmos Predict2 DiT, flow) or "wan" (Wan i2v/InP DiT, flow).
        preset: backbone size for randomly initialised models ("tiny", "svd-xt", "cosmos-predict2-2b", ...).
        action_dim: width of one action (3 navigation, 25 humanoid).
        state_dim: width of the initial state (Eq. 6), or None.
        encoder: action encoder, "sincos" (SVD variant) or "mlp" (Cosmos variant).
        hidden_dim: width of the action encoder's features.
        num_frames: video frames per generated chunk (SVD: any; Cosmos/Wan: 4k+1).
        height, width: frame size in pixels.
        fps, motion_bucket_id, cond_aug: SVD's micro-conditioning (`added_time_ids`).
        cfg_dropout: probability of dropping the image condition in training (enables guidance).
        P_mean, P_std: EDM's log-normal noise levels (SVD).
        flow_shift: the flow schedule's shift (Cosmos/Wan), sampler: "euler" or "unipc".
        num_inference_steps, guidance: sampling defaults.
        guidance_schedule: "linear" (the SVD pipeline's ramp from 1 at the first frame to `guidance` at
            the last) or "constant" (`guidance` on every frame, as the EgoWM authors sample SVD).
        vae_encode_chunk: frames (SVD) or clips (Wan/Cosmos VAE) per VAE call when encoding a training
            batch, to bound memory; None encodes the batch in one call.
        use_image_encoder: condition on a CLIP image embedding (SVD, Wan i2v).
        codec: "vae" (the backbone's own VAE) or "pixel", for small models trained here without a
            pretrained VAE: SVD reads the frames themselves (`codecs.PixelCodec`), the DiT families
            (Cosmos, Wan) the frames packed into the Wan latent layout (`codecs.PackedPixelCodec`:
            4 frames and `pixel_downscale` x `pixel_downscale` pixels per latent position).
        pixel_downscale: the DiT families' pixel codec: spatial packing factor (the DiT then
            patches 2x more, so height and width are multiples of 2 x pixel_downscale).
        flow_prediction: Cosmos/Wan models built here: "velocity" (as the published models) or "x0"
            (the network predicts the clean sample; for small DiTs whose tokens hold more numbers than
            their width, `objectives.flow`).
        pixel_residual: the DiT families' pixel codec: None (frames as they are) or a scale s, every
            frame after the first then stored as s * (frame - first frame): the denoiser predicts
            only the change, and "nothing moves" is the zero latent (`codecs.PackedPixelCodec`).
        norm_groups: SVD only: the GroupNorm groups of the denoiser (None: diffusers' fixed 32). The
            UNet adds the timestep embedding — and so the action embedding — to each res-block as
            a per-channel bias just before a GroupNorm, which removes whatever is constant within a
            group. SVD-XT normalises 10-40 channels per group; the `small` preset's 32-128 channels
            in 32 groups are 1-4 per group, and most of the embedding is normalised away
            (docs/results.md measures it). Parameter shapes do not change, so weights load either way.
        action_center: the action embedding minus the embedding of zero actions (the mean action,
            once normalised): e_a(a) - e_a(0). The action path then cannot learn an offset that is the
            same for every action, only what the actions say. No weights change, so it can be
            switched on for an `init_from` model. Tried for fine-tuning a passive prior, whose action
            path otherwise learns such an offset first: it did not make that path learn the actions
            (docs/results.md, "Why the prior held the action path back").
    """

    family: str = "svd"
    preset: str = "tiny"
    action_dim: int = 3
    state_dim: int | None = None
    encoder: str = "sincos"
    hidden_dim: int = 256
    num_frames: int = 8
    height: int = 64
    width: int = 64
    fps: int = 5
    motion_bucket_id: int = 127
    cond_aug: float = 0.02
    cfg_dropout: float = 0.1
    P_mean: float = 0.7
    P_std: float = 1.6
    flow_shift: float = 3.0
    flow_prediction: str = "velocity"
    sampler: str = "euler"
    num_inference_steps: int = 25
    guidance: float = 1.0
    guidance_schedule: str = "linear"
    vae_encode_chunk: int | None = None
    use_image_encoder: bool = True
    codec: str = "vae"
    pixel_downscale: int = 2
    pixel_residual: float | None = None
    norm_groups: int | None = None
    action_center: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self, prefix: str = "") -> None:
        """Raise ValueError on the first field that is of the wrong type or out of range.

        prefix: prepended to field names in messages ("model." when checked as part of a TrainConfig).
        """
        p = prefix
        check_types(self, p)
        if self.family not in FAMILY_NAMES:
            known = sorted(FAMILY_NAMES)
            raise ValueError(f"{p}family={self.family!r} is not known; expected one of {known}")
        if self.family != "svd" and (self.num_frames - 1) % 4:
            raise ValueError(
                f"{p}num_frames={self.num_frames} for {self.family}; expected 4k+1 (the VAE is 4x in time)"
            )
        if self.num_frames < 2:
            raise ValueError(
                f"{p}num_frames={self.num_frames}; expected at least 2 (a condition and a future frame)"
            )
        if self.codec not in ("vae", "pixel"):
            raise ValueError(f"{p}codec={self.codec!r}; expected 'vae' or 'pixel'")
        if self.pixel_downscale < 1:
            raise ValueError(f"{p}pixel_downscale={self.pixel_downscale}; expected a positive integer")
        step = 2 * self.pixel_downscale
        if self.codec == "pixel" and self.family != "svd" and (self.height % step or self.width % step):
            raise ValueError(
                f"{p}height={self.height}, {p}width={self.width}; the {self.family} pixel codec packs "
                f"{self.pixel_downscale}x and the DiT patches 2x: expected multiples of {step}"
            )
        if self.flow_prediction not in ("velocity", "x0") or (
            self.flow_prediction == "x0" and self.family == "svd"
        ):
            raise ValueError(
                f"{p}flow_prediction={self.flow_prediction!r}; expected 'velocity', or 'x0' with family "
                "'cosmos' or 'wan'"
            )
        if self.pixel_residual is not None and (
            self.codec != "pixel" or self.family == "svd" or not self.pixel_residual > 0
        ):
            raise ValueError(
                f"{p}pixel_residual={self.pixel_residual!r}; expected null, or a positive scale with "
                "codec 'pixel' and family 'cosmos' or 'wan'"
            )
        if self.norm_groups is not None and (self.family != "svd" or self.norm_groups < 1):
            raise ValueError(
                f"{p}norm_groups={self.norm_groups!r}; expected null, or a positive integer for family 'svd'"
            )
        if self.height <= 0 or self.width <= 0 or self.height % 8 or self.width % 8:
            raise ValueError(
                f"{p}height={self.height}, {p}width={self.width}; expected positive multiples of 8"
            )
        if self.encoder not in ENCODER_NAMES:
            raise ValueError(f"{p}encoder={self.encoder!r} is not known; expected one of {ENCODER_NAMES}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"{p}sampler={self.sampler!r} is not known; expected one of {SAMPLERS}")
        if not self.preset:
            raise ValueError(f"{p}preset is empty; expected a preset name such as 'tiny'")
        for name in ("action_dim", "hidden_dim", "fps", "num_inference_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{p}{name}={getattr(self, name)}; expected a positive integer")
        if self.state_dim is not None and self.state_dim < 1:
            raise ValueError(f"{p}state_dim={self.state_dim}; expected a positive integer or null")
        if self.motion_bucket_id < 0:
            raise ValueError(f"{p}motion_bucket_id={self.motion_bucket_id}; expected an integer >= 0")
        check_range(p, "cond_aug", self.cond_aug, low=0)
        check_range(p, "cfg_dropout", self.cfg_dropout, low=0, high=1)
        check_range(p, "P_mean", self.P_mean)
        check_range(p, "P_std", self.P_std, low=0, low_open=True)
        check_range(p, "flow_shift", self.flow_shift, low=0, low_open=True)
        check_range(p, "guidance", self.guidance, low=0)
        if self.guidance_schedule not in GUIDANCE_SCHEDULES:
            raise ValueError(
                f"{p}guidance_schedule={self.guidance_schedule!r}; expected one of {GUIDANCE_SCHEDULES}"
            )
        if self.vae_encode_chunk is not None and self.vae_encode_chunk < 1:
            raise ValueError(
                f"{p}vae_encode_chunk={self.vae_encode_chunk}; expected a positive integer or null"
            )
