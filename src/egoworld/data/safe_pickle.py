"""Load untrusted pickles (NWM `traj_data.pkl`) without running code, in bounded time and memory.

`pickle.load` imports and calls whatever the file names (`os.system`, ...). This unpickler
resolves only the few globals numpy needs to rebuild arrays and dtypes, and calls only checked
wrappers of them; every other global raises `UnsafePickleError` before anything is called.

A pickle can also be small and still expensive: memo references let 30 opcodes describe a list
nested 2**30 times, and numpy's rebuild functions take shapes, so 80 bytes can ask for a
3 GB array. So the work is bounded before and while loading (limits in
`egoworld.data.untrusted`), with Python's own unpickler (`pickle._Unpickler`), whose
instructions can be checked one by one:

1. the file is at most MAX_PICKLE_BYTES (checked before reading it); at most MAX_PICKLE_OPCODES
   instructions run, all from the plain-data subset (no INST/OBJ/EXT/persistent ids, and
   NEWOBJ only for complex numbers), and no declared length exceeds the file;
2. arrays and dtypes are rebuilt only after their declared shape, size and data length are
   checked against each other and against the limits;
3. the loaded value is walked once, each shared object once, counting its size as if every
   shared reference were a copy: more than MAX_PICKLE_ELEMENTS items, deeper than
   MAX_PICKLE_DEPTH levels, or a reference cycle is refused. Code that later expands the value
   (`np.asarray`) therefore does bounded work too.

It then holds only dicts, lists, tuples, numbers, strings, bytes, None and numpy arrays/scalars.
"""

from __future__ import annotations

import _codecs
import io
import math
import pickle
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from egoworld.data import untrusted
from egoworld.errors import EgoworldError

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray


class UnsafePickleError(EgoworldError, ValueError):
    """The pickle names something other than plain data, or is too large to load safely."""


def _count_of(shape: Any) -> int:
    """Elements of a declared array shape (ints >= 0), refusing anything else or too many."""
    dims = (shape,) if isinstance(shape, int) else shape
    if not isinstance(dims, tuple) or not all(isinstance(d, int) and d >= 0 for d in dims):
        raise UnsafePickleError(f"pickle declares an array shape {shape!r}; expected a tuple of ints >= 0")
    n = math.prod(dims)
    if n > untrusted.MAX_PICKLE_ELEMENTS:
        raise UnsafePickleError(
            f"pickle declares an array of shape {dims} ({n} elements); at most "
            f"{untrusted.MAX_PICKLE_ELEMENTS} allowed"
        )
    return n


def _check_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError(f"pickle gives {type(dtype).__name__} where a numpy dtype was expected")
    if dtype.itemsize > untrusted.MAX_PICKLE_BYTES:
        raise UnsafePickleError(
            f"pickle declares a dtype of {dtype.itemsize} bytes per element; at most "
            f"{untrusted.MAX_PICKLE_BYTES} allowed"
        )
    return dtype


def _check_nbytes(n: int, dtype: np.dtype) -> int:
    nbytes = n * dtype.itemsize
    if nbytes > untrusted.MAX_PICKLE_BYTES:
        raise UnsafePickleError(
            f"pickle declares an array of {n} x {dtype.itemsize} bytes; at most "
            f"{untrusted.MAX_PICKLE_BYTES} bytes allowed"
        )
    return nbytes


_TYPE_CODE = re.compile(r"^[<>|=]?[a-zA-Z?]\d{0,9}$")


def _dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    text = obj.decode("latin1") if isinstance(obj, bytes) else obj
    if not isinstance(text, str) or not _TYPE_CODE.match(text):
        raise UnsafePickleError(f"pickle builds a dtype from {obj!r:.40}; only simple type codes are allowed")
    try:
        dtype = np.dtype(text, bool(align), bool(copy))
    except TypeError as err:
        raise UnsafePickleError(f"pickle builds an invalid dtype {obj!r} ({err})") from None
    if dtype.fields is not None or dtype.subdtype is not None:
        raise UnsafePickleError(f"pickle builds a structured dtype {obj!r}; only simple dtypes are allowed")
    return _check_dtype(dtype)


def _check_dtype_state(dtype: np.dtype, state: Any) -> None:
    """dtype.__setstate__ may change only the byte order: never the size, flags or fields, which
    arrays already built with this dtype rely on."""
    ok = (
        isinstance(state, tuple)
        and len(state) == 8
        and state[0] == 3
        and state[1] in ("<", ">", "|", "=")
        and state[2:5] == (None, None, None)
        and state[5] in (-1, dtype.itemsize)
        and state[6] in (-1, dtype.alignment)
        and state[7] == dtype.flags
        and dtype.fields is None
    )
    if not ok:
        raise UnsafePickleError(
            f"pickle sets a {dtype} dtype state {state!r:.80}; only a simple dtype's byte order may be set"
        )


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise UnsafePickleError(
            f"pickle rebuilds an array of type {subtype!r}; only numpy.ndarray is allowed"
        )
    if isinstance(dtype, (str, bytes)):
        dtype = _dtype(dtype)
    _check_nbytes(_count_of(shape), _check_dtype(dtype))
    return _multiarray._reconstruct(np.ndarray, shape, dtype)


def _scalar(dtype: Any, data: Any = None) -> Any:
    dtype = _check_dtype(dtype)
    if not dtype.hasobject and (not isinstance(data, (bytes, str)) or len(data) != dtype.itemsize):
        raise UnsafePickleError(
            f"pickle gives a {dtype} scalar with data {data!r:.40}; expected {dtype.itemsize} bytes"
        )
    return _multiarray.scalar(dtype, data) if data is not None else _multiarray.scalar(dtype)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles of bytes (inside numpy arrays) call _codecs.encode(str, "latin1").
    if not isinstance(text, str) or not isinstance(encoding, str):
        raise UnsafePickleError("pickle calls _codecs.encode with something other than text")
    if encoding.lower().replace("-", "") not in ("latin1", "utf8"):
        raise UnsafePickleError(f"pickle asks for codec {encoding!r}; only latin1 is allowed")
    return _codecs.encode(text, encoding)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    dtype = _check_dtype(dtype)
    n = _count_of(shape)
    if dtype.hasobject or not isinstance(buf, (bytes, bytearray, memoryview)):
        raise UnsafePickleError("pickle rebuilds an array from something other than a byte buffer")
    if _check_nbytes(n, dtype) != memoryview(buf).nbytes:
        raise UnsafePickleError(
            f"pickle gives {memoryview(buf).nbytes} bytes for an array of shape {shape} and dtype {dtype}"
        )
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order).copy()


def _complex(real: Any = 0, imag: Any = 0) -> complex:
    for v in (real, imag):
        if not isinstance(v, (int, float)) and not (isinstance(v, str) and len(v) <= 64):
            raise UnsafePickleError(f"pickle builds a complex number from {v!r:.40}")
    return complex(real, imag)


_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): _reconstruct for m in _NUMPY_CORE},
    **{(m, "scalar"): _scalar for m in _NUMPY_CORE},
    **{(m, "_frombuffer"): _frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,  # only as the first argument of _reconstruct
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "complex"): _complex,
    ("__builtin__", "complex"): _complex,
}
_CALLABLE = {_reconstruct, _scalar, _frombuffer, _dtype, _latin1_encode, _complex}
_SCALARS = {str, bytes, int, float, bool, complex, type(None)}
_PLAIN = (dict, list, tuple, str, bytes, int, float, bool, complex, type(None), np.ndarray, np.generic)


def _counted(op: Any) -> Any:
    def run(self: _RestrictedUnpickler) -> None:
        self.ops += 1
        if self.ops > untrusted.MAX_PICKLE_OPCODES:
            raise UnsafePickleError(
                f"pickle has more than {untrusted.MAX_PICKLE_OPCODES} instructions; expected a small dict "
                "of arrays"
            )
        op(self)

    return run


class _RestrictedUnpickler(pickle._Unpickler):  # the Python unpickler: its instructions can be checked
    dispatch = dict(pickle._Unpickler.dispatch)
    ops = 0

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self.size = len(data)

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

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if func not in _CALLABLE:
            raise UnsafePickleError(f"pickle calls {getattr(func, '__name__', func)!r}; not allowed")
        if not isinstance(args, tuple):
            raise UnsafePickleError("pickle calls a function with arguments that are not a tuple")
        self.stack[-1] = func(*args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if cls is not _complex or not isinstance(args, tuple):
            raise UnsafePickleError(f"pickle creates a {getattr(cls, '__name__', cls)!r}; not allowed")
        self.append(_complex(*args))

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is np.ndarray:
            _check_array_state(state)
        elif isinstance(inst, np.dtype):
            _check_dtype_state(inst, state)
        else:
            raise UnsafePickleError(f"pickle sets the state of a {type(inst).__name__}; not allowed")
        inst.__setstate__(state)

    def _forbidden(self) -> None:
        raise UnsafePickleError("pickle uses an instruction that builds objects; only plain data is allowed")

    def load_bytearray8(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        if n > self.size:  # the Python unpickler allocates n bytes before reading them
            raise UnsafePickleError(f"pickle declares a {n}-byte array in a {self.size}-byte file")
        b = bytearray(n)
        self.readinto(b)
        self.append(b)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8
    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.BUILD[0]] = load_build
    for _op in (pickle.INST, pickle.OBJ, pickle.NEWOBJ_EX, pickle.EXT1, pickle.EXT2, pickle.EXT4,
                pickle.PERSID, pickle.BINPERSID, pickle.NEXT_BUFFER):  # fmt: skip
        dispatch[_op[0]] = _forbidden
    dispatch = {key: _counted(op) for key, op in dispatch.items()}
    del _op


def _check_array_state(state: Any) -> None:
    """ndarray.__setstate__((version,) shape, dtype, is_fortran, data): sizes agree and are small."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise UnsafePickleError("pickle gives an array state that is not (shape, dtype, fortran, data)")
    shape, dtype, _, data = state[-4:]
    n = _count_of(shape)
    nbytes = _check_nbytes(n, _check_dtype(dtype))
    if dtype.hasobject:
        if not isinstance(data, list) or len(data) != n:
            got = len(data) if isinstance(data, list) else type(data).__name__
            raise UnsafePickleError(f"pickle gives {got} items for an object array of shape {shape}")
    elif not isinstance(data, (bytes, bytearray, str)) or len(data) != nbytes:
        got = f"{len(data)} bytes" if isinstance(data, (bytes, bytearray, str)) else type(data).__name__
        raise UnsafePickleError(
            f"pickle gives {got} for an array of shape {shape} and dtype {dtype}; expected {nbytes} bytes"
        )


def _measure(value: Any) -> int:
    """Size of `value` as a tree (shared references counted each time), each object visited once.

    Raises on non-plain types, cycles, depth > MAX_PICKLE_DEPTH or size > MAX_PICKLE_ELEMENTS.
    """
    limit, max_depth = untrusted.MAX_PICKLE_ELEMENTS, untrusted.MAX_PICKLE_DEPTH
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def walk(v: Any, depth: int) -> int:
        if depth > max_depth:
            raise UnsafePickleError(f"pickle nests deeper than {max_depth} levels")
        if not isinstance(v, _PLAIN):
            raise UnsafePickleError(f"pickle holds a {type(v).__name__}; only plain data is allowed")
        if isinstance(v, np.ndarray) and not v.dtype.hasobject:
            return max(v.size, 1)
        if not isinstance(v, (list, tuple, dict, np.ndarray)):
            return 1
        key = id(v)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise UnsafePickleError("pickle holds a structure that contains itself; expected plain data")
        active.add(key)
        if isinstance(v, dict):
            children = [x for kv in v.items() for x in kv]
        elif isinstance(v, np.ndarray):
            children = v.reshape(-1).tolist()
        else:
            children = v
        total = 1
        for c in children:
            total += 1 if type(c) in _SCALARS else walk(c, depth + 1)
            if total > limit:
                raise UnsafePickleError(
                    f"pickle expands to more than {limit} items (shared references counted); expected a "
                    "small dict of arrays"
                )
        active.discard(key)
        sizes[key] = total
        return total

    return walk(value, 0)


def safe_loads(data: bytes) -> Any:
    """Unpickle bytes that may come from anyone; raises `UnsafePickleError` on anything but data,
    and on pickles larger than the limits in `egoworld.data.untrusted`."""
    if len(data) > untrusted.MAX_PICKLE_BYTES:
        raise UnsafePickleError(f"pickle is {len(data)} bytes; at most {untrusted.MAX_PICKLE_BYTES} allowed")
    try:
        value = _RestrictedUnpickler(data).load()
    except UnsafePickleError:
        raise
    except Exception as err:  # truncated / garbage pickles raise many types
        raise UnsafePickleError(f"not a readable pickle ({type(err).__name__}: {err})") from None
    _measure(value)
    return value


def safe_load(path: str | Path) -> Any:
    """`safe_loads` on a file; the error names the file (and the file size is checked before reading)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > untrusted.MAX_PICKLE_BYTES:
            raise UnsafePickleError(f"pickle is {size} bytes; at most {untrusted.MAX_PICKLE_BYTES} allowed")
        return safe_loads(path.read_bytes())
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except OSError as err:
        raise UnsafePickleError(f"{path}: cannot read ({err.strerror or err})") from None
