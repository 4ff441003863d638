"""Per-dimension action normalization, stored with a model and checked when it is loaded.

A model trained on a mixture of datasets (`data.mixture`, docs/training.md) keeps one set of
statistics per dataset: its `ActionNormalizer` stands for one dataset (the first by default) and
carries the whole table in `datasets`; `select` / `select_dataset` switch to another dataset's
statistics for rollout. `normalization.json` then holds the chosen dataset's statistics at the top
level, as a single-dataset file does, plus a `datasets` table, so files without a table still load.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egoworld.io_utils import atomic_path

logger = logging.getLogger(__name__)

MODES = ("meanstd", "minmax")


def same_meta_value(a: Any, b: Any) -> bool:
    """Whether two facts about the data (`meta` values: dataset name, spacing, fps) agree: equal, or
    numbers within a relative 1e-6 (a spacing written as 0.1 and computed as 1 / 10). The one
    comparison every meta check uses."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return a == b or numbers and math.isclose(a, b, rel_tol=1e-6)


@dataclass
class ActionNormalizer:
    """Maps actions to a unit scale per dimension and back.

    `meanstd`: (a - mean) / std.  `minmax`: 2 (a - min) / (max - min) - 1, into [-1, 1].
    Dimensions with (near-)zero spread are left centred but unscaled (divisor 1).

    Args:
        mode: "meanstd" or "minmax".
        mean, std, min, max: [D] statistics (the pair the mode uses must be set).
        count: number of action vectors the statistics came from.
        meta: free-form facts about the data (dataset, spacing, fps) checked at load.
        datasets: per-dataset statistics of a mixture, name -> normalizer (each without a table of
            its own), in the mixture's order; empty for a model trained on one dataset. This
            normalizer's own statistics are those of one of them (see `select`).
    """

    mode: str
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    eps: float = 1e-6
    datasets: dict[str, ActionNormalizer] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"normalization mode must be one of {MODES}, got {self.mode!r}")
        for name in ("mean", "std", "min", "max"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64).reshape(-1))
        dims = {len(self.mean), len(self.std), len(self.min), len(self.max)}
        if len(dims) != 1:
            raise ValueError(f"mean/std/min/max must have the same length, got lengths {sorted(dims)}")
        for name, other in self.datasets.items():
            if other.datasets:
                raise ValueError(
                    f"the statistics of dataset {name!r} hold a table of their own; expected not"
                )
            if other.action_dim != self.action_dim:
                raise ValueError(
                    f"the statistics of dataset {name!r} have {other.action_dim} dims; "
                    f"expected {self.action_dim} like the others"
                )

    @property
    def action_dim(self) -> int:
        return len(self.mean)

    @classmethod
    def fit(cls, arrays: Iterable[np.ndarray], mode: str = "meanstd", meta: dict | None = None):
        """Statistics over every row of the [N_i, D] arrays (streamed; float64 accumulators)."""
        n, s, ss, lo, hi = 0, None, None, None, None
        for a in arrays:
            a = np.asarray(a, dtype=np.float64)
            if a.ndim != 2:
                raise ValueError(f"each action array must be [N, D], got shape {a.shape}")
            if a.shape[0] == 0:
                continue
            if s is None:
                s, ss = np.zeros(a.shape[1]), np.zeros(a.shape[1])
                lo, hi = np.full(a.shape[1], np.inf), np.full(a.shape[1], -np.inf)
            elif a.shape[1] != len(s):
                raise ValueError(f"action arrays disagree in width: {a.shape[1]} vs expected {len(s)}")
            n += a.shape[0]
            s += a.sum(0)
            ss += (a * a).sum(0)
            lo, hi = np.minimum(lo, a.min(0)), np.maximum(hi, a.max(0))
        if n == 0:
            raise ValueError("no actions to compute statistics from (every array was empty)")
        mean = s / n
        std = np.sqrt(np.maximum(ss / n - mean * mean, 0.0))
        return cls(mode=mode, mean=mean, std=std, min=lo, max=hi, count=n, meta=dict(meta or {}))

    @classmethod
    def table(cls, normalizers: dict[str, ActionNormalizer]) -> ActionNormalizer:
        """One normalizer per dataset of a mixture -> the first dataset's, carrying the whole table."""
        if not normalizers:
            raise ValueError("a table of action statistics needs at least one dataset; got none")
        first = next(iter(normalizers.values()))
        return dataclasses.replace(first, meta=dict(first.meta), datasets=dict(normalizers))

    @property
    def dataset_names(self) -> list[str]:
        """The datasets these statistics cover: the table's names, else the one `meta` names (if any)."""
        if self.datasets:
            return list(self.datasets)
        name = self.meta.get("dataset")
        return [str(name)] if name is not None else []

    def select(self, name: str | None = None) -> ActionNormalizer:
        """The statistics of dataset `name` (None: these), still carrying the table.

        Raises ValueError naming the known datasets when `name` is not one of them.
        """
        if name is None:
            return self
        if self.datasets:
            if name not in self.datasets:
                raise ValueError(
                    f"dataset {name!r} is not one the model was trained on; "
                    f"expected one of {self.dataset_names}"
                )
            chosen = self.datasets[name]
            return dataclasses.replace(chosen, meta=dict(chosen.meta), datasets=dict(self.datasets))
        if name in self.dataset_names:
            return self
        known = self.dataset_names or "no dataset names (statistics of one unnamed dataset)"
        raise ValueError(f"dataset {name!r} is not one the model was trained on; its statistics name {known}")

    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(shift, scale) such that normalized = (a - shift) / scale."""
        if self.mode == "meanstd":
            scale = np.where(self.std > self.eps, self.std, 1.0)
            return self.mean, scale
        span = self.max - self.min
        scale = np.where(span > self.eps, span / 2.0, 1.0)
        return (self.max + self.min) / 2.0, scale

    def _cast(self, x, v: np.ndarray):
        if isinstance(x, np.ndarray):
            return v.astype(x.dtype if x.dtype.kind == "f" else np.float32)
        import torch

        return torch.as_tensor(v, dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)

    def _check_width(self, x) -> None:
        if x.shape[-1] != self.action_dim:
            raise ValueError(
                f"actions have {x.shape[-1]} dims in the last axis; normalizer expects {self.action_dim}"
            )

    def same_scale(self, other: ActionNormalizer) -> bool:
        """Whether `other` maps every action to the same numbers as these statistics do (same mode,
        same shift and scale up to float error); a model fine-tuned under `other` reads its actions
        as before."""
        if self.mode != other.mode:
            return False
        return all(np.allclose(a, b) for a, b in zip(self._affine(), other._affine()))

    def rescaled_by(self, new: ActionNormalizer) -> list[str]:
        """The datasets of `new` (its table's names, else its own name) whose actions `new` maps to
        other numbers than these statistics do: a model trained under these statistics, fine-tuned
        under `new`, reads those datasets' actions on another scale. Each is compared with this
        table's dataset of the same name, else with these (top-level) statistics."""
        entries = new.datasets or {(new.dataset_names or ["the data"])[0]: new}
        return [n for n, stats in entries.items() if not self.statistics_for(n).same_scale(stats)]

    def statistics_for(self, dataset: str) -> ActionNormalizer:
        """The statistics dataset `dataset` is normalized with: its entry of a mixture's table, else
        these (top-level) statistics."""
        return self.datasets.get(dataset, self)

    def normalize(self, actions):
        """[..., D] numpy array or torch tensor -> same type, normalized."""
        self._check_width(actions)
        shift, scale = self._affine()
        return (actions - self._cast(actions, shift)) / self._cast(actions, scale)

    def denormalize(self, actions):
        """Inverse of `normalize`."""
        self._check_width(actions)
        shift, scale = self._affine()
        return actions * self._cast(actions, scale) + self._cast(actions, shift)

    def check_compatible(self, action_dim: int, **expected: Any) -> None:
        """Raise ValueError unless these statistics fit `action_dim` and every expected meta value."""
        if action_dim != self.action_dim:
            raise ValueError(
                f"action normalization has {self.action_dim} dims but the model/data uses {action_dim}"
            )
        for key, want in expected.items():
            if want is None or key not in self.meta:
                continue
            have = self.meta[key]
            if not same_meta_value(have, want):
                raise ValueError(f"action normalization was computed with {key}={have!r}, expected {want!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the statistics, plus `datasets` (name -> statistics) for a mixture."""
        out = {
            "mode": self.mode,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "min": self.min.tolist(),
            "max": self.max.tolist(),
            "count": int(self.count),
            "meta": self.meta,
        }
        if self.datasets:
            out["datasets"] = {name: n.to_dict() for name, n in self.datasets.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActionNormalizer:
        """Inverse of `to_dict`; a dict without `datasets` (a single-dataset file) loads as before."""
        if not isinstance(d, dict):
            raise ValueError(f"action normalization must be a JSON object, got {type(d).__name__}")
        missing = [k for k in ("mode", "mean", "std", "min", "max") if k not in d]
        if missing:
            raise ValueError(f"action normalization is missing keys {missing}")
        table = d.get("datasets") or {}
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            raise ValueError("action normalization 'datasets' must map dataset names to statistics")
        return cls(
            mode=d["mode"],
            mean=d["mean"],
            std=d["std"],
            min=d["min"],
            max=d["max"],
            count=int(d.get("count", 0)),
            meta=dict(d.get("meta", {})),
            datasets={str(name): cls.from_dict(v) for name, v in table.items()},
        )

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2))
        logger.info("wrote action statistics to %s", path)

    @classmethod
    def load(cls, path: str | Path) -> ActionNormalizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"action statistics file not found: {path}")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        return cls.from_dict(d)


def select_dataset(normalizer: ActionNormalizer | None, name: str | None) -> ActionNormalizer | None:
    """The statistics a rollout uses: those of dataset `name` (e.g. `egoworld rollout --dataset scand`).

    None keeps the model's default (the first dataset of its mixture, or its only one). Raises
    ValueError when a name is given but the model has no statistics or none for that dataset.
    """
    if name is None:
        return normalizer
    if normalizer is None:
        raise ValueError(f"--dataset {name!r}: the model holds no action statistics to choose from")
    return normalizer.select(name)
