"""``mcncl predict``: one new clip through the three extractors and the trained model.

The clip goes through the same code as a corpus: the extractors, a one-row tensor cache
(standardised with the model's own training statistics and built with its tensor settings),
then the model. A modality that cannot be extracted (no face, no speech, no transcript) is
masked, as in training, and named in the result.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
import torch

from extractors.atomic import write_parquet
from extractors.base import Failure, UtteranceInput, schema_metadata
from extractors.registry import make_extractor
from flows.cache import one_row_table
from flows.tables import write_feature_table
from fusion.config import TensorConfig
from fusion.data import load_split
from fusion.evaluate import load_model
from fusion.tensors import build_tensors
from fusion.train import predict

EXTRACTORS = {"text": "text", "audio": "acoustic", "visual": "facial"}  # model input → stage
UTTERANCE = "predict/clip"


class PredictError(ValueError):
    """The clip or its transcript cannot be used."""


def transcript_for(clip: Path, text: str | None) -> str:
    """The transcript given, else the sidecar ``<clip>.txt``, else empty (text masked)."""
    if text is not None:
        return text
    sidecar = clip.with_suffix(".txt")
    return sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""


def predict_clip(clip: Path, text: str | None, model_dir: Path, extractor_configs: dict,
                 tensor_config: TensorConfig) -> dict:
    """Emotion probabilities for ``clip``; ``extractor_configs`` maps stage → its config (the
    text one pointed at the corpus's fine-tuned encoder when there is one)."""
    clip = Path(clip).resolve()
    if not clip.is_file():
        raise PredictError(f"{clip}: not found; give the path of a video or audio clip.")
    model, saved = load_model(model_dir)
    meta = saved["meta"]
    utt = UtteranceInput(UTTERANCE, transcript_for(clip, text), str(clip), str(clip))
    with tempfile.TemporaryDirectory(prefix="mcncl-predict-") as tmp:
        features = Path(tmp) / "features"
        missing = {}
        for modality in meta["dims"]:
            stage = EXTRACTORS[modality]
            failure = _extract(stage, extractor_configs[stage], utt, features)
            if failure is not None:
                missing[modality] = failure.message
        if len(missing) == len(meta["dims"]):
            raise PredictError(f"{clip}: nothing usable in it ("
                               + "; ".join(missing.values()) + ")")
        manifest = Path(tmp) / "manifest.parquet"
        write_parquet(_manifest(clip, meta["labels"]), manifest)
        config = TensorConfig(**meta["tensors"]) if "tensors" in meta else tensor_config
        build_tensors(manifest, features, Path(tmp) / "tensors", config, meta["normalisation"])
        split = load_split(Path(tmp) / "tensors", "test", torch.device("cpu"))
        probs, _ = predict(model, split, 1)
    distribution = dict(zip(meta["labels"], (float(p) for p in probs[0]), strict=True))
    return {"clip": str(clip), "text": utt.text,
            "predicted": max(distribution, key=distribution.get),
            "probabilities": dict(sorted(distribution.items(), key=lambda kv: -kv[1])),
            "masked": missing, "notes": _notes(meta, extractor_configs)}


def _notes(meta: dict, extractor_configs: dict) -> list[str]:
    """What differs between a lone clip and the corpus the model learnt from."""
    notes = []
    if meta.get("tensors", {}).get("speaker_norm") == "speaker":
        notes.append("audio/visual: the model learnt from features standardised per speaker; "
                     "one clip is too little to know its speaker, so it is standardised with "
                     "the training statistics instead.")
    context = extractor_configs["text"].context if "text" in meta["dims"] else 0
    if not context:
        return notes
    return [*notes, f"text: the model learnt from transcripts with the {context} previous "
            "turns of their dialogue; a lone clip has none, so its transcript is encoded alone."]


def _extract(stage: str, config, utt: UtteranceInput, features: Path) -> Failure | None:
    """Write ``<stage>.parquet`` with the clip's row, or with none when it fails (masked)."""
    extractor = make_extractor(stage, config)
    try:
        if stage == "text" and not utt.text.strip():
            result = Failure("empty_text", "no transcript: give --text or a sidecar .txt file")
        else:
            [result] = extractor.extract([utt])
    finally:
        if hasattr(extractor, "close"):
            extractor.close()
    rows = [] if isinstance(result, Failure) else [
        (utt.utterance_id, one_row_table(result, extractor.schema))]
    schema = extractor.schema.with_metadata(schema_metadata(extractor))
    write_feature_table(rows, schema, features / f"{stage}.parquet")
    return result if isinstance(result, Failure) else None


def _manifest(clip: Path, labels: list[str]) -> pa.Table:
    """A one-row manifest in the test split (its label is a placeholder, never read back)."""
    table = pa.table({"utterance_id": [UTTERANCE], "split": ["test"], "label": [labels[0]],
                      "dialogue_id": ["predict"], "turn": [0], "speaker": [""]})
    return table.replace_schema_metadata({"labels": json.dumps(labels),
                                          "corpus_root": str(clip.parent)})
