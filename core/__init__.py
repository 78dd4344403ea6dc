"""Cross-cutting pieces: configuration, the error contract, ASGI middleware."""
