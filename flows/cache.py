"""Per-utterance result cache: one small Arrow file per (input content, config, version) key.

The extractor's ``version`` begins with the hash of the project source it imports
(``extractors/code_hash.py``), so an edit to that code misses its entries, and only its.

Entries are written atomically, so a run killed midway keeps every finished utterance and
never leaves half an entry. Failures are cached too (the same input fails the same way),
except ``internal`` ones, which may be transient.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from extractors.base import Failure, Result
from vocabulary.atomic import atomic_path

FAILURE_SCHEMA = pa.schema([("kind", pa.string()), ("message", pa.string())])
UNCACHED_KINDS = {"internal", "no_media", "missing_file"}


def cache_key(digest: str, config_hash: str, version: str) -> str:
    """The key of one utterance's result: its input's content, the extractor's settings that
    change features and its ``version`` (code hash, libraries, weights)."""
    return hashlib.sha256(f"{digest}|{config_hash}|{version}".encode()).hexdigest()


class ResultCache:
    def __init__(self, root: str | Path, modality: str, schema: pa.Schema):
        self.root = Path(root) / modality
        self.schema = schema

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.arrow"

    def has(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> pa.Table | Failure | None:
        """The cached one-row feature table or Failure; None when absent or unreadable."""
        try:
            with pa.OSFile(str(self._path(key))) as source:
                table = pa.ipc.open_file(source).read_all()
        except (FileNotFoundError, pa.ArrowInvalid):
            return None
        if table.schema.equals(FAILURE_SCHEMA):
            return Failure(**table.to_pylist()[0])
        return table

    def put(self, key: str, result: Result) -> None:
        if isinstance(result, Failure):
            if result.kind in UNCACHED_KINDS:
                return
            table = pa.table({"kind": [result.kind], "message": [result.message]},
                             schema=FAILURE_SCHEMA)
        else:
            table = one_row_table(result, self.schema)
        with atomic_path(self._path(key), fsync=False) as tmp, pa.OSFile(str(tmp), "wb") as sink, \
                pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)


def one_row_table(result: dict, schema: pa.Schema) -> pa.Table:
    """A one-row table from an extractor's result; numpy matrices become lists of vectors."""
    return pa.table([_column(result[f.name], f.type) for f in schema], schema=schema)


def _column(value, type_: pa.DataType) -> pa.Array:
    if value is None:
        return pa.nulls(1, type_)
    if isinstance(value, list) and any(v is None for v in value):  # masked entries stay null
        return pa.array([[None if v is None else np.asarray(v).tolist() for v in value]], type_)
    if pa.types.is_list(type_) and pa.types.is_fixed_size_list(type_.value_type):
        matrix = np.asarray(value, dtype=np.float32).reshape(-1, type_.value_type.list_size)
        rows = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()),
                                                 type_.value_type.list_size)
        return pa.ListArray.from_arrays(pa.array([0, len(matrix)], pa.int32()), rows)
    if pa.types.is_fixed_size_list(type_):
        return pa.FixedSizeListArray.from_arrays(
            pa.array(np.asarray(value, np.float32).ravel()), type_.list_size)
    return pa.array([value], type_)
