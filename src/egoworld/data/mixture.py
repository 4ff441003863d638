"""Several datasets in one training run (`data.mixture`), as NWM trains on RECON + SCAND + TartanDrive
+ HuRoN and EgoWM on the first three.

Each dataset keeps what makes it itself: its reader, window stride, frame step, metric waypoint spacing
(NWM: actions in units of the dataset's spacing) and its own action statistics, fitted on its own
training actions with its own mode. The model stores every dataset's statistics (a table in
`normalization.json`, see `egoworld.actions.normalization`).

Sampling (`MixtureSampler`): every clip drawn comes from dataset d with probability
w_d / sum(w), and is uniform among d's training clips. With no weights (every entry's `weight` null)
each dataset is drawn in proportion to its number of clips, exactly NWM's `ConcatDataset` with a
shuffled sampler: then an epoch is a permutation of all clips. With weights, an epoch is
`len(dataset)` draws (the number of training clips of all datasets together) with replacement. Either
way the order is a pure function of (seed, epoch), so a run resumes exactly: the trainer pins the
epoch and skips the batches it has already taken, as for one dataset.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset, Dataset, Sampler

from egoworld.actions.normalization import ActionNormalizer, same_meta_value

logger = logging.getLogger(__name__)


class MixtureDataset(ConcatDataset):
    """The training clips of several datasets, indexed one dataset after the other.

    Args:
        datasets: each dataset's training clips (non-empty), in the mixture's order.
        names: each dataset's name (its key in the model's statistics table).
        weights: each dataset's sampling weight (> 0), or None: in proportion to its clips.
    """

    def __init__(self, datasets: list[Dataset], names: list[str], weights: list[float] | None):
        super().__init__(datasets)
        if len(names) != len(datasets) or (weights is not None and len(weights) != len(datasets)):
            raise ValueError(
                f"{len(datasets)} datasets but {len(names)} names and "
                f"{'no' if weights is None else len(weights)} weights; expected one of each per dataset"
            )
        if weights is not None and not all(np.isfinite(w) and w > 0 for w in weights):
            raise ValueError(f"mixture weights {weights}; expected finite numbers > 0")
        self.names, self.weights = list(names), None if weights is None else [float(w) for w in weights]
        self.sizes = [len(d) for d in datasets]  # [K]

    def probabilities(self) -> np.ndarray:
        """[K] probability that a drawn clip comes from each dataset."""
        w = np.asarray(self.sizes if self.weights is None else self.weights, dtype=np.float64)
        return w / w.sum()

    def sampler(self, seed: int) -> MixtureSampler:
        """The training sampler: weighted draws (or NWM's permutation) fixed by (seed, epoch)."""
        return MixtureSampler(self.sizes, self.weights, seed)


class MixtureSampler(Sampler[int]):
    """Indices into a `MixtureDataset`, a pure function of (seed, epoch).

    weights None: a fresh permutation of all clips every epoch (NWM's concatenation). Otherwise
    `sum(sizes)` draws per epoch: dataset d with probability w_d / sum(w), then one of its clips
    uniformly (the same law as torch's `WeightedRandomSampler` with per-clip weight w_d / n_d, drawn
    in two steps so that no limit on the number of categories applies).

    Like the trainer's `EpochPermutationSampler`, `set_epoch` (called by Accelerate's prepared loader
    with its own pass counter) is ignored once `pin_epoch` has set the epoch.
    """

    def __init__(self, sizes: list[int], weights: list[float] | None, seed: int):
        if not sizes or min(sizes) < 1:
            raise ValueError(f"dataset sizes {sizes}; expected at least one dataset, each with clips")
        self.sizes = np.asarray(sizes, dtype=np.int64)  # [K]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])  # [K] first index of each
        w = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.p = None if w is None else w / w.sum()  # [K]
        self.seed, self.epoch, self._pinned = seed, 0, False

    def set_epoch(self, epoch: int) -> None:
        if not self._pinned:
            self.epoch = epoch

    def pin_epoch(self, epoch: int) -> None:
        """Set the epoch for the next pass; later `set_epoch` calls (from a wrapping loader) are ignored."""
        self.epoch, self._pinned = epoch, True

    def __len__(self) -> int:
        return int(self.sizes.sum())

    def draws(self) -> np.ndarray:
        """[len(self)] int64 indices of this epoch."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.p is None:
            return rng.permutation(len(self))
        which = rng.choice(len(self.sizes), size=len(self), p=self.p)  # [N] dataset of each draw
        return self.offsets[which] + rng.integers(0, self.sizes[which])  # [N] uniform within it

    def __iter__(self):
        return iter(self.draws().tolist())


# building a mixture from the config ---------------------------------------------------------------


def _where(i: int, name: str | None = None) -> str:
    return f"data.mixture[{i}]" + (f" ({name})" if name else "")


def _name(entry, ds) -> str:
    """The dataset's name in the statistics table: the entry's dataset_name, else the reader's."""
    return entry.dataset_name or getattr(ds, "dataset_name", None) or entry.format


def _prefixed(where: str, fn, *args):
    """fn(*args), with a ValueError / FileNotFoundError message prefixed by the dataset it is about."""
    try:
        return fn(*args)
    except (ValueError, FileNotFoundError) as err:
        cls = FileNotFoundError if isinstance(err, FileNotFoundError) else ValueError
        raise cls(f"{where}: {err}") from None


def fit_mixture_normalizer(data_cfg, model_cfg) -> ActionNormalizer:
    """Each dataset's statistics (its own mode), checked against the model's widths -> the table.

    Raises ValueError naming the dataset when its clips do not have the model's action width or
    state width, or when two datasets have the same name.
    """
    from egoworld.data.factory import check_clips, fit_one

    table: dict[str, ActionNormalizer] = {}
    for i, entry in enumerate(data_cfg.mixture):
        if entry.format != "worlds-nav" and not Path(entry.path).exists():  # worlds-nav: generated
            raise FileNotFoundError(
                f"data.mixture[{i}].path {entry.path} does not exist; "
                f"expected a {entry.format} dataset folder"
            )
        normalizer, raw = _prefixed(_where(i), fit_one, entry, model_cfg)
        name = _name(entry, raw)
        if name in table:
            j = list(table).index(name)
            raise ValueError(
                f"{_where(i)}: dataset name {name!r} is already that of {_where(j)}; "
                f"set data.mixture[{i}].dataset_name to tell them apart"
            )
        if raw is not None:  # passive videos have no actions to check
            _prefixed(_where(i, name), check_clips, raw, entry, model_cfg)
        if entry.statistics_of is not None:  # a dataset of the same kind as an earlier one
            normalizer = _shared_statistics(i, entry.statistics_of, table, normalizer)
            logger.info("%s: the statistics of %s", _where(i, name), entry.statistics_of)
        else:
            logger.info("%s: %s statistics of %d actions", _where(i, name), normalizer.mode, normalizer.count)
        table[name] = normalizer
    return ActionNormalizer.table(table)


def _shared_statistics(
    i: int, source: str, table: dict[str, ActionNormalizer], own: ActionNormalizer
) -> ActionNormalizer:
    """Entry i's statistics when it says `statistics_of: source`: the earlier dataset's numbers, with
    entry i's own facts (`meta`, plus where the numbers came from). Both must be of one mode and one
    action form."""
    if source not in table:
        raise ValueError(
            f"{_where(i)}.statistics_of={source!r} names no earlier dataset; expected one of {list(table)}"
        )
    shared = table[source]
    for key in ("action_mode", "spacing"):
        a, b = shared.meta.get(key), own.meta.get(key)
        if not same_meta_value(a, b):
            raise ValueError(
                f"{_where(i)}.statistics_of={source!r}: that dataset's {key} is {a!r}, this one's {b!r}; "
                "expected datasets of one kind"
            )
    if shared.mode != own.mode:
        raise ValueError(
            f"{_where(i)}.statistics_of={source!r}: normalization {shared.mode!r} there, {own.mode!r} here; "
            "expected the same"
        )
    return dataclasses.replace(shared, meta={**own.meta, "statistics_of": source})


def build_mixture(data_cfg, model_cfg, normalizer: ActionNormalizer) -> tuple[MixtureDataset, Any]:
    """(training mixture, validation clips of every dataset or None) with each dataset normalised by
    its own statistics from `normalizer`'s table (the table `fit_mixture_normalizer` made, or the one a
    checkpoint stored)."""
    from egoworld.data.factory import _open, check_clips, mirrored, split_validation

    table = normalizer.datasets
    if len(table) != len(data_cfg.mixture):
        raise ValueError(
            f"the action statistics cover {len(table) or 1} dataset(s) {normalizer.dataset_names}; "
            f"data.mixture has {len(data_cfg.mixture)} (statistics written for another config?)"
        )
    trains, vals = [], []
    for i, (entry, (name, stats)) in enumerate(zip(data_cfg.mixture, table.items())):
        ds = _prefixed(_where(i, entry.dataset_name), _open, entry, model_cfg, stats)
        if _name(entry, ds) != name:
            raise ValueError(
                f"{_where(i)} is dataset {_name(entry, ds)!r}, but the stored statistics at its place are "
                f"those of {name!r}; expected the same datasets in the same order"
            )
        _prefixed(_where(i, name), check_clips, ds, entry, model_cfg)
        train, val = split_validation(ds, data_cfg.val_fraction, entry.seed)
        trains.append(mirrored(train, entry, stats))
        if val is not None:
            vals.append(val)
    weights = None if data_cfg.mixture[0].weight is None else [e.weight for e in data_cfg.mixture]
    mixture = MixtureDataset(trains, list(table), weights)
    shares = ", ".join(f"{n} {p:.1%}" for n, p in zip(mixture.names, mixture.probabilities()))
    logger.info("mixture of %d datasets, %d training clips; draws: %s", len(trains), len(mixture), shares)
    return mixture, (ConcatDataset(vals) if vals else None)
