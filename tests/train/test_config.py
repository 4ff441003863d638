"""Training configs: YAML presets, overrides, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from egoworld.train_config import differences, load_config, parse_overrides

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


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
    with pytest.raises(ValueError, match="max_steps='many': expected an integer"):
        load_config(CONFIGS / "tiny-svd.yaml", ["--max-steps=many"])
    with pytest.raises(FileNotFoundError, match="config file .* not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="expected 4k\\+1"):
        load_config(CONFIGS / "tiny-wan.yaml", ["--model.num_frames=6"])


def test_differences_ignore_what_a_resume_may_change():
    a = load_config(CONFIGS / "tiny-svd.yaml").to_dict()
    extend = ["--max-steps=999", "--time-budget-s=600", "--keep-checkpoints=9"]  # a resume may change these
    b = load_config(CONFIGS / "tiny-svd.yaml", [*extend, "--lr-actions=5e-3"]).to_dict()
    assert differences(a, b) == ["lr_actions"]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["--lr-base", "nan"], "lr_base=nan: expected a finite value >= 0"),
        (["--lr-actions=inf"], "lr_actions=inf: expected a finite value >= 0"),
        (["--lr-actions=-1e-4"], "lr_actions=-0.0001: expected a finite value >= 0"),
        (["--max-steps", "0"], "max_steps=0; expected a positive integer"),
        (["--max-steps", "-5"], "max_steps=-5; expected a positive integer"),
        (["--checkpoint-every", "0"], "checkpoint_every=0; expected a positive integer"),
        (["--log-every=0"], "log_every=0; expected a positive integer"),
        (["--batch-size=0"], "batch_size=0; expected a positive integer"),
        (["--keep-checkpoints=-1"], "keep_checkpoints=-1; expected an integer >= 0"),
        (["--time-budget-s=-1"], "time_budget_s=-1.0: expected a finite value >= 0"),
        (["--time-budget-s=inf"], "time_budget_s=inf: expected a finite value >= 0"),
        (["--ema-decay=1"], r"ema_decay=1.0: expected a finite value in \[0, 1\)"),
        (["--adam-beta2=1.5"], r"adam_beta2=1.5: expected a finite value in \[0, 1\)"),
        (["--seed=-1"], r"seed=-1; expected an integer in \[0, 2\*\*32\)"),
        (["--mixed-precision=fp8"], "mixed_precision='fp8'; expected one of"),
        (["--lr-schedule=cosyne"], "lr_schedule='cosyne' is not known"),
        (["--model.cfg_dropout=1.5"], r"model.cfg_dropout=1.5: expected a finite value in \[0, 1\]"),
        (["--model.hidden_dim=0"], "model.hidden_dim=0; expected a positive integer"),
        (["--model.height=0"], "model.height=0, model.width=32; expected positive multiples of 8"),
        (["--model.sampler=ddim"], "model.sampler='ddim' is not known"),
        (["--model.extra=[1"], "model.extra='\\[1': expected a mapping"),
        (["--data.val_fraction=1"], r"data.val_fraction=1.0: expected a finite value in \[0, 1\)"),
        (["--data.stride=0"], "data.stride=0; expected a positive integer"),
        (["--data.format=mp4"], "data.format='mp4' is not known"),
        (["--freeze-base=maybe"], "freeze_base='maybe': expected true or false"),
    ],
)
def test_nonsense_values_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(CONFIGS / "tiny-svd.yaml", overrides)


@pytest.mark.parametrize(
    "text,message",
    [
        ("- 1\n- 2\n", "holds a YAML list"),
        ("5\n", "holds a YAML scalar"),
        ("just words\n", "holds a YAML scalar"),
        ("max_steps: abc\n", "max_steps='abc': expected an integer"),
        ("lr_base: [1]\n", r"lr_base=\[1\]: expected a number"),
        ("run_dir: 5\n", "run_dir=5: expected a string"),
        ("freeze_base: 3\n", "freeze_base=3: expected true or false"),
        ("model: 3\n", "config section 'model' must be a mapping"),
        ("model: {hidden_dim: x}\n", "model.hidden_dim='x': expected an integer"),
        ("data: {split: 2023}\n", "data.split=2023: expected a string or null"),
        ("init_from: ''\n", "init_from is empty"),
        ("1: 2\n", "config key 1 is not a string"),
    ],
)
def test_bad_yaml_files_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(path)


def test_yaml_numbers_and_presets_still_parse(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "lr_base: 1e-4\nlr_actions: 0\nmodel: {P_mean: -1, cond_aug: 0}\ndata: {val_fraction: 0}\n"
    )
    cfg = load_config(path)
    assert (cfg.lr_base, cfg.lr_actions, cfg.model.P_mean, cfg.data.val_fraction) == (1e-4, 0.0, -1.0, 0.0)
    assert isinstance(cfg.lr_actions, float) and isinstance(cfg.model.P_mean, float)
    for preset in sorted((CONFIGS / "experiment").rglob("*.yaml")):
        load_config(preset)


def test_light_copies_of_names_agree_with_the_library():
    from diffusers.optimization import SchedulerType

    from egoworld.actions.encoders import ENCODERS
    from egoworld.data.factory import FORMATS
    from egoworld.model_config import ENCODER_NAMES, FAMILY_NAMES
    from egoworld.model_config import WorldModelConfig as LightConfig
    from egoworld.train_config import DATA_FORMATS, LR_SCHEDULES
    from egoworld.world_model import FAMILIES, WorldModelConfig

    assert WorldModelConfig is LightConfig
    assert set(FAMILY_NAMES) == set(FAMILIES)
    assert set(ENCODER_NAMES) == set(ENCODERS)
    assert set(DATA_FORMATS) == set(FORMATS)
    assert set(LR_SCHEDULES) == {s.value for s in SchedulerType}


def test_cli_reports_bad_configs_before_importing_torch(tmp_path):
    """`egoworld train` with a bad config: exit 2, one line, no run folder, torch never imported."""
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n")
    cases = [
        [str(CONFIGS / "tiny-svd.yaml"), "--lr-base", "nan"],
        [str(CONFIGS / "tiny-svd.yaml"), "--max-steps", "-5"],
        [str(CONFIGS / "tiny-svd.yaml"), "--log-every", "0"],
        [str(listed)],
    ]
    script = (
        "import contextlib, io, json, sys\n"
        "from egoworld.cli import main\n"
        "out = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        code = main(['train', *args, '--run-dir', sys.argv[2]])\n"
        "    out.append([code, err.getvalue()])\n"
        "print(json.dumps({'runs': out, 'heavy': [m for m in ('torch', 'diffusers') if m in sys.modules]}))\n"
    )
    import json

    res = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["heavy"] == []
    for code, err in report["runs"]:
        assert (
            code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("egoworld train: error: ")
        ), err
    assert not (tmp_path / "run").exists()


def test_train_help_points_to_the_fields(capsys):
    from egoworld.cli import main

    try:
        main(["train", "--help"])
    except SystemExit as done:
        assert done.code in (0, None)
    text = capsys.readouterr().out
    for needle in ("example:", "egoworld train configs/", "max_steps", "model.*", "data.*", "num_frames",
                   "val_fraction", "docs/training.md", "src/egoworld/train_config.py"):  # fmt: skip
        assert needle in text, needle
