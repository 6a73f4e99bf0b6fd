"""The names every layer shares, at the bottom of the project: standard library and pyarrow only.

Here: the modalities in their one order (the model's streams, the tensors, checkpoints and
reports follow it), the split names, :class:`vocabulary.layout.Layout` (where a corpus's
files are) and :mod:`vocabulary.atomic` (atomic Parquet and text writes).
"""

MODALITIES = ("text", "acoustic", "facial")
SPLITS = ("train", "dev", "test")
