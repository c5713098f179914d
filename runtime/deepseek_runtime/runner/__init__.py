"""The torch side of the engine: loop (LLMEngine: the one thread that owns the model;
build_engine), model_runner (one forward per step), kvcache (the paged KV pools), sampling,
cpu_kernels. The torch-free side it drives (scheduler, blocks, sequences) is ../engine/."""
