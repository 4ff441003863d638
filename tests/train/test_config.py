"""Training configs: YAML presets, overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from egoworld.train_config import differences, load_config, parse_overrides

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["tiny-svd", "tiny-cosmos", "tiny-wan", "svd-xt-nav", "cosmos2-2b-nav"])
def test_presets_load(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.model.family in ("svd", "cosmos", "wan")


def test_overrides_of_every_kind():
    cfg = load_config(
        CONFIGS / "tiny-svd.yaml",
        [
            "--run-dir",
            "/tmp/x",
            "--max-steps=20",
            "--freeze-base",
            "--model.hidden_dim=32",
            "--data.split",
            "none",
        ],
    )
    assert (cfg.run_dir, cfg.max_steps, cfg.freeze_base, cfg.model.hidden_dim) == ("/tmp/x", 20, True, 32)
    assert cfg.data.split is None
    assert parse_overrides(["--a=1", "--b", "2", "--c"]) == [("a", "1"), ("b", "2"), ("c", "true")]


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ValueError, match=r"'max_step' does not exist; did you mean 'max_steps'\?"):
        load_config(CONFIGS / "tiny-svd.yaml", ["--max-step=3"])
    with pytest.raises(ValueError, match=r"'model.famly' does not exist; did you mean 'model.family'\?"):
        load_config(CONFIGS / "tiny-svd.yaml", ["--model.famly=wan"])


def test_bad_values_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="--max_steps='many': expected a int"):
        load_config(CONFIGS / "tiny-svd.yaml", ["--max-steps=many"])
    with pytest.raises(FileNotFoundError, match="config file .* not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="expected 4k\\+1"):
        load_config(CONFIGS / "tiny-wan.yaml", ["--model.num_frames=6"])


def test_differences_ignore_what_a_resume_may_change():
    a = load_config(CONFIGS / "tiny-svd.yaml").to_dict()
    b = load_config(CONFIGS / "tiny-svd.yaml", ["--max-steps=999", "--lr-actions=5e-3"]).to_dict()
    assert differences(a, b) == ["lr_actions"]
