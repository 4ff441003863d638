import numpy as np
import pytest
import torch

from egoworld.actions.normalization import ActionNormalizer


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
