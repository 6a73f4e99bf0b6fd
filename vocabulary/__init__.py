"""The names every layer shares, at the bottom of the project: standard library and pyarrow only.

Here: the modalities in their one order (the model's streams, the tensors, checkpoints and
reports follow it), the split names, :class:`vocabulary.layout.Layout` (where a corpus's
files are), :mod:`vocabulary.atomic` (atomic Parquet and text writes) and
:mod:`vocabulary.portable` (torch's maths pinned for a corpus that must be the same bytes on
any CPU).
"""

MODALITIES = ("text", "acoustic", "facial")
SPLITS = ("train", "dev", "test")
