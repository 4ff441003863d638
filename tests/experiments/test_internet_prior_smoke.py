"""The internet-prior experiment end to end at the "micro" budget (plumbing, not quality)."""

from __future__ import annotations

import json

import pytest
import torch

import egoworld.world_model  # noqa: F401  (diffusers before MuJoCo's EGL: see internet_prior.py)
from egoworld.cli import main
from egoworld.experiments.budgets import BUDGETS, get_budget
from egoworld.experiments.internet_prior import run_internet_prior
from egoworld.world_model import WorldModel


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
        "action-conditioned above unconditioned",
        "prior+finetune above scratch",
        "paintings >= 80% of in-domain",
    }
    assert "prior+finetune | paintings" in doc["rows"]
    for name in ("results.md", "results.json", "rollouts.png", "times.json"):
        assert (out / name).is_file()
    assert "SCS@8" in (out / "results.md").read_text()
    # the passive prior's action encoder stayed exactly zero (zero actions, lr_actions = 0) ...
    prior = WorldModel.from_pretrained(out / "runs" / "prior" / "final")
    proj = prior.denoiser.action_encoder.proj_out
    assert not proj.weight.any() and not proj.bias.any()
    # ... and fine-tuning moved it
    tuned = WorldModel.from_pretrained(out / "runs" / "finetune" / "final").denoiser.action_encoder
    assert tuned.proj_out.weight.abs().max() > 0
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
    with pytest.raises(ValueError, match="budget 'huge'"):
        get_budget("huge")
    assert set(BUDGETS) == {"micro", "small", "full"}
