"""Answering queries from a built index without torch: the ONNX query encoder, the searcher that `query` and
`serve` share, and the HTTP server."""

DEFAULT_MAX_QUEUE = (
    256  # queries waiting for the batch worker before `serve` answers 503 (here: the CLI reads it light)
)
