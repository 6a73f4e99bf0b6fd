"""Writing the feature and error tables of a stage, streaming and atomically."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from extractors.base import Extractor, Failure, schema_metadata
from flows.cache import one_row_table
from vocabulary.atomic import atomic_path

ERROR_SCHEMA = pa.schema([("utterance_id", pa.string()), ("stage", pa.string()),
                          ("kind", pa.string()), ("message", pa.string())])
ROWS_PER_GROUP = 256


def write_stage_tables(
    results: Iterable[tuple[str, pa.Table | dict | Failure]], extractor: Extractor, out_dir: Path
) -> tuple[Path, Path, list[dict]]:
    """The two tables of one extraction stage from ``(utterance_id, result)`` pairs, streamed:
    ``<out_dir>/<modality>.parquet`` with the features (a one-row table or the extractor's
    dict) and ``<out_dir>/errors/<modality>.parquet`` with the failures. Returns both paths
    and the error rows."""
    modality, errors = extractor.modality, []

    def feature_rows():
        for utterance_id, result in results:
            if isinstance(result, Failure):
                errors.append({"utterance_id": utterance_id, "stage": modality,
                               "kind": result.kind, "message": result.message})
            elif isinstance(result, pa.Table):
                yield utterance_id, result
            else:
                yield utterance_id, one_row_table(result, extractor.schema)

    features = out_dir / f"{modality}.parquet"
    error_table = out_dir / "errors" / f"{modality}.parquet"
    schema = extractor.schema.with_metadata(schema_metadata(extractor))
    write_feature_table(feature_rows(), schema, features)
    write_error_table(errors, error_table)
    return features, error_table, errors


def write_feature_table(
    rows: Iterable[tuple[str, pa.Table]], schema: pa.Schema, target: Path
) -> int:
    """Write ``(utterance_id, one-row table)`` pairs to ``target``; return the row count.

    Rows are buffered a row group at a time, so memory stays flat however large the corpus.
    """
    full = pa.schema([pa.field("utterance_id", pa.string()), *schema],
                     metadata=schema.metadata)
    count, ids, parts = 0, [], []
    # no dictionary encoding: feature columns are floats, ids unique; it only costs time and size
    with atomic_path(target) as tmp, pq.ParquetWriter(tmp, full, use_dictionary=False) as writer:
        for utterance_id, table in rows:
            ids.append(utterance_id)
            parts.append(table)
            if len(ids) == ROWS_PER_GROUP:
                writer.write_table(_group(ids, parts, full))
                count, ids, parts = count + len(ids), [], []
        if ids or not count:
            writer.write_table(_group(ids, parts, full))
            count += len(ids)
    return count


def _group(ids: list[str], parts: list[pa.Table], schema: pa.Schema) -> pa.Table:
    if not parts:
        return schema.empty_table()
    body = pa.concat_tables(parts)
    return body.add_column(0, "utterance_id", pa.array(ids, pa.string())).cast(schema)


def write_error_table(errors: list[dict], target: Path) -> None:
    with atomic_path(target) as tmp:
        pq.write_table(pa.Table.from_pylist(errors, schema=ERROR_SCHEMA), tmp)
