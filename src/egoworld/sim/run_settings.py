"""One set of settings: the closed loop runs as its observation model was trained, unless told otherwise.

A model trained by `egoworld sim train-observe` records how its training states were made
(`egoworld.sim.observe_config.TrainingSettings`: renderer, voxel size, truncation, depth range,
frames fused; the clip length and resolution are the model's own). `run_settings` turns that record,
the state about to be simulated and the user's overrides into what `EgoSim` gets, with one line per
place where the run departs from training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from egoworld.sim.render import DEFAULT_METHOD
from egoworld.sim.state import ESTIMATED_DEPTH_TRUNC_MULTIPLIER, StateConfig


@dataclass
class RunSettings:
    """What the loop uses: the renderer Π, the update's truncation (voxels) for ground-truth or
    state-rendered depth and for estimated depth, and notes on departures from training."""

    render: str
    trunc_voxel_multiplier: float
    estimated_trunc_voxel_multiplier: float
    notes: list[str] = field(default_factory=list)

    def truncation(self, estimated_depth: bool) -> float:
        """The static fusion's truncation (voxels) for depth of this kind."""
        return self.estimated_trunc_voxel_multiplier if estimated_depth else self.trunc_voxel_multiplier


def _differs(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) > 1e-9 * max(abs(float(a)), abs(float(b)), 1.0)


def run_settings(
    training=None,  # TrainingSettings | None, the model's record
    state_config: StateConfig | None = None,
    *,
    render: str | None = None,
    trunc_voxel_multiplier: float | None = None,
) -> RunSettings:
    """The loop's settings: the user's (`render`, `trunc_voxel_multiplier`) where given, else training's.

    Without a record (a random or older model) the renderer is `DEFAULT_METHOD` and the truncation
    the state's own. Estimated depth is fused at least as wide as `ESTIMATED_DEPTH_TRUNC_MULTIPLIER`
    unless the user gives a truncation (then it applies to every kind of depth).
    """
    state_config = state_config or StateConfig()
    notes = []
    trained_render = getattr(training, "render", None)
    if render is None:
        render = trained_render or DEFAULT_METHOD
    elif trained_render is not None and render != trained_render:
        notes.append(f"--render {render} differs from the model's training renderer ({trained_render})")
    trained_voxel = getattr(training, "voxel_size", None)
    if trained_voxel is not None and _differs(trained_voxel, state_config.voxel_size):
        notes.append(
            f"the state's voxel size {state_config.voxel_size:g} m differs from the model's training "
            f"voxel size ({trained_voxel:g} m); rebuild it with "
            f"`egoworld sim build-state --voxel {trained_voxel:g}`"
        )
    trained_trunc = getattr(training, "trunc_voxel_multiplier", None)
    if trunc_voxel_multiplier is not None:
        if trained_trunc is not None and _differs(trunc_voxel_multiplier, trained_trunc):
            notes.append(
                f"--trunc {trunc_voxel_multiplier:g} differs from the model's training truncation "
                f"({trained_trunc:g} voxels)"
            )
        trunc = estimated = float(trunc_voxel_multiplier)
    else:
        trunc = float(trained_trunc if trained_trunc is not None else state_config.trunc_voxel_multiplier)
        estimated = max(trunc, ESTIMATED_DEPTH_TRUNC_MULTIPLIER)
    return RunSettings(render, trunc, estimated, notes)
