"""What a flow raises when the user must act: kept free of Prefect, so the CLI can catch it
without importing a flow first."""

from __future__ import annotations


class StageError(RuntimeError):
    """A stage cannot finish; the message names the file or setting to fix."""


class TooManyErrors(StageError):
    """More utterances failed than ``extract.max_error_rate`` allows."""


class PipelineFailed(StageError):
    """A stage's ``dvc repro`` failed."""
