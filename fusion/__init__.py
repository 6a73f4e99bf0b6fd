"""MCN-CL: tensors from Parquet, the model, its losses, training and evaluation."""
