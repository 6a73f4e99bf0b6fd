"""Text features: an utterance's transcript (and, with ``text.context``, the dialogue's
earlier turns) in, a sentence-transformers encoder's pooled embedding and token vectors out
(``extractor.py``)."""

from extractors.configs import TextConfig
from extractors.text.extractor import TextExtractor

__all__ = ["TextConfig", "TextExtractor"]
