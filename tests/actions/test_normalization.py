import json

import numpy as np
import pytest
import torch

from egoworld.actions.normalization import ActionNormalizer, same_meta_value


@pytest.mark.parametrize("mode", ["meanstd", "minmax"])
def test_round_trip_numpy_torch_and_json(tmp_path, mode):
    rng = np.random.default_rng(0)
    chunks = [rng.normal([1, -2, 0], [0.5, 3, 1e-9], (n, 3)) for n in (10, 30)]
    norm = ActionNormalizer.fit(chunks, mode=mode, meta={"dataset": "recon", "spacing": 0.25})
    x = np.concatenate(chunks).astype(np.float32)
    y = norm.normalize(x)
    if mode == "meanstd":
        np.testing.assert_allclose(y[:, :2].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(y[:, :2].std(0), 1, atol=1e-4)
    else:
        np.testing.assert_allclose(y[:, :2].min(0), -1, atol=1e-5)
        np.testing.assert_allclose(y[:, :2].max(0), 1, atol=1e-5)
    assert np.isfinite(y).all()  # constant dim is not divided by ~0
    np.testing.assert_allclose(norm.denormalize(y), x, atol=1e-5)
    t = torch.from_numpy(x)
    np.testing.assert_allclose(norm.denormalize(norm.normalize(t)).numpy(), x, atol=1e-5)
    norm.save(tmp_path / "stats.json")
    back = ActionNormalizer.load(tmp_path / "stats.json")
    np.testing.assert_allclose(back.normalize(x), y, atol=1e-6)
    assert back.count == 40 and back.meta["spacing"] == 0.25


def test_check_compatible_and_bad_inputs(tmp_path):
    norm = ActionNormalizer.fit([np.zeros((4, 3))], meta={"dataset": "recon", "spacing": 0.25})
    norm.check_compatible(3, dataset="recon", spacing=0.25)
    with pytest.raises(ValueError, match="3 dims .* uses 25"):
        norm.check_compatible(25)
    with pytest.raises(ValueError, match="spacing=0.25, expected 0.38"):
        norm.check_compatible(3, spacing=0.38)
    with pytest.raises(ValueError, match="expects 3"):
        norm.normalize(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="no actions"):
        ActionNormalizer.fit([np.zeros((0, 3))])
    with pytest.raises(ValueError, match="mode"):
        ActionNormalizer.fit([np.zeros((2, 3))], mode="zscore")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        ActionNormalizer.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        ActionNormalizer.load(tmp_path / "none.json")


def _fit(seed, scale, mode, name, spacing):
    rows = np.random.default_rng(seed).normal(0, scale, (50, 3))
    return ActionNormalizer.fit([rows], mode=mode, meta={"dataset": name, "spacing": spacing})


@pytest.mark.parametrize("mode", ["meanstd", "minmax"])
def test_same_scale_means_every_action_normalizes_alike(mode):
    actions = np.random.default_rng(1).normal(size=(40, 3))
    stats = ActionNormalizer.fit([actions], mode=mode)
    assert stats.same_scale(ActionNormalizer.fit([actions.copy()], mode=mode, meta={"dataset": "other"}))
    assert not stats.same_scale(ActionNormalizer.fit([2 * actions], mode=mode))
    other_mode = "minmax" if mode == "meanstd" else "meanstd"
    assert not stats.same_scale(ActionNormalizer.fit([actions], mode=other_mode))


def test_rescaled_by_names_each_dataset_whose_scale_changed():
    a, b = _fit(0, 1.0, "meanstd", "a", 0.1), _fit(1, 3.0, "meanstd", "b", 0.1)
    trained = ActionNormalizer.table({"a": a, "b": b})
    assert trained.rescaled_by(ActionNormalizer.table({"a": a, "b": b})) == []
    # only the later dataset changes: its name alone, though the top-level statistics agree
    wider_b = _fit(1, 6.0, "meanstd", "b", 0.1)
    assert trained.rescaled_by(ActionNormalizer.table({"a": a, "b": wider_b})) == ["b"]
    # a dataset the model never saw is compared with its top-level statistics (the first dataset's)
    assert trained.rescaled_by(ActionNormalizer.table({"a": a, "c": b})) == ["c"]
    assert a.rescaled_by(_fit(0, 1.0, "meanstd", "other", 0.1)) == []
    assert a.rescaled_by(ActionNormalizer.fit([np.ones((4, 3))])) == ["the data"]
    # the statistics each dataset is normalized with: its table entry, else the top-level ones
    assert trained.statistics_for("b") is b and trained.statistics_for("c") is trained
    assert a.statistics_for("a") is a


def test_meta_values_agree_when_equal_or_numerically_close():
    assert same_meta_value(0.1, 1 / 10) and same_meta_value(4, 4.0) and same_meta_value("recon", "recon")
    assert not same_meta_value(0.1, 0.1001) and not same_meta_value("0.1", 0.1)
    stats = _fit(0, 1.0, "meanstd", "recon", "0.25")  # a spacing stored as text is no number
    with pytest.raises(ValueError, match="computed with spacing='0.25', expected 0.25"):
        stats.check_compatible(3, spacing=0.25)


def test_a_mixture_keeps_every_dataset_s_statistics_and_a_rollout_picks_one(tmp_path):
    from egoworld.actions.normalization import select_dataset

    recon, scand = _fit(0, 1.0, "minmax", "recon", 0.25), _fit(1, 5.0, "meanstd", "scand", 0.38)
    table = ActionNormalizer.table({"recon": recon, "scand": scand})
    assert table.dataset_names == ["recon", "scand"] and table.meta["spacing"] == 0.25  # the first: default
    table.save(tmp_path / "normalization.json")
    raw = json.loads((tmp_path / "normalization.json").read_text())
    assert raw["mode"] == "minmax" and raw["max"] == recon.max.tolist()  # readable as recon's alone
    assert list(raw["datasets"]) == ["recon", "scand"] and "datasets" not in raw["datasets"]["scand"]
    back = ActionNormalizer.load(tmp_path / "normalization.json")
    x = np.random.default_rng(2).normal(0, 3, (7, 3))
    np.testing.assert_allclose(back.normalize(x), recon.normalize(x))
    chosen = select_dataset(back, "scand")
    assert chosen.mode == "meanstd" and chosen.meta["spacing"] == 0.38
    np.testing.assert_allclose(chosen.normalize(x), scand.normalize(x))
    assert chosen.dataset_names == ["recon", "scand"]  # still carries the table: saved again, it keeps it
    assert select_dataset(back, None) is back
    with pytest.raises(
        ValueError, match=r"'huron' is not one the model was trained on; .*\['recon', 'scand'\]"
    ):
        back.select("huron")
    with pytest.raises(ValueError, match="holds no action statistics"):
        select_dataset(None, "scand")


def test_single_dataset_files_load_as_before_and_bad_tables_are_refused(tmp_path):
    recon = _fit(0, 1.0, "meanstd", "recon", 0.25)
    (tmp_path / "old.json").write_text(json.dumps(recon.to_dict()))
    assert "datasets" not in recon.to_dict()
    old = ActionNormalizer.load(tmp_path / "old.json")
    assert old.dataset_names == ["recon"] and not old.datasets
    assert old.select("recon") is old
    with pytest.raises(ValueError, match=r"its statistics name \['recon'\]"):
        old.select("scand")
    wide = ActionNormalizer.fit([np.zeros((3, 25))], meta={"dataset": "1x"})
    with pytest.raises(ValueError, match="dataset '1x' have 25 dims; expected 3"):
        ActionNormalizer.table({"recon": recon, "1x": wide})
    with pytest.raises(ValueError, match="'datasets' must map dataset names to statistics"):
        ActionNormalizer.from_dict({**recon.to_dict(), "datasets": [1, 2]})
    nested = ActionNormalizer.table({"recon": recon}).to_dict()
    nested["datasets"]["recon"]["datasets"] = {"x": recon.to_dict()}
    with pytest.raises(ValueError, match="hold a table of their own"):
        ActionNormalizer.from_dict(nested)
