"""Parameter counts and forward+backward times of the action-conditioned backbones.

    .venv/bin/python benchmarks/bench_conditioning.py [--out docs/conditioning-bench.md] [--repeats 5]

Tiny presets: CPU forward+backward of the wrapped denoiser (batch 2). Real-size presets: parameter
counts (built on the meta device, no memory), and on a CUDA machine the forward latency in bf16 with
random weights. Writes a Markdown table; not a test.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from egoworld import condition_on_actions
from egoworld.backbones import cosmos, svd, wan


def tiny_case(name: str):
    """(model, inputs, video frames) at the sizes the tests use."""
    if name == "svd":
        m = svd.build_unet("tiny")
        x = dict(sample=torch.randn(2, 8, 8, 16, 16), timestep=torch.tensor([0.5, 0.5]),
                 encoder_hidden_states=torch.randn(2, 1, 32), added_time_ids=torch.randn(2, 3))  # fmt: skip
        return m, x, 8
    if name == "cosmos":
        m = cosmos.build_transformer("tiny")
        x = dict(hidden_states=torch.randn(2, 4, 3, 16, 16), timestep=torch.tensor([0.3, 0.3]),
                 encoder_hidden_states=torch.randn(2, 5, 16), condition_mask=torch.zeros(2, 1, 3, 16, 16),
                 padding_mask=torch.zeros(1, 1, 16, 16))  # fmt: skip
        return m, x, 9
    preset = "tiny-i2v" if name == "wan-i2v" else "tiny"
    m = wan.build_transformer(preset)
    x = dict(hidden_states=torch.randn(2, m.config.in_channels, 3, 16, 16),
             timestep=torch.tensor([300.0, 300.0]), encoder_hidden_states=torch.randn(2, 5, 16))  # fmt: skip
    if m.config.image_dim:
        x["encoder_hidden_states_image"] = torch.randn(2, 4, m.config.image_dim)
    return m, x, 9


def time_fwd_bwd(model, inputs, frames: int, repeats: int) -> float:
    wrapped = condition_on_actions(model, 3).train()
    actions = torch.randn(2, frames, 3)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        out = wrapped(**inputs, actions=actions)
        (out[0] if isinstance(out, tuple) else out.sample).square().mean().backward()
        if i:  # the first call warms up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


REAL = {
    "SVD-XT (UNet)": lambda: svd.build_unet("svd-xt"),
    "Cosmos-Predict2-2B (DiT)": lambda: cosmos.build_transformer("cosmos-predict2-2b"),
    "Wan 2.1 T2V 1.3B (DiT)": lambda: wan.build_transformer("wan2.1-t2v-1.3b"),
    "Wan 2.1 Fun-InP 1.3B (DiT)": lambda: wan.build_transformer("wan2.1-fun-1.3b-inp"),
    "Wan 2.1 T2V 14B (DiT)": lambda: wan.build_transformer("wan2.1-t2v-14b"),
}


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/conditioning-bench.md")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    lines = [
        "# Action conditioning: sizes and speed",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_conditioning.py`; machine: {platform.machine()}, "
        f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}"
        f"{', CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ', no GPU'}.",
        "",
        "## Tiny presets (CPU, batch 2, forward + backward of the wrapped denoiser, median)",
        "",
        "| backbone | base params | action-encoder params | latents | video frames | fwd+bwd (ms) |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name in ("svd", "cosmos", "wan", "wan-i2v"):
        model, inputs, frames = tiny_case(name)
        base = count(model)
        wrapped = condition_on_actions(model, 3)
        enc = count(wrapped.action_encoder)
        x = inputs.get("sample", inputs.get("hidden_states"))
        ms = 1000 * time_fwd_bwd(model, inputs, frames, args.repeats)
        lines.append(f"| {name} | {base:,} | {enc:,} | {list(x.shape)} | {frames} | {ms:.0f} |")
    lines += ["", "## Real-size presets (random weights; parameters counted on the meta device)", ""]
    lines += [
        "| model | base params | action-encoder params (3-DoF, sincos) | GPU bf16 forward |",
        "|---|---:|---:|---|",
    ]
    for name, build in REAL.items():
        with torch.device("meta"):
            model = build()
            enc = count(condition_on_actions(model, 3).action_encoder)
        gpu = "not measured (no GPU in this run)"
        lines.append(f"| {name} | {count(model) / 1e9:.2f} B | {enc / 1e6:.2f} M | {gpu} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
