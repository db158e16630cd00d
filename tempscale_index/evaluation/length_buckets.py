"""Breaking scores down by length: token counters and equal-count length buckets of queries."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tempscale_index.evaluation.metrics import PerQuery, mean_scores
from tempscale_index.evaluation.results import LengthBucket

TokenCounter = Callable[[Sequence[str]], list[int]]


def bucket_means(per_query: PerQuery, lengths: Mapping[str, int], n_buckets: int = 3) -> list[LengthBucket]:
    """Mean metrics over ``n_buckets`` length quantiles of the queries (about equal counts, so each mean rests
    on a similar number of queries); queries of equal length always share a bucket."""
    if not per_query:
        return []
    query_ids = list(per_query)
    values = np.array([lengths[query_id] for query_id in query_ids])
    shorter = np.searchsorted(np.sort(values), values, side="left")  # queries strictly shorter than each one
    positions = np.minimum(shorter * n_buckets // len(values), n_buckets - 1)
    buckets = []
    for position in np.unique(positions):
        members = [query_id for query_id, at in zip(query_ids, positions) if at == position]
        member_lengths = [lengths[query_id] for query_id in members]
        buckets.append(
            LengthBucket(
                low=int(min(member_lengths)),
                high=int(max(member_lengths)),
                n_queries=len(members),
                means=mean_scores({query_id: per_query[query_id] for query_id in members}),
                query_ids=members,
            )
        )
    return buckets


def tokenizer_counter(tokenizer: Any) -> TokenCounter:
    """Token counts with a Hugging Face tokenizer, untruncated and without special tokens (a document's length,
    not what fits in the model's window)."""

    def count(texts: Sequence[str]) -> list[int]:
        encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    return count


def word_counts(texts: Sequence[str]) -> list[int]:
    """Whitespace-separated words: the length unit when no tokenizer is given."""
    return [len(text.split()) for text in texts]
