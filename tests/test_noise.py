"""Randomness that works on any device (the first CUDA step used to crash on a CPU generator)."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

from egoworld import noise

SRC = Path(__file__).resolve().parents[1] / "src" / "egoworld"
DRAWS = {"randn", "rand", "randint", "normal", "randn_like", "rand_like", "randperm", "bernoulli"}


def test_no_torch_draw_passes_a_generator_and_a_device():
    """`torch.randn(..., generator=g, device=d)` fails on CUDA when g is a CPU generator; the library
    draws through egoworld.noise instead (or without `device`, then moves the result)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            keywords = {k.arg for k in node.keywords}
            if node.func.attr in DRAWS and {"generator", "device"} <= keywords:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    offenders = [o for o in offenders if not o.startswith("noise.py")]
    assert not offenders, f"draw through egoworld.noise: {offenders}"


def test_draws_land_on_the_asked_device_whatever_the_generator():
    g = torch.Generator(device="cpu")
    for draw in (
        lambda gen, dev: noise.randn((2, 3), gen, dev),
        lambda gen, dev: noise.rand((4,), gen, dev),
        lambda gen, dev: noise.randint(5, (3,), gen, dev),
    ):
        on_meta = draw(g.manual_seed(0), "meta")  # a device the generator is not on
        assert on_meta.device.type == "meta"
        a, b = draw(g.manual_seed(1), "cpu"), draw(g.manual_seed(1), torch.device("cpu"))
        assert torch.equal(a, b)  # the same seed gives the same numbers


def test_objectives_sample_noise_levels_on_another_device():
    from egoworld.objectives.edm import EDM
    from egoworld.objectives.flow import RectifiedFlow

    g = torch.Generator(device="cpu").manual_seed(0)
    assert EDM().sample_sigma(3, generator=g, device="meta").device.type == "meta"
    assert RectifiedFlow().sample_t(3, generator=g, device="meta").device.type == "meta"
