"""The hook engine against the straightforward TempScale (explicit logits / τ, softmax), for every family."""

from __future__ import annotations

import threading

import pytest
import torch
from transformers import (
    AutoModel,
    BertConfig,
    GPT2Config,
    MistralConfig,
    ModernBertConfig,
    MPNetConfig,
    Qwen3Config,
    T5Config,
    T5EncoderModel,
    XLMRobertaConfig,
)

from tempscale_index.engine import (
    TempScaleNotAppliedError,
    UnsupportedArchitectureError,
    apply_tempscale,
    temperature,
)
from tempscale_index.engine import adapters as adapters_module
from tempscale_index.engine.reference import eager_reference_temperature

VOCAB = 200
# Large initial weights make attention peaked enough that τ visibly changes the output.
SMALL = dict(
    hidden_size=64,
    num_attention_heads=4,
    num_hidden_layers=2,
    intermediate_size=128,
    vocab_size=VOCAB,
    initializer_range=0.2,
)

CONFIGS = {
    "bert (MiniLM/BGE/GTE)": lambda: BertConfig(**SMALL),
    "xlm-roberta": lambda: XLMRobertaConfig(**SMALL, max_position_embeddings=80),
    "mpnet": lambda: MPNetConfig(**SMALL),
    "t5 encoder": lambda: T5Config(
        d_model=64, num_heads=4, num_layers=2, d_ff=128, d_kv=16, vocab_size=VOCAB, initializer_factor=3.0
    ),
    "modernbert": lambda: ModernBertConfig(
        **SMALL,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
        global_attn_every_n_layers=2,
        local_attention=8,
    ),
    "qwen3": lambda: Qwen3Config(**SMALL, num_key_value_heads=2, head_dim=16),
    "mistral": lambda: MistralConfig(**SMALL, num_key_value_heads=2),
}


def build(name: str, implementation: str) -> torch.nn.Module:
    config = CONFIGS[name]()
    if name == "mpnet":
        implementation = "eager"  # MPNet has no SDPA path in transformers; the engine hooks it all the same
    torch.manual_seed(0)
    if name == "t5 encoder":
        return T5EncoderModel._from_config(config, attn_implementation=implementation).eval()
    return AutoModel.from_config(config, attn_implementation=implementation).eval()


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, VOCAB, (3, 20), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 13:] = 0
    mask[2, 6:] = 0
    return ids, mask


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hooks_match_explicit_reference_with_mixed_tau_and_padding(name: str, dtype: torch.dtype) -> None:
    fast, reference = build(name, "sdpa").to(dtype), build(name, "eager").to(dtype)
    reference.load_state_dict(fast.state_dict())
    ids, mask = padded_batch()
    taus = [0.5, 0.8, 0.3]
    with torch.no_grad():
        unpatched = fast(input_ids=ids, attention_mask=mask).last_hidden_state
        apply_tempscale(fast)
        at_one = fast(input_ids=ids, attention_mask=mask).last_hidden_state
        with temperature(1.0):
            explicit_one = fast(input_ids=ids, attention_mask=mask).last_hidden_state
        with temperature(taus):
            scaled = fast(input_ids=ids, attention_mask=mask).last_hidden_state
        with eager_reference_temperature(reference, taus):
            expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
    valid = mask.bool()
    assert torch.equal(at_one, unpatched)
    assert torch.equal(explicit_one, unpatched)
    # float64 isolates the method from float32 rounding of large random logits (seen up to 4e-5 for T5).
    tolerance = 1e-5 if dtype == torch.float64 else 1e-4
    assert (scaled - expected)[valid].abs().max().item() <= tolerance
    assert (scaled - unpatched)[valid].abs().max().item() > 1e-2, "τ must change the output"


@pytest.mark.parametrize("name", ["bert (MiniLM/BGE/GTE)", "t5 encoder", "mpnet"])
def test_per_text_tau_in_one_batch_equals_each_text_alone(name: str) -> None:
    model = build(name, "sdpa").double()
    apply_tempscale(model)
    ids, mask = padded_batch()
    taus = [0.4, 0.9, 0.6]
    with torch.no_grad(), temperature(taus):
        batched = model(input_ids=ids, attention_mask=mask).last_hidden_state
    for row, tau in enumerate(taus):
        length = int(mask[row].sum())
        with torch.no_grad(), temperature(tau):
            alone = model(input_ids=ids[row : row + 1, :length]).last_hidden_state[0]
        assert (batched[row, :length] - alone).abs().max().item() <= 1e-5


def test_threads_see_their_own_tau() -> None:
    model = build("bert (MiniLM/BGE/GTE)", "sdpa")
    apply_tempscale(model)
    ids, mask = padded_batch()
    expected = {}
    for tau in (0.3, 0.7, 1.0):
        with torch.no_grad(), temperature(tau):
            expected[tau] = model(input_ids=ids, attention_mask=mask).last_hidden_state
    failures: list[float] = []

    def worker(tau: float) -> None:
        for _ in range(15):
            with torch.no_grad(), temperature(tau):
                out = model(input_ids=ids, attention_mask=mask).last_hidden_state
            if not torch.allclose(out, expected[tau], atol=1e-6):
                failures.append(tau)

    threads = [threading.Thread(target=worker, args=(tau,)) for tau in expected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_patching_is_idempotent_and_removable() -> None:
    model = build("bert (MiniLM/BGE/GTE)", "sdpa")
    ids, mask = padded_batch()
    first = apply_tempscale(model)
    assert apply_tempscale(model) is first
    assert first.num_query_modules == 2
    first.remove(model)
    with torch.no_grad(), temperature(0.3):
        after_removal = model(input_ids=ids, attention_mask=mask).last_hidden_state
        plain = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(after_removal, plain)


def test_unsupported_architecture_names_the_supported_families() -> None:
    model = AutoModel.from_config(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=VOCAB))
    with pytest.raises(UnsupportedArchitectureError, match=r"gpt2.*Supported families: BERT.*MPNet.*T5"):
        apply_tempscale(model)


def test_a_patch_that_changes_nothing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # An adapter pointed at the pooler: hooks fire, but attention is untouched.
    wrong = adapters_module.Adapter("BERT", ("bert",), r"pooler\.dense")
    monkeypatch.setattr(adapters_module, "ADAPTERS", (wrong,))
    config = BertConfig(**{**SMALL, "num_hidden_layers": 1})
    model = AutoModel.from_config(config).eval()
    with pytest.raises(TempScaleNotAppliedError, match="did not change the output"):
        apply_tempscale(model)
    assert not hasattr(model, "_tempscale_patch")


def test_layout_mismatch_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = adapters_module.Adapter("BERT", ("bert",), r"attention\.self\.no_such_module")
    monkeypatch.setattr(adapters_module, "ADAPTERS", (missing,))
    with pytest.raises(TempScaleNotAppliedError, match="found 0 query modules"):
        apply_tempscale(AutoModel.from_config(BertConfig(**SMALL)))


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf"), [0.5, 0.0]])
def test_temperature_rejects_non_positive_or_non_finite(bad) -> None:
    with pytest.raises(ValueError, match="positive and finite"), temperature(bad):
        pass


def test_tau_count_must_match_batch() -> None:
    model = build("bert (MiniLM/BGE/GTE)", "sdpa")
    apply_tempscale(model)
    ids, mask = padded_batch()
    with pytest.raises(ValueError, match="3 texts"), torch.no_grad(), temperature([0.5, 0.6]):
        model(input_ids=ids, attention_mask=mask)
