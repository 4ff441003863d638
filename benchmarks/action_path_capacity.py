"""How much can the timestep-modulation path steer a frozen denoiser at all? (issue 14's diagnostic)

    .venv/bin/python benchmarks/action_path_capacity.py --model MODEL --worlds WORLDS \
        [--clips 4] [--sigma 8] [--iters 60] [--lr 0.05] [--norm-groups 8]

The base denoiser is frozen and, instead of the action encoder, a free embedding per clip and frame
e [B, F, D] is optimised (Adam) to lower the denoising error of held-out clips at one noise level —
the best any action encoder could do through the same path with these base weights. If even a free
e cannot bring the error near "copy the first frame", the actions' route into the network, not the
encoder, limits what training can learn. `--norm-groups` re-groups the UNet's GroupNorms first
(`model.norm_groups`). Prints the error every 10 steps; not a test. docs/results.md quotes it.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch

from egoworld.experiments.evaluation import load_eval_clips
from egoworld.world_model import WorldModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="an SVD world-model folder")
    ap.add_argument("--worlds", required=True, help="held-out nav worlds (worlds generate)")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--sigma", type=float, default=8.0, help="the EDM noise level scored")
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--norm-groups", type=int, default=None, help="re-group the UNet's GroupNorms first")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = WorldModel.from_pretrained(args.model).eval().requires_grad_(False)
    if model.config.family != "svd":
        raise SystemExit(f"{args.model} is a {model.config.family} model; this probe reads SVD's EDM path")
    if args.norm_groups:
        from egoworld.backbones.svd import set_norm_groups

        set_norm_groups(model.denoiser.base, args.norm_groups)
    c = model.config
    clips = load_eval_clips(args.worlds, c.num_frames, c.height)[: args.clips]
    frames = torch.from_numpy(np.stack([x.frames[: c.num_frames] for x in clips]))
    x0 = frames.permute(0, 1, 4, 2, 3).float().div(127.5).sub(1)  # [B, F, 3, H, W]
    b, f = x0.shape[:2]
    free = torch.zeros(b, f, model.denoiser.action_encoder.config.embed_dim, requires_grad=True)
    model.denoiser.action_encoder.forward = lambda actions, state=None: free  # the free e_a
    family = model.family
    sigma = torch.full((b,), args.sigma)
    noisy = x0 + args.sigma * torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z_cond, emb, ids = family._conditions(model, x0[:, 0])
    dummy_actions = torch.zeros(b, f, c.action_dim)
    opt = torch.optim.Adam([free], lr=args.lr)
    groups = args.norm_groups or "as built"
    print(f"{platform.machine()}, torch {torch.__version__}, {args.model}, norm groups {groups}")
    for it in range(args.iters + 1):
        denoised = family._denoise(model, noisy, sigma, z_cond, emb, ids, dummy_actions, None)
        mse = (denoised - x0).square().mean()
        if it % 10 == 0:
            size = free.norm(dim=-1).mean().item()
            print(f"step {it:>3}: MSE {mse.item():.4f}  |e| {size:.2f}", flush=True)
        if it < args.iters:
            opt.zero_grad()
            mse.backward()
            opt.step()
    print(f"copy first frame: MSE {(x0[:, :1] - x0).square().mean().item():.4f}")


if __name__ == "__main__":
    main()
