"""`egoworld experiment internet-prior | action-following`: the claims of docs/results.md in miniature."""

from __future__ import annotations

from pathlib import Path

from egoworld.cli import add_command, int_in
from egoworld.experiments.budgets import BUDGETS  # dataclasses only: no torch at parse time

STAGE_NAMES = ("data", "prior", "scratch", "finetune", "eval")  # = internet_prior.STAGES (a test checks)

EXAMPLES = """
egoworld experiment internet-prior --budget micro --out /tmp/ip-micro      # plumbing, minutes
egoworld experiment internet-prior --budget small                          # a ~10-minute rehearsal
egoworld experiment internet-prior --stage data --stage prior --out runs/ip # some stages only
egoworld experiment internet-prior --configs configs/experiment/dit --budget long --out runs/ip-dit
egoworld worlds generate --task nav --episodes 16 --frames 17 --size 64 --seed 9100 --out /tmp/nav-eval
egoworld experiment action-following --worlds /tmp/nav-eval --out /tmp/af   # the shipped model
"""


def register(sub) -> None:
    """Add the `experiment` parser and its `internet-prior` experiment."""
    p = add_command(
        sub,
        "experiment",
        help="reproduce a paper's claims in miniature (docs/results.md)",
        description="Reproduce a paper's claims in miniature on synthetic worlds. One experiment: "
        "internet-prior (EgoWM: a passive video prior helps an action-conditioned model); "
        "action-following (does a navigation model follow its actions?).",
        examples=EXAMPLES,
    )
    which = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    q = add_command(
        which,
        "internet-prior",
        help="passive video prior -> action fine-tuning vs scratch, evaluated in and out of domain",
        description="Generates the worlds, trains the passive prior, the action fine-tuned model and the "
        "from-scratch baseline with `egoworld train` configs (configs/experiment/), evaluates them "
        "(SCS, PSNR, SSIM at frames 2/4/8/16) and writes results.md/json and rollouts.png. "
        "Re-running continues where it stopped.",
        examples=EXAMPLES,
    )
    q.add_argument("--out", default="runs/internet-prior", help="output folder (default runs/internet-prior)")
    q.add_argument(
        "--budget",
        default="full",
        choices=tuple(BUDGETS),
        help="full: the documented run (~1 h on 2 CPU cores); small: a ~10-minute rehearsal; "
        "micro: plumbing only; long: the scale of the shipped model's first stage (3 x 40000 steps, a GPU "
        "job; use it with --configs configs/experiment/dit); medium: long with 3 x 10000 steps, one session "
        "of a 2-core machine",
    )
    q.add_argument(
        "--configs", default=None, help="folder of the stage YAML files (default configs/experiment)"
    )
    q.add_argument("--workers", type=int_in(1, 256), default=1, help="processes for generating worlds")
    q.add_argument(
        "--stage",
        action="append",
        choices=STAGE_NAMES,
        help="run only this stage (repeatable; default: all in order). 'prior' and 'scratch' may run "
        "in two processes at once; 'finetune' needs 'prior'; 'eval' needs all models and writes the report",
    )
    q.add_argument(
        "--threads",
        type=int_in(1, 1024),
        default=1,
        help="torch threads (default 1: on a shared 2-core machine one thread per process is fastest)",
    )
    q.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[STAGE:]KEY=VALUE",
        help="an `egoworld train` setting for the training stages (repeatable; with STAGE prior, finetune "
        "or scratch only that one), e.g. --set compile=inductor --set finetune:lr_actions=3e-3; the "
        "report lists what each stage ran with beyond its config file",
    )
    q.set_defaults(func=run)
    f = add_command(
        which,
        "action-following",
        help="true vs mirrored actions, turn/forward probes, SCS against copy-first-frame",
        description="Rolls a navigation model out on generated nav worlds under the true and the mirrored "
        "(left<->right) actions, probes 'turn_left/turn_right 15deg' and 'forward 0.5m' by optical flow, "
        "measures how much of the start image standing still keeps (PSNR), and scores SCS/PSNR against "
        "copy-first-frame and zero actions. Writes results.json, results.md, "
        "rollouts.png and probes.png.",
        examples=EXAMPLES,
    )
    f.add_argument(
        "--worlds", required=True, help="a generated nav dataset (egoworld worlds generate --task nav)"
    )
    f.add_argument("--model", default=None, help="world-model folder (default: the shipped demo-nav)")
    f.add_argument(
        "--baseline", default=None, help="the same architecture trained without actions (optional)"
    )
    f.add_argument(
        "--probe-images",
        default=None,
        help="folder of images to start the turn/forward probes from (default: each world's first frame)",
    )
    f.add_argument(
        "--out", required=True, help="output folder for results.json, results.md, rollouts.png and probes.png"
    )
    f.add_argument("--seeds", type=int_in(1, 16), default=2, help="sampling seeds 0..N-1 (default 2)")
    f.add_argument("--threads", type=int_in(1, 1024), default=1, help="torch threads (default 1)")
    f.set_defaults(func=run_action_following)


def check_request(out: Path, config_dir: Path, stages: tuple[str, ...], settings: list[str] = ()) -> dict:
    """What would make a stage fail after others have written files: configs, --out, prerequisites,
    --set items (each stage's YAML file with its options must load). Returns the options per stage."""
    from egoworld.experiments.internet_prior import CONFIG_FILES, stage_options
    from egoworld.train_config import load_config

    if not config_dir.is_dir():
        raise FileNotFoundError(f"--configs {config_dir}: folder not found; expected the experiment configs")
    for name in CONFIG_FILES.values():
        if not (config_dir / name).is_file():
            raise FileNotFoundError(
                f"{config_dir / name} not found; expected the experiment configs (pass --configs DIR)"
            )
    options = stage_options(settings)
    for name, tokens in options.items():
        if tokens:
            try:
                load_config(config_dir / CONFIG_FILES[name], tokens)
            except ValueError as err:
                raise ValueError(f"--set for the {name} stage: {err}") from None
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"--out {out}: {folder} is a file; expected a folder")
            break

    def trained(name: str) -> bool:
        return name in stages or (out / "runs" / name / "final_state.json").is_file()

    if "finetune" in stages and not trained("prior"):
        raise FileNotFoundError(
            f"{out / 'runs' / 'prior' / 'final'} is missing; run the 'prior' stage before 'finetune' "
            "(or add --stage prior)"
        )
    if "eval" in stages:
        missing = [n for n in CONFIG_FILES if not trained(n)]
        if missing:
            raise FileNotFoundError(
                f"models not trained yet in {out / 'runs'}: {missing}; run those stages before 'eval'"
            )
    return options


def run(args) -> int:
    from egoworld.experiments.internet_prior import default_config_dir

    stages = tuple(dict.fromkeys(args.stage)) if args.stage else STAGE_NAMES
    out = Path(args.out)
    config_dir = Path(args.configs) if args.configs is not None else default_config_dir()
    options = check_request(out, config_dir, stages, args.set)  # before torch, MuJoCo or any file

    import torch

    from egoworld.experiments.internet_prior import run_internet_prior

    torch.set_num_threads(args.threads)
    doc = run_internet_prior(
        out, args.budget, config_dir=config_dir, workers=args.workers, stages=stages, options=options
    )
    if doc is None:
        print(f"done: {', '.join(stages)} in {args.out}")
        return 0
    print((out / "results.md").read_text(), end="")
    for name, goal in doc["targets"].items():
        print(f"target {name}: {'met' if goal['met'] else 'NOT met'}")
    print(f"results: {args.out}/results.md, results.json, rollouts.png")
    return 0


def run_action_following(args) -> int:
    import json

    from egoworld.data.nwm import world_description
    from egoworld.rollout import resolve_model_dir

    worlds = Path(args.worlds)
    desc = world_description(worlds) if worlds.is_dir() else None
    if desc is None or desc.get("task") != "nav":
        raise ValueError(
            f"--worlds {worlds}: expected a generated nav dataset (egoworld worlds generate --task nav)"
        )
    model_dir = resolve_model_dir(args.model)[0] if args.model else None
    baseline = resolve_model_dir(args.baseline)[0] if args.baseline else None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a folder")
    if args.probe_images is not None:
        from egoworld.experiments.action_following import probe_image_files

        probe_image_files(args.probe_images)  # a missing or empty folder: one line before any work

    import torch
    from PIL import Image

    from egoworld.demo import SHIPPED_MODEL
    from egoworld.experiments.action_following import evaluate_action_following, markdown_report
    from egoworld.io_utils import atomic_path

    torch.set_num_threads(args.threads)
    result = evaluate_action_following(
        model_dir or SHIPPED_MODEL,
        worlds,
        seeds=range(args.seeds),
        baseline_dir=baseline,
        probe_folder=args.probe_images,
    )
    figures = {"rollouts.png": result.pop("figure"), "probes.png": result.pop("probe_figure")}
    report = markdown_report(result)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("results.json", json.dumps(result, indent=1)), ("results.md", report)):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
    for name, figure in figures.items():
        with atomic_path(out / name) as tmp:
            Image.fromarray(figure).save(tmp, format="PNG")
    print(report, end="")
    print(
        f"results: {out}/results.md, results.json, rollouts.png (ground truth / true / mirrored actions), "
        "probes.png (turn left / turn right / forward from the first 3 probe images)"
    )
    return 0
