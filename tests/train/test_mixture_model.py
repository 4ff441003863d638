"""A model trained on a mixture stores every dataset's statistics, and a rollout chooses one of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from egoworld.actions.normalization import ActionNormalizer, select_dataset
from egoworld.train_config import load_config
from tests.data.data_builders import write_nwm_traj, write_onex

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
PRESETS = sorted(p for p in CONFIGS.rglob("*.yaml") if "accelerate" not in p.relative_to(CONFIGS).parts)

MODEL = (
    "model: {family: svd, preset: tiny, hidden_dim: 64, num_frames: 4, height: 32, width: 32, "
    "num_inference_steps: 2}\n"
)


def walk(n: int, speed: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yaw = np.cumsum(rng.normal(0, 0.3, n))
    step = speed * (1 + rng.random(n))[:, None] * np.stack([np.cos(yaw), np.sin(yaw)], -1)
    return np.cumsum(step, axis=0), (yaw + np.pi) % (2 * np.pi) - np.pi


@pytest.fixture(scope="module")
def nav_pair(tmp_path_factory) -> tuple[Path, Path]:
    top = tmp_path_factory.mktemp("pair")
    write_nwm_traj(top / "recon" / "a", *walk(12, 0.3, seed=1))
    write_nwm_traj(top / "scand" / "a", *walk(12, 1.2, seed=2))
    return top / "recon", top / "scand"


def config(tmp_path: Path, entries: list[str], name: str = "mix.yaml") -> Path:
    path = tmp_path / name
    text = "max_steps: 2\nbatch_size: 2\ncheckpoint_every: 2\nlr_base: 1.0e-4\nlr_actions: 1.0e-3\n" + MODEL
    text += "data:\n  val_fraction: 0.0\n  mixture:\n" + "".join(f"    - {e}\n" for e in entries)
    path.write_text(text)
    return path


def test_every_preset_names_a_size_its_family_has():
    from egoworld.backbones import cosmos, svd, wan

    sizes = {"svd": svd.UNET_PRESETS, "cosmos": cosmos.TRANSFORMER_PRESETS, "wan": wan.TRANSFORMER_PRESETS}
    for path in PRESETS:
        cfg = load_config(path)
        assert cfg.model.preset in sizes[cfg.model.family], path.name
        formats = {e.format for e in cfg.data.mixture} or {cfg.data.format}
        if formats == {"onex"}:  # the 1X humanoid: 25-D actions and state
            assert (cfg.model.action_dim, cfg.model.state_dim) == (25, 25), path.name
        if formats == {"nwm"}:  # 3-DoF navigation
            assert (cfg.model.action_dim, cfg.model.state_dim) == (3, None), path.name


def test_a_mixture_run_saves_both_normalisers_and_rollout_picks_one(tmp_path, nav_pair, trainer):
    from egoworld.rollout import load_actions, model_spacing, read_model_info
    from egoworld.world_model import WorldModel

    recon, scand = nav_pair
    entries = [f"{{format: nwm, path: {recon}, weight: 3}}"]
    entries.append(f"{{format: nwm, path: {scand}, weight: 1, normalization: meanstd}}")
    cfg = config(tmp_path, entries)
    code, log = trainer.run(["train", str(cfg), "--run-dir", str(tmp_path / "run")])
    assert code == 0, log
    final = tmp_path / "run" / "final"
    saved = json.loads((final / "normalization.json").read_text())
    assert list(saved["datasets"]) == ["recon", "scand"]
    recon_meta = {"dataset": "recon", "spacing": 0.25, "action_mode": "delta"}
    assert saved["mode"] == "minmax" and saved["meta"] == recon_meta  # the default
    assert saved["datasets"]["scand"]["mode"] == "meanstd"
    assert saved["datasets"]["scand"]["meta"] == {"dataset": "scand", "spacing": 0.38, "action_mode": "delta"}

    info = read_model_info(final)  # what `egoworld rollout` reads before loading the weights
    assert info.normalizer.dataset_names == ["recon", "scand"] and model_spacing(info) == 0.25
    model = WorldModel.from_pretrained(final)
    scand_stats = ActionNormalizer.from_dict(saved["datasets"]["scand"])
    model.normalizer = select_dataset(model.normalizer, "scand")  # `egoworld rollout --dataset scand`
    assert model_spacing(model) == 0.38
    actions = load_actions("forward 0.76m x2", model)  # a script in scand's units: 2 waypoints a step
    np.testing.assert_allclose(actions[1:, 0], 2.0)
    np.testing.assert_allclose(
        model.normalize_actions(actions)[1:].numpy(), scand_stats.normalize(actions[1:]), rtol=1e-6
    )
    frames = model.rollout(np.zeros((32, 32, 3), np.uint8), actions, seed=0, num_inference_steps=2)
    assert frames.shape == (3, 32, 32, 3)
    with pytest.raises(ValueError, match=r"'huron' is not one the model was trained on"):
        select_dataset(model.normalizer, "huron")


def test_a_dataset_of_another_width_stops_the_run_in_one_line(tmp_path, nav_pair, trainer):
    recon, _ = nav_pair
    onex = write_onex(tmp_path / "onex", [np.zeros(60, np.int32)])
    cfg = config(tmp_path, [f"{{format: nwm, path: {recon}}}", f"{{format: onex, path: {onex}}}"])
    code, log = trainer.run(["train", str(cfg), "--run-dir", str(tmp_path / "run")])
    assert code == 2, log
    assert log.strip().splitlines()[-1] == (
        "egoworld train: error: data.mixture[1] (1x): the dataset's actions have 25 dims; model.action_dim=3"
    ), log
    assert "Traceback" not in log and not (tmp_path / "run").exists()
