"""Which controller the page offers for which model, and what a press becomes."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from egoworld.actions.normalization import ActionNormalizer
from egoworld.play.controls import MAX_SLIDERS, TURN_RAD, controller_for
from egoworld.world_model import WorldModelConfig


def fake_model(action_dim=3, state_dim=None, stats=None, meta=None):
    """Only what controller_for reads: config and normalizer."""
    normalizer = None
    if stats is not None:
        lo, hi = (np.asarray(v, dtype=float) for v in stats)
        normalizer = ActionNormalizer(
            "meanstd", (lo + hi) / 2, np.ones_like(lo), lo, hi, count=10, meta=dict(meta or {})
        )
    config = WorldModelConfig(action_dim=action_dim, state_dim=state_dim)
    return SimpleNamespace(config=config, normalizer=normalizer)


def test_navigation_models_get_keys_clipped_to_the_training_range():
    # forward-only data like the shipped demo model: dx in [0, 1.37], small strafes and turns
    model = fake_model(stats=([0.0, -0.2, -0.25], [1.37, 0.24, 0.27]), meta={"spacing": 0.15})
    c = controller_for(model)
    assert c.kind == "keys" and c.spacing == 0.15
    moves = {m.name: m for m in c.moves}
    assert set(moves) == {
        "forward",
        "backward",
        "turn_left",
        "turn_right",
        "strafe_left",
        "strafe_right",
        "stay",
    }
    assert moves["forward"].vector == [1.0, 0.0, 0.0] and moves["forward"].trained
    assert moves["turn_left"].vector == pytest.approx([0, 0, math.radians(15)])  # below the 0.27 rad max
    assert moves["turn_right"].vector == pytest.approx([0, 0, -0.25])  # clipped to the largest right turn
    assert moves["strafe_left"].vector == pytest.approx([0, 0.24, 0])
    assert not moves["backward"].trained and moves["backward"].vector == [-1.0, 0.0, 0.0]
    assert "back" in c.note and "0.15 m" in c.note
    assert "ArrowLeft" in moves["turn_left"].keys and "a" in moves["turn_left"].keys
    action, label = c.action({"command": "turn_left"})
    assert label == "turn_left" and action.dtype == np.float32 and action.shape == (3,)
    with pytest.raises(ValueError, match="unknown command 'jump'"):
        c.action({"command": "jump"})


def test_commanded_path_and_script_follow_the_presses():
    c = controller_for(fake_model(stats=([-1, -1, -1], [1, 1, 1]), meta={"spacing": 0.25}))
    fwd = c.action({"command": "forward"})[0]
    left = c.action({"command": "turn_left"})[0]
    actions = np.stack([np.zeros(3), left, left, fwd])  # [N, 3], row 0 = start
    path = c.path(actions)
    assert path.shape == (4, 3)
    assert path[2, 2] == pytest.approx(math.radians(30), abs=1e-5)
    # one waypoint (0.25 m) forward at a heading of 30 degrees to the left
    assert path[3, :2] == pytest.approx(
        [0.25 * math.cos(math.radians(30)), 0.25 * math.sin(math.radians(30))], abs=1e-5
    )
    assert c.script(["turn_left", "turn_left", "forward"]) == "turn_left 15deg x2; forward 0.25m"


def test_models_without_spacing_move_in_waypoints():
    c = controller_for(fake_model())
    assert c.kind == "keys" and c.spacing is None and "waypoints" in c.note
    assert c.script(["forward"]) is None


def test_humanoid_models_get_named_sliders_for_actions_and_state():
    lo, hi = -np.linspace(0.1, 0.5, 25), np.linspace(0.2, 0.6, 25)
    c = controller_for(fake_model(action_dim=25, state_dim=25, stats=(lo, hi)))
    assert c.kind == "sliders" and len(c.sliders) == 25 and len(c.state) == 25
    assert c.sliders[0].name == "Δ hip_yaw" and c.sliders[0].min == pytest.approx(-0.1)
    assert c.state[21].name == "left_hand_closure" and (c.state[21].min, c.state[21].max) == (0.0, 1.0)
    action, _ = c.action({"vector": [0.1] * 25})
    assert action.shape == (25,)
    assert c.state_vector(None).shape == (25,)
    with pytest.raises(ValueError, match=r"expected \[25\]"):
        c.action({"vector": [0.1] * 3})
    with pytest.raises(ValueError, match="NaN"):
        c.action({"vector": [float("nan")] * 25})


def test_cumulative_models_clip_key_steps_to_one_training_step():
    """A model trained on chunk-relative poses: its statistics span whole chunks (here dx up to 8), the
    keys are clipped to the recorded range of one step instead; without that record, not at all."""
    stats = ([0, -3, -2], [8, 3, 2])
    meta = {"spacing": 0.15, "action_mode": "cumulative"}
    step = {"step_min": [0.0, -0.1, -0.2], "step_max": [0.5, 0.1, 0.2]}
    moves = {m.name: m for m in controller_for(fake_model(stats=stats, meta=meta | step)).moves}
    assert moves["forward"].vector == pytest.approx([0.5, 0.0, 0.0])  # one training step, not the default 1
    assert moves["turn_left"].vector == pytest.approx([0.0, 0.0, 0.2]) and moves["turn_left"].trained
    assert moves["backward"].trained is False  # no step went backwards
    unclipped = {m.name: m for m in controller_for(fake_model(stats=stats, meta=meta)).moves}
    assert unclipped["forward"].vector == pytest.approx([1.0, 0.0, 0.0])
    assert unclipped["turn_left"].vector[2] == pytest.approx(TURN_RAD)


def test_models_the_page_cannot_drive_say_so():
    # a model trained on cumulative poses is driven by the same keys (it composes each chunk's steps)
    cumulative = controller_for(fake_model(stats=([-1] * 3, [1] * 3), meta={"action_mode": "cumulative"}))
    assert cumulative.kind != "none"
    wide = controller_for(fake_model(action_dim=MAX_SLIDERS + 1))
    assert wide.kind == "none" and "another controller" in wide.note
    with pytest.raises(ValueError, match="no controller"):
        wide.action({"vector": [0.0] * (MAX_SLIDERS + 1)})
