"""The OpenAI-compatible HTTP door: app (Starlette app, probes, /metrics, /v1/audit), routes,
schema (request bodies), responses (wire formats, SSE), errors, openapi, reasoning."""
