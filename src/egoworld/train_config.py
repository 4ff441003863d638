"""Training configuration: dataclasses, YAML presets under `configs/`, and `--key=value` overrides.

A YAML file has top-level training keys plus a `model:` section (a `WorldModelConfig`) and a
`data:` section (a `DataConfig`). On the command line every field is overridable:
`--max-steps 20`, `--lr-actions=1e-4`, `--model.family=wan`, `--data.path=/data/recon`.
Unknown keys are refused with the closest known key suggested.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from egoworld.world_model import WorldModelConfig


@dataclass
class DataConfig:
    """Where clips come from.

    Args:
        format: "nwm" (NWM/GNM processed navigation layout), "onex" (1X v2.0 shards), "lerobot",
            or "worlds-nav" (a synthetic navigation dataset generated on first use into `path`).
        path: dataset folder.
        split: "train"/"test" split file for NWM, or None for every trajectory.
        dataset_name: NWM dataset key (spacing lookup), default the folder name.
        stride, frame_step: window stride and frame-rate subsampling (see `data.clip.WindowSpec`).
        num_workers: DataLoader workers.
        episodes, frames_per_episode, seed: size of a generated synthetic dataset.
        val_fraction: share of clips held out for validation rollouts.
    """

    format: str = "worlds-nav"
    path: str = "data/worlds-nav"
    split: str | None = None
    dataset_name: str | None = None
    stride: int = 1
    frame_step: int = 1
    num_workers: int = 0
    episodes: int = 4
    frames_per_episode: int = 24
    seed: int = 0
    val_fraction: float = 0.1


@dataclass
class TrainConfig:
    """One training run.

    Args:
        run_dir: where checkpoints, logs, samples and the resolved config go.
        max_steps: optimizer steps to train for (a resumed run continues to this count).
        batch_size: clips per process per micro-step; grad_accum: micro-steps per optimizer step.
        lr_base, lr_actions: the two learning-rate groups (EgoWM App. B: SVD 1e-5/1e-4, Cosmos 1e-6/1e-5).
        freeze_base: train only the action encoder.
        weight_decay, adam_beta1, adam_beta2: AdamW.
        lr_schedule, warmup_steps: a diffusers `get_scheduler` name and its warmup.
        max_grad_norm: gradient clipping (0 disables).
        mixed_precision: "no", "bf16" or "fp16" (Accelerate autocast).
        gradient_checkpointing: recompute activations in the backward pass.
        ema_decay: EMA of the trainable weights (0 disables).
        checkpoint_every, keep_checkpoints: checkpoint period (steps) and how many to keep.
        log_every: TensorBoard scalar period; validate_every: validation rollout period (0 disables).
        seed: everything random derives from it (data order, noise), so runs are reproducible.
        init_from: a world-model folder (`save_pretrained`) to start from instead of random weights.
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
    model: WorldModelConfig = field(default_factory=WorldModelConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Parse a command-line string into the field's type (bool, int, float, str, None)."""
    hints = typing.get_type_hints(cls)
    kind = hints[name]
    if not isinstance(value, str):
        return value
    if value.lower() in ("none", "null") and type(None) in typing.get_args(kind):
        return None
    args = [a for a in typing.get_args(kind) if a is not type(None)] or [kind]
    target = args[0]
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
    except ValueError:
        raise ValueError(f"--{name}={value!r}: expected a {getattr(target, '__name__', target)}") from None


def _set(cfg: TrainConfig, key: str, value: Any) -> None:
    key = key.replace("-", "_")
    if "." in key:
        section, name = key.split(".", 1)
        if section not in _SECTIONS or name not in {f.name for f in dataclasses.fields(_SECTIONS[section])}:
            raise _unknown(key)
        sub = getattr(cfg, section)
        setattr(sub, name, _coerce(type(sub), name, value))
        return
    if key not in {f.name for f in dataclasses.fields(TrainConfig)} or key in _SECTIONS:
        raise _unknown(key)
    setattr(cfg, key, _coerce(TrainConfig, key, value))


def from_dict(raw: dict[str, Any]) -> TrainConfig:
    cfg = TrainConfig()
    for key, value in (raw or {}).items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ValueError(f"config section {key!r} must be a mapping; got {type(value).__name__}")
            for sub_key, sub_value in value.items():
                _set(cfg, f"{key}.{sub_key}", sub_value)
        else:
            _set(cfg, key, value)
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML preset and apply `--key=value` / `--key value` overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"config file {path} not found; expected a YAML file such as configs/tiny-svd.yaml"
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    cfg = from_dict(raw)
    for key, value in parse_overrides(overrides or []):
        _set(cfg, key, value)
    cfg.model.validate()
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
