"""Where along the sampler does a flow world model lose its frames? x0 error and roughness per step.

    .venv/bin/python benchmarks/sampler_trajectory.py --model MODEL --worlds WORLDS [--clips 4]
        [--steps 12 50] [--times 0.02 0.1 0.3 0.5 0.7 0.9]

Two views of one model (Cosmos or Wan family) on the first chunk of held-out nav clips:

1. **Forward-noised inputs** (`high_noise_error` at each of `--times`): the denoiser's x0 estimate
   from the true clip noised to x_t, pixel MSE over the future frames and its ratio to copying the
   first frame. What the training loss sees.
2. **Its own sampler** (the family's built-in sampler, re-run step by step with the same scheduler,
   velocity and pinning as `_FlowFamily.sample`): at each step the x0 estimate's pixel MSE against the
   ground truth and its roughness, the mean squared difference of horizontally adjacent pixels (the
   ground truth's is printed for scale). A model whose samples are noise shows the roughness
   climbing far above the ground truth's as t falls (docs/results.md, "Why the pixel DiT's samples
   were noise").

Diagnostic, not a test; one CPU thread.
"""

from __future__ import annotations

import argparse

import torch

import egoworld.world_model  # noqa: F401  (diffusers before MuJoCo's EGL)
from egoworld import noise
from egoworld.experiments.action_following import first_chunks, high_noise_error
from egoworld.experiments.evaluation import load_eval_clips
from egoworld.world_model import WorldModel


def roughness(video_BFCHW: torch.Tensor) -> float:
    return float(video_BFCHW.diff(dim=-1).square().mean())


@torch.no_grad()
def sampler_trajectory(model, clips, steps: int, seed: int = 0) -> list[dict]:
    fam = model.family
    video, actions = first_chunks(model, clips)
    x0 = model.codec.encode(video)
    latents = noise.randn(x0.shape, torch.Generator().manual_seed(seed), "cpu")
    cond = fam.conditions(model, video[:, 0], latents)
    sched = fam.scheduler()
    sched.set_timesteps(steps)
    rows = []
    for i, timestep in enumerate(sched.timesteps):
        t = sched.sigmas[i].expand(len(clips))
        model_t = fam.sampler_timestep(sched, i, timestep).expand(len(clips))
        v = fam.flow_velocity(model, latents, t, cond, actions, None, model_t=model_t)
        x0_hat = fam.objective.x0_from_velocity(latents, v, t.view(-1, 1, 1, 1, 1))
        x0_hat[:, :, :1] = x0[:, :, :1]
        frames = model.codec.decode(x0_hat)[:, 1:]
        err = float((frames - video[:, 1:]).square().mean())
        rows.append({"step": i, "t": float(t[0]), "x0_mse": err, "roughness": roughness(frames)})
        latents = fam.pin(sched.step(v, timestep, latents).prev_sample, cond)
    out = model.codec.decode(latents)[:, 1:]
    rows.append({"step": steps, "t": 0.0, "x0_mse": float((out - video[:, 1:]).square().mean()),
                 "roughness": roughness(out)})  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a world-model folder (Cosmos or Wan family)")
    ap.add_argument("--worlds", required=True, help="held-out nav worlds (worlds generate --task nav)")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--steps", type=int, nargs="+", default=[12, 50])
    ap.add_argument("--times", type=float, nargs="+", default=[0.02, 0.1, 0.3, 0.5, 0.7, 0.9])
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = WorldModel.from_pretrained(args.model).eval()
    clips = load_eval_clips(args.worlds, model.config.num_frames, model.config.height)[: args.clips]
    video = first_chunks(model, clips)[0]
    print(f"ground truth: roughness {roughness(video[:, 1:]):.4f}")
    for t in args.times:
        r = high_noise_error(model, clips, t=t, draws=2)
        print(f"forward-noised t={t:.2f}: x0 MSE {r['model']:.4f} (copy first frame {r['copy_first']:.4f}, "
              f"ratio {r['ratio']:.2f})")  # fmt: skip
    for steps in args.steps:
        rows = sampler_trajectory(model, clips, steps)
        shown = sorted({0, *range(0, steps, max(1, steps // 6)), steps - 1, steps})
        for r in (rows[k] for k in shown):
            print(f"sampler {steps:>3} steps, step {r['step']:>3} t={r['t']:.3f}: x0 MSE {r['x0_mse']:.4f}, "
                  f"roughness {r['roughness']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
