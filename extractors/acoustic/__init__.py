"""Acoustic features: an utterance's audio in, openSMILE functionals and low-level descriptors
out (``extractor.py``), or a local Hugging Face speech encoder's frames in the same columns
(``hf_encoder.py``, ``acoustic.backend: hf``)."""

from extractors.acoustic.extractor import AcousticExtractor
from extractors.configs import AcousticConfig

__all__ = ["AcousticConfig", "AcousticExtractor"]
