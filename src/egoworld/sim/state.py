"""EgoSim's persistent 3D state: a TSDF of the static scene plus posed object point sets.

The static scene is fused into Open3D's tensor ``VoxelBlockGrid`` (attributes ``tsdf``,
``weight``, ``color``); each object instance is a point set (xyz in the object's own frame,
rgb uint8) with a 4×4 object-to-world pose, so an interaction moves an object by changing its pose.

File format (``save``/``load``): one ``.npz`` file, written atomically, holding

- ``meta``: a JSON string ``{"format": "egoworld.sim.state", "version": 1, "config": {...},
  "object_ids": [...]}``;
- ``block_keys`` int32 ``[B, 3]`` and ``block_tsdf`` / ``block_weight`` float32 ``[B, r, r, r, 1]``,
  ``block_color`` float32 ``[B, r, r, r, 3]`` (0..1): the grid's active voxel blocks;
- per object ``i`` (in ``object_ids`` order): ``obj{i}_points`` float32 ``[N, 3]``,
  ``obj{i}_colors`` uint8 ``[N, 3]``, ``obj{i}_pose`` float64 ``[4, 4]``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egoworld.io_utils import atomic_path, check_npz_sizes
from egoworld.sim.camera import invert_pose, validate_intrinsics, validate_poses

logger = logging.getLogger(__name__)

FORMAT = "egoworld.sim.state"
VERSION = 1
_ATTRS = ("tsdf", "weight", "color")


def _o3d():
    import open3d as o3d
    import open3d.core as o3c

    return o3d, o3c


# The voxel size of states fused from the synthetic tabletop episodes (`egoworld worlds generate
# --task tabletop`, 32-64 px at about 1 m, where one pixel covers 1.8-3.6 cm): finer voxels leave
# holes between the pixels' rays. The observation model is trained on states of this size
# (`sim train-observe`), so the closed loop must get the same (`sim build-state`); every command
# uses this constant. `StateConfig`'s own default stays the paper's 3 mm for 640x480 sensor data.
EPISODE_VOXEL_SIZE = 0.03

MAX_BLOCK_RESOLUTION = 32
MAX_INITIAL_GRID_BYTES = 8 * 2**30  # the grid grows on demand; this only bounds the up-front allocation
_BYTES_PER_VOXEL = 4 * (1 + 1 + 3)  # float32 tsdf, weight, rgb
ESTIMATED_DEPTH_TRUNC_MULTIPLIER = 8.0  # truncation (voxels) recommended for fusing estimated depth


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


@dataclass
class StateConfig:
    """TSDF settings of a :class:`SceneState`.

    Args:
        voxel_size: edge of one voxel in metres (the paper: 0.003).
        trunc_voxel_multiplier: truncation distance in voxels (truncation = this × voxel_size). 4 (12 mm
            at 3 mm voxels) suits ground-truth / sensor depth; fuse estimated (monocular) depth with
            ``ESTIMATED_DEPTH_TRUNC_MULTIPLIER`` (8) through ``integrate(..., trunc_voxel_multiplier=8)``
            or ``update_state(..., trunc_voxel_multiplier=8)`` (see docs/egosim.md).
        depth_max: depth beyond which measurements are ignored, metres (the paper: 3.0).
        depth_min: depth below which measurements are ignored, metres.
        block_resolution: voxels per block edge, an integer in [2, 32].
        block_count: initial hash-map capacity in blocks (it grows when needed); an integer >= 1 whose
            grid (block_count × block_resolution³ voxels × 20 bytes) fits in 8 GiB.
        weight_threshold: minimum fused weight for a voxel to count as observed surface.
    """

    voxel_size: float = 0.003
    trunc_voxel_multiplier: float = 4.0
    depth_max: float = 3.0
    depth_min: float = 0.05
    block_resolution: int = 8
    block_count: int = 20_000
    weight_threshold: float = 0.5

    def __post_init__(self) -> None:
        # these values may come from an untrusted file (SceneState.load): check them before Open3D sees them
        for name in ("voxel_size", "trunc_voxel_multiplier", "depth_max", "depth_min", "weight_threshold"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool):
                raise ValueError(f"{name}={v!r}; expected a number")
            if not np.isfinite(v):
                raise ValueError(f"{name}={v!r}; expected a finite number")
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size={self.voxel_size}; expected > 0 (metres)")
        if not self.depth_max > self.depth_min >= 0:
            raise ValueError(f"depth range [{self.depth_min}, {self.depth_max}]; expected 0 <= min < max")
        if not 0 < self.trunc_voxel_multiplier <= 64:
            raise ValueError(
                f"trunc_voxel_multiplier={self.trunc_voxel_multiplier}; expected in (0, 64] voxels"
            )
        if not self.weight_threshold >= 0:
            raise ValueError(f"weight_threshold={self.weight_threshold}; expected >= 0")
        r, n = self.block_resolution, self.block_count
        if not _is_int(r) or not 2 <= r <= MAX_BLOCK_RESOLUTION:
            raise ValueError(f"block_resolution={r!r}; expected an integer in [2, {MAX_BLOCK_RESOLUTION}]")
        if not _is_int(n) or n < 1:
            raise ValueError(f"block_count={n!r}; expected an integer >= 1")
        nbytes = int(n) * int(r) ** 3 * _BYTES_PER_VOXEL
        if nbytes > MAX_INITIAL_GRID_BYTES:
            raise ValueError(
                f"block_count={n} at block_resolution={r} would allocate {nbytes / 2**30:.3g} GiB up front; "
                f"expected <= {MAX_INITIAL_GRID_BYTES / 2**30:.0f} GiB, i.e. block_count <= "
                f"{MAX_INITIAL_GRID_BYTES // (int(r) ** 3 * _BYTES_PER_VOXEL)} (the grid grows when needed)"
            )
        self.block_resolution, self.block_count = int(r), int(n)

    @property
    def truncation(self) -> float:
        """Truncation distance in metres."""
        return self.trunc_voxel_multiplier * self.voxel_size


@dataclass
class ObjectInstance:
    """One object: points in its own frame, their colours, and its object-to-world pose."""

    points: np.ndarray  # [N, 3] float32, object frame
    colors: np.ndarray  # [N, 3] uint8
    pose: np.ndarray = field(default_factory=lambda: np.eye(4))  # [4, 4] object-to-world

    def world_points(self) -> np.ndarray:
        """Points in world coordinates ``[N, 3]`` float32."""
        R, t = self.pose[:3, :3], self.pose[:3, 3]
        return (self.points.astype(np.float64) @ R.T + t).astype(np.float32)


def _check_points(points: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(points)
    colors = np.asarray(colors)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"object points have shape {list(points.shape)}; expected [N, 3]")
    if colors.shape != points.shape:
        raise ValueError(f"object colors have shape {list(colors.shape)}; expected {list(points.shape)}")
    if colors.dtype != np.uint8:
        if np.issubdtype(colors.dtype, np.floating) and colors.size and colors.max() <= 1.0:
            colors = np.round(colors * 255.0)
        colors = np.clip(colors, 0, 255).astype(np.uint8)
    return points.astype(np.float32), colors


class SceneState:
    """The simulator's 3D state: a TSDF-fused static scene plus posed object point sets.

    Build it from RGB-D frames with :meth:`integrate`, add objects with :meth:`add_object`,
    render it with :func:`egoworld.sim.render.render_state`, persist it with :meth:`save` /
    :meth:`load`, view it with :meth:`export_ply` or :meth:`turntable`.
    """

    def __init__(self, config: StateConfig | None = None) -> None:
        self.config = config or StateConfig()
        self.objects: dict[Any, ObjectInstance] = {}
        self._grid = self._new_grid(self.config.block_count)
        self._surface_cache: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ grid
    def _new_grid(self, block_count: int):
        o3d, o3c = _o3d()
        c = self.config
        return o3d.t.geometry.VoxelBlockGrid(
            attr_names=_ATTRS,
            attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
            attr_channels=((1), (1), (3)),
            voxel_size=c.voxel_size,
            block_resolution=c.block_resolution,
            block_count=max(int(block_count), 16),
        )

    @property
    def grid(self):
        """The underlying ``open3d.t.geometry.VoxelBlockGrid``."""
        return self._grid

    @property
    def num_blocks(self) -> int:
        """Number of active voxel blocks."""
        return int(self._grid.hashmap().size())

    def active_block_coords(self):
        """Coordinates of active blocks, an Open3D int32 tensor ``[B, 3]``."""
        _, o3c = _o3d()
        hm = self._grid.hashmap()
        return hm.key_tensor()[hm.active_buf_indices().to(o3c.int64)]

    def _active(self) -> tuple[np.ndarray, np.ndarray]:
        """Active block keys ``[B, 3]`` int32 and their buffer indices ``[B]`` int64 (numpy)."""
        _, o3c = _o3d()
        hm = self._grid.hashmap()
        buf = hm.active_buf_indices().to(o3c.int64).numpy()
        return hm.key_tensor().numpy()[buf].astype(np.int32), buf

    def _attr(self, name: str) -> np.ndarray:
        """Zero-copy numpy view ``[capacity, r, r, r, C]`` of a grid attribute (the grid lives on the CPU).

        Open3D's own advanced indexing of these tensors is single-threaded and slow (seconds per
        10⁴ blocks), so reads and writes of voxel values go through numpy.
        """
        view = self._grid.attribute(name).numpy()
        if not view.flags["C_CONTIGUOUS"]:  # pragma: no cover - Open3D buffers are contiguous
            raise RuntimeError(f"grid attribute {name!r} is not a contiguous CPU buffer")
        return view

    def _invalidate(self) -> None:
        self._surface_cache = None

    # -------------------------------------------------------------- fusion
    def integrate(
        self,
        rgb: np.ndarray,  # [H, W, 3] uint8
        depth: np.ndarray,  # [H, W] float32 metres, 0 = no measurement
        K: np.ndarray,  # [3, 3]
        cam_to_world: np.ndarray,  # [4, 4]
        ignore_mask: np.ndarray | None = None,  # [H, W] bool, True = do not fuse
        *,
        trunc_voxel_multiplier: float | None = None,
    ) -> None:
        """Fuse one RGB-D frame into the static TSDF (pixels in `ignore_mask` are skipped).

        `trunc_voxel_multiplier` overrides the config's truncation (in voxels) for this frame, e.g.
        ``ESTIMATED_DEPTH_TRUNC_MULTIPLIER`` (8) for estimated depth. Ray casting with the config's
        (smaller) value stays correct: Open3D steps ``tsdf × truncation`` along the ray, so a smaller
        ray-cast truncation only takes shorter steps.
        """
        o3d, o3c = _o3d()
        rgb = np.asarray(rgb)
        depth = np.asarray(depth, dtype=np.float32)
        if depth.ndim != 2:
            raise ValueError(f"depth has shape {list(depth.shape)}; expected [H, W]")
        H, W = depth.shape
        if rgb.shape != (H, W, 3):
            raise ValueError(f"rgb has shape {list(rgb.shape)}; expected [{H}, {W}, 3] like the depth")
        K = validate_intrinsics(K)
        pose = validate_poses(cam_to_world)
        depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
        if ignore_mask is not None:
            ignore_mask = np.asarray(ignore_mask, dtype=bool)
            if ignore_mask.shape != (H, W):
                raise ValueError(f"ignore_mask has shape {list(ignore_mask.shape)}; expected [{H}, {W}]")
            depth = np.where(ignore_mask, 0.0, depth).astype(np.float32)
        c = self.config
        # outside [depth_min, depth_max] is no measurement (Open3D would refuse a frame with nothing else)
        depth[(depth < c.depth_min) | (depth > c.depth_max)] = 0.0
        trunc = c.trunc_voxel_multiplier if trunc_voxel_multiplier is None else float(trunc_voxel_multiplier)
        if not (np.isfinite(trunc) and 0 < trunc <= 64):
            raise ValueError(f"trunc_voxel_multiplier={trunc_voxel_multiplier!r}; expected in (0, 64] voxels")
        if not np.any(depth > 0):
            return
        color = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
        d_img = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(depth)))
        c_img = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(color)))
        Kt = o3c.Tensor(K)
        ext = o3c.Tensor(invert_pose(pose))  # Open3D wants world-to-camera
        blocks = self._grid.compute_unique_block_coordinates(d_img, Kt, ext, 1.0, c.depth_max, trunc)
        self._grid.integrate(blocks, d_img, c_img, Kt, Kt, ext, 1.0, c.depth_max, trunc)
        self._invalidate()

    def integrate_frames(
        self,
        rgb: np.ndarray,  # [T, H, W, 3] uint8
        depth: np.ndarray,  # [T, H, W] float32
        K: np.ndarray,  # [3, 3]
        cam_to_world: np.ndarray,  # [T, 4, 4]
        ignore_mask: np.ndarray | None = None,  # [T, H, W] bool
        *,
        trunc_voxel_multiplier: float | None = None,
    ) -> None:
        """Fuse a sequence of RGB-D frames (`trunc_voxel_multiplier` as in :meth:`integrate`)."""
        poses = validate_poses(cam_to_world)
        if len(poses) != len(rgb) or len(depth) != len(rgb):
            raise ValueError(
                f"got {len(rgb)} rgb, {len(depth)} depth and {len(poses)} poses; expected the same T"
            )
        for i in range(len(rgb)):
            self.integrate(
                rgb[i],
                depth[i],
                K,
                poses[i],
                None if ignore_mask is None else ignore_mask[i],
                trunc_voxel_multiplier=trunc_voxel_multiplier,
            )

    def clear_region(self, points_world: np.ndarray, radius: float) -> int:
        """Forget the TSDF within `radius` metres of `points_world` ``[N, 3]``; return voxels cleared.

        Used to remove an object that had been fused into the static scene from its old place.
        Cleared voxels get weight 0 (unobserved). Only the active blocks whose integer keys fall in
        the points' bounding box (grown by `radius`) are expanded to voxel coordinates, so the cost
        follows the region, not the grid (a room at 3 mm holds tens of millions of voxels).
        """
        from scipy.spatial import cKDTree

        pts = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        if not (np.isfinite(radius) and radius >= 0):
            raise ValueError(f"radius={radius!r}; expected a finite distance >= 0 (metres)")
        if self.num_blocks == 0 or len(pts) == 0:
            return 0
        c = self.config
        r, vs = c.block_resolution, c.voxel_size
        lo, hi = pts.min(0) - radius, pts.max(0) + radius
        keys, buf = self._active()
        # block k holds voxels (k·r + i)·voxel_size, i in [0, r)³ (Open3D's layout, x fastest)
        kmin, kmax = np.floor(lo / (vs * r)).astype(np.int64), np.floor(hi / (vs * r)).astype(np.int64)
        sel = np.all((keys >= kmin) & (keys <= kmax), axis=1)
        if not sel.any():
            return 0
        keys, buf = keys[sel].astype(np.int64), buf[sel]
        i = np.arange(r)
        local = np.stack(np.meshgrid(i, i, i, indexing="ij")[::-1], -1).reshape(-1, 3)  # [r³, 3] (x, y, z)
        coords = ((keys[:, None, :] * r + local[None]) * vs).reshape(-1, 3)  # [n·r³, 3]
        flat = (buf[:, None] * r**3 + np.arange(r**3)[None]).reshape(-1)
        box = np.all((coords >= lo) & (coords <= hi), axis=1)
        coords, flat = coords[box], flat[box]
        if len(flat) == 0:
            return 0
        dist, _ = cKDTree(pts).query(coords, k=1, distance_upper_bound=radius)
        hit = flat[np.isfinite(dist)]
        if len(hit) == 0:
            return 0
        self._attr("weight").reshape(-1)[hit] = 0.0
        self._attr("tsdf").reshape(-1)[hit] = 1.0
        self._invalidate()
        return len(hit)

    # ------------------------------------------------------------- objects
    def add_object(
        self,
        object_id: Any,
        points: np.ndarray,  # [N, 3] object frame
        colors: np.ndarray,  # [N, 3] uint8 (or float 0..1)
        pose: np.ndarray | None = None,  # [4, 4] object-to-world
    ) -> None:
        """Add an object instance; `points` are in the object's frame, `pose` maps them to the world."""
        if object_id in self.objects:
            raise ValueError(f"object id {object_id!r} already exists; use move_object or remove_object")
        pts, cols = _check_points(points, colors)
        pose = np.eye(4) if pose is None else validate_poses(pose)
        self.objects[object_id] = ObjectInstance(pts, cols, pose.copy())

    def _get(self, object_id: Any) -> ObjectInstance:
        if object_id not in self.objects:
            raise KeyError(f"no object {object_id!r} in the state; known: {sorted(map(str, self.objects))}")
        return self.objects[object_id]

    def move_object(self, object_id: Any, new_pose: np.ndarray) -> None:
        """Set an object's object-to-world pose ``[4, 4]``."""
        self._get(object_id).pose = validate_poses(new_pose).copy()

    def remove_object(self, object_id: Any) -> ObjectInstance:
        """Remove an object and return it."""
        self._get(object_id)
        return self.objects.pop(object_id)

    # ------------------------------------------------------------ geometry
    def mesh(self):
        """The fused static surface as an ``open3d.t.geometry.TriangleMesh`` (colours 0..1)."""
        return self._grid.extract_triangle_mesh(weight_threshold=self.config.weight_threshold)

    def surface_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Static surface samples: xyz ``[N, 3]`` float32 and rgb ``[N, 3]`` uint8 (mesh vertices)."""
        if self._surface_cache is None:
            if self.num_blocks == 0:
                self._surface_cache = (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))
            else:
                m = self.mesh()
                xyz = m.vertex.positions.numpy().astype(np.float32)
                rgb = np.clip(np.round(m.vertex.colors.numpy() * 255.0), 0, 255).astype(np.uint8)
                self._surface_cache = (xyz, rgb)
        return self._surface_cache

    def points(self, *, include_objects: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """All state points in world coordinates: xyz ``[N, 3]`` float32, rgb ``[N, 3]`` uint8."""
        xyz, rgb = self.surface_points()
        parts_x, parts_c = [xyz], [rgb]
        if include_objects:
            for obj in self.objects.values():
                parts_x.append(obj.world_points())
                parts_c.append(obj.colors)
        return np.concatenate(parts_x, 0), np.concatenate(parts_c, 0)

    def copy(self) -> SceneState:
        """A deep copy (grid and objects).

        The active blocks are copied buffer to buffer through numpy views (no round trip through
        the file layout, no Open3D advanced indexing) into a grid with room for twice as many blocks
        (at most the original's capacity; it grows when needed), so a copy does not pay for zeroing
        an oversized initial ``block_count``.
        """
        new = SceneState.__new__(SceneState)
        new.config = dataclasses.replace(self.config)
        new.objects = copy.deepcopy(self.objects)
        new._surface_cache = self._surface_cache  # arrays are never modified in place; cleared on change
        keys, buf = self._active()
        new._grid = new._new_grid(min(int(self._grid.hashmap().capacity()), max(2 * len(keys), 16)))
        if len(keys):
            nbuf = new._activate(keys)
            for a in _ATTRS:
                src, dst = self._attr(a), new._attr(a)
                if np.array_equal(nbuf, np.arange(len(nbuf))):  # a fresh hash map hands out 0..B-1
                    np.take(src, buf, axis=0, out=dst[: len(nbuf)])
                else:  # pragma: no cover - depends on Open3D's buffer allocation
                    dst[nbuf] = src[buf]
        return new

    # --------------------------------------------------------- persistence
    def _activate(self, keys: np.ndarray) -> np.ndarray:
        """Activate block `keys` ``[B, 3]`` in the (empty) grid; return their buffer indices ``[B]``."""
        _, o3c = _o3d()
        buf, ok = self._grid.hashmap().activate(o3c.Tensor(np.ascontiguousarray(keys, dtype=np.int32)))
        if not bool(ok.numpy().all()):
            raise ValueError("state has duplicate voxel block keys; the file is corrupt")
        return buf.to(o3c.int64).numpy()

    def _dump_blocks(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        keys, buf = self._active()
        return keys, {a: self._attr(a)[buf] for a in _ATTRS}

    def _load_blocks(self, keys: np.ndarray, vals: dict[str, np.ndarray]) -> None:
        self._grid = self._new_grid(max(self.config.block_count, 2 * len(keys)))
        if len(keys):
            buf = self._activate(keys)
            for a in _ATTRS:
                self._attr(a)[buf] = np.asarray(vals[a], dtype=np.float32)
        self._invalidate()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the state to one ``.npz`` file atomically (see the module docstring for the layout)."""
        path = Path(path)
        keys, vals = self._dump_blocks()
        ids = list(self.objects)
        try:
            meta = json.dumps(
                {
                    "format": FORMAT,
                    "version": VERSION,
                    "config": dataclasses.asdict(self.config),
                    "object_ids": ids,
                }
            )
        except TypeError as err:
            raise ValueError(f"object ids {ids!r} must be JSON-serialisable (str or int)") from err
        arrays: dict[str, np.ndarray] = {
            "meta": np.array(meta),
            "block_keys": keys,
            **{f"block_{a}": v for a, v in vals.items()},
        }
        for i, oid in enumerate(ids):
            o = self.objects[oid]
            arrays[f"obj{i}_points"] = o.points
            arrays[f"obj{i}_colors"] = o.colors
            arrays[f"obj{i}_pose"] = o.pose
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        logger.info("saved state (%d blocks, %d objects) to %s", len(keys), len(ids), path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SceneState:
        """Read a state written by :meth:`save`.

        Raises FileNotFoundError when `path` does not exist and ValueError when it is not a
        readable state file (not an npz, wrong format tag or version, missing or malformed arrays),
        or one that would inflate far beyond its size (`egoworld.io_utils.check_npz_sizes`). Pickles
        are never loaded.
        """
        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(
                f"state file {str(path)!r} is a folder; expected a .npz from SceneState.save"
            )
        if not path.is_file():
            raise FileNotFoundError(
                f"state file {str(path)!r} does not exist; expected a .npz from SceneState.save"
            )
        check_npz_sizes(path, "state file")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as err:  # numpy reports a damaged archive with zip, zlib, EOF or value errors
            raise ValueError(
                f"state file {str(path)!r} is corrupt or not an npz archive ({type(err).__name__}: {err})"
            ) from None
        try:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format tag {meta.get('format')!r}; expected {FORMAT!r}")
            if meta.get("version") != VERSION:
                raise ValueError(f"version {meta.get('version')!r}; expected {VERSION}")
            config = StateConfig(**meta["config"])
            r = config.block_resolution
            keys = data["block_keys"]
            if keys.ndim != 2 or keys.shape[1] != 3:
                raise ValueError(f"block_keys has shape {list(keys.shape)}; expected [B, 3]")
            vals = {a: data[f"block_{a}"] for a in _ATTRS}
            for a, ch in zip(_ATTRS, (1, 1, 3)):
                want = (len(keys), r, r, r, ch)
                if vals[a].shape != want:
                    raise ValueError(f"block_{a} has shape {list(vals[a].shape)}; expected {list(want)}")
            state = cls(config)
            state._load_blocks(keys, vals)
            for i, oid in enumerate(meta["object_ids"]):
                state.add_object(oid, data[f"obj{i}_points"], data[f"obj{i}_colors"], data[f"obj{i}_pose"])
        except KeyError as err:  # a missing array or meta field: name it in a sentence
            raise ValueError(
                f"state file {str(path)!r} is not a valid egoworld state: it has no {err.args[0]!r}"
            ) from None
        except (TypeError, json.JSONDecodeError, ValueError) as err:
            raise ValueError(f"state file {str(path)!r} is not a valid egoworld state: {err}") from err
        return state

    # ------------------------------------------------------------- viewing
    def export_ply(self, path: str | os.PathLike, *, include_objects: bool = True) -> Path:
        """Write the state's points (static surface + posed objects) as a coloured ``.ply``, atomically."""
        o3d, _ = _o3d()
        xyz, rgb = self.points(include_objects=include_objects)
        pc = o3d.geometry.PointCloud()
        pc.points = o3d.utility.Vector3dVector(xyz.astype(np.float64))
        pc.colors = o3d.utility.Vector3dVector(rgb.astype(np.float64) / 255.0)
        path = Path(path)
        with atomic_path(path, suffix=".ply") as tmp:
            if not o3d.io.write_point_cloud(str(tmp), pc):
                raise OSError(f"could not write {path}")
        return path

    def turntable(self, n_views: int = 8, width: int = 256, height: int = 192, **kwargs) -> np.ndarray:
        """Images ``[n_views, H, W, 3]`` uint8 from cameras circling the state (render_turntable)."""
        from egoworld.sim.render import render_turntable

        return render_turntable(self, n_views=n_views, width=width, height=height, **kwargs)

    def __repr__(self) -> str:
        return (
            f"SceneState(voxel_size={self.config.voxel_size}, blocks={self.num_blocks}, "
            f"objects={list(self.objects)})"
        )
