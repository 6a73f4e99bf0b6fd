"""The feature extractors by modality name: one place that knows which class serves which."""

from __future__ import annotations

from typing import Any

from extractors.base import Extractor
from vocabulary import MODALITIES

# Workers beyond one per core that still add throughput: MediaPipe detects in its own thread
# while the calling thread waits, so one more facial worker decodes meanwhile (+5% frames/s on
# 2 cores; bench/facial.py).
OVERLAPPING_WORKERS = {"facial": 1}


def make_extractor(modality: str, config: Any) -> Extractor:
    """A new extractor for ``modality``; its heavy imports (openSMILE, torch) happen here."""
    if modality == "acoustic":
        if config.backend == "hf":
            from extractors.acoustic.hf_encoder import HFAudioExtractor

            return HFAudioExtractor(config)
        if config.backend != "opensmile":
            raise ValueError(f"acoustic.backend {config.backend!r} is unknown; use opensmile "
                             "or hf.")
        from extractors.acoustic import AcousticExtractor

        return AcousticExtractor(config)
    if modality == "text":
        from extractors.text import TextExtractor

        return TextExtractor(config)
    if modality == "facial":
        from extractors.facial import FacialExtractor

        return FacialExtractor(config)
    raise ValueError(f"modality {modality!r} is unknown; use one of {', '.join(MODALITIES)}.")
