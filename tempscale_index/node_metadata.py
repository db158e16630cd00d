"""The keys under which a node records how it was embedded, in one light module.

The embedding writes them, the stores check them and the searcher reports them; keeping them here (no torch,
no model) lets every reader import them without loading the embedding.
"""

from __future__ import annotations

TAU_KEY = "tempscale_tau"  # the document τ the chunk was embedded at
TOKENS_KEY = "tempscale_tokens"  # its token count, which the schedule's τ depends on
MODEL_KEY = "tempscale_model"  # the model that embedded it
METADATA_KEYS = (TAU_KEY, TOKENS_KEY, MODEL_KEY)
