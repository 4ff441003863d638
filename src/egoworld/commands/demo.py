"""`egoworld demo`: generate a fresh world, roll a world model out in it, write a video and metrics."""

from __future__ import annotations

from egoworld.cli import add_command, int_in

MAX_FRAMES = 10_000  # = egoworld.rollout.MAX_FRAMES (a test checks)
MAX_SAMPLER_STEPS = 1_000  # = egoworld.rollout.MAX_SAMPLER_STEPS

EXAMPLES = """
egoworld demo                                   # the shipped model, 17 frames, into demo_out/
egoworld demo --out /tmp/demo --frames 9 --steps 4
egoworld demo --model runs/tiny-svd             # a model you trained (its final/ or newest checkpoint)
egoworld eval --pred demo_out/prediction.mp4 --gt demo_out/world-seed0-17f/traj_00000   # score it again
"""


def register(sub) -> None:
    """Add the `demo` parser."""
    p = add_command(
        sub,
        "demo",
        help="roll a world model out in a freshly generated synthetic world",
        description="Generate a new navigation world on MuJoCo, walk a camera through it, read the walk "
        "back with the dataset reader, roll the world model out from the first frame under the walk's "
        "actions and write OUT/side_by_side.mp4 (ground truth | prediction), OUT/prediction.mp4 and "
        "OUT/metrics.json (PSNR/SSIM at frames 2, 4, 8, 16).\n"
        "It uses the small model shipped in egoworld/assets/demo-nav, or --model.",
        examples=EXAMPLES,
    )
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--seed", type=int_in(0, 2**63 - 1), default=0, help="world and sampling seed (default 0)")
    p.add_argument("--frames", type=int_in(2, MAX_FRAMES), default=17, help="frames to roll out (default 17)")
    p.add_argument(
        "--steps",
        type=int_in(1, MAX_SAMPLER_STEPS),
        default=None,
        help="sampler steps (default: the model's)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="a world-model folder (or training run folder) instead of the shipped model",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from egoworld.demo import check_demo_request

    model_dir = check_demo_request(
        args.out, seed=args.seed, frames=args.frames, steps=args.steps, model_dir=args.model
    )  # before torch, MuJoCo or any file
    from egoworld.demo import load_demo_model, run_demo

    model, what = load_demo_model(model_dir)
    print(f"egoworld demo: using {what}")
    metrics = run_demo(
        args.out,
        seed=args.seed,
        frames=args.frames,
        steps=args.steps,
        model_dir=model_dir,
        model=model,
        what=what,
    )
    print(f"world: {metrics['world']}")
    print(f"video: {args.out}/side_by_side.mp4 (ground truth | prediction), {args.out}/prediction.mp4")
    print("frame  PSNR(dB)  SSIM")
    for key in metrics["psnr"]:
        print(f"{key.split('_')[1]:>5}  {metrics['psnr'][key]:8.2f}  {metrics['ssim'][key]:.3f}")
    print(f"metrics: {args.out}/metrics.json")
    print(f"score it again: egoworld eval --pred {args.out}/prediction.mp4 --gt {metrics['episode']}")
    return 0
