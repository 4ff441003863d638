"""Take docs/img/play.png: the page in headless Chromium after a few steps with the shipped model.

    .venv/bin/python tests/play/make_screenshot.py [--sample world-room] [--steps N] [--out docs/img/play.png]

Not a test (pytest does not collect it); it needs /usr/bin/chromium and /usr/bin/chromedriver.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.play.browser import attribute, chromium, live_server, missing_browser, text  # noqa: E402
from tests.play.helpers import wait_until  # noqa: E402

PRESSES = ["ArrowUp"] * 4 + ["ArrowLeft"] * 3 + ["ArrowUp"]
MAX_BYTES = 150_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default="world-room", help="bundled start image (default world-room)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    parser.add_argument("--model", type=Path, help="world-model folder (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "play.png")
    args = parser.parse_args()
    if reason := missing_browser():
        print(f"make_screenshot: {reason}", file=sys.stderr)
        return 2
    from PIL import Image
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from egoworld.play.engine import load_engine

    engine = load_engine(args.model, steps=args.steps)
    keys = {"ArrowUp": Keys.ARROW_UP, "ArrowLeft": Keys.ARROW_LEFT}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as downloads, live_server(engine) as url:
        with chromium(Path(downloads), width=1280, height=960) as driver:
            driver.get(url)
            wait_until(lambda: text(driver, "conn") == "connected", 60, "the page to connect")
            driver.find_element("css selector", f'#samples button[data-sample="{args.sample}"]').click()
            wait_until(lambda: attribute(driver, "current", "data-index") == "0", 60, "the start image")
            for key in PRESSES:
                ActionChains(driver).send_keys(keys[key]).perform()
                time.sleep(0.15)
            n = len(PRESSES)
            wait_until(lambda: text(driver, "stat-length") == str(n + 1), 1800, "every frame")
            wait_until(
                lambda: attribute(driver, "current", "data-index") == str(n), 120, "the last frame shown"
            )
            time.sleep(0.5)
            png = driver.get_screenshot_as_png()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    for colors in (256, 128, 64):
        buf = io.BytesIO()
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
        if buf.tell() <= MAX_BYTES:
            break
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(buf.getvalue())
    print(
        f"{args.out}: {image.size[0]}x{image.size[1]}, {buf.tell() / 1000:.0f} KB, {colors} colours, "
        f"{time.perf_counter() - t0:.0f} s ({engine.steps} sampler steps)"
    )
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
