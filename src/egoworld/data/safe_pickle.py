"""Load untrusted pickles (NWM `traj_data.pkl`) without running code.

`pickle.load` imports and calls whatever the file names (`os.system`, ...). This unpickler
resolves only the few globals numpy needs to rebuild arrays and dtypes; every other global
raises `UnsafePickleError` before anything is called. The loaded value is then checked to hold
only dicts, lists, tuples, numbers, strings, bytes, None and numpy arrays/scalars.
"""

from __future__ import annotations

import _codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from egoworld.errors import EgoworldError

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray


class UnsafePickleError(EgoworldError, ValueError):
    """The pickle names something other than plain data."""


def _reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise UnsafePickleError(
            f"pickle rebuilds an array of type {subtype!r}; only numpy.ndarray is allowed"
        )
    return _multiarray._reconstruct(subtype, shape, dtype)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles of bytes (inside numpy arrays) call _codecs.encode(str, "latin1").
    if encoding.lower().replace("-", "") not in ("latin1", "utf8"):
        raise UnsafePickleError(f"pickle asks for codec {encoding!r}; only latin1 is allowed")
    return _codecs.encode(text, encoding)


def _frombuffer(buf, dtype, shape, order):
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order).copy()


_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): _reconstruct for m in _NUMPY_CORE},
    **{(m, "scalar"): _multiarray.scalar for m in _NUMPY_CORE},
    **{(m, "_frombuffer"): _frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "complex"): complex,
    ("__builtin__", "complex"): complex,
}
_PLAIN = (dict, list, tuple, str, bytes, int, float, bool, complex, type(None), np.ndarray, np.generic)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        fn = _ALLOWED.get((module, name))
        if fn is None:
            raise UnsafePickleError(
                f"pickle refers to {module}.{name}; only dicts, lists, tuples, numbers, strings and "
                "numpy arrays are allowed (refusing to load it)"
            )
        return fn

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("pickle uses persistent ids; only plain data is allowed")


def _check_plain(value: Any, depth: int = 0) -> None:
    if depth > 64:
        raise UnsafePickleError("pickle nests deeper than 64 levels")
    if not isinstance(value, _PLAIN):
        raise UnsafePickleError(f"pickle holds a {type(value).__name__}; only plain data is allowed")
    if isinstance(value, np.ndarray) and value.dtype.hasobject:
        for v in value.reshape(-1):
            _check_plain(v, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_plain(k, depth + 1)
            _check_plain(v, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_plain(v, depth + 1)


def safe_loads(data: bytes) -> Any:
    """Unpickle bytes that may come from anyone; raises `UnsafePickleError` on anything but data."""
    try:
        value = _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except Exception as err:  # truncated / garbage pickles raise many types
        raise UnsafePickleError(f"not a readable pickle ({type(err).__name__}: {err})") from err
    _check_plain(value)
    return value


def safe_load(path: str | Path) -> Any:
    """`safe_loads` on a file; the error names the file."""
    path = Path(path)
    try:
        return safe_loads(path.read_bytes())
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
