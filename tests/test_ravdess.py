from __future__ import annotations

from pathlib import Path

from extractors.corpora.ravdess import prepare_ravdess


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_ravdess_labels_text_and_actor_split(tmp_path: Path):
    for actor in (1, 2, 11, 23):
        touch(tmp_path / f"Actor_{actor:02d}" / f"03-01-05-02-01-01-{actor:02d}.flac")
    touch(tmp_path / "av" / "01-01-08-01-02-02-01.mp4")
    touch(tmp_path / "av" / "02-01-01-01-01-01-01.mp4")
    touch(tmp_path / "av" / "README.mp4")
    table, report = prepare_ravdess(tmp_path)
    rows = {r["utterance_id"]: r for r in table.to_pylist()}
    assert len(rows) == 6
    angry = rows["ravdess/03-01-05-02-01-01-11"]
    assert (angry["label"], angry["split"], angry["speaker"]) == ("angry", "dev", "actor11")
    assert angry["text"] == "Kids are talking by the door."
    assert angry["video_path"] is None and angry["audio_path"].endswith(".flac")
    assert rows["ravdess/03-01-05-02-01-01-23"]["split"] == "test"
    surprised = rows["ravdess/01-01-08-01-02-02-01"]
    assert surprised["label"] == "surprised" and surprised["text"].startswith("Dogs")
    assert surprised["video_path"] == surprised["audio_path"] == "av/01-01-08-01-02-02-01.mp4"
    assert rows["ravdess/02-01-01-01-01-01-01"]["video_path"] is not None
    assert {r["split"] for r in rows.values() if r["speaker"] == "actor01"} == {"train"}
    assert report.counts == {"unrecognised_name": 1}


def test_ravdess_custom_split(tmp_path: Path):
    for actor in (1, 2, 3):
        touch(tmp_path / f"03-01-01-01-01-01-{actor:02d}.wav")
    table, _ = prepare_ravdess(tmp_path, dev_actors=(2,), test_actors=(3,))
    assert table["split"].to_pylist() == ["train", "dev", "test"]


def test_ravdess_follows_links_and_enters_a_cycle_once(tmp_path: Path):
    """A corpus assembled from several disks: a linked actor folder, a linked file, a cycle."""
    disk, root = tmp_path / "disk2", tmp_path / "ravdess"
    touch(disk / "Actor_03" / "03-01-05-02-01-01-03.wav")
    touch(disk / "loose" / "03-01-04-01-01-01-01.wav")
    (root / "Actor_01").mkdir(parents=True)
    (root / "Actor_03").symlink_to(disk / "Actor_03", target_is_directory=True)
    (root / "Actor_01" / "03-01-04-01-01-01-01.wav").symlink_to(
        disk / "loose" / "03-01-04-01-01-01-01.wav")
    (root / "Actor_01" / "up").symlink_to(root, target_is_directory=True)  # a cycle
    table, _ = prepare_ravdess(root)
    assert table["audio_path"].to_pylist() == ["Actor_01/03-01-04-01-01-01-01.wav",
                                               "Actor_03/03-01-05-02-01-01-03.wav"]
