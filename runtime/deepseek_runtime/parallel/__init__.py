"""Tensor parallelism: one process per rank; rank 0 runs the engine and the doors and sends each
step to the other ranks, which run the same forward pass on their shard of the model."""
