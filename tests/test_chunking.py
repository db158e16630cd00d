"""One chunking step for every entry point: exact offsets (also in repeated text), stable ids, LlamaIndex's chunks.

The pipeline, the Ray worker and the evaluators must give one document the same chunk ids, character offsets,
texts and vectors; the Ray job itself is compared with the pipeline in ``test_batch_ray.py``.
"""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pytest
from llama_index.core import Document

from tempscale_index.batch.worker import ChunkEmbedWorker
from tempscale_index.chunking import chunk_nodes, chunk_text, embed_chunk_nodes, model_token_splitter
from tempscale_index.evaluation.chunk_tables import chunk_dataset, chunk_table
from tempscale_index.evaluation.datasets import load_qmsum
from tempscale_index.evaluation.retrieval import build_vector_index
from tempscale_index.node_metadata import embedded_text, exclude_file_facts
from tempscale_index.pipeline import ingest
from tempscale_index.store import FaissStore

REPEATED = "The budget was approved on Tuesday. " * 30  # every chunk's text also occurs earlier in the document


def stored_chunks(index_dir) -> dict[str, tuple[str, int, int, str]]:
    """node id → (doc id, start, end, text) of every chunk in a FAISS index."""
    store = FaissStore.open(index_dir)
    try:
        nodes = store.get_nodes([i for record in store.documents.values() for i in record.node_ids])
        return {n.node_id: (n.ref_doc_id, n.start_char_idx, n.end_char_idx, n.text) for n in nodes}
    finally:
        store.close()


def test_repeated_text_gets_the_offsets_of_each_chunks_own_place(tmp_path, minilm):
    """Without overlap, chunks tile the document in order; finding each chunk's text again in the document
    (``str.find`` from the previous chunk's start) lands on an earlier repetition instead."""
    report = ingest([Document(id_="minutes", text=REPEATED)], tmp_path / "index", minilm, chunk_size=24,
                    chunk_overlap=0)  # fmt: skip
    chunks = sorted(stored_chunks(tmp_path / "index").values(), key=lambda chunk: chunk[1])
    assert report.chunks_added == len(chunks) > 5
    for _, start, end, text in chunks:
        assert REPEATED[start:end] == text
    assert chunks[0][1] == 0 and chunks[-1][2] == len(REPEATED.rstrip())
    for (_, _, end, _), (_, start, _, _) in pairwise(chunks):
        assert end <= start and not REPEATED[end:start].strip()  # no overlap, nothing but spaces left out


def test_chunks_are_llamaindex_sentence_splitter_chunks_with_exact_offsets(small_qmsum_dir, minilm):
    dataset = load_qmsum(small_qmsum_dir, "questions")
    for chunk_size, overlap in ((254, 32), (64, 16), (24, 0)):
        splitter = model_token_splitter(minilm, chunk_size=chunk_size, chunk_overlap=overlap)
        for doc_id, text in dataset.corpus.items():
            text = text[:6000]
            chunks = chunk_text(splitter, doc_id, text)
            assert [chunk.text for chunk in chunks] == splitter.split_text(text)
            assert all(text[chunk.start : chunk.end] == chunk.text for chunk in chunks)
            counts = minilm.tokenizer([chunk.text for chunk in chunks], add_special_tokens=False)["input_ids"]
            assert max(map(len, counts)) <= chunk_size
            assert [chunk.start for chunk in chunks] == sorted(chunk.start for chunk in chunks)


def test_ids_are_stable_depend_on_the_text_not_the_metadata_and_number_parts_apart(minilm):
    splitter = model_token_splitter(minilm, chunk_size=24, chunk_overlap=0)
    plain = chunk_nodes(splitter, Document(id_="minutes", text=REPEATED))
    file_document = Document(id_="minutes", text=REPEATED, metadata={"file_name": "a.txt"})
    exclude_file_facts(file_document)  # a file's name is not embedded (as LlamaIndex's readers set it)
    tagged = chunk_nodes(splitter, file_document)
    chunks = chunk_text(splitter, "minutes", REPEATED)
    assert [n.node_id for n in plain] == [n.node_id for n in tagged] == [c.chunk_id for c in chunks]
    assert len({n.node_id for n in plain}) == len(plain)
    assert tagged[0].metadata == {"file_name": "a.txt"} and tagged[0].ref_doc_id == "minutes"
    edited = chunk_text(splitter, "minutes", REPEATED.replace("Tuesday", "Monday", 1))
    assert edited[0].chunk_id != plain[0].node_id
    page = chunk_nodes(splitter, Document(id_="minutes", text="Blank page."))
    again = chunk_nodes(splitter, Document(id_="minutes", text="Blank page."), first_position=len(page))
    assert page[0].node_id != again[0].node_id  # two equal pages of one document


def test_pipeline_worker_and_evaluators_give_the_same_chunks_and_vectors(small_qmsum_dir, tmp_path, minilm):
    dataset = load_qmsum(small_qmsum_dir, "questions")
    dataset.corpus = {doc_id: text[:3000] for doc_id, text in dataset.corpus.items()}
    splitter_args = {"chunk_size": 96, "chunk_overlap": 16}
    documents = [Document(id_=doc_id, text=text) for doc_id, text in dataset.corpus.items()]  # as the evaluator
    ingest(documents, tmp_path / "index", minilm, **splitter_args)
    pipeline = stored_chunks(tmp_path / "index")

    worker = ChunkEmbedWorker(minilm.index_config().model_dump_json(), **splitter_args)
    rows = worker({
        "doc_id": np.array([d.doc_id for d in documents], dtype=object),
        "text": np.array([d.text for d in documents], dtype=object),
        "metadata": np.array([json.dumps(d.metadata) for d in documents], dtype=object),
        "content_hash": np.array(["-"] * len(documents), dtype=object),
        "error": np.array([""] * len(documents), dtype=object),
    })  # fmt: skip
    worker_nodes = [json.loads(node) for node in rows["node"]]
    from_worker = {n["id_"]: (d, n["start_char_idx"], n["end_char_idx"], n["text"]) for n, d in
                   zip(worker_nodes, rows["doc_id"])}  # fmt: skip
    assert from_worker == pipeline

    evaluated = {
        c.chunk_id: (c.doc_id, c.start, c.end, c.text) for c in chunk_dataset(dataset, minilm, **splitter_args)
    }
    assert evaluated == pipeline
    _, nodes = build_vector_index(dataset, minilm, **splitter_args)
    assert {n.node_id for n in nodes} == set(pipeline)
    assert {(c.doc_id, c.start, c.end, c.text) for c in chunk_table(nodes)} == set(pipeline.values())

    by_id = {node.node_id: np.asarray(node.embedding) for node in nodes}
    np.testing.assert_allclose(np.stack([by_id[n["id_"]] for n in worker_nodes]), rows["embedding"], atol=1e-5)
    again = [n for d in documents for n in chunk_nodes(worker.splitter, d)]
    np.testing.assert_allclose(embed_chunk_nodes(minilm, again), rows["embedding"], atol=1e-5)


def test_embedded_metadata_takes_its_room_from_the_chunk(minilm):
    """One text view: a chunk is embedded with the metadata ``MetadataMode.EMBED`` shows, so that metadata's
    tokens come off its budget and the embedded text still fits ``chunk_size``."""
    splitter = model_token_splitter(minilm, chunk_size=40, chunk_overlap=0)
    tagged = Document(id_="minutes", text=REPEATED * 3, metadata={"meeting": "product design, kick-off"})
    nodes = chunk_nodes(splitter, tagged)
    texts = [embedded_text(node) for node in nodes]
    assert all(text.startswith("meeting: product design, kick-off\n\n") for text in texts)
    assert max(len(ids) for ids in minilm.tokenizer(texts, add_special_tokens=False)["input_ids"]) <= 40
    assert len(nodes) > len(chunk_nodes(splitter, Document(id_="minutes", text=REPEATED * 3)))


def test_empty_and_blank_text_gives_no_chunk(minilm):
    splitter = model_token_splitter(minilm, chunk_size=24, chunk_overlap=0)
    assert chunk_text(splitter, "d", "") == [] and chunk_text(splitter, "d", " \n\t ") == []
    assert embed_chunk_nodes(minilm, []).shape == (0, minilm.dimension)


@pytest.mark.parametrize("overlap", [0, 8])
def test_overlapping_chunks_share_exactly_their_overlap(minilm, overlap):
    splitter = model_token_splitter(minilm, chunk_size=24, chunk_overlap=overlap)
    chunks = chunk_text(splitter, "d", REPEATED)
    overlaps = [max(0, a.end - b.start) for a, b in pairwise(chunks)]
    assert (max(overlaps) > 0) == (overlap > 0)
    for a, b in pairwise(chunks):
        shared = REPEATED[b.start : a.end]
        assert a.text.endswith(shared.rstrip()) and b.text.startswith(shared.strip())
