"""`egoworld experiment internet-prior`: EgoWM's passive-prior claim in miniature (docs/results.md)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("experiment", help="reproduce a paper's claims in miniature (docs/results.md)")
    which = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    q = which.add_parser(
        "internet-prior",
        help="passive video prior -> action fine-tuning vs scratch, evaluated in and out of domain",
        description="Generates the worlds, trains the passive prior, the action fine-tuned model and the "
        "from-scratch baseline with `egoworld train` configs (configs/experiment/), evaluates them "
        "(SCS, PSNR, SSIM at frames 2/4/8/16) and writes results.md/json and rollouts.png. "
        "Re-running continues where it stopped.",
    )
    q.add_argument("--out", default="runs/internet-prior", help="output folder (default runs/internet-prior)")
    q.add_argument(
        "--budget",
        default="full",
        choices=("micro", "small", "full"),
        help="full: the documented run (~1 h on 2 CPU cores); small: a ~10-minute rehearsal; "
        "micro: plumbing only",
    )
    q.add_argument(
        "--configs", default=None, help="folder of the stage YAML files (default configs/experiment)"
    )
    q.add_argument("--workers", type=int, default=1, help="processes for generating worlds")
    q.add_argument(
        "--stage",
        action="append",
        choices=("data", "prior", "scratch", "finetune", "eval"),
        help="run only this stage (repeatable; default: all in order). 'prior' and 'scratch' may run "
        "in two processes at once; 'finetune' needs 'prior'; 'eval' needs all models and writes the report",
    )
    q.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine one thread per process is fastest)",
    )
    q.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    import torch

    from egoworld.experiments.internet_prior import STAGES, run_internet_prior

    if args.workers < 1 or args.threads < 1:
        raise ValueError(f"--workers={args.workers}, --threads={args.threads}; expected at least 1 each")
    torch.set_num_threads(args.threads)
    stages = tuple(args.stage) if args.stage else STAGES
    doc = run_internet_prior(
        args.out, args.budget, config_dir=args.configs, workers=args.workers, stages=stages
    )
    if doc is None:
        print(f"done: {', '.join(stages)} in {args.out}")
        return 0
    print((Path(args.out) / "results.md").read_text(), end="")
    for name, goal in doc["targets"].items():
        print(f"target {name}: {'met' if goal['met'] else 'NOT met'}")
    print(f"results: {args.out}/results.md, results.json, rollouts.png")
    return 0
