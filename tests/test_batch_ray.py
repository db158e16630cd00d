"""The Ray Data batch job: every input document committed exactly once, across reruns and crashes.

"Exactly once" is checked against chunk ids computed here without Ray (the same splitter, the same stable ids):
the index must hold every expected chunk and nothing else, with no chunk twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import numpy as np  # noqa: E402
from llama_index.core import Document  # noqa: E402

from tempscale_index.batch import ConnectorSink, FaissShardSink, run_batch_job  # noqa: E402
from tempscale_index.batch.sinks import shard_dir_for  # noqa: E402
from tempscale_index.chunking import chunk_nodes, model_token_splitter  # noqa: E402
from tempscale_index.node_metadata import TAU_KEY, exclude_file_facts  # noqa: E402
from tempscale_index.pipeline import ingest  # noqa: E402
from tempscale_index.store import FaissStore  # noqa: E402

CHUNK_SIZE = 96


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module, with a CPU to spare for reads beside two 1-CPU workers."""
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _meetings(qmsum_dir: Path, count: int, chars: int) -> list[tuple[str, str]]:
    """(id, text) of ``count`` consecutive ``chars``-character pieces of the QMSum meetings, taking the next
    piece of each meeting in turn (``count`` may exceed the number of meetings)."""
    texts = {}
    for file in sorted(qmsum_dir.glob("*.json")):
        turns = json.loads(file.read_text())["meeting_transcripts"]
        texts[file.stem] = "\n".join(f"{t['speaker']}: {t['content']}" for t in turns)
    pairs = []
    for position in range(count):
        name = sorted(texts)[position % len(texts)]
        piece = position // len(texts)
        pairs.append((name if piece == 0 else f"{name}-{piece}", texts[name][piece * chars : (piece + 1) * chars]))
    return pairs


def _write_jsonl(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text(
        "".join(json.dumps({"id": doc_id, "text": text, "series": doc_id[:2]}) + "\n" for doc_id, text in pairs)
    )
    return path


def _as_read(source: Path, pairs: list[tuple[str, str]], series: bool = True) -> list[Document]:
    """The documents the job reads from ``source`` (its records' fields and the file as metadata), so that the
    pipeline gets what the job embeds: one text view, metadata included."""
    documents = []
    for doc_id, text in pairs:
        metadata = {"file_path": str(source.resolve()), "file_name": source.name}
        metadata.update({"series": doc_id[:2]} if series else {})
        document = Document(id_=doc_id, text=text, metadata=dict(sorted(metadata.items())))
        exclude_file_facts(document)
        documents.append(document)
    return documents


def _expected_chunk_ids(embedding, documents: list[Document]) -> list[str]:
    splitter = model_token_splitter(embedding, chunk_size=CHUNK_SIZE)
    return [node.node_id for document in documents for node in chunk_nodes(splitter, document)]


def _faiss_chunk_ids(index_dir: Path) -> list[str]:
    store = FaissStore.open(index_dir)
    try:
        ids = [int(i) for record in store.documents.values() for i in record.node_ids]
        nodes = store.get_nodes(ids)
        assert all(TAU_KEY in node.metadata for node in nodes)
        return [node.node_id for node in nodes]
    finally:
        store.close()


def test_rerun_commits_only_new_documents_and_counts_unreadable(local_ray, minilm, qmsum_dir, tmp_path):
    meetings = _meetings(qmsum_dir, 4, 1500)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    _write_jsonl(inputs / "first.jsonl", meetings[:2])
    (inputs / "notes.txt").write_text(meetings[2][1])
    (inputs / "broken.txt").write_bytes(b"\xff\xfe not utf-8")
    sink = FaissShardSink(tmp_path / "index", minilm.index_config())

    first = run_batch_job([inputs], sink, chunk_size=CHUNK_SIZE, commit_every=4, show_progress=False)
    assert first.committed_documents == 3
    assert len(first.unreadable) == 1 and "broken.txt" in first.unreadable[0]

    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"id": [meetings[3][0]], "text": [meetings[3][1]]}), inputs / "more.parquet")
    second = run_batch_job([inputs], sink, chunk_size=CHUNK_SIZE, commit_every=4, show_progress=False)
    assert second.committed_documents == 1 and second.already_committed == 3

    notes = _as_read(inputs / "notes.txt", [(str((inputs / "notes.txt").resolve()), meetings[2][1])], series=False)
    read = [
        *_as_read(inputs / "first.jsonl", meetings[:2]),
        *notes,
        *_as_read(inputs / "more.parquet", meetings[3:], False),
    ]
    expected = _expected_chunk_ids(minilm, read)
    stored = _faiss_chunk_ids(tmp_path / "index")
    assert Counter(stored) == Counter(expected)  # every chunk, once


def _stored_chunks(index_dir: Path) -> dict[str, tuple[str, int, int, str, np.ndarray]]:
    """node id → (doc id, start, end, text, vector) of every chunk of a FAISS index."""
    store = FaissStore.open(index_dir)
    try:
        ids = [int(i) for record in store.documents.values() for i in record.node_ids]
        return {
            node.node_id: (node.ref_doc_id, node.start_char_idx, node.end_char_idx, node.text, vector)
            for node, vector in zip(store.get_nodes(ids), (store.index.reconstruct(i) for i in ids))
        }
    finally:
        store.close()


def test_batch_job_and_pipeline_give_the_same_chunks_and_vectors(local_ray, minilm, qmsum_dir, tmp_path):
    """One corpus through ``ingest`` and through the Ray job: same chunk ids, offsets, texts and vectors (given
    the metadata the job reads from the JSONL rows, which both embed with the text)."""
    meetings = _meetings(qmsum_dir, 3, 2500)
    source = _write_jsonl(tmp_path / "meetings.jsonl", meetings)
    sink = FaissShardSink(tmp_path / "batch", minilm.index_config())
    run_batch_job([source], sink, chunk_size=CHUNK_SIZE, show_progress=False)
    ingest(_as_read(source, meetings), tmp_path / "pipeline", minilm, chunk_size=CHUNK_SIZE)
    batch, pipeline = _stored_chunks(tmp_path / "batch"), _stored_chunks(tmp_path / "pipeline")
    assert len(pipeline) > 3 * len(meetings)
    assert set(batch) == set(pipeline)
    for node_id, (*where, vector) in pipeline.items():
        assert batch[node_id][:4] == tuple(where)
        np.testing.assert_allclose(batch[node_id][4], vector, atol=1e-5)


def _kill_when(condition, target_pids, stop: threading.Event) -> threading.Thread:
    """SIGKILL the processes ``target_pids()`` returns, once ``condition()`` holds (polled in a thread)."""

    def watch() -> None:
        while not stop.is_set():
            pids = target_pids()
            if condition() and pids:
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                stop.set()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _embedding_worker_pids() -> list[int]:
    psutil = pytest.importorskip("psutil")
    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if "ChunkEmbedWorker" in " ".join(process.info["cmdline"] or []):
            pids.append(process.info["pid"])
    return pids[:1]


@pytest.mark.slow
def test_killed_worker_loses_and_duplicates_nothing(local_ray, minilm, qmsum_dir, tmp_path):
    """A worker killed mid-job (into LanceDB) is replaced, its batch retried; the job commits every chunk once."""
    pytest.importorskip("lancedb")
    from tempscale_index.connectors.lancedb import LanceDBConnector

    meetings = _meetings(qmsum_dir, 8, 3000)
    source = _write_jsonl(tmp_path / "meetings.jsonl", meetings)
    connector = LanceDBConnector("meetings", uri=str(tmp_path / "lancedb"))
    connector.attach(minilm)
    ledger = tmp_path / "ledger.jsonl"
    sink = ConnectorSink(connector, ledger)
    killed = threading.Event()
    _kill_when(lambda: ledger.exists(), _embedding_worker_pids, killed)

    report = run_batch_job(
        [source], sink, workers=2, chunk_size=CHUNK_SIZE, documents_per_batch=1, commit_every=1, show_progress=False
    )
    assert killed.is_set(), "the job ended before a worker could be killed; make it longer"
    assert report.committed_documents == len(meetings)
    rows = connector.vector_store.table.to_arrow().column("id").to_pylist()
    assert Counter(rows) == Counter(_expected_chunk_ids(minilm, _as_read(source, meetings)))
    connector.close()


@pytest.mark.slow
def test_killed_driver_rerun_loses_and_duplicates_nothing(local_ray, minilm, qmsum_dir, tmp_path):
    """Kill the CLI driver (SIGKILL) after its first commit; a rerun finishes with every chunk exactly once."""
    meetings = _meetings(qmsum_dir, 8, 3000)
    source = _write_jsonl(tmp_path / "meetings.jsonl", meetings)
    index_dir = tmp_path / "index"
    command = [
        str(Path(sys.executable).parent / "tempscale-index"), "batch", str(source), "--index", str(index_dir),
        "--doc-temperature", "1.0", "--query-temperature", "1.0", "--chunk-size", str(CHUNK_SIZE),
        "--documents-per-batch", "1", "--commit-every", "1", "--no-progress",
    ]  # fmt: skip
    driver = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True)
    shards = shard_dir_for(index_dir)
    deadline = time.monotonic() + 300
    while not list(shards.glob("shard-*")) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert driver.poll() is None, "the driver finished before it could be killed"
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started: a crash, no cleanup
    driver.wait()
    committed_before = len(FaissShardSink(index_dir, minilm.index_config()).committed())
    assert 0 < committed_before < len(meetings)

    sink = FaissShardSink(index_dir, minilm.index_config())
    report = run_batch_job([source], sink, chunk_size=CHUNK_SIZE, show_progress=False)
    assert report.already_committed == committed_before
    assert report.committed_documents == len(meetings) - committed_before
    assert Counter(_faiss_chunk_ids(index_dir)) == Counter(_expected_chunk_ids(minilm, _as_read(source, meetings)))


def test_batch_job_and_pipeline_agree_on_what_a_file_is(tmp_path):
    """Same doc id and content hash for a text file read by either, so a folder ingested by one is a no-op for
    the other; file metadata (dates) is not content."""
    from tempscale_index.batch.sources import _text_file_document
    from tempscale_index.pipeline.readers import iter_file_documents
    from tempscale_index.store import content_hash

    file = tmp_path / "notes.md"
    file.write_text("# Notes\n\nThe budget was approved on Tuesday.\n", encoding="utf-8")
    (document,) = iter_file_documents([file])
    row = _text_file_document({"path": str(file.resolve()), "bytes": file.read_bytes()})
    assert row["doc_id"] == document.doc_id
    assert row["content_hash"] == content_hash(document.doc_id, [document.text])
    os.utime(file, (1, 1))
    (touched,) = iter_file_documents([file])
    assert content_hash(touched.doc_id, [touched.text]) == row["content_hash"]
    assert content_hash(document.doc_id, [document.text + " "]) != row["content_hash"]


def test_one_text_view_pipeline_store_connector_and_ray_job_embed_a_chunk_alike(local_ray, minilm, qmsum_dir, tmp_path):
    """A chunk is embedded as LlamaIndex's ``MetadataMode.EMBED`` shows it (its text after the metadata not
    excluded from embedding) by every entry point, and the indexes record that text view."""
    from llama_index.core import StorageContext, VectorStoreIndex
    from tempscale_index.connectors.qdrant import QdrantConnector

    from tempscale_index.chunking import chunk_nodes
    from tempscale_index.node_metadata import METADATA_KEYS, TEXT_VIEW, embedded_text, exclude_file_facts
    from tempscale_index.store.vector_store import TempScaleFaissVectorStore

    ((doc_id, text),) = _meetings(qmsum_dir, 1, 2500)
    source = tmp_path / "meetings.jsonl"
    source.write_text(json.dumps({"id": doc_id, "text": text, "topic": "the remote control design"}) + "\n")
    run_batch_job([source], FaissShardSink(tmp_path / "ray", minilm.index_config()), chunk_size=CHUNK_SIZE,
                  show_progress=False)  # fmt: skip
    ray_chunks = _stored_chunks(tmp_path / "ray")
    ray_store = FaissStore.open(tmp_path / "ray")  # the document metadata the job read from the row
    (record,) = ray_store.documents.values()
    (first,) = ray_store.get_nodes([record.node_ids[0]])
    ray_store.close()
    metadata = {key: value for key, value in first.metadata.items() if key not in METADATA_KEYS}
    document = Document(id_=doc_id, text=text, metadata=metadata)
    exclude_file_facts(document)  # as the readers do for files, and the Ray job for its rows
    assert "topic: the remote control design" in embedded_text(
        chunk_nodes(model_token_splitter(minilm, CHUNK_SIZE), document)[0]
    )

    ingest([document], tmp_path / "pipeline", minilm, chunk_size=CHUNK_SIZE)
    splitter = model_token_splitter(minilm, chunk_size=CHUNK_SIZE)
    store = TempScaleFaissVectorStore.create(tmp_path / "store", embed_model=minilm)
    VectorStoreIndex(chunk_nodes(splitter, document), storage_context=StorageContext.from_defaults(vector_store=store),
                     embed_model=minilm)  # fmt: skip
    store.persist()
    store.close()
    connector_nodes = chunk_nodes(splitter, document)
    connector = QdrantConnector("text-view", path=str(tmp_path / "qdrant"))
    connector.attach(minilm)
    connector.add_nodes(connector_nodes)
    connector.close()

    pipeline = _stored_chunks(tmp_path / "pipeline")
    assert len(pipeline) > 3 and set(pipeline) == set(ray_chunks) == set(_stored_chunks(tmp_path / "store"))
    for others in (
        ray_chunks,
        _stored_chunks(tmp_path / "store"),
        {n.node_id: (n.embedding,) for n in connector_nodes},
    ):
        for node_id, (*_, vector) in pipeline.items():
            np.testing.assert_allclose(others[node_id][-1], vector, atol=1e-5)
    for folder in ("pipeline", "store", "ray"):
        assert FaissStore.read_manifest(tmp_path / folder)["text_view"] == TEXT_VIEW == "embed"
