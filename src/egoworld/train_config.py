"""Training configuration: dataclasses, YAML presets under `configs/`, and `--key=value` overrides.

A YAML file has top-level training keys plus a `model:` section (a `WorldModelConfig`) and a
`data:` section (a `DataConfig`). On the command line every field is overridable:
`--max-steps 20`, `--lr-actions=1e-4`, `--model.family=wan`, `--data.path=/data/recon`.
Unknown keys are refused with the closest known key suggested, and the whole config is checked
(types, ranges) by `validate` before anything is imported or written. This module imports neither
torch nor diffusers, so `egoworld train` reports a bad config at once.
"""

from __future__ import annotations

import dataclasses
import difflib
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


@dataclass
class DataConfig:
    """Where clips come from.

    Args:
        format: "nwm" (NWM/GNM processed navigation layout), "onex" (1X v2.0 shards), "lerobot",
            "passive" (videos without actions), or "worlds-nav" (a synthetic navigation dataset
            generated on first use into `path`).
        path: dataset folder.
        split: NWM only: "auto" (the dataset's train split when its data_splits/ has one, else every
            trajectory, with a warning), "train"/"test"/a traj_names.txt path, or null for every
            trajectory. The test split is never trained on unless asked for.
        dataset_name: NWM dataset key (spacing lookup), default the folder name.
        stride, frame_step: window stride and frame-rate subsampling (see `data.clip.WindowSpec`).
        num_workers: DataLoader workers.
        episodes, frames_per_episode, seed: size of a generated synthetic dataset.
        val_fraction: share of clips held out for validation rollouts, in [0, 1).
        image_key, action_key, state_key: LeRobot only: the camera (a video feature; None: the first),
            the action feature, and the state feature ("auto": observation.state when the dataset has
            it, else no state; None: no state).
    """

    format: str = "worlds-nav"
    path: str = "data/worlds-nav"
    split: str | None = "auto"
    dataset_name: str | None = None
    stride: int = 1
    frame_step: int = 1
    num_workers: int = 0
    episodes: int = 4
    frames_per_episode: int = 24
    seed: int = 0
    val_fraction: float = 0.1
    image_key: str | None = None
    action_key: str = "action"
    state_key: str | None = "auto"


@dataclass
class TrainConfig:
    """One training run.

    Args:
        run_dir: where checkpoints, logs, samples and the resolved config go.
        max_steps: optimizer steps to train for (a resumed run continues to this count).
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
            rest is honoured (see `egoworld.model_init`). None: random weights.
        allow_random_init: train a real-size preset (anything but tiny/small) from random weights.
        compile: "" (off) or a `torch.compile` backend ("inductor", ...) for the base denoiser.
    """

    run_dir: str = "runs/default"
    max_steps: int = 100
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ValueError on the first field of the wrong type or out of range (see `validate`)."""
        validate(self)


_SECTIONS = {"model": WorldModelConfig, "data": DataConfig}
# Fields that may differ when a run is resumed (extending a run, moving it).
RESUMABLE_DIFFERENCES = {"max_steps", "run_dir", "validate_every", "log_every", "checkpoint_every"}


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


def _set(cfg: TrainConfig, key: str, value: Any) -> None:
    key = key.replace("-", "_")
    if "." in key:
        section, name = key.split(".", 1)
        if section not in _SECTIONS or name not in {f.name for f in dataclasses.fields(_SECTIONS[section])}:
            raise _unknown(key)
        sub = getattr(cfg, section)
        setattr(sub, name, _coerce(type(sub), name, value, key))
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
    for name in ("lr_base", "lr_actions", "weight_decay", "max_grad_norm"):
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
    cfg.model.validate(prefix="model.")
    d = cfg.data
    check_types(d, "data.")
    if d.format not in DATA_FORMATS:
        raise ValueError(f"data.format={d.format!r} is not known; expected one of {DATA_FORMATS}")
    if not d.path:
        raise ValueError("data.path is empty; expected a dataset folder")
    for name in ("stride", "frame_step", "episodes"):
        if getattr(d, name) < 1:
            raise ValueError(f"data.{name}={getattr(d, name)}; expected a positive integer")
    if d.frames_per_episode < 2:
        raise ValueError(f"data.frames_per_episode={d.frames_per_episode}; expected an integer >= 2")
    if d.num_workers < 0 or d.seed < 0:
        bad = "num_workers" if d.num_workers < 0 else "seed"
        raise ValueError(f"data.{bad}={getattr(d, bad)}; expected an integer >= 0")
    check_range("data.", "val_fraction", d.val_fraction, low=0, high=1, high_open=True)


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
