"""Training configuration: dataclasses, YAML presets under `configs/`, and `--key=value` overrides.

A YAML file has top-level training keys plus a `model:` section (a `WorldModelConfig`) and a
`data:` section (a `DataConfig`) — or, to train EgoSim's observation model instead of a world
model, an `observation:` section (an `ObservationTrainConfig`) in their place. On the command
line every field is overridable: `--max-steps 20`, `--lr-actions=1e-4`, `--model.family=wan`,
`--data.path=/data/recon`, `--observation.data=/data/prep`, and the datasets of a mixture by
index: `--data.mixture.1.weight=2` (or `--data.mixture[1].weight=2`).
Unknown keys are refused with the closest known key suggested, and the whole config is checked
(types, ranges) by `validate` before anything is imported or written. This module imports neither
torch nor diffusers, so `egoworld train` reports a bad config at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from egoworld.model_config import WorldModelConfig, check_range, check_types

# `egoworld.data.factory.FORMATS` (a test checks that the two agree).
DATA_FORMATS = ("nwm", "onex", "lerobot", "worlds-nav", "passive")
# diffusers.optimization.SchedulerType (a test checks that the two agree).
LR_SCHEDULES = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
    "piecewise_constant",
)  # fmt: skip
MIXED_PRECISION = ("no", "bf16", "fp16")
# `egoworld.actions.normalization.MODES` (a test checks that the two agree).
NORMALIZATIONS = ("meanstd", "minmax")
# `egoworld.data.nwm.ACTION_MODES` (a test checks that the two agree).
NAV_ACTION_MODES = ("delta", "cumulative")
NAV_FORMATS = ("nwm", "worlds-nav")
# `egoworld.sim.observe_config.PRESETS`, `egoworld.sim.render.METHODS` and
# `egoworld.sim.inp_inputs.CLIP_PREPROCESS` (those modules import torch; a test checks that they agree).
OBSERVATION_PRESETS = ("tiny", "tiny-pixel", "wan2.1-fun-1.3b-inp", "wan2.1-fun-14b-inp")
OBSERVATION_SMALL_PRESETS = ("tiny", "tiny-pixel")
RENDER_METHODS = ("splat", "raycast")
CLIP_PREPROCESS = ("processor", "stretch")
WEIGHTS_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class DatasetConfig:
    """One dataset: where its clips come from and how its actions are normalised.

    Args:
        format: "nwm" (NWM/GNM processed navigation layout), "onex" (1X v2.0 shards), "lerobot",
            "passive" (videos without actions), or "worlds-nav" (a synthetic navigation dataset
            generated on first use into `path`).
        path: dataset folder.
        split: NWM only: "auto" (the dataset's train split when its data_splits/ has one, else every
            trajectory, with a warning), "train"/"test"/a traj_names.txt path, or null for every
            trajectory. The test split is never trained on unless asked for.
        dataset_name: NWM dataset key (spacing lookup), default the folder name; in a mixture also the
            dataset's name in the model's statistics table (`egoworld rollout --dataset NAME`).
        stride, frame_step: window stride and frame-rate subsampling (see `data.clip.WindowSpec`); for
            1X shards frame_step 1 keeps the paper's 5 fps (every 6th raw frame), > 1 sets the step.
        episodes, frames_per_episode, seed: size of a generated synthetic dataset; `seed` also fixes
            which clips are held out for validation.
        image_key, action_key, state_key: LeRobot only: the camera (a video or image feature; None: the first
            video feature, else the first image feature),
            the action feature, and the state feature ("auto": observation.state when the dataset has
            it, else no state; None: no state).
        normalization: how the actions are scaled with statistics fitted on this dataset's training
            actions: "meanstd" ((a - mean) / std) or "minmax" (into [-1, 1]).
        action_mode: navigation only ("nwm", "worlds-nav"): "delta" (each frame's step (dx, dy, dyaw)
            from the frame before) or "cumulative" (each frame's pose relative to the clip's first
            frame, NWM's form). A model trained on cumulative poses still takes per-step actions in
            `rollout`, scripts and `egoworld play`: it composes them per chunk itself.
        mirror: navigation only: also train on every clip mirrored left <-> right (frames flipped
            horizontally, lateral step and yaw negated) — twice the clips, and no walk's bias
            towards one side can stand in for reading the actions.
    """

    format: str = "worlds-nav"
    path: str = "data/worlds-nav"
    split: str | None = "auto"
    dataset_name: str | None = None
    stride: int = 1
    frame_step: int = 1
    episodes: int = 4
    frames_per_episode: int = 24
    seed: int = 0
    image_key: str | None = None
    action_key: str = "action"
    state_key: str | None = "auto"
    normalization: str = "meanstd"
    action_mode: str = "delta"
    mirror: bool = False


@dataclass
class MixtureEntry(DatasetConfig):
    """One dataset of `data.mixture`: every `DatasetConfig` field, plus its sampling weight.

    Args:
        normalization: as `DatasetConfig`, but "minmax" by default: NWM scales navigation actions into
            [-1, 1] by min-max (docs/training.md, "Dataset mixtures").
        weight: each clip drawn comes from this dataset with probability weight / (sum of the
            weights); null on every entry: each dataset in proportion to its number of clips (NWM's
            concatenation; every clip once per epoch). Give every entry a weight or none.
        statistics_of: the name of an earlier dataset of the mixture whose action statistics this
            one is normalised with, instead of its own: for datasets of one kind (one robot, one world
            generator), so that an action means the same to the model whichever dataset it came from.
            null: statistics fitted on this dataset's own actions.
    """

    normalization: str = "minmax"
    weight: float | None = None
    statistics_of: str | None = None


@dataclass
class DataConfig(DatasetConfig):
    """Where clips come from: one dataset (the `DatasetConfig` fields), or a mixture of several.

    Args:
        num_workers: DataLoader workers.
        val_fraction: share of clips held out for validation rollouts, in [0, 1) (of each dataset).
        mixture: a list of datasets (`MixtureEntry`) trained on together, each with its own fields,
            sampling weight and action statistics; when it is set, the single-dataset fields above
            stay at their defaults. Override one entry's field as `--data.mixture.1.weight=2`.
    """

    num_workers: int = 0
    val_fraction: float = 0.1
    mixture: list[MixtureEntry] = field(default_factory=list)


@dataclass
class ObservationTrainConfig:
    """`egoworld train` on EgoSim's observation model (the 52-channel Wan InP DiT, `egoworld.sim.observe`).

    Set `preset` to train it: the run then has no `model:` / `data:` section, the whole DiT trains at
    `lr_base` with the loss of `ObservationModel.loss` (rectified flow, the base model's own), and
    the VAE, CLIP and T5 stay frozen (the prompt is embedded once). `init_from` is a diffusers Wan
    2.1 i2v / Fun-InP folder (`egoworld sim convert-inp` makes one from the original release),
    widened to 52 channels by `ObservationModel.from_inp`, or an observation model folder; without
    it, `preset` is built with random weights (real-size presets only with `allow_random_init`).

    Args:
        preset: `egoworld.sim.observe_config.PRESETS` name ("tiny", "tiny-pixel",
            "wan2.1-fun-1.3b-inp", "wan2.1-fun-14b-inp"); null: not an observation run (the default).
        data: the training clips: a `egoworld sim prepare` folder (its clip shape must be the
            model's) or a folder of synthetic tabletop episodes (`egoworld worlds generate --task
            tabletop`), cut into clips when the run starts.
        val_clips: the last N clips are held out; validation samples (`validate_every`) use the first
            of them (0: the first training clip).
        clip_stride: tabletop episodes only: frames between the starts of consecutive clips.
        voxel_size: tabletop episodes only: TSDF voxel of the clips' states, metres (null: the
            episodes' default, `egoworld.sim.state.EPISODE_VOXEL_SIZE`).
        render: tabletop episodes only: the renderer of the scene videos, "splat" or "raycast".
        num_frames, height, width: the clip shape (null: the preset's; the paper: 61 at 480 x 832).
        use_scene, use_mask, condition_first_frame, action_dropout, image_dropout, text_dropout,
            clip_preprocess, prompt: the `ObservationConfig` fields of the same names (ablations,
            CFG dropout, Fun-InP's CLIP / caption dropout, CLIP input, prompt).
        text_encoder: folder of the T5/UMT5 encoder + tokenizer when it is not in `init_from` (or, for
            a randomly initialised model, to embed `prompt`).
        image_encoder: folder of the CLIP `image_encoder/` (+ `image_processor/`) if not in `init_from`.
        prompt_cache: folder that caches the prompt embedding, so T5 is loaded once for all processes
            and restarts (recommended with UMT5-XXL).
        clip_prompts: condition each training clip on its own text prompt (a prepared folder's, from
            EgoDex's LLM descriptions or a plain npz's `prompt`), embedded once at the start by the text
            encoder (`text_encoder`, or `init_from`'s), through `prompt_cache`; clips without a prompt
            use `prompt`. False (the default): every clip uses `prompt`. The saved model keeps `prompt`
            (`egoworld.sim.clip_prompts`).
        weights_dtype: dtype the DiT is loaded and trained in: "float32" (master weights; use
            `mixed_precision: bf16` for bf16 compute) or "bfloat16" / "float16" (pure low precision).
        num_workers: DataLoader workers reading the clips.
    """

    preset: str | None = None
    data: str = ""
    val_clips: int = 0
    clip_stride: int = 2
    voxel_size: float | None = None
    render: str = "splat"
    num_frames: int | None = None
    height: int | None = None
    width: int | None = None
    use_scene: bool = True
    use_mask: bool = True
    condition_first_frame: bool = True
    action_dropout: float = 0.0
    image_dropout: float = 0.0
    text_dropout: float = 0.0
    clip_preprocess: str = "processor"
    prompt: str = ""
    text_encoder: str | None = None
    image_encoder: str | None = None
    prompt_cache: str | None = None
    clip_prompts: bool = False
    weights_dtype: str = "float32"
    num_workers: int = 0

    def overrides(self) -> dict[str, Any]:
        """The `ObservationConfig` fields this section sets (the clip shape only where given)."""
        out = {
            k: getattr(self, k)
            for k in (
                "use_scene",
                "use_mask",
                "condition_first_frame",
                "action_dropout",
                "image_dropout",
                "text_dropout",
                "clip_preprocess",
            )
        }
        out["prompt"] = self.prompt
        out.update({k: getattr(self, k) for k in ("num_frames", "height", "width") if getattr(self, k)})
        return out


@dataclass
class TrainConfig:
    """One training run.

    Args:
        run_dir: where checkpoints, logs, samples and the resolved config go.
        max_steps: optimizer steps to train for (a resumed run continues to this count).
        time_budget_s: stop after this many seconds of training in this invocation (0: no limit): a
            checkpoint is written at the step reached and the final model saved from it; running again
            resumes there (`final_state.json` says whether max_steps was reached).
        batch_size: clips per process per micro-step; grad_accum: micro-steps per optimizer step.
        lr_base, lr_actions: the two learning-rate groups (EgoWM App. B: SVD 1e-5/1e-4, Cosmos 1e-6/1e-5);
            finite and >= 0.
        freeze_base: train only the action encoder.
        weight_decay, adam_beta1, adam_beta2: AdamW.
        lr_schedule, warmup_steps: a diffusers `get_scheduler` name and its warmup.
        max_grad_norm: gradient clipping (0 disables).
        mixed_precision: "no", "bf16" or "fp16" (Accelerate autocast).
        gradient_checkpointing: recompute activations in the backward pass.
        ema_decay: EMA of the trainable weights, in [0, 1) (0 disables).
        checkpoint_every, keep_checkpoints: checkpoint period (steps) and how many to keep (0 keeps all).
        log_every: TensorBoard scalar period; validate_every: validation rollout period (0 disables).
        seed: everything random derives from it (data order, noise), so runs are reproducible.
        init_from: where the weights come from: a diffusers pipeline folder (model_index.json, e.g.
            the published SVD-XT / Cosmos-Predict2 / Wan 2.1 weights) or a world-model folder
            (`save_pretrained`); `model:` fields that define the network must agree with it, the
            rest is honoured (see `egoworld.model_init`). None: random weights. For an observation
            run: a diffusers Wan 2.1 i2v / Fun-InP folder or an observation model folder.
        allow_random_init: train a real-size preset (anything but tiny/small) from random weights.
        compile: "" (off) or a `torch.compile` backend ("inductor", ...) for the base denoiser.
    """

    run_dir: str = "runs/default"
    max_steps: int = 100
    time_budget_s: float = 0.0
    batch_size: int = 2
    grad_accum: int = 1
    lr_base: float = 1e-5
    lr_actions: float = 1e-4
    freeze_base: bool = False
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    lr_schedule: str = "constant_with_warmup"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    ema_decay: float = 0.0
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    log_every: int = 10
    validate_every: int = 0
    seed: int = 0
    init_from: str | None = None
    allow_random_init: bool = False
    compile: str = ""
    model: WorldModelConfig = field(default_factory=WorldModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    observation: ObservationTrainConfig = field(default_factory=ObservationTrainConfig)

    @property
    def is_observation(self) -> bool:
        """True when the run trains EgoSim's observation model (`observation.preset` is set)."""
        return self.observation.preset is not None

    def to_dict(self) -> dict[str, Any]:
        """The resolved config: the `model:` and `data:` sections of a world-model run, or the
        `observation:` section of an observation run (never the unused ones)."""
        out = dataclasses.asdict(self)
        for key in ("model", "data") if self.is_observation else ("observation",):
            out.pop(key)
        return out

    def validate(self) -> None:
        """Raise ValueError on the first field of the wrong type or out of range (see `validate`)."""
        validate(self)


_SECTIONS = {"model": WorldModelConfig, "data": DataConfig, "observation": ObservationTrainConfig}
# Fields that may differ when a run is resumed (extending a run, moving it).
RESUMABLE_DIFFERENCES = {
    "max_steps",
    "time_budget_s",
    "run_dir",
    "validate_every",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
}


def _known_keys() -> list[str]:
    keys = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _SECTIONS]
    for section, cls in _SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def _unknown(key: str) -> ValueError:
    close = difflib.get_close_matches(key, _known_keys(), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ValueError(f"config key {key!r} does not exist{hint}")


def _coerce(cls: type, name: str, value: Any, key: str) -> Any:
    """Parse a command-line (or quoted YAML) string into the field's type (bool, int, float, str, None).

    Values that are not strings are returned as they are; `validate` checks their types.
    """
    kind = typing.get_type_hints(cls)[name]
    if not isinstance(value, str):
        return value
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    if union and value.lower() in ("none", "null") and type(None) in typing.get_args(kind):
        return None
    target = next(a for a in typing.get_args(kind) if a is not type(None)) if union else kind
    target = typing.get_origin(target) or target
    try:
        if target is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if target in (int, float, str):
            return target(value)
        return yaml.safe_load(value)
    except (ValueError, yaml.YAMLError):
        names = {int: "an integer", float: "a number", bool: "true or false", dict: "a mapping"}
        expected = names.get(target, f"a {getattr(target, '__name__', target)}")
        raise ValueError(f"{key}={value!r}: expected {expected}") from None


_ENTRY_KEY = re.compile(r"^data\.mixture\.(\d+)\.(.+)$")


def _entry_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(MixtureEntry)]


def _set_entry_field(entry: MixtureEntry, name: str, value: Any, where: str) -> None:
    """Set one field of a mixture entry (`where` is its display prefix, "data.mixture[1].")."""
    if name not in _entry_fields():
        close = difflib.get_close_matches(name, _entry_fields(), n=1, cutoff=0.5)
        hint = f"; did you mean {where + close[0]!r}?" if close else ""
        raise ValueError(f"config key {where + name!r} does not exist{hint}")
    setattr(entry, name, _coerce(MixtureEntry, name, value, where + name))


def _mixture(value: Any) -> list[MixtureEntry]:
    """A parsed `data.mixture` (a list of mappings, or null) -> MixtureEntry objects, keys checked."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(
            f"data.mixture={value!r}: expected a list of datasets, each a mapping such as "
            "{format: nwm, path: /data/recon, dataset_name: recon, weight: 1}"
        )
    entries = []
    for i, item in enumerate(value):
        if isinstance(item, MixtureEntry):
            entries.append(item)
            continue
        if not isinstance(item, dict):
            raise ValueError(
                f"data.mixture[{i}]={item!r}: expected a mapping of dataset fields (format, path, ...)"
            )
        entry = MixtureEntry()
        for key, sub in item.items():
            if not isinstance(key, str):
                raise ValueError(
                    f"config key data.mixture[{i}].{key!r} is not a string; expected a field name"
                )
            _set_entry_field(entry, key.replace("-", "_"), sub, f"data.mixture[{i}].")
        entries.append(entry)
    return entries


def _set(cfg: TrainConfig, key: str, value: Any) -> None:
    key = re.sub(r"\[(\d+)\]", r".\1", key.replace("-", "_"))  # data.mixture[1].x == data.mixture.1.x
    if m := _ENTRY_KEY.match(key):
        i, n = int(m.group(1)), len(cfg.data.mixture)
        if i >= n:
            have = f"indices 0..{n - 1}" if n else "no datasets; set data.mixture in the YAML file first"
            raise ValueError(f"config key {key!r}: data.mixture has {n} datasets ({have})")
        _set_entry_field(cfg.data.mixture[i], m.group(2), value, f"data.mixture[{i}].")
        return
    if "." in key:
        section, name = key.split(".", 1)
        if section not in _SECTIONS or name not in {f.name for f in dataclasses.fields(_SECTIONS[section])}:
            raise _unknown(key)
        sub = getattr(cfg, section)
        value = _coerce(type(sub), name, value, key)
        setattr(sub, name, _mixture(value) if (section, name) == ("data", "mixture") else value)
        return
    if key not in {f.name for f in dataclasses.fields(TrainConfig)} or key in _SECTIONS:
        raise _unknown(key)
    setattr(cfg, key, _coerce(TrainConfig, key, value, key))


def from_dict(raw: dict[str, Any] | None) -> TrainConfig:
    """A TrainConfig from a parsed YAML mapping (unknown keys refused; types checked by `validate`)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(
            f"a config must be a mapping of fields (run_dir: ..., model: {{...}}, data: {{...}}); "
            f"got a {type(raw).__name__}"
        )
    cfg = TrainConfig()
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ValueError(f"config key {key!r} is not a string; expected field names such as 'max_steps'")
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ValueError(f"config section {key!r} must be a mapping; got {type(value).__name__}")
            for sub_key, sub_value in value.items():
                _set(cfg, f"{key}.{sub_key}", sub_value)
        else:
            _set(cfg, key, value)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Check the whole config (types and ranges of every field, its model and data sections).

    Raises ValueError naming the first offending field, its value and what was expected. Cheap and
    import-free: run it before anything heavy is imported or any file is written.
    """
    check_types(cfg)
    if not cfg.run_dir:
        raise ValueError("run_dir is empty; expected a folder for checkpoints and logs")
    for name in ("max_steps", "batch_size", "grad_accum", "checkpoint_every", "log_every"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name}={getattr(cfg, name)}; expected a positive integer")
    for name in ("warmup_steps", "validate_every", "keep_checkpoints"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name}={getattr(cfg, name)}; expected an integer >= 0")
    if not 0 <= cfg.seed < 2**32:
        raise ValueError(f"seed={cfg.seed}; expected an integer in [0, 2**32)")
    for name in ("lr_base", "lr_actions", "weight_decay", "max_grad_norm", "time_budget_s"):
        check_range("", name, getattr(cfg, name), low=0)
    for name in ("adam_beta1", "adam_beta2"):
        check_range("", name, getattr(cfg, name), low=0, high=1, high_open=True)
    check_range("", "ema_decay", cfg.ema_decay, low=0, high=1, high_open=True)
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={cfg.lr_schedule!r} is not known; expected one of {LR_SCHEDULES}")
    if cfg.mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision={cfg.mixed_precision!r}; expected one of {MIXED_PRECISION}")
    if cfg.init_from is not None and not cfg.init_from:
        raise ValueError("init_from is empty; expected a world-model folder or null")
    if cfg.is_observation:
        _validate_observation_run(cfg)
        return
    why = "unless observation.preset is set (to train EgoSim's observation model)"
    _validate_unused(cfg.observation, ObservationTrainConfig(), "observation.", why)
    cfg.model.validate(prefix="model.")
    _validate_data(cfg.data)


def _validate_unused(section: Any, default: Any, p: str, why: str) -> None:
    """ValueError naming the first field of `section` that differs from `default` (it would be ignored)."""
    for f in dataclasses.fields(section):
        if getattr(section, f.name) != getattr(default, f.name):
            raise ValueError(f"{p}{f.name}={getattr(section, f.name)!r} is not used {why}; remove it")


def _validate_observation_run(cfg: TrainConfig) -> None:
    """An observation run: the `observation:` section, and nothing set that only world models use."""
    o, p = cfg.observation, "observation."
    check_types(o, p)
    if o.preset not in OBSERVATION_PRESETS:
        raise ValueError(f"{p}preset={o.preset!r} is not known; expected one of {OBSERVATION_PRESETS}")
    if not o.data:
        raise ValueError(
            f"{p}data is empty; expected a `egoworld sim prepare` folder or a folder of tabletop episodes"
        )
    why = "by an observation run (observation.preset sets the network, observation.data the clips)"
    _validate_unused(cfg.model, WorldModelConfig(), "model.", why)
    _validate_unused(cfg.data, DataConfig(), "data.", why)
    if cfg.freeze_base:
        raise ValueError("freeze_base=true: an observation run trains the whole DiT; expected false")
    if cfg.lr_actions != TrainConfig.lr_actions:
        raise ValueError(
            f"lr_actions={cfg.lr_actions!r} is not used by an observation run (the whole DiT trains at "
            "lr_base); remove it"
        )
    if o.num_frames is not None and (o.num_frames < 5 or (o.num_frames - 1) % 4):
        raise ValueError(f"{p}num_frames={o.num_frames}; expected 4k + 1 >= 5 (the Wan latent layout)")
    for name in ("height", "width"):
        v = getattr(o, name)
        if v is not None and (v < 16 or v % 16):
            raise ValueError(f"{p}{name}={v}; expected a positive multiple of 16 (VAE 8x, DiT patches 2x)")
    if o.num_workers < 0:
        raise ValueError(f"{p}num_workers={o.num_workers}; expected an integer >= 0")
    if o.val_clips < 0:
        raise ValueError(f"{p}val_clips={o.val_clips}; expected an integer >= 0")
    if o.clip_stride < 1:
        raise ValueError(f"{p}clip_stride={o.clip_stride}; expected a positive integer")
    if o.voxel_size is not None:
        check_range(p, "voxel_size", o.voxel_size, low=0, high=1, low_open=True)
    for name in ("action_dropout", "image_dropout", "text_dropout"):
        check_range(p, name, getattr(o, name), low=0, high=1, high_open=True)
    for name, allowed in (
        ("render", RENDER_METHODS),
        ("clip_preprocess", CLIP_PREPROCESS),
        ("weights_dtype", WEIGHTS_DTYPES),
    ):
        if getattr(o, name) not in allowed:
            raise ValueError(f"{p}{name}={getattr(o, name)!r} is not known; expected one of {allowed}")
    for name in ("text_encoder", "image_encoder", "prompt_cache"):
        if getattr(o, name) == "":
            raise ValueError(f"{p}{name} is empty; expected a folder or null")
    if o.clip_prompts and not o.text_encoder and not cfg.init_from:
        raise ValueError(
            f"{p}clip_prompts=true needs a text encoder to embed the clips' prompts; set {p}text_encoder "
            "(a T5/UMT5 folder) or init_from (a diffusers Wan folder with text_encoder/)"
        )


def _validate_dataset(d: DatasetConfig, p: str) -> None:
    """Types and ranges of one dataset's fields; `p` prefixes field names ("data.", "data.mixture[1].")."""
    check_types(d, p)
    if d.format not in DATA_FORMATS:
        raise ValueError(f"{p}format={d.format!r} is not known; expected one of {DATA_FORMATS}")
    if not d.path:
        raise ValueError(f"{p}path is empty; expected a dataset folder")
    for name in ("stride", "frame_step", "episodes"):
        if getattr(d, name) < 1:
            raise ValueError(f"{p}{name}={getattr(d, name)}; expected a positive integer")
    if d.frames_per_episode < 2:
        raise ValueError(f"{p}frames_per_episode={d.frames_per_episode}; expected an integer >= 2")
    if d.seed < 0:
        raise ValueError(f"{p}seed={d.seed}; expected an integer >= 0")
    if d.normalization not in NORMALIZATIONS:
        raise ValueError(
            f"{p}normalization={d.normalization!r} is not known; expected one of {NORMALIZATIONS}"
        )
    if d.action_mode not in NAV_ACTION_MODES:
        raise ValueError(f"{p}action_mode={d.action_mode!r} is not known; expected one of {NAV_ACTION_MODES}")
    for name, default in (("action_mode", "delta"), ("mirror", False)):
        if getattr(d, name) != default and d.format not in NAV_FORMATS:
            raise ValueError(
                f"{p}{name}={getattr(d, name)!r} applies to navigation data only; expected "
                f"format one of {NAV_FORMATS}, got {d.format!r}"
            )


def _validate_data(d: DataConfig) -> None:
    """The `data:` section: one dataset, or a mixture whose every entry is checked on its own."""
    check_types(d, "data.")
    if d.num_workers < 0:
        raise ValueError(f"data.num_workers={d.num_workers}; expected an integer >= 0")
    if not d.mixture:
        _validate_dataset(d, "data.")
    check_range("data.", "val_fraction", d.val_fraction, low=0, high=1, high_open=True)
    if not d.mixture:
        return
    for f in dataclasses.fields(DatasetConfig):  # one dataset's fields: per entry in a mixture
        if getattr(d, f.name) != f.default:
            raise ValueError(
                f"data.{f.name}={getattr(d, f.name)!r} is not used with data.mixture (each dataset has its "
                f"own); set it per dataset, e.g. data.mixture[0].{f.name}"
            )
    modes = {
        e.action_mode for e in d.mixture if isinstance(e, MixtureEntry) and e.action_mode in NAV_ACTION_MODES
    }
    if len(modes) > 1:  # one model reads its actions one way
        raise ValueError(
            f"data.mixture mixes action_mode values {sorted(modes)}; expected one action_mode for all"
        )
    names: dict[str, int] = {}
    for i, entry in enumerate(d.mixture):
        p = f"data.mixture[{i}]."
        if not isinstance(entry, MixtureEntry):
            raise ValueError(f"data.mixture[{i}]={entry!r}: expected a mapping of dataset fields")
        _validate_dataset(entry, p)
        if entry.weight is not None:
            check_range(p, "weight", entry.weight, low=0, low_open=True)
        if i == 0 and entry.statistics_of is not None:
            raise ValueError(
                f"{p}statistics_of={entry.statistics_of!r}: the first dataset has no earlier one to take "
                "statistics from; expected null"
            )
        if entry.dataset_name is not None:
            if entry.dataset_name in names:
                raise ValueError(
                    f"{p}dataset_name={entry.dataset_name!r} is already the name of data.mixture"
                    f"[{names[entry.dataset_name]}]; expected a different name for every dataset"
                )
            names[entry.dataset_name] = i
    weighted = [e.weight is not None for e in d.mixture]
    if any(weighted) and not all(weighted):
        i = weighted.index(False)
        raise ValueError(
            f"data.mixture[{i}].weight is null while other datasets have weights; expected a weight on "
            "every dataset, or on none (each dataset in proportion to its number of clips)"
        )


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML preset and apply `--key=value` / `--key value` overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"config file {path} not found; expected a YAML file such as configs/tiny-svd.yaml"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if raw is None:
        raw = {}  # an empty file: the defaults
    if not isinstance(raw, dict):
        raise ValueError(
            f"{path} holds a YAML {'list' if isinstance(raw, list) else 'scalar'} ({str(raw)[:40]!r}); "
            "expected a mapping of config fields "
            "(run_dir: ..., max_steps: ..., model: {...}, data: {...})"
        )
    cfg = from_dict(raw)
    for key, value in parse_overrides(overrides or []):
        _set(cfg, key, value)
    validate(cfg)
    return cfg


def parse_overrides(tokens: list[str]) -> list[tuple[str, str]]:
    """['--a=1', '--b', '2', '--flag'] -> [('a', '1'), ('b', '2'), ('flag', 'true')]."""
    pairs, i = [], 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise ValueError(f"unexpected argument {tok!r}; expected --key=value overrides")
        if "=" in tok:
            key, value = tok[2:].split("=", 1)
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            key, value = tok[2:], tokens[i + 1]
            i += 2
        else:
            key, value = tok[2:], "true"
            i += 1
        pairs.append((key, value))
    return pairs


def differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys whose values differ between two resolved configs (flattened, dotted)."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += differences(va, vb, f"{prefix}{key}.")
        elif va != vb and key not in RESUMABLE_DIFFERENCES:
            out.append(f"{prefix}{key}")
    return out
