"""Atomic file writes: write beside the target under a temporary name, fsync, then rename.

A reader (or a run killed midway) sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_UMASK = os.umask(0)  # read once, at import, while no other thread creates files
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``.

    ``fsync=False`` skips flushing to disk: still atomic for a killed process, not for a power cut.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OSError(
            f"{target.parent}: cannot write here ({exc.strerror}); "
            "choose a writable output folder or fix its permissions."
        ) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_UMASK)  # mkstemp makes 0600; the result gets the usual permissions
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        reason = _storage_failure(exc)
        if reason is None:
            raise
        raise OSError(f"{target}: cannot write it ({reason}); free some space or choose "
                      f"another output folder. The previous {target.name}, if any, is kept."
                      ) from exc
    finally:
        tmp.unlink(missing_ok=True)


STORAGE_ERRORS = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
                  errno.EROFS: "Read-only file system", errno.EFBIG: "File too large"}


def _storage_failure(exc: OSError) -> str | None:
    """The storage problem behind a failed write (pyarrow reports it in the text only)."""
    if exc.errno in STORAGE_ERRORS:
        return STORAGE_ERRORS[exc.errno]
    return next((reason for reason in STORAGE_ERRORS.values() if reason in str(exc)), None)


def write_parquet(table: pa.Table, target: str | os.PathLike) -> None:
    """Write ``table`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)


def write_text(text: str, target: str | os.PathLike) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
