"""Answering queries from a built index without torch: the ONNX query encoder, the searcher that `query` and
`serve` share, and the HTTP server."""
