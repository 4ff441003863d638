"""EgoWM's internet-prior claim in miniature: passive pretraining, action fine-tuning, baselines, eval.

Stages (each skipped when its output already exists, so an interrupted run continues):

1. data: unlabeled passive videos of many worlds; a small labeled nav set (a fraction of the
   worlds); held-out nav worlds; painting images and held-out nav worlds textured with them.
2. prior: `egoworld.train.train` on the passive videos with zero actions and lr_actions = 0, so
   the action encoder stays exactly zero (configs/experiment/internet-prior-passive.yaml).
3. finetune: init_from the prior, labeled nav data, action LR 10x the base LR
   (internet-prior-finetune.yaml); scratch: the same from random weights, same data and steps
   (internet-prior-scratch.yaml).
4. eval: every model on both domains (`experiments.evaluation`), plus two reference rows; the
   mirrored-action test (`experiments.action_following`) of the two models trained with actions.
5. report: results.json, results.md and rollouts.png in `out/`.

    out/data/{passive, nav-train, nav-eval, paintings, nav-paintings}
    out/runs/{prior, finetune, scratch}/final
    out/eval/<model>__<domain>.json, .npz, <run>__<domain>__mirrored.json
    out/results.{json,md}, out/rollouts.png
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from egoworld.experiments.budgets import Budget, get_budget
from egoworld.io_utils import atomic_path

logger = logging.getLogger(__name__)

CONFIG_FILES = {
    "prior": "internet-prior-passive.yaml",
    "finetune": "internet-prior-finetune.yaml",
    "scratch": "internet-prior-scratch.yaml",
}
# evaluated rows: name -> (run whose final model is rolled out, or a reference kind)
MODELS = {
    "prior+finetune": "finetune",
    "scratch": "scratch",
    "prior (no actions)": "prior",
    "copy first frame": "copy-first-frame",
    "GT video, flow-tracked": "gt-tracked",
}
DOMAINS = ("in-domain", "paintings")
SEEDS = {"passive": 11, "nav-train": 12, "nav-eval": 13, "nav-paintings": 14, "paintings": 15}


def default_config_dir() -> Path:
    """configs/experiment of the source checkout (or of the current folder)."""
    here = Path(__file__).resolve().parents[3] / "configs" / "experiment"
    return here if here.is_dir() else Path("configs") / "experiment"


def prepare_data(out: Path, budget: Budget, workers: int = 1) -> dict[str, Path]:
    """Generate every dataset the experiment needs (a no-op for those already there)."""
    from egoworld.experiments.paintings import write_paintings
    from egoworld.worlds.generate import WorldSpec, generate

    data = out / "data"
    paths = {name: data / name for name in ("passive", "nav-train", "nav-eval", "paintings", "nav-paintings")}
    write_paintings(paths["paintings"], budget.paintings, seed=SEEDS["paintings"])
    specs = {
        "passive": WorldSpec("passive", budget.passive_worlds, budget.passive_frames, budget.render_size),
        "nav-train": WorldSpec(
            "nav",
            budget.nav_worlds,
            budget.nav_frames,
            budget.render_size,
            options={"trajectory": budget.nav_trajectory} if budget.nav_trajectory else {},
        ),
        "nav-eval": WorldSpec("nav", budget.eval_worlds, budget.eval_frames, budget.render_size),
        "nav-paintings": WorldSpec(
            "nav",
            budget.eval_worlds,
            budget.eval_frames,
            budget.render_size,
            textures=str(paths["paintings"]),
        ),
    }
    for name, spec in specs.items():
        spec.seed, spec.workers = SEEDS[name], workers
        if not _generated_already(paths[name], spec):
            generate(spec, paths[name], progress=False)
    return paths


def _generated_already(folder: Path, spec) -> bool:
    """True when `folder` holds the dataset `spec` asks for, made by any generator version.

    A later generator version would make different worlds; keeping the existing ones lets the
    later stages of a run use the data its models were trained on.
    """
    marker = folder / "egoworld_world.json"
    if not marker.is_file():
        return False
    have = json.loads(marker.read_text())
    want = {
        "task": spec.task,
        "seed": spec.seed,
        "episodes": spec.episodes,
        "frames": spec.frames,
        "size": spec.size,
    }
    if spec.options.get("trajectory") != have.get("options", {}).get("trajectory"):
        return False
    if any(have.get(k) != v for k, v in want.items()) or (have.get("textures") == "procedural") != (
        spec.textures is None
    ):
        return False
    if str(have.get("generator_version")) != str(egoworld_generator_version()):
        logger.warning(
            "%s was made by generator version %s (now %s); using it as it is",
            folder,
            have.get("generator_version"),
            egoworld_generator_version(),
        )
    return True


def egoworld_generator_version() -> str:
    from egoworld.worlds import GENERATOR_VERSION

    return GENERATOR_VERSION


# the training settings the experiment itself sets in every stage (its paths and the budget)
OWNED_KEYS = (
    "run_dir",
    "data.path",
    "init_from",
    "max_steps",
    "batch_size",
    "model.preset",
    "model.num_frames",
    "model.height",
    "model.width",
    "model.num_inference_steps",
    "checkpoint_every",
)


def stage_options(items: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """`--set [STAGE:]KEY=VALUE` items as `egoworld train` overrides (`--KEY=VALUE`) per training
    stage: with a STAGE (prior, finetune, scratch) for that stage, without for all three; e.g.
    `compile=inductor`, `data.num_workers=4`, `finetune:lr_actions=3e-3`. The settings the
    experiment owns (`OWNED_KEYS`: paths, steps, sizes) are refused. ValueError on a bad item."""
    options: dict[str, list[str]] = {name: [] for name in CONFIG_FILES}
    for item in items:
        head, sep, value = item.partition("=")
        stage, _, key = head.rpartition(":")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected [STAGE:]KEY=VALUE, e.g. finetune:lr_actions=3e-3")
        if stage and stage not in CONFIG_FILES:
            raise ValueError(
                f"--set {item!r}: unknown stage {stage!r}; expected one of {tuple(CONFIG_FILES)}"
            )
        if key.replace("-", "_") in OWNED_KEYS:
            raise ValueError(
                f"--set {item!r}: {key} is set by the experiment (its paths and --budget); expected another "
                "train setting"
            )
        for name in [stage] if stage else CONFIG_FILES:
            options[name].append(f"--{key}={value}")
    return options


def stage_config(
    name: str, out: Path, budget: Budget, config_dir: Path, data: dict[str, Path], options: list[str] = ()
):
    """The `TrainConfig` of one training stage: its YAML file plus this run's paths and budget, then
    `options` (`egoworld train` overrides, from `stage_options`)."""
    from egoworld.train_config import load_config

    path = Path(config_dir) / CONFIG_FILES[name]
    overrides = {
        "run_dir": out / "runs" / name,
        "data.path": data["passive" if name == "prior" else "nav-train"],
        "max_steps": budget.prior_steps if name == "prior" else budget.finetune_steps,
        "batch_size": budget.batch_size,
        "model.preset": budget.preset,
        "model.num_frames": budget.num_frames,
        "model.height": budget.size,
        "model.width": budget.size,
        "model.num_inference_steps": budget.inference_steps,
        "checkpoint_every": max(1, min(500, budget.prior_steps // 4)),
    }
    if name == "finetune":
        overrides["init_from"] = out / "runs" / "prior" / "final"
    return load_config(path, [f"--{k}={v}" for k, v in overrides.items()] + list(options))


def stage_settings(out: Path, budget: Budget, config_dir: Path, data: dict[str, Path]) -> dict[str, dict]:
    """What each trained stage ran with beyond its YAML file and the budget (`--set` options, or
    the run folder's own edits): {stage: {dotted key: the run's value}}, from its config.yaml.
    Where its folders were (run_dir, data.path, init_from) is not a setting and is not compared."""
    import yaml

    from egoworld.train_config import differences, from_dict

    settings = {}
    for name in CONFIG_FILES:
        saved = out / "runs" / name / "config.yaml"
        if not saved.is_file():
            continue
        ran = from_dict(yaml.safe_load(saved.read_text())).to_dict()  # fields added since: defaults
        planned = stage_config(name, out, budget, config_dir, data).to_dict()
        changed = {}
        for key in differences(planned, ran):
            if key in ("run_dir", "data.path", "init_from"):
                continue
            value = ran
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            changed[key] = value
        settings[name] = changed
    return settings


def train_stage(cfg) -> tuple[Path, float]:
    """Train (or resume, or skip when finished) one stage; returns (final model folder, wall seconds)."""
    from egoworld.train import train

    final = Path(cfg.run_dir) / "final"
    if (Path(cfg.run_dir) / "final_state.json").is_file() and final.is_dir():
        logger.info("%s is trained already", cfg.run_dir)
        return final, 0.0
    start = time.perf_counter()
    final = train(cfg)
    return final, time.perf_counter() - start


def eval_clips(budget: Budget, data: dict[str, Path]) -> dict:
    """domain -> the held-out `EvalClip`s of that domain."""
    from egoworld.experiments.evaluation import load_eval_clips

    return {
        "in-domain": load_eval_clips(data["nav-eval"], budget.eval_frames, budget.size),
        "paintings": load_eval_clips(data["nav-paintings"], budget.eval_frames, budget.size),
    }


def evaluate_all(out: Path, budget: Budget, clips: dict) -> dict:
    """Every row of the table on both domains (`clips`: `eval_clips`); cached per (row, domain) in
    out/eval/."""
    import torch

    from egoworld.experiments.evaluation import evaluate_model, summarize
    from egoworld.world_model import WorldModel

    results: dict = {}
    for row, source in MODELS.items():
        model = None
        if source in CONFIG_FILES:
            model = WorldModel.from_pretrained(out / "runs" / source / "final").eval()
        for domain in DOMAINS:
            key = f"{source}__{domain}"
            cached = out / "eval" / f"{key}.json"
            if cached.is_file():
                results[(row, domain)] = json.loads(cached.read_text())
                continue
            seeds = list(budget.sampling_seeds) if model is not None else [0]
            start = time.perf_counter()
            torch.manual_seed(0)
            run = evaluate_model(
                model, clips[domain], seeds, steps=budget.inference_steps, kind="model" if model else source
            )
            entry = {
                "summary": summarize(run["per_seed"]),
                "per_seed": {str(s): v for s, v in run["per_seed"].items()},
                "trim_at": {c.name: c.trim_at for c in clips[domain]},
                "objects": {c.name: c.object_names for c in clips[domain]},
                "seconds": time.perf_counter() - start,
            }
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(
                out / "eval" / f"{key}.npz", **{f"seed{s}": p for s, p in run["predictions"].items()}
            )
            cached.write_text(json.dumps(entry, indent=1))
            results[(row, domain)] = entry
    return results


def follows_actions(out: Path, budget: Budget, clips: dict) -> dict:
    """The mirrored-action test (`action_following.mirrored_gap`) of the two models trained with
    actions, on both domains: (row, domain) -> {"gap": [mean, std] dB over seeds, "share_positive"};
    cached in out/eval/<run>__<domain>__mirrored.json. The prior has none: its action encoder
    outputs exactly zero, so mirrored actions give the same rollout. The true-action rollouts are
    `evaluate_all`'s (out/eval/<run>__<domain>.npz, same seeds and sampler steps): only the
    mirrored ones are rolled out here."""
    from egoworld.experiments.action_following import mirrored_gap
    from egoworld.world_model import WorldModel

    rows: dict = {}
    for row in ("prior+finetune", "scratch"):
        model = None
        for domain in DOMAINS:
            cached = out / "eval" / f"{MODELS[row]}__{domain}__mirrored.json"
            if not cached.is_file():
                if model is None:
                    model = WorldModel.from_pretrained(out / "runs" / MODELS[row] / "final").eval()
                seeds = list(budget.sampling_seeds)
                with np.load(out / "eval" / f"{MODELS[row]}__{domain}.npz") as saved:
                    true = {s: saved[f"seed{s}"] for s in seeds}
                gap = mirrored_gap(model, clips[domain], seeds, true_rollouts=true)
                with atomic_path(cached) as tmp:
                    tmp.write_text(json.dumps(gap, indent=1))
            entry = json.loads(cached.read_text())
            rows[(row, domain)] = {"gap": entry["gap"], "share_positive": entry["share_positive"]}
    return rows


STAGES = ("data", "prior", "scratch", "finetune", "eval")


def record_time(out: Path, key: str, seconds: float) -> None:
    """Add one stage's wall time to out/times.json (kept across resumed runs)."""
    path = out / "times.json"
    times = json.loads(path.read_text()) if path.is_file() else {}
    times[key] = round(seconds, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(times, indent=1))


def run_internet_prior(
    out: str | Path,
    budget: str | Budget = "full",
    *,
    config_dir: str | Path | None = None,
    workers: int = 1,
    stages: tuple[str, ...] = STAGES,
    options: dict[str, list[str]] | None = None,
) -> dict | None:
    """Run (or continue) the experiment's `stages` into `out`; `options`: extra `egoworld train`
    overrides per training stage (`stage_options`).

    The stages are independent processes' worth of work: "prior" and "scratch" can run at the same
    time (two single-threaded processes use the two cores of a small machine); "finetune" needs the
    prior; "eval" needs all three models and then writes the report. Returns the report after
    "eval", else None.
    """
    # diffusers (through torch._dynamo) loads triton, which crashes when MuJoCo's EGL libraries were
    # loaded first in the same process: import the model code before generating any world.
    import egoworld.world_model  # noqa: F401
    from egoworld.experiments.report import write_report

    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; expected some of {STAGES}")
    out = Path(out)
    budget = get_budget(budget) if isinstance(budget, str) else budget
    config_dir = Path(config_dir) if config_dir is not None else default_config_dir()
    for name in CONFIG_FILES.values():
        if not (config_dir / name).is_file():
            raise FileNotFoundError(
                f"{config_dir / name} not found; expected the experiment configs (pass --configs DIR)"
            )
    t0 = time.perf_counter()
    data = prepare_data(out, budget, workers)  # every stage needs the paths; a no-op once generated
    if "data" in stages and time.perf_counter() - t0 > 1.0:  # not when it was all there already
        record_time(out, "data", time.perf_counter() - t0)
    for name in ("prior", "finetune", "scratch"):
        if name in stages:
            if name == "finetune" and not (out / "runs" / "prior" / "final_state.json").is_file():
                raise FileNotFoundError(
                    f"{out / 'runs' / 'prior' / 'final'} is missing; run the 'prior' stage before 'finetune'"
                )
            cfg = stage_config(name, out, budget, config_dir, data, (options or {}).get(name, []))
            _, seconds = train_stage(cfg)
            if seconds:
                record_time(out, f"train_{name}", seconds)
    if "eval" not in stages:
        return None
    missing = [n for n in CONFIG_FILES if not (out / "runs" / n / "final_state.json").is_file()]
    if missing:
        raise FileNotFoundError(f"models not trained yet: {missing}; run those stages before 'eval'")
    t0 = time.perf_counter()
    cached = len(list((out / "eval").glob("*.json"))) if (out / "eval").is_dir() else 0
    clips = eval_clips(budget, data)
    results = evaluate_all(out, budget, clips)
    following = follows_actions(out, budget, clips)
    if len(list((out / "eval").glob("*.json"))) > cached:  # some rows were evaluated now
        record_time(out, "eval", time.perf_counter() - t0)
    settings = stage_settings(out, budget, config_dir, data)
    return write_report(out, budget, results, config_dir, following, settings)
