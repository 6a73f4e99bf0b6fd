"""Facial features: an utterance's video in, the speaker's action units (``AUS``), blendshapes
and head pose per sampled frame out, with the share of frames where that face was read.

``extractor.py`` runs the steps: ``video.py`` samples frames, ``detector.py`` finds faces,
a backend (``mediapipe_backend.py``, ``pyfeat_backend.py``) reads them, ``tracks.py`` follows
them and ``speaker.py`` picks the speaker's; ``coverage.py`` summarises coverage."""

from extractors.configs import FacialConfig
from extractors.facial.aus import AUS
from extractors.facial.extractor import FacialExtractor

__all__ = ["AUS", "FacialConfig", "FacialExtractor"]
