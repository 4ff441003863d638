"""Atomic writes: outputs appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary file path beside `final`; rename it onto `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
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
    existing folder raises FileExistsError before anything is written.
    """
    final = Path(final)
    check_replaceable(final, replaces)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
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
