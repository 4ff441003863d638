"""Why does an action path not learn? Its hidden features and its share of the update, per model.

    .venv/bin/python benchmarks/action_path_anatomy.py --worlds NAV_EVAL --models NAME=MODEL_DIR ... \
        [--clips 16] [--draws 4] [--normalizer-from MODEL_DIR] [--out anatomy.json]

For each world-model folder (a run's `final/` or `checkpoints/step-*/model`), on the first chunk of
the first `--clips` held-out worlds:

* `h`, `h_split`: the action encoder's hidden features h (the input of its zero-initialised output
  layer, `ActionEncoder.proj_out`) under the true actions, and how much they differ under the
  mirrored ones, |h(a) - h(mirror a)| (mean per-frame L2). The output layer can only learn to tell
  left from right through that difference.
* `grad_encoder`: the norm of the training loss's gradient on the whole action encoder (mean over
  draws): how hard the loss pushes the action path at all.
* `split_update`: the part of the output layer's gradient that separates left from right. Each clip
  is scored with its true actions and, horizontally flipped, with the mirrored actions (the pairs
  that `data.mirror` trains on), same noise; with g = dL/de_a and h as above, the pair's gradient on
  the output weight is g h^T + g' h'^T, whose split part is (g - g')(h - h')^T / 2. Its mean over
  clips and draws (the norm of the mean matrix), beside `offset_update`, the norm of the mean of
  the offset part (g + g')(h + h')^T / 2.

* `noise_cost`: how much the training loss rises (relative) when e_a gets a random perturbation of
  norm 1 per latent frame, same noise draws: what an action path that does not yet say anything
  useful costs the model; a path that costs more is pushed back to zero harder.

docs/results.md ("Why the prior held the action path back") reads these numbers. Not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from egoworld.experiments.action_following import first_chunks
from egoworld.experiments.evaluation import load_eval_clips
from egoworld.world_model import WorldModel


def _recorded_proj_out(model):
    """A forward hook on the action encoder's output layer that keeps its input h and output e_a
    (with e_a's gradient retained); returns (record dict, hook handle)."""
    record = {}

    def hook(module, args, out):
        if out.requires_grad:
            out.retain_grad()
        record["h"], record["e"] = args[0].detach(), out

    return record, model.denoiser.action_encoder.proj_out.register_forward_hook(hook)


def anatomy(model, clips, draws: int) -> dict:
    video, true = first_chunks(model, clips)
    _, mirrored = first_chunks(model, clips, mirrored=True)
    record, handle = _recorded_proj_out(model)
    encoder = model.denoiser.action_encoder
    try:
        model.train()
        grad_norms, split, offset = [], [], []
        for d in range(draws):
            grads, hidden = [], []
            for frames, actions in ((video, true), (video.flip(-1), mirrored)):  # [B, F, 3, H, W]
                model.zero_grad()
                generator = torch.Generator(device="cpu").manual_seed(d)
                model.loss({"frames": frames, "actions": actions}, generator).backward()
                grads.append(record["e"].grad.detach().clone())  # [B, T, D]
                hidden.append(record["h"].clone())  # [B, T, hidden]
            grad_norms.append(float(torch.cat([p.grad.flatten() for p in encoder.parameters()]).norm()))
            (g, g_m), (a, a_m) = grads, hidden
            split.append(torch.einsum("btd,bth->dh", g - g_m, a - a_m) / (2 * len(g)))
            offset.append(torch.einsum("btd,bth->dh", g + g_m, a + a_m) / (2 * len(g)))
    finally:
        handle.remove()
        model.zero_grad()
        model.eval()
    h, h_m = hidden  # the features depend on the actions only: the last draw's are every draw's
    return {
        "noise_cost": noise_cost(model, video, true, draws),
        "h": float(h.norm(dim=-1).mean()),
        "h_split": float((h - h_m).norm(dim=-1).mean()),
        "grad_encoder": sum(grad_norms) / draws,
        "split_update": float(torch.stack(split).mean(0).norm()),
        "offset_update": float(torch.stack(offset).mean(0).norm()),
    }


def noise_cost(model, video, actions, draws: int, size: float = 1.0) -> float:
    """Relative rise of the loss when e_a [B, T, D] gets a random perturbation of norm `size` per
    latent frame (one direction per draw), same noise draws as without it."""
    encoder = model.denoiser.action_encoder
    generator = torch.Generator(device="cpu").manual_seed(1234)
    batch = {"frames": video, "actions": actions}
    plain = perturbed = 0.0
    with torch.no_grad():
        shape = encoder(actions, None).shape  # [B, T, D]
        for d in range(draws):
            delta = torch.randn(shape, generator=generator)
            delta = size * delta / delta.norm(dim=-1, keepdim=True)
            plain += float(model.loss(batch, torch.Generator(device="cpu").manual_seed(d)))
            perturb = lambda module, args, out, delta=delta: out + delta  # noqa: E731
            handle = encoder.proj_out.register_forward_hook(perturb)
            try:
                perturbed += float(model.loss(batch, torch.Generator(device="cpu").manual_seed(d)))
            finally:
                handle.remove()
    return (perturbed - plain) / plain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", type=Path, required=True, help="held-out nav worlds (worlds generate)")
    ap.add_argument("--models", nargs="+", required=True, help="NAME=MODEL_DIR (world-model folders)")
    ap.add_argument("--clips", type=int, default=16, help="held-out clips (the first N worlds)")
    ap.add_argument("--draws", type=int, default=4, help="noise draws for the gradients")
    ap.add_argument(
        "--normalizer-from",
        default=None,
        help="a model folder whose action statistics every model uses (a passive prior as its "
        "fine-tune starts: the fine-tuned model's)",
    )
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "worlds": str(args.worlds),
        "models": {},
    }
    for spec in args.models:
        name, _, folder = spec.partition("=")
        model = WorldModel.from_pretrained(folder).eval()
        if args.normalizer_from:
            model.normalizer = WorldModel.from_pretrained(args.normalizer_from).normalizer
        clips = load_eval_clips(args.worlds, model.config.num_frames, model.config.height)[: args.clips]
        row = anatomy(model, clips, args.draws)
        result["models"][name] = {"folder": folder, **row}
        print(f"{name}: " + ", ".join(f"{k} {v:.3e}" for k, v in row.items()), flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
