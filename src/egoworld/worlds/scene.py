"""Procedural scenes as MJCF: indoor rooms and outdoor yards with labeled structures.

Every labeled structure is one MuJoCo body named ``i{id}__{name}``; all geoms of that body and of
its unlabeled descendants carry its instance id (see `instance_lookup`). Ids start at 1 in build
order, so the same seed always gives the same ids; 0 is background (sky).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from egoworld.worlds import textures as tex

KINDS = ("static", "movable", "agent")


@dataclass(frozen=True)
class SceneObject:
    """One labeled thing: instance id (> 0), name, and kind ('static', 'movable' or 'agent')."""

    id: int
    name: str
    kind: str


@dataclass
class Scene:
    """A compiled-ready scene: MJCF text, its texture assets and the labeled objects.

    `free_region` = (xmin, xmax, ymin, ymax) in metres: floor area kept clear for an agent.
    """

    xml: str
    assets: dict[str, bytes]
    objects: list[SceneObject]
    free_region: tuple[float, float, float, float]
    kind: str
    extras: dict = field(default_factory=dict)

    def compile(self) -> mujoco.MjModel:
        return mujoco.MjModel.from_xml_string(self.xml, assets=self.assets)

    def objects_json(self) -> dict[str, dict]:
        return {str(o.id): {"name": o.name, "kind": o.kind} for o in self.objects}


def instance_lookup(model: mujoco.MjModel) -> np.ndarray:
    """Instance id per geom, int32 [ngeom]: the id of the nearest labeled ancestor body (0 if none)."""
    body_id = np.zeros(model.nbody, dtype=np.int32)
    for b in range(1, model.nbody):  # parents come before children in MuJoCo's body order
        name = model.body(b).name
        if name.startswith("i") and "__" in name and name[1 : name.index("__")].isdigit():
            body_id[b] = int(name[1 : name.index("__")])
        else:
            body_id[b] = body_id[model.body_parentid[b]]
    return body_id[model.geom_bodyid].astype(np.int32)


def _f(values) -> str:
    return " ".join(f"{float(v):.4f}" for v in np.atleast_1d(values))


def box(size, pos=(0, 0, 0), material: str | None = None, rgba=None, extra: str = "") -> str:
    """A box geom; `size` is half-extents (x, y, z) in metres."""
    look = (
        f'material="{material}"'
        if material
        else f'rgba="{_f(rgba if rgba is not None else (0.7, 0.7, 0.7, 1))}"'
    )
    return f'<geom type="box" size="{_f(size)}" pos="{_f(pos)}" {look} {extra}/>'


def cylinder(radius, half_height, pos=(0, 0, 0), material: str | None = None, rgba=None) -> str:
    look = (
        f'material="{material}"'
        if material
        else f'rgba="{_f(rgba if rgba is not None else (0.6, 0.5, 0.4, 1))}"'
    )
    return f'<geom type="cylinder" size="{_f((radius, half_height))}" pos="{_f(pos)}" {look}/>'


def ellipsoid(radii, pos=(0, 0, 0), material: str | None = None, rgba=None) -> str:
    look = (
        f'material="{material}"'
        if material
        else f'rgba="{_f(rgba if rgba is not None else (0.2, 0.5, 0.2, 1))}"'
    )
    return f'<geom type="ellipsoid" size="{_f(radii)}" pos="{_f(pos)}" {look}/>'


class SceneBuilder:
    """Collects assets, labeled bodies and raw MJCF, then emits a `Scene`.

    `textures` are user images (uint8 [S, S, 3]); when given, walls, floors, objects and paintings
    draw from them part of the time, otherwise patterns come from `egoworld.worlds.textures`.
    """

    def __init__(self, rng: np.random.Generator, textures: list[np.ndarray] | None, width: int, height: int):
        self.rng = rng
        self.user = list(textures or [])
        self.width, self.height = width, height
        self.assets: dict[str, bytes] = {}
        self.asset_xml: list[str] = []
        self.body_xml: list[str] = []
        self.objects: list[SceneObject] = []
        self.kind = "room"  # "room" or "yard"; a yard gets a sky

    # -- materials -------------------------------------------------------------------------
    def material(self, role: str = "object", repeat: float = 1.0) -> str:
        """A textured material; role 'painting' always uses a user image when there are any."""
        use_user = self.user and (role == "painting" or self.rng.uniform() < 0.5)
        img = self.user[int(self.rng.integers(len(self.user)))] if use_user else tex.procedural(self.rng)
        name = f"tex{len(self.assets)}"
        self.assets[f"{name}.png"] = tex.to_png(img)
        self.asset_xml.append(f'<texture name="{name}" type="2d" file="{name}.png"/>')
        uniform = "true" if role in ("wall", "floor") else "false"
        self.asset_xml.append(
            f'<material name="m_{name}" texture="{name}" texrepeat="{_f((repeat, repeat))}" '
            f'texuniform="{uniform}" specular="0.1"/>'
        )
        return f"m_{name}"

    def color(self, lo: float = 0.2, hi: float = 0.9) -> np.ndarray:
        return np.append(self.rng.uniform(lo, hi, size=3), 1.0)

    # -- bodies ----------------------------------------------------------------------------
    def register(self, name: str, kind: str) -> tuple[int, str]:
        """Reserve the next instance id; returns (id, body name to use in MJCF)."""
        if kind not in KINDS:
            raise ValueError(f"object kind {kind!r} is not one of {KINDS}")
        obj = SceneObject(len(self.objects) + 1, name, kind)
        self.objects.append(obj)
        return obj.id, f"i{obj.id}__{name}"

    def static(self, name: str, geoms: list[str], pos=(0, 0, 0), yaw: float = 0.0) -> int:
        """A labeled static body made of `geoms` (positions local to `pos`, rotated by `yaw`)."""
        oid, body = self.register(name, "static")
        self.body_xml.append(
            f'<body name="{body}" pos="{_f(pos)}" euler="0 0 {yaw:.4f}">{"".join(geoms)}</body>'
        )
        return oid

    def movable(self, name: str, geoms: list[str], pos=(0, 0, 0)) -> int:
        """A labeled body with a free joint (its pose is set through qpos)."""
        oid, body = self.register(name, "movable")
        self.body_xml.append(
            f'<body name="{body}" pos="{_f(pos)}"><freejoint name="j_{body}"/>{"".join(geoms)}</body>'
        )
        return oid

    def raw(self, xml: str) -> None:
        self.body_xml.append(xml)

    def build(self, free_region, extras: dict | None = None) -> Scene:
        kind = self.kind
        skybox = ""
        if kind == "yard":
            top, bottom = self.rng.uniform([0.3, 0.5, 0.8], [0.5, 0.7, 1.0]), np.array([0.9, 0.92, 0.95])
            skybox = (
                f'<texture type="skybox" builtin="gradient" rgb1="{_f(top)}" rgb2="{_f(bottom)}" '
                'width="32" height="32"/>'
            )
        xml = f"""<mujoco model="egoworld_{kind}">
<compiler angle="radian"/>
<statistic extent="10" center="0 0 1"/>
<visual>
  <global offwidth="{self.width}" offheight="{self.height}"/>
  <map znear="0.002" zfar="10"/>
  <quality shadowsize="0"/>
  <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0 0 0"/>
</visual>
<asset>{skybox}{"".join(self.asset_xml)}</asset>
<worldbody>
<light name="sun" directional="true" pos="0 0 5" dir="-0.3 -0.2 -1" diffuse="0.5 0.5 0.5" castshadow="false"/>
{chr(10).join(self.body_xml)}
</worldbody>
</mujoco>"""
        return Scene(xml, dict(self.assets), list(self.objects), tuple(free_region), kind, dict(extras or {}))


# -- furniture (local frame: floor at z = 0, centred on the body origin) --------------------------


def table(b: SceneBuilder, w: float, d: float, h: float) -> list[str]:
    """Geoms of a table `w` x `d` metres with its top surface at height `h`: a textured top, 4 legs."""
    m = b.material("object")
    legs = [
        cylinder(0.03, h / 2, (sx * (w / 2 - 0.05), sy * (d / 2 - 0.05), h / 2), rgba=(0.3, 0.25, 0.2, 1))
        for sx in (-1, 1)
        for sy in (-1, 1)
    ]
    return [box((w / 2, d / 2, 0.02), (0, 0, h - 0.02), material=m), *legs]


def _chair(b: SceneBuilder) -> list[str]:
    c = b.color()
    legs = [cylinder(0.02, 0.22, (sx * 0.18, sy * 0.18, 0.22), rgba=c) for sx in (-1, 1) for sy in (-1, 1)]
    return [
        box((0.21, 0.21, 0.025), (0, 0, 0.46), rgba=c),
        box((0.02, 0.21, 0.25), (-0.19, 0, 0.73), rgba=c),
        *legs,
    ]


def furniture(b: SceneBuilder, kind: str, height_limit: float) -> tuple[list[str], float]:
    """Geoms of one piece of furniture and its footprint radius (metres)."""
    r = b.rng
    if kind == "table":
        w, d = r.uniform(0.8, 1.4), r.uniform(0.5, 0.8)
        return table(b, w, d, r.uniform(0.7, 0.8)), 0.5 * np.hypot(w, d)
    if kind == "chair":
        return _chair(b), 0.3
    if kind == "shelf":
        w, d, h = r.uniform(0.6, 1.2), r.uniform(0.25, 0.4), min(r.uniform(1.2, 2.0), height_limit)
        m = b.material("object")
        boards = [
            box((w / 2, d / 2, 0.015), (0, 0, z), rgba=(0.35, 0.25, 0.15, 1)) for z in np.linspace(0.1, h, 4)
        ]
        sides = [box((0.02, d / 2, h / 2), (sx * w / 2, 0, h / 2), material=m) for sx in (-1, 1)]
        return [*boards, *sides, box((w / 2, 0.01, h / 2), (0, -d / 2, h / 2), material=m)], 0.5 * np.hypot(
            w, d
        )
    if kind == "cabinet":
        w, d, h = r.uniform(0.5, 1.0), r.uniform(0.4, 0.6), r.uniform(0.6, 1.0)
        return [box((w / 2, d / 2, h / 2), (0, 0, h / 2), material=b.material("object"))], 0.5 * np.hypot(
            w, d
        )
    if kind == "pillar":
        rad = r.uniform(0.12, 0.3)
        return [cylinder(rad, height_limit / 2, (0, 0, height_limit / 2), material=b.material("object"))], rad
    if kind == "box":
        s = r.uniform(0.15, 0.4, size=3)
        return [box(s, (0, 0, s[2]), material=b.material("object"))], float(np.hypot(s[0], s[1]))
    if kind == "tree":
        h = r.uniform(1.5, 3.0)
        crown = r.uniform(0.5, 1.0)
        green = (r.uniform(0.1, 0.3), r.uniform(0.4, 0.7), r.uniform(0.1, 0.3), 1)
        return [
            cylinder(r.uniform(0.08, 0.15), h / 2, (0, 0, h / 2), rgba=(0.4, 0.28, 0.15, 1)),
            ellipsoid((crown, crown, crown * r.uniform(0.8, 1.4)), (0, 0, h + crown * 0.6), rgba=green),
        ], crown
    if kind == "rock":
        s = r.uniform(0.2, 0.6, size=3) * np.array([1, 1, 0.6])
        return [ellipsoid(s, (0, 0, s[2] * 0.5), rgba=(0.5, 0.5, 0.48, 1))], float(max(s[0], s[1]))
    raise ValueError(f"unknown furniture kind {kind!r}")


def _place_in_band(b: SceneBuilder, half, band, radius, placed) -> tuple[float, float] | None:
    """A point within `band` of the edge of the rectangle [-half, half], clear of `placed` circles."""
    for _ in range(30):
        side = int(b.rng.integers(4))
        axis, sign = side % 2, (1 if side < 2 else -1)
        inset = b.rng.uniform(radius + 0.05, max(radius + 0.06, band))
        along = b.rng.uniform(-half[1 - axis] + radius, half[1 - axis] - radius)
        xy = [0.0, 0.0]
        xy[axis] = sign * (half[axis] - inset)
        xy[1 - axis] = along
        if all(np.hypot(xy[0] - px, xy[1] - py) > radius + pr + 0.05 for px, py, pr in placed):
            return xy[0], xy[1]
    return None


def room(
    rng: np.random.Generator,
    textures: list[np.ndarray] | None,
    width: int,
    height: int,
    *,
    n_items: int | None = None,
    builder: SceneBuilder | None = None,
) -> tuple[SceneBuilder, tuple[float, float, float, float]]:
    """An indoor room: floor, 4 walls, ceiling, paintings and furniture along the walls.

    Returns the builder (add agents, then `build`) and the free region kept clear in the middle.
    """
    b = builder or SceneBuilder(rng, textures, width, height)
    hx, hy, hz = rng.uniform(2.5, 4.5), rng.uniform(2.5, 4.5), rng.uniform(2.5, 3.0)
    b.static("floor", [box((hx, hy, 0.05), (0, 0, -0.05), material=b.material("floor", repeat=1.0))])
    b.static("ceiling", [box((hx, hy, 0.05), (0, 0, hz + 0.05), rgba=(0.92, 0.92, 0.9, 1))])
    for i, (pos, size) in enumerate(
        [
            ((hx + 0.05, 0, hz / 2), (0.05, hy, hz / 2)),
            ((-hx - 0.05, 0, hz / 2), (0.05, hy, hz / 2)),
            ((0, hy + 0.05, hz / 2), (hx + 0.1, 0.05, hz / 2)),
            ((0, -hy - 0.05, hz / 2), (hx + 0.1, 0.05, hz / 2)),
        ]
    ):
        b.static(f"wall_{i}", [box(size, pos, material=b.material("wall", repeat=0.7))])
    b.raw(f'<light pos="0 0 {hz - 0.2:.3f}" dir="0 0 -1" diffuse="0.4 0.4 0.4" castshadow="false"/>')
    for i in range(int(rng.integers(1, 4))):  # paintings hung on walls
        w, h = rng.uniform(0.5, 1.2), rng.uniform(0.4, 0.9)
        side = int(rng.integers(4))
        axis, sign = side % 2, (1 if side < 2 else -1)
        along = rng.uniform(-(hy if axis == 0 else hx) + w, (hy if axis == 0 else hx) - w)
        pos = [0.0, 0.0, rng.uniform(1.2, 1.8)]
        pos[axis] = sign * ((hx if axis == 0 else hy) - 0.015)
        pos[1 - axis] = along
        size = (0.01, w / 2, h / 2) if axis == 0 else (w / 2, 0.01, h / 2)
        b.static(f"painting_{i}", [box(size, pos, material=b.material("painting"))])
    band = 1.1
    placed: list[tuple[float, float, float]] = []
    kinds = ("table", "chair", "shelf", "cabinet", "pillar", "box")
    for i in range(int(rng.integers(4, 9)) if n_items is None else n_items):
        kind = kinds[int(rng.integers(len(kinds)))]
        geoms, radius = furniture(b, kind, hz)
        where = _place_in_band(b, (hx, hy), band, radius, placed)
        if where is None:
            continue
        placed.append((*where, radius))
        b.static(f"{kind}_{i}", geoms, (*where, 0.0), yaw=float(rng.uniform(-np.pi, np.pi)))
    free = (-hx + band + 0.3, hx - band - 0.3, -hy + band + 0.3, hy - band - 0.3)
    return b, free


def yard(
    rng: np.random.Generator, textures: list[np.ndarray] | None, width: int, height: int
) -> tuple[SceneBuilder, tuple[float, float, float, float]]:
    """An outdoor yard: ground, fences, trees, rocks, pillars, boxes and a shed, under a sky."""
    b = SceneBuilder(rng, textures, width, height)
    b.kind = "yard"
    h = rng.uniform(5.0, 8.0)
    b.static("ground", [box((h + 6, h + 6, 0.05), (0, 0, -0.05), material=b.material("floor", repeat=2.0))])
    fence_h = rng.uniform(0.8, 1.6)
    m = b.material("wall", repeat=0.5)
    for i, (pos, size) in enumerate(
        [
            ((h, 0, fence_h / 2), (0.05, h, fence_h / 2)),
            ((-h, 0, fence_h / 2), (0.05, h, fence_h / 2)),
            ((0, h, fence_h / 2), (h, 0.05, fence_h / 2)),
            ((0, -h, fence_h / 2), (h, 0.05, fence_h / 2)),
        ]
    ):
        b.static(f"fence_{i}", [box(size, pos, material=m)])
    band = 2.5
    placed: list[tuple[float, float, float]] = []
    kinds = ("tree", "tree", "rock", "pillar", "box", "shed")
    for i in range(int(rng.integers(6, 12))):
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "shed":
            s = rng.uniform([0.8, 0.8, 1.0], [1.2, 1.2, 1.4])
            geoms, radius = [box(s, (0, 0, s[2]), material=b.material("object"))], float(np.hypot(s[0], s[1]))
        else:
            geoms, radius = furniture(b, kind, rng.uniform(1.5, 3.0))
        where = _place_in_band(b, (h, h), band, radius, placed)
        if where is None:
            continue
        placed.append((*where, radius))
        b.static(f"{kind}_{i}", geoms, (*where, 0.0), yaw=float(rng.uniform(-np.pi, np.pi)))
    free = (-h + band + 0.3, h - band - 0.3, -h + band + 0.3, h - band - 0.3)
    return b, free


def random_scene(
    rng: np.random.Generator, textures: list[np.ndarray] | None, width: int, height: int
) -> tuple[SceneBuilder, tuple[float, float, float, float]]:
    """A room or a yard (even odds)."""
    return (room if rng.uniform() < 0.5 else yard)(rng, textures, width, height)
