from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mcncl.report import ReportError, build_report, write_report
from vocabulary.layout import Layout

REPO = Path(__file__).resolve().parents[1]


def make_run(data: Path) -> None:
    """A small run as the stages leave it: 4 train, 2 test; 1 clip without a face."""
    ids = [f"c/{s}/{i}" for s, i in [("train", 0), ("train", 1), ("train", 2), ("train", 3),
                                      ("test", 4), ("test", 5)]]
    (data / "manifests").mkdir(parents=True)
    pq.write_table(pa.table({"utterance_id": ids, "split": ["train"] * 4 + ["test"] * 2,
                             "label": ["joy", "anger"] * 3}), data / "manifests" / "c.parquet")
    features = data / "features" / "c"
    (features / "errors").mkdir(parents=True)
    for modality, present in (("acoustic", ids), ("text", ids)):
        pq.write_table(pa.table({"utterance_id": present}), features / f"{modality}.parquet")
    pq.write_table(pa.table({"utterance_id": ids[1:], "coverage": [1.0, 0.9, 0.3, 1.0, 0.8]}),
                   features / "facial.parquet")
    pq.write_table(pa.table({"utterance_id": [ids[0]], "stage": ["facial"], "kind": ["no_face"],
                             "message": ["no face in any sampled frame"]}),
                   features / "errors" / "facial.parquet")
    models = data / "models" / "c"
    models.mkdir(parents=True)
    pq.write_table(pa.table({"utterance_id": ids[4:], "label": ["joy", "anger"],
                             "predicted": ["joy", "joy"]}).replace_schema_metadata(
        {"labels": json.dumps(["joy", "anger"])}), models / "predictions.parquet")
    (models / "metrics.json").write_text(json.dumps({
        "split": "test", "weighted_f1": 0.3333, "accuracy": 0.5, "macro_f1": 0.3333,
        "per_class_f1": {"joy": 0.6667, "anger": 0.0}, "n": 2, "best_epoch": 2,
        "dev_weighted_f1": 0.5}))
    (models / "train_log.csv").write_text(
        "epoch,train_loss,dev_weighted_f1,dev_accuracy,lr,seconds\n"
        "1,1.2,0.4,0.5,0.001,0.1\n2,0.9,0.5,0.5,0.0005,0.1\n")


def cells(page: str, after: str) -> list[str]:
    section = page.split(after, 1)[1].split("<h2>", 1)[0]
    return re.findall(r"<td[^>]*>(.*?)</td>", section)


def test_report_holds_every_section_with_the_runs_numbers(tmp_path: Path):
    make_run(tmp_path)
    page = build_report(Layout("c", tmp_path))
    assert cells(page, "<h2>Scores</h2>") == ["test", "2", "0.333", "0.500", "0.333", "2",
                                              "0.500"]
    assert cells(page, "<h2>F1 per class</h2>")[:2] == ["joy", "0.667"]
    # confusion: rows actual, columns predicted, in the label set's order (joy, anger)
    assert cells(page, "<h2>Confusion matrix</h2>") == ["1", "0", "1", "0"]
    assert "data:image/png;base64," in page.split("<h2>Learning curve</h2>", 1)[1]
    # one column per modality in their one order: text, acoustic, facial
    assert cells(page, "<h2>Coverage: utterances") == ["train", "4", "4", "4", "3", "test", "2",
                                                       "2", "2", "2"]
    assert cells(page, "Errors per stage") == ["facial", "no_face", "1"]
    coverage = cells(page, "<h2>Face coverage")
    assert coverage[:3] == ["0.0-0.1", "0", "<span class=bar style='width:0.00rem'></span>"]
    assert "0.9-1.0" in coverage and "face_lost (coverage below 0.50): 1" in page
    # self-contained: nothing is fetched from anywhere
    assert not re.search(r"(src|href)=['\"]?(https?:|//|/)", page) and "<script" not in page


def test_report_without_an_evaluation_says_what_to_run(tmp_path: Path):
    with pytest.raises(ReportError, match=r"models/c/metrics.json: no evaluation yet; run "
                       r"`dvc repro` \(or `mcncl evaluate`\) first."):
        build_report(Layout("c", tmp_path))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed "
                    "(make test installs it)")
def test_report_renders_in_headless_chromium(tmp_path: Path):
    make_run(tmp_path)
    report = write_report(Layout("c", tmp_path), tmp_path / "report.html")
    shot = tmp_path / "report.png"
    result = subprocess.run([REPO / "scripts" / "screenshot_report.sh", report, shot],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(shot).convert("L"))
    assert image.shape == (1900, 1100)
    # real content was drawn: headings, tables, the bars and the curve (not a blank page)
    assert (image < 128).sum() > 5000
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          report.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    text = visible_text(dom.stdout)
    assert "F1 per class" in text and "face_lost" in text
    assert "<" not in text and "span" not in text  # no markup shown as text (bars are drawn)


def visible_text(page: str) -> str:
    """The text a reader sees: the data between tags, character references decoded."""
    parts: list[str] = []
    parser = HTMLParser()
    parser.handle_data = parts.append
    parser.feed(page)
    return " ".join(parts)
