"""`egoworld train` with cumulative navigation poses and mirrored clips; the saved model is driven by
per-step commands like any other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# diffusers (through torch._dynamo) must load before the nav_data fixture loads MuJoCo's EGL libraries
# in this process (DESIGN.md: the two crash in the other order)
import egoworld.world_model  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_a_cumulative_mirrored_run_saves_its_action_mode_and_takes_scripts(tmp_path, nav_data, trainer):
    from egoworld.actions.normalization import ActionNormalizer
    from egoworld.data.nwm import NWMDataset
    from egoworld.rollout import load_actions
    from egoworld.world_model import WorldModel

    run = tmp_path / "run"
    argv = ["train", str(ROOT / "configs/tiny-svd.yaml"), "--run-dir", str(run), "--max-steps", "2",
            "--data.format=nwm", f"--data.path={nav_data}", "--data.action_mode=cumulative",
            "--data.mirror=true", "--data.val_fraction=0"]  # fmt: skip
    code, log = trainer.run(argv)
    assert code == 0, log
    saved = json.loads((run / "final" / "normalization.json").read_text())
    assert saved["meta"]["action_mode"] == "cumulative"
    # the statistics are those of poses over a whole chunk (up to 3 steps ahead), not of single steps
    steps = NWMDataset(nav_data, context=1, horizon=3, resolution=None)
    chunk = NWMDataset(nav_data, context=1, horizon=3, resolution=None, action_mode="cumulative")
    fitted = ActionNormalizer.fit(chunk.all_actions())
    np.testing.assert_allclose(saved["max"], fitted.max, rtol=1e-6)
    assert fitted.max[0] > 1.5 * ActionNormalizer.fit(steps.all_actions()).max[0]

    model = WorldModel.from_pretrained(run / "final")
    assert model.action_mode == "cumulative"
    actions = load_actions("turn_left 15deg x2; forward 0.5m x3", model)  # per-step, as for any model
    image = np.full((32, 32, 3), 120, np.uint8)
    frames = model.rollout(image, actions, num_inference_steps=1)
    assert frames.shape == (6, 32, 32, 3) and frames.dtype == np.uint8
