"""`egoworld demo`: generate a fresh world, roll a world model out in it, write a video and metrics."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="roll a world model out in a freshly generated synthetic world")
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--seed", type=int, default=0, help="world and sampling seed")
    p.add_argument("--frames", type=int, default=17, help="frames to roll out (default 17)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    p.add_argument("--model", default=None, help="a world-model folder instead of the shipped model")
    p.set_defaults(func=run)


def run(args) -> int:
    from egoworld.demo import load_demo_model, run_demo

    if args.frames < 2:
        raise ValueError(f"--frames={args.frames}; expected at least 2")
    _, what = load_demo_model(args.model)
    print(f"egoworld demo: using {what}")
    metrics = run_demo(args.out, seed=args.seed, frames=args.frames, steps=args.steps, model_dir=args.model)
    print(f"world: {metrics['world']}")
    print(f"video: {args.out}/side_by_side.mp4 (ground truth | prediction), {args.out}/prediction.mp4")
    print("frame  PSNR(dB)  SSIM")
    for key in metrics["psnr"]:
        print(f"{key.split('_')[1]:>5}  {metrics['psnr'][key]:8.2f}  {metrics['ssim'][key]:.3f}")
    print(f"metrics: {args.out}/metrics.json")
    return 0
