"""Cheap checks of media files while a manifest is prepared (no decoding of whole files)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av


def media_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as media; None when its container opens with a stream."""
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio and not container.streams.video:
                return "no audio or video stream"
    except av.error.FFmpegError as exc:
        return f"unreadable container ({exc.strerror or exc})"
    return None


def media_problems(paths: list[Path], threads: int = 8) -> list[str | None]:
    """:func:`media_problem` for many files, opened concurrently (the work is I/O bound)."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(media_problem, paths))
