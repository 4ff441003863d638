"""Training configuration: dataclasses, YAML presets under `configs/`, and `--key=value` overrides.

A YAML file has top-level training keys plus a `model:` section (a `WorldModelConfig`) and a
`data:` section (a `DataConfig`). On the command line every field is overridable:
`--max-steps 20`, `--lr-actions=1e-4`, `--model.family=wan`, `--data.path=/data/recon`, and the
datasets of a mixture by index: `--data.mixture.1.weight=2` (or `--data.mixture[1].weight=2`).
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
        stride, frame_step: window stride and frame-rate subsampling (see `data.clip.WindowSpec`).
        episodes, frames_per_episode, seed: size of a generated synthetic dataset; `seed` also fixes
            which clips are held out for validation.
        image_key, action_key, state_key: LeRobot only: the camera (a video or image feature; None: the first
            video feature, else the first image feature),
            the action feature, and the state feature ("auto": observation.state when the dataset has
            it, else no state; None: no state).
        normalization: how the actions are scaled with statistics fitted on this dataset's training
            actions: "meanstd" ((a - mean) / std) or "minmax" (into [-1, 1]).
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


@dataclass
class MixtureEntry(DatasetConfig):
    """One dataset of `data.mixture`: every `DatasetConfig` field, plus its sampling weight.

    Args:
        normalization: as `DatasetConfig`, but "minmax" by default: NWM scales navigation actions into
            [-1, 1] by min-max (docs/training.md, "Dataset mixtures").
        weight: each clip drawn comes from this dataset with probability weight / (sum of the
            weights); null on every entry: each dataset in proportion to its number of clips (NWM's
            concatenation; every clip once per epoch). Give every entry a weight or none.
    """

    normalization: str = "minmax"
    weight: float | None = None


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
    _validate_data(cfg.data)


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
    names: dict[str, int] = {}
    for i, entry in enumerate(d.mixture):
        p = f"data.mixture[{i}]."
        if not isinstance(entry, MixtureEntry):
            raise ValueError(f"data.mixture[{i}]={entry!r}: expected a mapping of dataset fields")
        _validate_dataset(entry, p)
        if entry.weight is not None:
            check_range(p, "weight", entry.weight, low=0, low_open=True)
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
