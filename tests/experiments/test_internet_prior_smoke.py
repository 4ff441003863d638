"""The internet-prior experiment end to end at the "micro" budget (plumbing, not quality)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import egoworld.world_model  # noqa: F401  (diffusers before MuJoCo's EGL: see internet_prior.py)
from egoworld.cli import main
from egoworld.experiments.action_following import mirrored_gap
from egoworld.experiments.budgets import BUDGETS, get_budget
from egoworld.experiments.internet_prior import (
    eval_clips,
    prepare_data,
    run_internet_prior,
    stage_options,
    stage_settings,
)
from egoworld.world_model import WorldModel

DIT_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "experiment" / "dit"


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_micro_budget_runs_every_stage(tmp_path, one_thread):
    out = tmp_path / "exp"
    doc = run_internet_prior(out, "micro")
    assert set(doc["targets"]) == {
        "prior+finetune follows its actions (true − mirrored, dB)",
        "action-conditioned above unconditioned",
        "prior+finetune above scratch",
        "paintings >= 80% of in-domain",
    }
    assert "prior+finetune | paintings" in doc["rows"]
    for name in ("results.md", "results.json", "rollouts.png", "times.json"):
        assert (out / name).is_file()
    assert "SCS@8" in (out / "results.md").read_text()
    # the mirrored-action test of both models trained with actions, on both domains
    assert set(doc["follows_actions"]) == {
        f"{row} | {domain}" for row in ("prior+finetune", "scratch") for domain in ("in-domain", "paintings")
    }
    gap = json.loads((out / "eval" / "finetune__in-domain__mirrored.json").read_text())
    assert doc["follows_actions"]["prior+finetune | in-domain"]["gap"] == gap["gap"]
    assert "| scratch | paintings |" in (out / "results.md").read_text().split("Follows its actions")[1]
    # the passive prior's action encoder stayed exactly zero (zero actions, lr_actions = 0) ...
    prior = WorldModel.from_pretrained(out / "runs" / "prior" / "final")
    proj = prior.denoiser.action_encoder.proj_out
    assert not proj.weight.any() and not proj.bias.any()
    # so mirrored actions give it the same rollout (why the report has no mirrored row for it)
    clips = eval_clips(get_budget("micro"), {k: out / "data" / k for k in ("nav-eval", "nav-paintings")})
    assert mirrored_gap(prior.eval(), clips["in-domain"][:1], [0])["gap"] == [0.0, 0.0]
    # ... and fine-tuning moved it
    tuned = WorldModel.from_pretrained(out / "runs" / "finetune" / "final").eval()
    assert tuned.denoiser.action_encoder.proj_out.weight.abs().max() > 0
    # its gap took the true-action rollouts from the scored ones: rolling them out again agrees
    seeds = list(get_budget("micro").sampling_seeds)
    assert mirrored_gap(tuned, clips["in-domain"], seeds)["gap"] == gap["gap"]
    # a second run finds everything done and only rewrites the report
    again = run_internet_prior(out, "micro", stages=("eval",))
    # (compared as JSON: NaN, for horizons past a trimmed clip, is not equal to itself)
    assert json.dumps(again["rows"], sort_keys=True) == json.dumps(doc["rows"], sort_keys=True)
    assert json.loads((out / "times.json").read_text())["train_prior"] > 0


def test_cli_refuses_bad_budget_and_missing_models(tmp_path, capsys):
    assert (
        main(
            [
                "experiment",
                "internet-prior",
                "--out",
                str(tmp_path),
                "--stage",
                "finetune",
                "--budget",
                "micro",
            ]
        )
        == 2
    )
    assert "run the 'prior' stage" in capsys.readouterr().err
    bad_set = ["experiment", "internet-prior", "--out", str(tmp_path / "x"), "--set", "finetune:nope=3"]
    assert main(bad_set) == 2
    assert "--set for the finetune stage: config key 'nope' does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before anything was written
    with pytest.raises(ValueError, match="budget 'huge'"):
        get_budget("huge")
    assert set(BUDGETS) == {"micro", "small", "full", "long", "medium"}
    medium, long = get_budget("medium"), get_budget("long")
    assert (medium.prior_steps, medium.finetune_steps) == (10000, 10000)
    assert replace(medium, prior_steps=long.prior_steps, finetune_steps=long.finetune_steps) == long


def test_micro_budget_with_the_shipped_models_architecture(tmp_path, one_thread):
    """configs/experiment/dit: the pixel DiT of configs/nav-dit-residual.yaml in every stage; a
    `--set` option reaches its stage, and the report says what each stage ran with."""
    out = tmp_path / "exp"
    options = stage_options(["finetune:lr_actions=3e-3"])
    doc = run_internet_prior(out, "micro", config_dir=DIT_CONFIGS, options=options)
    assert doc["stage_settings"] == {"prior": {}, "finetune": {"lr_actions": 0.003}, "scratch": {}}
    assert "- finetune: lr_actions=0.003" in (out / "results.md").read_text()
    # a run folder that ran elsewhere (its config.yaml names other folders) has the same settings
    saved = out / "runs" / "finetune" / "config.yaml"
    text = saved.read_text().replace(f"run_dir: {out}", "run_dir: /elsewhere")
    saved.write_text(text.replace("  action_center: false\n", ""))  # written before that field existed
    data = prepare_data(out, get_budget("micro"))  # all there: the paths only
    settings = stage_settings(out, get_budget("micro"), DIT_CONFIGS, data)
    assert "/elsewhere" in saved.read_text() and "action_center" not in saved.read_text()
    assert settings["finetune"] == {"lr_actions": 0.003}
    assert "prior+finetune | paintings" in doc["rows"]
    prior = WorldModel.from_pretrained(out / "runs" / "prior" / "final")
    assert (prior.config.family, prior.config.flow_prediction) == ("cosmos", "x0")
    proj = prior.denoiser.action_encoder.proj_out
    assert not proj.weight.any() and not proj.bias.any()  # lr_actions = 0 on zero actions
    tuned = WorldModel.from_pretrained(out / "runs" / "finetune" / "final")
    assert tuned.denoiser.action_encoder.proj_out.weight.abs().max() > 0
    assert tuned.normalizer.meta["action_mode"] == "cumulative"  # read as the shipped model reads
    for run in ("finetune", "scratch"):
        assert (out / "runs" / run / "config.yaml").read_text().count("mirror: true") == 1


def test_nav_trajectory_of_a_budget_reaches_the_training_worlds(tmp_path):
    """A budget's nav_trajectory is how the labeled walks move; walks of another kind are refused."""
    micro = get_budget("micro")
    assert get_budget("long").nav_trajectory == "explore" and micro.nav_trajectory is None
    budget = replace(micro, nav_trajectory="explore", passive_worlds=1, eval_worlds=1, paintings=1)
    paths = prepare_data(tmp_path, budget)
    marker = json.loads((paths["nav-train"] / "egoworld_world.json").read_text())
    assert marker["options"] == {"trajectory": "explore"}
    eval_marker = json.loads((paths["nav-eval"] / "egoworld_world.json").read_text())
    assert eval_marker["options"] == {}  # held-out worlds walk the default way
    assert prepare_data(tmp_path, budget) == paths  # all there: nothing regenerated
    with pytest.raises(FileExistsError, match="already holds a different dataset"):
        prepare_data(tmp_path, replace(budget, nav_trajectory=None))


def test_set_options_reach_their_stages_and_the_experiments_own_settings_are_refused():
    options = stage_options(["compile=inductor", "finetune:lr-actions=3e-3", "scratch:data.path_x=a=b"])
    assert options == {
        "prior": ["--compile=inductor"],
        "finetune": ["--compile=inductor", "--lr-actions=3e-3"],
        "scratch": ["--compile=inductor", "--data.path_x=a=b"],  # the value is everything after '='
    }
    for item, message in [
        ("lr_actions", "expected \\[STAGE:\\]KEY=VALUE"),
        ("=3", "expected \\[STAGE:\\]KEY=VALUE"),
        ("eval:lr_actions=3", "unknown stage 'eval'"),
        ("max-steps=5", "set by the experiment"),
        ("prior:data.path=/elsewhere", "set by the experiment"),
    ]:
        with pytest.raises(ValueError, match=message):
            stage_options([item])
