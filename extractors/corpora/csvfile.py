"""Reading corpus CSV files with clear errors for wrong encodings and missing columns."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from extractors.corpora.manifest import CorpusError


def read_csv_rows(
    path: Path, required: tuple[str, ...], encoding: str = "utf-8"
) -> list[tuple[int, dict[str, str]]]:
    """Return ``(line number, row)`` pairs of a CSV file, checking encoding and columns."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CorpusError(
            f"{path}: line {line} is not valid {encoding} (byte 0x{raw[exc.start]:02x}); "
            f"convert the file with `iconv -f cp1252 -t utf-8 {path.name}` or pass "
            "--encoding cp1252."
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in required if c not in header]
    if missing:
        raise CorpusError(
            f"{path}: required column(s) {', '.join(missing)} missing (found: "
            f"{', '.join(header) or 'no header'}); add them to the header row."
        )
    reader.fieldnames = header
    rows = []
    for row in reader:
        rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}))
    return rows
