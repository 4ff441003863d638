"""`egoworld play`: walk through any picture with a world model in the browser.

    egoworld play [--model DIR] [--host 127.0.0.1] [--port 7860] [--steps N] [--seed S]
                  [--device cpu] [--threads N] [--max-upload-mb 20]

Starts a local web app (FastAPI + uvicorn) and prints its address. The page picks a start image
(upload, drag and drop or a bundled sample) and steers the model with keys or sliders; see
docs/play.md. The logic lives in `egoworld.play`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    """Add the `play` parser."""
    p = subparsers.add_parser(
        "play",
        help="walk through any picture with a world model in your browser",
        description="Start a local web app: pick a start image (upload, drag and drop or a bundled\n"
        "sample), steer with the arrow keys / WASD (or sliders for other action spaces), watch the\n"
        "world model generate the walk chunk by chunk, download it as mp4/GIF with its action file.\n"
        "Binds to 127.0.0.1 unless --host says otherwise. See docs/play.md.",
        epilog="examples:\n"
        "  egoworld play\n"
        "  egoworld play --model runs/my-model/final --port 8000 --steps 8\n"
        "  egoworld play --port 0 --threads 1      # any free port; one torch thread on a busy CPU",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", type=Path, help="world-model folder (default: the shipped demo-nav model)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    p.add_argument(
        "--steps", type=int, help="sampler steps per chunk (default: the model's; fewer is faster)"
    )
    p.add_argument("--seed", type=int, default=0, help="base sampling seed (chunk k uses seed + k)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's; 1 is faster on a busy shared CPU)"
    )
    p.add_argument(
        "--max-upload-mb", type=float, default=20.0, help="largest accepted upload (default 20 MB)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from egoworld.play.engine import load_engine
    from egoworld.play.server import bind_socket, create_app, serve, url_of

    if not args.max_upload_mb > 0:
        raise ValueError(f"--max-upload-mb {args.max_upload_mb}; expected > 0")
    if args.model is not None and not args.model.is_dir():
        raise FileNotFoundError(f"--model {args.model}: folder not found; expected a world-model folder")
    sock = bind_socket(args.host, args.port)  # a port in use fails before the model loads
    try:
        engine = load_engine(
            args.model, device=args.device, steps=args.steps, seed=args.seed, threads=args.threads
        )
    except BaseException:
        sock.close()
        raise
    app = create_app(engine, warmup=True, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024))
    m = engine.describe()
    print(
        f"egoworld play: {url_of(sock)}  (model {m['name']}: {m['width']}x{m['height']}, "
        f"{m['chunk']} frames per chunk, {m['steps']} sampler steps; Ctrl+C stops)",
        flush=True,
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"egoworld play: listening on {args.host}: other machines can reach this page", flush=True)
    try:
        serve(app, sock)
    finally:
        engine.close()
    print("egoworld play: stopped")
    return 0
