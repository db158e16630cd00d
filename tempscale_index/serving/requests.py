"""What ``POST /query`` accepts, checked before any work: a JSON content type (415), a body no larger than
``MAX_BODY_BYTES`` (413, refused from ``Content-Length`` before reading and capped while streaming), nesting no
deeper than ``MAX_DEPTH`` (400, so no request can exhaust the parser's recursion), then the fields themselves (400).
Each refusal is one sentence in ``{"error": ...}``."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

MAX_K = 1000
MAX_TEXT_CHARS = 100_000
MAX_BODY_BYTES = 1 << 20  # a 100,000-character text escaped as \uXXXX fits; anything larger is not a query
MAX_DEPTH = 32  # the deepest legitimate body (filters nested in filters) is far shallower
REQUEST_KEYS = {"text", "k", "filters"}


class RequestError(ValueError):
    """The request cannot be answered as sent; ``status`` is the HTTP status to answer with."""

    status = 400


class BadRequest(RequestError):
    """Malformed JSON or fields (HTTP 400)."""


class PayloadTooLarge(RequestError):
    status = 413


class UnsupportedMediaType(RequestError):
    status = 415


async def read_json_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body of a JSON request, refused before reading when its type or declared size is wrong, and as soon
    as the bytes streamed exceed ``limit`` (a missing or false ``Content-Length`` gains nothing)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType(f"send the query as application/json, not {media_type or 'no content type'}")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(f"Content-Length {declared!r} is not a byte count")
        if int(declared) > limit:
            raise PayloadTooLarge(f"the body ({int(declared)} bytes) is larger than the {limit}-byte limit")
    received = bytearray()
    async for part in request.stream():
        received += part
        if len(received) > limit:
            raise PayloadTooLarge(f"the body is larger than the {limit}-byte limit")
    return bytes(received)


def nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON value (iterative: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_query_request(body: bytes) -> tuple[str, int, Any]:
    """``(text, k, filters)`` from a request body, or ``BadRequest`` saying what is wrong."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise BadRequest(f"the body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if nesting_depth(data) > MAX_DEPTH:
        raise BadRequest(f"the body nests deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - REQUEST_KEYS)
    if unknown:
        raise BadRequest(f"unknown keys {unknown}; known: {sorted(REQUEST_KEYS)}")
    text, k = data.get("text"), data.get("k", 5)
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("'text' must be a non-empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise BadRequest(f"'text' is longer than {MAX_TEXT_CHARS} characters")
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= MAX_K:
        raise BadRequest(f"'k' must be an integer from 1 to {MAX_K}, got {k!r}")
    return text, k, parse_filters(data.get("filters"))


def parse_filters(filters: Any) -> Any:
    """LlamaIndex ``MetadataFilters`` from their dict form (``{"filters": [{"key", "value", "operator"}]}``)."""
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise BadRequest(f"'filters' must be an object like {{\"filters\": [...]}}, got {type(filters).__name__}")
    from llama_index.core.vector_stores.types import MetadataFilters
    from pydantic import ValidationError

    try:
        return MetadataFilters.model_validate(filters)
    except ValidationError as exc:
        raise BadRequest(f"bad filters: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}") from None
