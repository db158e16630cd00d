"""tempscale-index: attention-temperature (TempScale) embeddings for long documents in LlamaIndex and FAISS."""

from tempscale_index.embedding import EncodedTexts, TempScaleEmbedding
from tempscale_index.engine import apply_tempscale, temperature
from tempscale_index.schedules import (
    CallableSchedule,
    ConstantSchedule,
    LogLinearSchedule,
    PiecewiseSchedule,
    Schedule,
    as_schedule,
)

__version__ = "0.1.0"

__all__ = [
    "CallableSchedule",
    "ConstantSchedule",
    "EncodedTexts",
    "LogLinearSchedule",
    "PiecewiseSchedule",
    "Schedule",
    "TempScaleEmbedding",
    "apply_tempscale",
    "as_schedule",
    "temperature",
]
