"""Atomic writes (outputs appear whole or not at all), checks that outputs never replace inputs, and
size checks of untrusted .npy/.npz files before numpy allocates what their headers claim."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path


def current_umask() -> int:
    """The process umask (read from /proc where possible, so it is never changed, even briefly)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_default_mode(path: str | os.PathLike) -> Path:
    """Give `path` the permissions a plain new file (0o666) or folder (0o777) gets under the umask.

    `tempfile.mkstemp` / `mkdtemp` create owner-only entries (0600 / 0700); staged outputs get the
    ordinary mode back before they are moved into place.
    """
    path = Path(path)
    base = 0o777 if path.is_dir() else 0o666
    path.chmod(base & ~current_umask())
    return path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary file path beside `final`; rename it onto `final` only if the block succeeds.

    The file gets the permissions a new file gets under the umask (not mkstemp's 0600).
    """
    final = Path(os.path.abspath(final))  # "a/../b" resolved now, not through folders moved later
    if final.is_dir():
        raise IsADirectoryError(f"{final} is a folder; expected a file path to write")
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            apply_default_mode(tmp_path)
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_replaceable(final: Path, marker: str | None) -> None:
    """Refuse to replace a folder that is neither empty nor one of ours (it holds `marker`)."""
    if not final.exists():
        return
    if not final.is_dir():
        raise FileExistsError(f"{final} exists and is not a folder; choose another output path")
    if any(final.iterdir()) and not (marker and (final / marker).exists()):
        what = f"a folder holding {marker}" if marker else "an empty folder"
        raise FileExistsError(
            f"{final} exists and is not {what}; nothing was changed, choose another output path"
        )


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, *, replaces: str | None = None) -> Iterator[Path]:
    """Yield a temporary directory beside `final`; move it onto `final` only if the block succeeds.

    An existing `final` is replaced only after the new directory is complete, and only when it is
    empty or holds the file `replaces` (the marker of a folder this code wrote before); any other
    existing folder raises FileExistsError before anything is written. The folder gets the
    permissions a new folder gets under the umask (not mkdtemp's 0700).
    """
    final = Path(os.path.abspath(final))  # "a/../b" resolved now, not through folders moved later
    check_replaceable(final, replaces)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        apply_default_mode(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(inner: Path, outer: Path) -> bool:
    """True when `inner` lies inside the folder `outer` (paths resolved, links followed)."""
    return inner.resolve().is_relative_to(outer.resolve()) and not _same(inner, outer)


def check_outputs_distinct(
    outputs: Mapping[str, str | os.PathLike | None],
    inputs: Mapping[str, str | os.PathLike | None],
    *,
    replaced_folders: Iterable[str] = (),
) -> None:
    """Refuse outputs that would overwrite an input or each other; raise ValueError naming both.

    Args:
        outputs: option name (e.g. "--out") -> output path; None entries are skipped.
        inputs: option name -> input path (file or folder); None entries are skipped.
        replaced_folders: the output names that are folders replaced as a whole: an input or another
            output inside one of them would be deleted, so that is refused too.

    An output that is an existing file inside an input folder is refused as well (writing a new
    file into an input folder is allowed).

    Paths are compared after resolving links, and with `os.path.samefile` when both exist (hard
    links, bind mounts).
    """
    outs = {k: Path(v) for k, v in outputs.items() if v is not None}
    ins = {k: Path(v) for k, v in inputs.items() if v is not None}
    folders = set(replaced_folders)
    for out_name, out in outs.items():
        for in_name, inp in ins.items():
            if _same(out, inp):
                raise ValueError(
                    f"{out_name} {out} is the input {in_name} {inp}; expected a different output path "
                    "(the input would be overwritten)"
                )
            if out.is_file() and inp.is_dir() and _inside(out, inp):
                raise ValueError(
                    f"{out_name} {out} is a file of the input {in_name} {inp}; expected an output path "
                    "outside the input (it would be overwritten)"
                )
            if out_name in folders and _inside(inp, out):
                raise ValueError(
                    f"{out_name} {out} holds the input {in_name} {inp} and would be replaced; expected an "
                    "output folder that does not contain the input"
                )
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if _same(outs[a], outs[b]):
                raise ValueError(f"{a} and {b} are the same path {outs[a]}; expected different outputs")
            for x, y in ((a, b), (b, a)):
                if x in folders and _inside(outs[y], outs[x]):
                    raise ValueError(
                        f"{y} {outs[y]} lies inside {x} {outs[x]}, which is replaced as a whole; "
                        "expected separate outputs"
                    )


MAX_INFLATION = 100  # an .npz may hold at most this many times its file size in arrays ...
MIN_INFLATION_ALLOWANCE = 256 * 2**20  # ... or this many bytes, whichever is larger


class _Refused(ValueError):
    """A file refused by `check_npz_sizes` (its message names the file)."""


def check_npz_sizes(path: str | os.PathLike, what: str = "file") -> None:
    """Refuse an .npz that would inflate far beyond its size, or whose arrays are not plain data.

    Reads only the zip directory and each member's .npy header: the members' declared sizes may
    add up to at most ``max(MAX_INFLATION × file size, MIN_INFLATION_ALLOWANCE)``; each header's
    shape × item size must fit in its member (numpy allocates what the header says before
    reading); object arrays (pickles) are refused. Raises ValueError naming the file.
    """
    from numpy.lib import format as npy_format

    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(6)
    if head == b"\x93NUMPY":
        raise _Refused(f"{what} {str(path)!r} is a single .npy array; expected an .npz archive")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            total = sum(i.file_size for i in infos)
            limit = max(MAX_INFLATION * size, MIN_INFLATION_ALLOWANCE)
            if total > limit:
                raise _Refused(
                    f"{what} {str(path)!r} declares {total / 2**20:.0f} MiB of arrays in a "
                    f"{size / 2**20:.1f} MiB file (more than {MAX_INFLATION}x); refusing to inflate it "
                    "(corrupt or not a file this code wrote)"
                )
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise _Refused(f"{what} {str(path)!r} holds {info.filename!r}; expected only .npy arrays")
                with zf.open(info) as member:
                    version = npy_format.read_magic(member)
                    read_header = (
                        npy_format.read_array_header_1_0
                        if version == (1, 0)
                        else npy_format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(member)
                if dtype.hasobject:
                    raise _Refused(
                        f"{what} {str(path)!r}: {info.filename} holds Python objects (a pickle); "
                        "expected plain numeric arrays"
                    )
                nbytes = math.prod(int(d) for d in shape) * dtype.itemsize
                if nbytes > info.file_size:
                    raise _Refused(
                        f"{what} {str(path)!r}: {info.filename} claims {list(shape)} {dtype} "
                        f"({nbytes} bytes) in {info.file_size} bytes; the file is corrupt"
                    )
    except _Refused:
        raise
    except Exception as err:  # BadZipFile, zlib errors, truncated members, unreadable headers
        raise ValueError(
            f"{what} {str(path)!r} is corrupt or not an npz archive ({type(err).__name__}: {err})"
        ) from None


def check_npy_size(path: str | os.PathLike, what: str = "file") -> None:
    """ValueError unless an .npy file's header describes a plain array that fits in the file.

    numpy allocates the array a header claims before it reads the data, so a truncated or
    hostile header ends in MemoryError; object arrays (pickles) are refused too.
    """
    import numpy as np
    from numpy.lib import format as npy_format

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = npy_format.read_magic(fh)
            read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, _, dtype = read(fh)
            offset = fh.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as err:
        raise ValueError(f"{what} {str(path)!r} is not a readable .npy array ({err})") from None
    if dtype.hasobject:
        raise ValueError(f"{what} {str(path)!r} holds Python objects (a pickle); expected a numeric array")
    nbytes = math.prod(int(d) for d in shape) * np.dtype(dtype).itemsize
    have = path.stat().st_size - offset
    if nbytes > have:
        raise ValueError(
            f"{what} {str(path)!r}: its header claims {list(shape)} {dtype} ({nbytes} bytes) but the file "
            f"holds {have} bytes of data (truncated or corrupt)"
        )
