"""What the page steers a model with: keys for navigation, sliders for other action spaces.

    controller_for(model) -> Controller   kind "keys" | "sliders" | "none"
    Controller.action(message) -> float32 [D] raw action for one step (the model normalises it)
    Controller.path(actions [N, D]) -> float [N, 3] commanded poses (x m, y m, yaw rad), or None

Navigation (3-DoF deltas, `egoworld.actions.spaces`): one key press is one step. The step sizes
follow the model's training statistics where it has them: a move is one waypoint (the dataset's
`spacing`) and a turn 15 degrees, each clipped to the largest step of that sign seen in training;
a direction the model never saw (e.g. backward for forward-only data) keeps its default size and
is marked untrained. Other action spaces get one slider per action dimension (range: the
training min..max) and, for models conditioned on a robot state (Eq. 6), one per state dimension.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from egoworld.rollout import SCRIPT_WORDS, model_spacing

MAX_SLIDERS = 64  # above this many dimensions a page of sliders is no controller
TURN_RAD = math.radians(15.0)
# (word, label, keys, default amount: waypoints for moves, radians for turns)
NAV_MOVES: tuple[tuple[str, str, tuple[str, ...], float], ...] = (
    ("forward", "forward", ("ArrowUp", "w"), 1.0),
    ("backward", "back", ("ArrowDown", "s"), 1.0),
    ("turn_left", "turn left", ("ArrowLeft", "a"), TURN_RAD),
    ("turn_right", "turn right", ("ArrowRight", "d"), TURN_RAD),
    ("strafe_left", "strafe left", ("q",), 0.5),
    ("strafe_right", "strafe right", ("e",), 0.5),
    ("stay", "stay", (" ",), 0.0),
)


@dataclass
class Move:
    """One button / key of the navigation controller: a raw action `vector` [3] per press."""

    name: str
    label: str
    keys: list[str]
    vector: list[float]
    trained: bool = True


@dataclass
class Slider:
    """One slider: a named action (or state) dimension with its range."""

    name: str
    min: float
    max: float
    step: float
    value: float = 0.0


@dataclass
class Controller:
    """How the page drives one model.

    Args:
        kind: "keys" (3-DoF navigation: buttons and keys), "sliders" (one slider per dimension)
            or "none" (the page has no controller for this model; `note` says why).
        action_dim: width D of one raw action; state_dim: width of the robot state, or None.
        moves: the navigation buttons (kind "keys").
        sliders, state: slider specs for the action and the state (kind "sliders").
        spacing: metres per action unit for the minimap (None: moves are in action units).
        note: one sentence for the page (what the controls mean, or why there are none).
    """

    kind: str
    action_dim: int
    state_dim: int | None = None
    moves: list[Move] = field(default_factory=list)
    sliders: list[Slider] = field(default_factory=list)
    state: list[Slider] = field(default_factory=list)
    spacing: float | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def action(self, message: dict[str, Any]) -> tuple[np.ndarray, str]:
        """A page message -> (raw action float32 [D], label); ValueError for anything else.

        Keys: {"command": "forward"}. Sliders: {"vector": [D numbers]}.
        """
        if self.kind == "none":
            raise ValueError(f"this model has no controller on the page: {self.note}")
        if self.kind == "keys":
            command = message.get("command")
            for move in self.moves:
                if move.name == command:
                    return np.asarray(move.vector, dtype=np.float32), move.name
            raise ValueError(f"unknown command {command!r}; expected one of {[m.name for m in self.moves]}")
        return _vector(message.get("vector"), self.sliders, "action"), "sliders"

    def state_vector(self, values: Any) -> np.ndarray | None:
        """The robot state [S] from the page's state sliders (defaults when `values` is None)."""
        if self.state_dim is None:
            return None
        if values is None:
            return np.asarray([s.value for s in self.state], dtype=np.float32)
        return _vector(values, self.state, "state")

    def path(self, actions_ND: np.ndarray) -> np.ndarray | None:
        """Commanded poses float [N, 3] = (x m, y m, yaw rad) from raw actions [N, 3]; row 0 = start."""
        if self.kind != "keys":
            return None
        from egoworld.worlds.nav import integrate

        a = np.asarray(actions_ND, dtype=np.float64).reshape(-1, 3)
        steps = a[1:].copy()  # [N-1, 3]
        steps[:, :2] *= self.spacing or 1.0
        traj = integrate((0.0, 0.0), 0.0, steps)
        return np.concatenate([traj.position, traj.yaw[:, None]], axis=1)

    def script(self, labels: list[str]) -> str | None:
        """The walk as a navigation script for `egoworld rollout --actions` (keys with a known spacing)."""
        if self.kind != "keys" or self.spacing is None or not labels:
            return None
        moves = {m.name: m for m in self.moves}
        parts: list[str] = []
        run, count = None, 0
        for label in [*labels, None]:
            if label == run:
                count += 1
                continue
            if run is not None:
                parts.append(_script_step(moves[run], self.spacing) + (f" x{count}" if count > 1 else ""))
            run, count = label, 1
        return "; ".join(parts)


def _script_step(move: Move, spacing: float) -> str:
    kind, _ = SCRIPT_WORDS[move.name]
    if kind == "stay":
        return "stay"
    if kind == "turn":
        return f"{move.name} {math.degrees(abs(move.vector[2])):.6g}deg"
    return f"{move.name} {float(np.abs(move.vector[:2]).max()) * spacing:.6g}m"


def _vector(values: Any, sliders: list[Slider], what: str) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} {values!r} is not a list of numbers ({err})") from err
    if v.shape != (len(sliders),):
        raise ValueError(f"{what} has shape {v.shape}; expected [{len(sliders)}]")
    if not np.isfinite(v).all():
        raise ValueError(f"{what} contains NaN or Inf; expected finite numbers")
    return v.astype(np.float32)


def _stats(model) -> tuple[np.ndarray, np.ndarray] | None:
    """The (min, max) of one training step: the statistics' range, or for a model trained on poses
    relative to the chunk's first frame (whose statistics span whole chunks) the recorded range of
    one step (`step_min`/`step_max`; None when the statistics predate that record)."""
    norm = getattr(model, "normalizer", None)
    if norm is None or norm.action_dim != model.config.action_dim:
        return None
    if norm.meta.get("action_mode") == "cumulative":
        if "step_min" not in norm.meta or "step_max" not in norm.meta:
            return None
        return np.asarray(norm.meta["step_min"], np.float64), np.asarray(norm.meta["step_max"], np.float64)
    return np.asarray(norm.min, dtype=np.float64), np.asarray(norm.max, dtype=np.float64)


def _nav_moves(model) -> list[Move]:
    stats = _stats(model)
    moves = []
    for word, label, keys, default in NAV_MOVES:
        _, sign = SCRIPT_WORDS[word]
        sign = np.asarray(sign, dtype=np.float64)
        amount, trained = default, True
        if word != "stay" and stats is not None:
            dim = int(np.flatnonzero(sign)[0])
            lo, hi = stats
            largest = hi[dim] if sign[dim] > 0 else -lo[dim]  # the largest step of this sign in training
            if largest > 1e-6:
                amount = min(default, float(largest))
            else:
                trained = False
        moves.append(Move(word, label, list(keys), (sign * amount).tolist(), trained))
    return moves


def _names(dim: int, prefix: str) -> list[str]:
    if dim == 25:  # the 1X humanoid layout (states; actions are their per-step differences)
        from egoworld.worlds.humanoid_model import STATE_NAMES

        return [f"{prefix}{n}" for n in STATE_NAMES]
    return [f"{prefix}{i}" for i in range(dim)]


def _action_sliders(model) -> list[Slider]:
    dim = int(model.config.action_dim)
    stats = _stats(model)
    if stats is None:
        lo, hi = np.full(dim, -2.0), np.full(dim, 2.0)  # no statistics: raw == model scale (~ +-2 std)
    else:
        lo, hi = np.minimum(stats[0], 0.0), np.maximum(stats[1], 0.0)
        flat = hi - lo < 1e-6
        lo, hi = np.where(flat, -1.0, lo), np.where(flat, 1.0, hi)
    names = _names(dim, "Δ " if dim == 25 else "a")
    return [
        Slider(n, round(float(a), 6), round(float(b), 6), float(f"{(b - a) / 100:.3g}"))
        for n, a, b in zip(names, lo, hi)
    ]


def _state_sliders(dim: int) -> list[Slider]:
    sliders = []
    for name in _names(dim, "" if dim == 25 else "s"):
        lo, hi = (
            (0.0, 1.0) if "closure" in name else (-1.5, 1.5) if "velocity" in name else (-math.pi, math.pi)
        )
        sliders.append(Slider(name, lo, hi, float(f"{(hi - lo) / 100:.3g}")))
    return sliders


def controller_for(model) -> Controller:
    """The controller the page offers for `model` (a `WorldModel`)."""
    c = model.config
    dim, state_dim = int(c.action_dim), c.state_dim
    if dim > MAX_SLIDERS or (state_dim or 0) > MAX_SLIDERS:
        return Controller(
            "none",
            dim,
            state_dim,
            note=f"this model's actions have {dim} dimensions (state: {state_dim}); the page offers sliders "
            f"for at most {MAX_SLIDERS} — it needs another controller (WorldModel.rollout from Python)",
        )
    if dim == 3 and state_dim is None:
        try:
            spacing: float | None = model_spacing(model)
            note = f"one press = one step; a move of one waypoint is {spacing:g} m (the model's spacing)"
        except ValueError:
            spacing = None
            note = (
                "one press = one step; the model does not store its metric spacing, so moves are in waypoints"
            )
        moves = _nav_moves(model)
        untrained = [m.label for m in moves if not m.trained]
        if untrained:
            note += f"; never seen in training: {', '.join(untrained)}"
        return Controller("keys", dim, None, moves=moves, spacing=spacing, note=note)
    note = (
        f"{dim}-D actions: set the sliders, then press Enter or 'step' for one step "
        "(ranges: the model's training statistics)"
    )
    state = _state_sliders(state_dim) if state_dim else []
    if state_dim:
        note += f"; the {state_dim}-D robot state sliders are the state each chunk starts from"
    return Controller("sliders", dim, state_dim, sliders=_action_sliders(model), state=state, note=note)
