"""HDF5 files from untrusted sources: opened read-only, links followed inside the file only,
datasets whose declared size is implausible for the bytes stored refused, attributes read only when
they hold a single value (RECON, EgoDex)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egoworld.data import untrusted


def open_h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err


def h5_lookup(f, key: str, path: Path, hops: int = 0):
    """The object at `key`, following hard and soft links inside the file only (an external link
    could open any file on the machine); None when absent."""
    import h5py

    node = f["/"]
    for part in key.strip("/").split("/"):
        if not isinstance(node, h5py.Group):
            return None
        link = node.get(part, getlink=True)
        if link is None:
            return None
        if isinstance(link, h5py.SoftLink):
            if hops >= 8:
                raise ValueError(f"{path}: {key} goes through more than 8 soft links; expected a dataset")
            target = link.path if link.path.startswith("/") else f"{node.name.rstrip('/')}/{link.path}"
            node = h5_lookup(f, target, path, hops + 1)
            if node is None:
                return None
        elif isinstance(link, h5py.HardLink):
            node = node[part]
        else:
            where = getattr(link, "filename", type(link).__name__)
            raise ValueError(f"{path}: {key} is a link to another file ({where}); refusing to follow it")
    return node


def h5_dataset(f, key: str, path: Path):
    import h5py

    ds = h5_lookup(f, key, path)
    if ds is None:
        return None
    if not isinstance(ds, h5py.Dataset):
        raise ValueError(f"{path}: {key} is a {type(ds).__name__}; expected an HDF5 dataset")
    if ds.is_virtual or ds.external:
        raise ValueError(f"{path}: {key} takes its data from other files; expected data stored in this file")
    return ds


def check_h5_storage(ds, key: str, path: Path) -> None:
    """Refuse datasets whose declared size is implausible for the bytes actually stored."""
    if ds.size == 0:
        return
    stored = ds.id.get_storage_size()
    if stored == 0:
        raise ValueError(f"{path}: {key} declares shape {ds.shape} but stores no data; expected written data")
    declared = ds.size * ds.dtype.itemsize
    if ds.dtype.kind != "O" and declared > 2**20 and declared > untrusted.MAX_H5_COMPRESSION * stored:
        raise ValueError(
            f"{path}: {key} declares shape {ds.shape} ({declared} bytes) but stores only {stored} bytes; "
            f"expected at most {untrusted.MAX_H5_COMPRESSION}x compression"
        )


def h5_attr(f, key: str, path: Path):
    """The value of the root attribute `key`, or None when absent. An attribute holding more than one
    element is refused before it is read (the attributes read this way are single values)."""
    if key not in f.attrs:
        return None
    shape = f.attrs.get_id(key).shape  # None: an empty (null) attribute
    if shape is not None and len(shape) and int(np.prod(shape)) > 1:
        raise ValueError(f"{path}: attribute {key!r} is an array of shape {list(shape)}; expected one value")
    try:
        return f.attrs[key]
    except (OSError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: cannot read attribute {key!r} ({err})") from None
