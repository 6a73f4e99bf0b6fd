"""Coverage: the share of an utterance's sampled frames in which the speaker's face was read.

Per corpus it is summarised as a histogram in tenths, the median, and the count of utterances
below ``facial.min_coverage`` (``face_lost``: they have features, but few of their frames do).
Utterances with no face at all are the error kind ``no_face`` and have no row here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

BINS = 10


def coverage_histogram(values: list[float]) -> list[int]:
    """How many utterances fall in each tenth of coverage (the last tenth includes 1.0)."""
    counts, _ = np.histogram(np.asarray(values, np.float64), bins=BINS, range=(0.0, 1.0))
    return counts.tolist()


def coverage_markdown(features: Path, min_coverage: float) -> str:
    """The coverage histogram, median and ``face_lost`` count of a facial feature table."""
    values = [v for v in pq.read_table(features, columns=["coverage"])["coverage"].to_pylist()
              if v is not None]
    if not values:
        return "Face coverage: no utterance has facial features.\n"
    counts = coverage_histogram(values)
    lost = sum(v < min_coverage for v in values)
    header = " | ".join(f"{i / BINS:.1f}-{(i + 1) / BINS:.1f}" for i in range(BINS))
    return (f"Face coverage (share of sampled frames with the speaker's face), "
            f"{len(values)} utterances, median {np.median(values):.2f}; "
            f"face_lost (below {min_coverage:.2f}): {lost}\n\n"
            f"| coverage | {header} |\n|---|{'---|' * BINS}\n"
            f"| utterances | {' | '.join(str(n) for n in counts)} |\n")
