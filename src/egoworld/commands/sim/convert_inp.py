"""`egoworld sim convert-inp`: the original Wan / VideoX-Fun Fun-InP release layout -> the diffusers layout.

A thin front end of `egoworld.sim.convert_inp`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from egoworld.cli import add_command, need_path

CONVERT_DESCRIPTION = (
    "Convert a Wan 2.1 Fun-InP (or Wan 2.1 i2v) transformer from the original Wan / VideoX-Fun release "
    "layout (SRC/config.json with dim, in_dim, num_heads, ... and diffusion_pytorch_model.safetensors with "
    "the original key names) into the diffusers layout (DST/transformer/) that ObservationModel.from_inp "
    "loads. --components links the VAE, UMT5, tokenizer, CLIP and scheduler of a diffusers Wan 2.1 i2v "
    "folder beside it. Weights are read from safetensors; a .bin/.pt/.pth only if torch.load(weights_only="
    "True) accepts it. See docs/egosim.md."
)
CONVERT_EXAMPLES = """
egoworld sim convert-inp Wan2.1-Fun-14B-InP --out Wan2.1-Fun-14B-InP-diffusers \\
    --components Wan2.1-I2V-14B-480P-Diffusers
egoworld sim convert-inp Wan2.1-Fun-1.3B-InP --out fun13-diffusers --dtype bfloat16
"""


def register(sub) -> None:
    """`sim convert-inp`: original Wan / VideoX-Fun transformer weights -> the diffusers layout."""
    c = add_command(
        sub,
        "convert-inp",
        help="original Wan2.1-Fun-InP release layout -> diffusers layout",
        description=CONVERT_DESCRIPTION,
        examples=CONVERT_EXAMPLES,
    )
    c.add_argument("convert_src", metavar="SRC", type=Path, help="original checkpoint folder")
    c.add_argument(
        "--out",
        dest="convert_out",
        metavar="DST",
        type=Path,
        required=True,
        help="output folder (new, empty or an earlier convert-inp output; replaced when complete)",
    )
    c.add_argument(
        "--components",
        metavar="DIR",
        type=Path,
        default=None,
        help="a diffusers Wan 2.1 i2v folder: its vae/, text_encoder/, tokenizer/, image_encoder/ are linked",
    )
    c.add_argument(
        "--dtype",
        dest="convert_dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="cast the weights (default: keep the stored dtypes)",
    )
    c.set_defaults(func=run_convert_inp)


def check_convert_request(args: argparse.Namespace) -> None:
    """Every check of `sim convert-inp` that needs no torch (and writes nothing)."""
    from egoworld.io_utils import check_outputs_distinct, check_replaceable
    from egoworld.sim.convert_inp import MARKER, check_components, read_original_config

    check_replaceable(args.convert_out, MARKER)
    check_outputs_distinct(
        {"--out": args.convert_out},
        {"SRC": args.convert_src, "--components": args.components},
        replaced_folders=["--out"],
    )
    if args.components is not None:
        check_components(args.components)
    need_path(args.convert_src, "SRC", "folder", "an original Wan / VideoX-Fun checkpoint folder")
    read_original_config(args.convert_src)


def run_convert_inp(args: argparse.Namespace) -> int:
    check_convert_request(args)  # before torch or any output

    import torch

    from egoworld.sim.convert_inp import convert_inp

    dtype = None if args.convert_dtype is None else getattr(torch, args.convert_dtype)
    out = convert_inp(args.convert_src, args.convert_out, components=args.components, torch_dtype=dtype)
    print(f"wrote the diffusers transformer{' and components' if args.components else ''} to {out}")
    return 0
