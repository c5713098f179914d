"""The front doors: OpenAI HTTP (openai/) and Triton's KServe v2 (triton/), one engine behind
both. generation.py is the path they share into the engine; services.py what they share."""
