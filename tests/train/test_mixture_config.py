"""`data.mixture` in training configs, and every preset under configs/ parses and validates (no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from egoworld.actions.normalization import MODES
from egoworld.train_config import (
    NAV_ACTION_MODES,
    NORMALIZATIONS,
    DataConfig,
    MixtureEntry,
    differences,
    from_dict,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
# every training preset (configs/accelerate/ holds Accelerate's launch configs, not training configs)
PRESETS = sorted(p for p in CONFIGS.rglob("*.yaml") if "accelerate" not in p.relative_to(CONFIGS).parts)

MIXTURE = """\
model: {family: svd, preset: tiny, num_frames: 4, height: 32, width: 32}
data:
  num_workers: 2
  mixture:
    - {format: nwm, path: /data/recon, dataset_name: recon, stride: 5, weight: 3}
    - {format: nwm, path: /data/scand, dataset_name: scand, weight: 1, normalization: meanstd}
"""


def test_every_preset_parses_and_validates_without_torch():
    script = (
        "import json, sys\n"
        "from egoworld.train_config import load_config\n"
        "out = {}\n"
        "for path in sys.argv[1:]:\n"
        "    c = load_config(path)\n"
        "    out[path] = [c.model.family, c.model.preset, [e.dataset_name for e in c.data.mixture]]\n"
        "heavy = [m for m in ('torch', 'diffusers') if m in sys.modules]\n"
        "print(json.dumps({'configs': out, 'heavy': heavy}))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script, *map(str, PRESETS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["heavy"] == []
    configs = {Path(k).relative_to(CONFIGS).as_posix(): v for k, v in report["configs"].items()}
    assert len(configs) == len(PRESETS) >= 12
    nwm = ["recon", "scand", "tartan_drive", "sacson"]
    assert configs["svd-xt-nav-mixture.yaml"] == ["svd", "svd-xt", nwm]
    assert configs["cosmos2-2b-nav-mixture.yaml"] == ["cosmos", "cosmos-predict2-2b", nwm]
    for name in ("svd-xt-humanoid", "cosmos2-2b-humanoid", "wan2.1-i2v-14b-nav", "wan2.1-i2v-14b-humanoid"):
        assert f"{name}.yaml" in configs


def test_the_nwm_mixture_uses_the_authors_spacings_and_strides():
    from egoworld.actions.spaces import METRIC_WAYPOINT_SPACING

    cfg = load_config(CONFIGS / "svd-xt-nav-mixture.yaml")
    got = {e.dataset_name: (e.stride, e.weight, e.normalization, e.format) for e in cfg.data.mixture}
    assert got == {
        "recon": (5, None, "minmax", "nwm"),  # EgoWM App. B strides; NWM's weights: none (concatenation)
        "scand": (1, None, "minmax", "nwm"),
        "tartan_drive": (1, None, "minmax", "nwm"),
        "sacson": (1, None, "minmax", "nwm"),
    }
    assert set(got) <= set(METRIC_WAYPOINT_SPACING)  # each name selects NWM's metric waypoint spacing


def test_a_mixture_parses_with_per_dataset_fields_and_dotted_overrides(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(MIXTURE)
    cfg = load_config(path, ["--data.mixture.1.weight=2", "--data.mixture[0].path", "/mnt/recon"])
    recon, scand = cfg.data.mixture
    assert isinstance(recon, MixtureEntry) and (recon.path, recon.stride, recon.weight) == (
        "/mnt/recon",
        5,
        3.0,
    )
    assert (scand.weight, scand.normalization, recon.normalization) == (2.0, "meanstd", "minmax")
    assert isinstance(scand.weight, float) and cfg.data.num_workers == 2
    saved = cfg.to_dict()  # what a run writes to config.yaml, read back when it resumes
    assert saved["data"]["mixture"][1]["weight"] == 2.0
    assert differences(from_dict(saved).to_dict(), saved) == []
    assert differences(load_config(path).to_dict(), saved) == ["data.mixture"]
    whole = load_config(path, ["--data.mixture", "[{format: onex, path: /data/1x, weight: 1}]"])
    assert [(e.format, e.weight) for e in whole.data.mixture] == [("onex", 1.0)]
    assert NORMALIZATIONS == MODES  # the light copy agrees with the library
    assert DataConfig().mixture == [] and DataConfig().normalization == "meanstd"  # one dataset: as before


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["--data.mixture.2.weight=1"], r"mixture.2.weight': data.mixture has 2 datasets \(indices 0..1\)"),
        (["--data.mixture.0.wieght=1"],
         r"\[0\].wieght' does not exist; did you mean 'data.mixture\[0\].weight'\?"),
        (["--data.mixture.0.weight=-1"], r"data.mixture\[0\].weight=-1.0: expected a finite value > 0"),
        (["--data.mixture.0.weight=0"], r"data.mixture\[0\].weight=0.0: expected a finite value > 0"),
        (["--data.mixture.1.weight=null"], r"\[1\].weight is null while other datasets have weights"),
        (["--data.mixture.0.normalization=zscore"], r"data.mixture\[0\].normalization='zscore' is not known"),
        (["--data.mixture.1.format=mp4"], r"data.mixture\[1\].format='mp4' is not known"),
        (["--data.mixture.1.stride=0"], r"data.mixture\[1\].stride=0; expected a positive integer"),
        (["--data.mixture.1.dataset_name=recon"], r"\[1\].dataset_name='recon' is already the name of"),
        (["--data.path=/data/recon"], r"data.path='/data/recon' is not used with .* data.mixture\[0\].path"),
        (["--data.mixture=5"], "data.mixture=5: expected a list of datasets"),
        (["--data.mixture=[3]"], r"data.mixture\[0\]=3: expected a mapping of dataset fields"),
        (["--data.normalization=l2"], "is not used with data.mixture"),
        (["--data.mixture.1.action_mode=cumulative"], r"mixes action_mode values \['cumulative', 'delta'\]"),
        (["--data.mixture.0.action_mode=sideways"], r"data.mixture\[0\].action_mode='sideways' is not known"),
        (["--data.mixture.0.statistics_of=recon"], r"\[0\].statistics_of='recon': the first dataset has no"),
    ],
)  # fmt: skip
def test_bad_mixtures_are_one_clear_error(tmp_path, overrides, message):
    path = tmp_path / "m.yaml"
    path.write_text(MIXTURE)
    with pytest.raises(ValueError, match=message):
        load_config(path, overrides)


def test_one_dataset_keeps_its_fields_and_gains_a_normalization_mode():
    cfg = load_config(CONFIGS / "tiny-svd.yaml", ["--data.normalization=minmax"])
    assert cfg.data.normalization == "minmax" and cfg.data.mixture == []
    with pytest.raises(ValueError, match="data.normalization='l2' is not known"):
        load_config(CONFIGS / "tiny-svd.yaml", ["--data.normalization=l2"])
    with pytest.raises(ValueError, match=r"data.mixture has 0 datasets \(no datasets; set data.mixture"):
        load_config(CONFIGS / "tiny-svd.yaml", ["--data.mixture.0.path=/x"])


def test_navigation_options_are_checked_against_the_format():
    from egoworld.data.nwm import ACTION_MODES

    cfg = load_config(CONFIGS / "demo-nav.yaml")
    assert (cfg.data.action_mode, cfg.data.mirror) == ("cumulative", True)
    assert NAV_ACTION_MODES == ACTION_MODES  # the light copy agrees with the library
    with pytest.raises(ValueError, match="data.mirror=True applies to navigation data only"):
        load_config(CONFIGS / "tiny-svd.yaml", ["--data.format=lerobot", "--data.mirror=true"])
    with pytest.raises(ValueError, match="data.action_mode='cumulative' applies to navigation data only"):
        load_config(CONFIGS / "tiny-svd.yaml", ["--data.format=onex", "--data.action_mode=cumulative"])


def test_cli_reports_a_bad_mixture_in_one_line_before_importing_torch(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(MIXTURE)
    script = (
        "import contextlib, io, json, sys\n"
        "from egoworld.cli import main\n"
        "err = io.StringIO()\n"
        "with contextlib.redirect_stderr(err):\n"
        "    code = main(['train', sys.argv[1], '--data.mixture.0.weight=0', '--run-dir', sys.argv[2]])\n"
        "print(json.dumps({'code': code, 'err': err.getvalue(),\n"
        "                  'heavy': [m for m in ('torch', 'diffusers') if m in sys.modules]}))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["code"] == 2 and report["heavy"] == []
    assert report["err"].strip() == (
        "egoworld train: error: data.mixture[0].weight=0.0: expected a finite value > 0"
    ), report["err"]
    assert not (tmp_path / "run").exists()
