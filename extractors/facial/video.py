"""Decode a video once and sample RGB frames at a fixed rate (variable frame rate safe)."""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np

from extractors.base import MediaError


def sample_frames(
    path: str,
    fps: float,
    max_frames: int,
    max_width: int = 640,
    start_s: float | None = None,
    end_s: float | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time since start_s, RGB uint8 frame)`` about every ``1/fps`` seconds.

    A frame is taken when its own time stamp reaches the next point of the ``1/fps`` grid, so
    variable frame rates sample evenly. Frames are shrunk to ``max_width`` and turned upright
    by the stream's rotation metadata. Decoding stops after ``max_frames`` samples or
    ``end_s``, so a very long clip costs bounded time. Raises :class:`MediaError` with kind
    ``unreadable`` or ``no_video_stream``.
    """
    start = start_s or 0.0
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise MediaError("no_video_stream", f"{path}: has no video stream; give the "
                                 "utterance a video file or leave video_path empty.")
            stream = container.streams.video[0]
            if start:
                container.seek(int(start / stream.time_base), stream=stream)
            taken, next_time = 0, start
            for frame in container.decode(stream):
                t = frame.time
                if t is None or t < next_time - 1e-6:
                    continue
                if end_s is not None and t > end_s:
                    break
                yield t - start, _upright(frame, max_width)
                taken += 1
                next_time = start + taken / fps
                if taken >= max_frames:
                    break
    except av.error.FFmpegError as exc:
        raise MediaError("unreadable", f"{path}: cannot decode video ({exc.strerror or exc}); "
                         "check the file (re-export or re-download it).") from None


def _upright(frame: av.VideoFrame, max_width: int) -> np.ndarray:
    width, height = frame.width, frame.height
    if width > max_width:
        width, height = max_width, max(2, round(frame.height * max_width / frame.width))
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
    # PyAV's rotation is what players turn the picture by, clockwise (an iPhone's 90 for a
    # portrait clip); np.rot90 turns counter-clockwise, hence the minus.
    turns = -round((getattr(frame, "rotation", 0) or 0) / 90) % 4
    # Rows may be padded (FFmpeg aligns line sizes): detectors need packed pixels.
    return np.ascontiguousarray(np.rot90(rgb, turns) if turns else rgb)
