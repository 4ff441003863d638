"""`data.mixture`: several datasets in one run, drawn by weight, each normalised with its own statistics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from accelerate import skip_first_batches
from torch.utils.data import DataLoader, WeightedRandomSampler

from egoworld.actions.normalization import ActionNormalizer
from egoworld.data.factory import build_datasets, fit_normalizer
from egoworld.data.mixture import MixtureDataset, MixtureSampler
from egoworld.data.nwm import NWMDataset
from egoworld.model_config import WorldModelConfig
from egoworld.train_config import DataConfig, MixtureEntry
from tests.data.data_builders import write_nwm_traj

MODEL = WorldModelConfig(action_dim=3, num_frames=4, height=8, width=8)


def random_walk(n: int, speed: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[n, 2] positions and [n] headings of a robot driving forward at about `speed` metres a step."""
    rng = np.random.default_rng(seed)
    yaw = np.cumsum(rng.normal(0, 0.3, n))
    step = speed * (1 + 0.5 * rng.random(n))[:, None] * np.stack([np.cos(yaw), np.sin(yaw)], -1)
    return np.cumsum(step, axis=0), (yaw + np.pi) % (2 * np.pi) - np.pi


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory) -> tuple[Path, Path]:
    """recon: 2 trajectories of 20 frames (34 clips of 4); scand: 1 of 16 frames (13 clips), faster."""
    top = tmp_path_factory.mktemp("mixture")
    for name, lengths, speed in (("recon", (20, 20), 0.3), ("scand", (16,), 0.9)):
        for k, n in enumerate(lengths):
            write_nwm_traj(top / name / f"traj_{k}", *random_walk(n, speed, seed=10 * k + len(name)))
    return top / "recon", top / "scand"


def mixture(recon: Path, scand: Path, **data) -> DataConfig:
    entries = data.pop("entries", {})
    return DataConfig(
        val_fraction=data.pop("val_fraction", 0.0),
        mixture=[
            MixtureEntry(format="nwm", path=str(recon), **entries.get(0, {})),
            MixtureEntry(format="nwm", path=str(scand), **entries.get(1, {})),
        ],
        **data,
    )


def alone(path: Path, normalizer=None, split: str | None = None) -> NWMDataset:
    """The dataset opened on its own, as the factory opens it (the reference for the mixture's clips)."""
    return NWMDataset(path, split=split, horizon=MODEL.num_frames - 1, resolution=8, normalizer=normalizer)


def test_weights_3_to_1_draw_clips_in_that_proportion(two_datasets):
    cfg = mixture(*two_datasets, entries={0: {"weight": 3}, 1: {"weight": 1}})
    train, val = build_datasets(cfg, MODEL, fit_normalizer(cfg, MODEL))
    assert isinstance(train, MixtureDataset) and val is None
    assert train.names == ["recon", "scand"] and train.sizes == [34, 13] and len(train) == 47
    sampler = train.sampler(seed=0)
    draws = []
    for epoch in range(50):
        sampler.pin_epoch(epoch)
        draws.append(np.fromiter(sampler, dtype=np.int64))
        assert len(draws[-1]) == len(sampler) == 47  # an epoch: as many draws as clips in all datasets
    draws = np.concatenate(draws)  # 2350 draws: the binomial share has a standard deviation of 0.009
    from_recon = draws < train.cumulative_sizes[0]  # torch's ConcatDataset: recon's clips come first
    assert abs(from_recon.mean() - 0.75) < 0.03, from_recon.mean()
    # within a dataset every clip is as likely: each of scand's 13 clips about 587 / 13 = 45 times
    per_clip = np.bincount(draws[~from_recon] - 34, minlength=13)
    assert per_clip.min() > 20 and per_clip.max() < 80, per_clip
    # the same law as torch's WeightedRandomSampler with the per-clip weight w_d / n_d
    per_clip_weight = np.repeat([3 / 34, 1 / 13], [34, 13])
    torch_draws = np.fromiter(WeightedRandomSampler(per_clip_weight.tolist(), 2350), dtype=np.int64)
    assert abs((torch_draws < 34).mean() - from_recon.mean()) < 0.05


def test_without_weights_each_epoch_is_a_permutation_of_every_clip_as_nwm(two_datasets):
    cfg = mixture(*two_datasets)
    train, _ = build_datasets(cfg, MODEL, fit_normalizer(cfg, MODEL))
    np.testing.assert_allclose(train.probabilities(), [34 / 47, 13 / 47])
    sampler = train.sampler(seed=3)
    sampler.pin_epoch(0)
    first = list(sampler)
    assert sorted(first) == list(range(47))
    sampler.pin_epoch(1)
    assert sorted(sampler) == list(range(47)) and list(sampler) != first


def test_the_order_is_a_function_of_seed_and_epoch_so_a_resumed_run_continues_exactly():
    sampler = MixtureSampler([30, 10], [1.0, 3.0], seed=7)
    sampler.pin_epoch(4)
    sampler.set_epoch(0)  # Accelerate's loader resets its own counter on resume: ignored once pinned
    order = list(sampler)
    again = MixtureSampler([30, 10], [1.0, 3.0], seed=7)
    again.pin_epoch(4)
    assert list(again) == order
    other = MixtureSampler([30, 10], [1.0, 3.0], seed=8)
    other.pin_epoch(4)
    assert list(other) != order
    # the resumed loader skips the batches taken before the checkpoint and continues with the same ones
    loader = DataLoader(list(range(40)), batch_size=4, sampler=again, drop_last=True)
    whole = [b.tolist() for b in loader]
    assert [x for b in whole for x in b] == order
    assert [b.tolist() for b in skip_first_batches(loader, 3)] == whole[3:]


def test_each_dataset_is_normalised_with_its_own_statistics(two_datasets):
    recon, scand = two_datasets
    cfg = mixture(recon, scand, entries={1: {"normalization": "meanstd"}})
    stats = fit_normalizer(cfg, MODEL)
    assert stats.dataset_names == ["recon", "scand"]
    mine = {name: stats.datasets[name] for name in ("recon", "scand")}
    assert (mine["recon"].mode, mine["scand"].mode) == ("minmax", "meanstd")  # minmax: the mixture default
    assert (mine["recon"].meta["spacing"], mine["scand"].meta["spacing"]) == (0.25, 0.38)  # NWM's table
    for name, path in (("recon", recon), ("scand", scand)):
        reference = ActionNormalizer.fit(alone(path).all_actions(), mode=mine[name].mode)
        for key in ("mean", "std", "min", "max"):
            np.testing.assert_allclose(getattr(mine[name], key), getattr(reference, key))
    assert not np.allclose(mine["recon"].max, mine["scand"].max)
    train, _ = build_datasets(cfg, MODEL, stats)
    for d, (name, path) in enumerate((("recon", recon), ("scand", scand))):
        raw = alone(path)
        for i in (0, len(raw) - 1):
            got = train[train.cumulative_sizes[d] - len(raw) + i]["actions"].numpy()  # [T, 3]
            want = raw[i]["actions"].numpy()
            np.testing.assert_allclose(got[1:], mine[name].normalize(want[1:]), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[0], 0)
    recon_actions = np.concatenate([train[i]["actions"][1:].numpy() for i in range(34)])
    assert recon_actions.min() >= -1 - 1e-5 and recon_actions.max() <= 1 + 1e-5  # min-max: within [-1, 1]
    assert np.isclose(recon_actions.min(0), -1, atol=1e-5).any()


def generated_like(src: Path, dst: Path, train: list[str] | None = None) -> Path:
    """A copy of `src` described as `egoworld worlds generate` describes its worlds (name "walks",
    spacing 0.25), with the train split inside when `train` lists trajectories."""
    shutil.copytree(src, dst)
    (dst / "egoworld_world.json").write_text(
        json.dumps({"dataset_name": "walks", "metric_waypoint_spacing": 0.25})
    )
    if train is not None:
        (dst / "data_splits" / "walks" / "train").mkdir(parents=True)
        (dst / "data_splits" / "walks" / "train" / "traj_names.txt").write_text("\n".join(train) + "\n")
    return dst


def test_a_dataset_of_the_same_kind_can_share_an_earlier_ones_statistics(two_datasets, tmp_path):
    recon, scand = two_datasets
    a = generated_like(recon, tmp_path / "a")
    b = generated_like(
        recon, tmp_path / "b", train=["traj_1"]
    )  # its split, under the name it was written with
    cfg = DataConfig(
        val_fraction=0.0,
        mixture=[
            MixtureEntry(format="nwm", path=str(a), normalization="meanstd"),
            MixtureEntry(
                format="nwm", path=str(b), dataset_name="more", statistics_of="walks", normalization="meanstd"
            ),
        ],
    )
    stats = fit_normalizer(cfg, MODEL)
    assert stats.dataset_names == ["walks", "more"]
    walks, more = stats.datasets["walks"], stats.datasets["more"]
    reference = ActionNormalizer.fit(alone(a).all_actions(), mode="meanstd")
    np.testing.assert_allclose(walks.mean, reference.mean)
    own = ActionNormalizer.fit(alone(b, split="train").all_actions(), mode="meanstd")
    assert not np.allclose(own.mean, walks.mean)  # b alone would have had other statistics
    for key in ("mean", "std", "min", "max"):
        np.testing.assert_array_equal(getattr(more, key), getattr(walks, key))
    # b's own facts: its name, and the spacing its world file records though the config renamed it
    assert (
        more.meta["dataset"] == "more"
        and more.meta["spacing"] == 0.25
        and more.meta["statistics_of"] == "walks"
    )
    back = ActionNormalizer.from_dict(stats.to_dict())  # as a checkpoint stores it
    train, _ = build_datasets(cfg, MODEL, back)
    assert len(train.datasets[1]) == 17  # traj_1 only (20 frames, clips of 4): b's own train split
    raw = alone(b, split="train")
    got = train[train.cumulative_sizes[0] + 3]["actions"].numpy()  # [T, 3]
    np.testing.assert_allclose(got[1:], walks.normalize(raw[3]["actions"].numpy()[1:]), rtol=1e-5, atol=1e-6)
    cfg.mixture[1].normalization = "minmax"  # one kind of data, but scaled another way: refused
    with pytest.raises(
        ValueError, match=r"^data.mixture\[1\].statistics_of='walks': normalization 'meanstd' there"
    ):
        fit_normalizer(cfg, MODEL)


@pytest.mark.parametrize(
    "entry,message",
    [
        ({"statistics_of": "nope"}, r"^data.mixture\[1\].statistics_of='nope' names no earlier dataset"),
        ({"statistics_of": "recon"}, r"^data.mixture\[1\].statistics_of='recon': that dataset's spacing"),
    ],
)  # fmt: skip
def test_sharing_statistics_needs_an_earlier_dataset_of_the_same_kind(two_datasets, entry, message):
    cfg = mixture(*two_datasets, entries={1: entry})  # scand's spacing is 0.38
    with pytest.raises(ValueError, match=message):
        fit_normalizer(cfg, MODEL)


def test_a_resumed_run_reads_the_table_back_and_gets_the_same_clips(two_datasets):
    cfg = mixture(*two_datasets, val_fraction=0.2)
    stats = fit_normalizer(cfg, MODEL)
    train, val = build_datasets(cfg, MODEL, stats)
    back = ActionNormalizer.from_dict(stats.to_dict())  # what the checkpoint's normalization.json holds
    train2, val2 = build_datasets(cfg, MODEL, back)
    assert len(train) == len(train2) == 27 + 10 and len(val) == len(val2) == 7 + 3  # each split alone
    for i in (0, 20, len(train) - 1):
        np.testing.assert_array_equal(train[i]["actions"].numpy(), train2[i]["actions"].numpy())
    swapped = DataConfig(val_fraction=0.2, mixture=cfg.mixture[::-1])
    with pytest.raises(ValueError, match=r"^data.mixture\[0\]: .*dataset='recon', expected 'scand'"):
        build_datasets(swapped, MODEL, back)


def test_a_single_dataset_is_built_as_before(two_datasets):
    recon, _ = two_datasets
    single = DataConfig(format="nwm", path=str(recon), val_fraction=0.2)
    stats = fit_normalizer(single, MODEL)
    assert "datasets" not in stats.to_dict() and stats.mode == "meanstd" and not stats.datasets
    train, val = build_datasets(single, MODEL, stats)
    order = np.random.default_rng(0).permutation(34)  # the split as it always was: data.seed = 0
    assert train.indices == order[7:].tolist() and val.indices == order[:7].tolist()
    one = DataConfig(
        val_fraction=0.2, mixture=[MixtureEntry(format="nwm", path=str(recon), normalization="meanstd")]
    )
    stats1 = fit_normalizer(one, MODEL)
    np.testing.assert_array_equal(stats1.mean, stats.mean)
    mixed, _ = build_datasets(one, MODEL, stats1)
    assert mixed.datasets[0].indices == train.indices
    np.testing.assert_array_equal(mixed[5]["actions"].numpy(), train[5]["actions"].numpy())


def test_a_dataset_of_another_width_is_named(two_datasets, onex_root):
    recon, scand = two_datasets
    cfg = DataConfig(
        mixture=[
            MixtureEntry(format="nwm", path=str(recon)),
            MixtureEntry(format="onex", path=str(onex_root)),
        ]
    )
    with pytest.raises(ValueError, match=r"^data.mixture\[1\] \(1x\): the dataset's actions have 25 dims; "):
        fit_normalizer(cfg, MODEL)
    with_state = WorldModelConfig(action_dim=3, state_dim=25, num_frames=4, height=8, width=8)
    with pytest.raises(
        ValueError, match=r"^data.mixture\[0\] \(recon\): the dataset's clips carry no state; "
    ):
        fit_normalizer(mixture(recon, scand), with_state)
    same = mixture(recon, recon)
    with pytest.raises(
        ValueError, match=r"data.mixture\[1\]: dataset name 'recon' is already that of .*\[0\]"
    ):
        fit_normalizer(same, MODEL)
    missing = mixture(recon, scand.parent / "nope")
    with pytest.raises(FileNotFoundError, match=r"^data.mixture\[1\].path .*nope does not exist"):
        fit_normalizer(missing, MODEL)
    stats = fit_normalizer(mixture(recon, scand), MODEL)
    with pytest.raises(ValueError, match=r"data.mixture\[0\] \(recon\): the dataset's clips carry no state"):
        build_datasets(mixture(recon, scand), with_state, stats)  # checked again on resume
