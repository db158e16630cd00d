"""Adapters that let other frameworks use ``TempScaleEmbedding`` (each behind its own optional extra)."""
