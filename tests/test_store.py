"""FaissStore: persistence, atomic versions, updates per index type, checks on load (random vectors, no model)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import TextNode

from tempscale_index.index_config import IndexConfigMismatchError
from tempscale_index.store import (
    CorruptIndexError,
    FaissStore,
    IndexExistsError,
    IndexLockedError,
    IndexNotFoundError,
    StoreError,
    vector_index,
)
from tempscale_index.store.files import sha256_file
from tests.pipeline_helpers import fake_config

DIM = 16
INDEX_TYPES = ["Flat", "HNSW32", "IVF4,Flat", "IVF4,PQ4x4", "PQ4x4"]


def random_vectors(n: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_nodes(doc_id: str, n: int) -> list[TextNode]:
    return [
        TextNode(text=f"{doc_id} chunk {i}", metadata={"file_name": f"{doc_id}.txt", "tempscale_tau": 0.9})
        for i in range(n)
    ]


def add_docs(store: FaissStore, docs: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    vectors = {}
    for offset, (doc_id, n) in enumerate(docs.items()):
        vectors[doc_id] = random_vectors(n, seed + offset)
        store.add(doc_id, f"hash-{doc_id}", make_nodes(doc_id, n), vectors[doc_id], {"file_name": f"{doc_id}.txt"})
    return vectors


@pytest.fixture
def index_dir(tmp_path):
    return tmp_path / "index"


def test_commit_then_reopen_round_trips_nodes_vectors_and_counts(index_dir):
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        vectors = add_docs(store, {"a": 3, "b": 2})
        assert store.commit() == 1
    with FaissStore.open(index_dir, fake_config(DIM)) as store:
        assert (store.num_documents, store.num_nodes, store.index.ntotal) == (2, 5, 5)
        scores, ids = store.search(vectors["b"][1], k=1)
        (node,) = store.get_nodes(ids[0])
        assert node.text == "b chunk 1" and node.metadata["tempscale_tau"] == 0.9
        assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)
        manifest = json.loads((index_dir / "versions" / "v-000001" / "manifest.json").read_text())
        assert manifest["counts"] == {"documents": 2, "nodes": 5}
        assert manifest["index_factory"] == "Flat" and manifest["config"]["dimension"] == DIM
        assert {"faiss", "numpy", "llama-index-core"} <= set(manifest["packages"])


def test_uncommitted_changes_are_invisible_until_commit(index_dir):
    with FaissStore.create(index_dir, fake_config(DIM)) as writer:
        add_docs(writer, {"a": 2})
        writer.commit()
        add_docs(writer, {"b": 4}, seed=5)
        reader = FaissStore.open(index_dir)
        assert reader.num_nodes == 2 and reader.index.ntotal == 2
        assert not reader.refresh()
        writer.commit()
        assert reader.refresh() and reader.num_nodes == 6 and reader.version == 2
        reader.close()


def test_closing_without_commit_discards_changes_and_staging(index_dir):
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        add_docs(store, {"a": 2})
        store.commit()
    with FaissStore.open(index_dir, writable=True) as store:
        add_docs(store, {"b": 3})
    assert not list(index_dir.glob("staging-*"))
    with FaissStore.open(index_dir) as store:
        assert set(store.documents) == {"a"}


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_delete_and_replace_keep_counts_consistent_for_every_index_type(index_dir, index_type):
    with FaissStore.create(index_dir, fake_config(DIM), index_factory=index_type, train_size=64) as store:
        vectors = add_docs(store, {f"d{i}": 20 for i in range(8)})
        store.commit()
        old_ids = set(store.documents["d3"].node_ids) | set(store.documents["d5"].node_ids)
        removed = store.delete("d3")
        replacement = add_docs(store, {"d5": 7}, seed=99)  # a changed document replaces its chunks
        store.commit()
    assert removed == 20
    with FaissStore.open(index_dir, fake_config(DIM)) as store:
        assert store.index_factory == index_type
        assert store.num_documents == 7 and store.num_nodes == 6 * 20 + 7 == store.index.ntotal
        assert len(store.documents["d5"].node_ids) == 7
        _, ids = store.search(np.vstack([vectors["d3"], vectors["d5"]]), k=store.index.ntotal)
        assert not old_ids & set(ids.ravel().tolist())
        with pytest.raises(KeyError):
            store.get_nodes([min(old_ids)])
        _, ids = store.search(replacement["d5"], k=1)
        top = [node.text for node in store.get_nodes(ids[:, 0])]
        if "PQ" not in index_type:  # exact vectors: each chunk finds itself
            assert top == [f"d5 chunk {i}" for i in range(7)]


def test_training_happens_on_a_sample_and_too_small_a_corpus_fails_clearly(index_dir):
    with FaissStore.create(index_dir, fake_config(DIM), index_factory="IVF8,Flat", train_size=50) as store:
        add_docs(store, {"a": 30})
        assert not store.index.is_trained
        add_docs(store, {"b": 30})  # 60 buffered >= 50: trained, then added
        assert store.index.is_trained and store.index.ntotal == 60
        store.commit()
    with FaissStore.create(tmp := index_dir.parent / "small", fake_config(DIM), index_factory="IVF64,PQ4") as store:
        add_docs(store, {"a": 10})
        with pytest.raises(StoreError, match=r"could not train a 'IVF64,PQ4' index on the 10 chunks"):
            store.commit()
    assert not tmp.exists()  # the failed create left nothing behind


def test_bad_index_type_is_one_line_and_leaves_nothing_on_disk(tmp_path):
    index_dir = tmp_path / "new"
    with pytest.raises(ValueError) as raised:
        FaissStore.create(index_dir, fake_config(DIM), index_factory="Foo")
    assert str(raised.value) == (
        "index type 'Foo' is not a FAISS index_factory string for 16-dimensional vectors "
        "(examples: Flat, HNSW32, IVF256,Flat, IVF256,PQ16)"
    )
    assert not index_dir.exists()
    (empty := tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no IDMap prefix"):
        FaissStore.open(empty, fake_config(DIM), writable=True, create=True, index_factory="IDMap,Flat")
    with pytest.raises(ValueError, match="needs the embedding's IndexConfig"):
        FaissStore.open(empty, writable=True, create=True)
    assert list(empty.iterdir()) == []
    with FaissStore.create(empty, fake_config(DIM)):  # opened and closed without a commit: nothing stays
        pass
    assert list(empty.iterdir()) == []


def test_reopening_with_another_type_or_config_is_refused(index_dir):
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        add_docs(store, {"a": 2})
        store.commit()
    with pytest.raises(IndexConfigMismatchError, match="query_temperature"):
        FaissStore.open(index_dir, fake_config(DIM, query_tau=0.8))
    with pytest.raises(ValueError, match="is a 'Flat' index"):
        FaissStore.open(index_dir, writable=True, index_factory="HNSW32")
    with pytest.raises(IndexExistsError):
        FaissStore.create(index_dir, fake_config(DIM))


def test_an_index_is_never_created_inside_a_folder_of_other_files(tmp_path):
    (tmp_path / "notes.md").write_text("my notes")
    with pytest.raises(IndexExistsError, match="is not empty"):
        FaissStore.create(tmp_path, fake_config(DIM))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md"]


def test_missing_index_and_second_writer_are_refused(index_dir):
    with pytest.raises(IndexNotFoundError, match="no index at"):
        FaissStore.open(index_dir)
    with pytest.raises(IndexNotFoundError, match="no index at"):
        FaissStore.open(index_dir, writable=True)  # e.g. deleting from a mistyped path
    assert not index_dir.exists()
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        add_docs(store, {"a": 2})
        store.commit()
        with pytest.raises(IndexLockedError, match="another process is writing"):
            FaissStore.open(index_dir, writable=True, lock_timeout=0.1)
        with FaissStore.open(index_dir) as reader:  # readers need no lock
            assert reader.num_nodes == 2
    with FaissStore.open(index_dir, writable=True, lock_timeout=0.1):
        pass


@pytest.fixture
def committed(index_dir):
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        add_docs(store, {"a": 4, "b": 4})
        store.commit()
    return index_dir / "versions" / "v-000001"


def test_truncated_file_is_reported(committed):
    path = committed / "index.faiss"
    path.write_bytes(path.read_bytes()[:-10])
    message = r"index.faiss has \d+ bytes but the manifest recorded \d+: .*truncated"
    with pytest.raises(CorruptIndexError, match=message):
        FaissStore.open(committed.parent.parent)


def test_corrupted_file_is_reported(committed):
    path = committed / "nodes.jsonl"
    data = bytearray(path.read_bytes())
    data[40] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptIndexError, match=r"nodes.jsonl does not match the SHA-256"):
        FaissStore.open(committed.parent.parent)


def rewrite_manifest(version_dir, change) -> None:
    """Edit a committed manifest and record its new checksum in CURRENT and its seal, as a consistent but wrong
    index."""
    path = version_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    (version_dir.parent.parent / "CURRENT").write_text(f"{version_dir.name} {sha256_file(path)}\n")
    (version_dir / "manifest.sha256").write_text(f"{sha256_file(path)}  manifest.json\n")


def test_half_written_manifest_and_dangling_current_are_reported(committed):
    index_dir = committed.parent.parent
    manifest = committed / "manifest.json"
    manifest.write_text(manifest.read_text()[:50])
    with pytest.raises(CorruptIndexError, match=r"manifest.json does not match the SHA-256 recorded in CURRENT"):
        FaissStore.open(index_dir)
    (index_dir / "CURRENT").write_text(f"v-000001 {sha256_file(manifest)}\n")
    with pytest.raises(CorruptIndexError, match=r"manifest.json does not match the SHA-256 recorded in manifest.sha"):
        FaissStore.open(index_dir)
    (committed / "manifest.sha256").write_text(f"{sha256_file(manifest)}  manifest.json\n")
    with pytest.raises(CorruptIndexError, match=r"manifest.json is not valid JSON"):
        FaissStore.open(index_dir)
    (index_dir / "CURRENT").write_text("v-000009\n")
    with pytest.raises(CorruptIndexError, match="names version 'v-000009'"):
        FaissStore.open(index_dir)


def test_an_edited_manifest_is_refused(committed):
    """Editing the query τ in manifest.json would make every query run at the edited τ: refused, naming the file."""
    index_dir = committed.parent.parent
    path = committed / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"]["query_temperature"]["value"] = 0.3
    path.write_text(json.dumps(manifest, indent=2))
    for open_it in (lambda: FaissStore.open(index_dir), lambda: FaissStore.read_manifest(index_dir)):
        with pytest.raises(CorruptIndexError, match=r"v-000001/manifest.json does not match the SHA-256 recorded"):
            open_it()
    with pytest.raises(CorruptIndexError, match=r"manifest.json does not match"):
        FaissStore.open(index_dir, writable=True, create=True, config=fake_config(DIM))


def test_a_one_word_current_of_an_older_format_is_trusted_only_through_the_seal(committed):
    """``echo v-000001 > CURRENT`` (the older format) loads a sealed version; an edited manifest, or a version
    without a seal, is refused: a one-word CURRENT never lets an unchecked manifest through."""
    index_dir = committed.parent.parent
    (index_dir / "CURRENT").write_text("v-000001\n")
    with FaissStore.open(index_dir, writable=True) as store:
        assert store.num_nodes == 8
        add_docs(store, {"c": 1})
        store.commit()
    name, checksum = (index_dir / "CURRENT").read_text().split()
    assert name == "v-000002" and checksum == sha256_file(index_dir / "versions" / name / "manifest.json")
    (index_dir / "CURRENT").write_text("v-000002\n")
    path = index_dir / "versions" / name / "manifest.json"
    path.write_text(path.read_text().replace('"value": 1.0', '"value": 0.3'))
    with pytest.raises(CorruptIndexError, match=r"manifest.json does not match the SHA-256 recorded in manifest.sha"):
        FaissStore.open(index_dir)
    (index_dir / "versions" / name / "manifest.sha256").unlink()
    with pytest.raises(CorruptIndexError, match=r"manifest.json cannot be verified: it has no manifest.sha256") as err:
        FaissStore.open(index_dir)
    assert "\n" not in str(err.value)


def test_counts_that_disagree_are_reported_even_unhashed(committed):
    rewrite_manifest(committed, lambda manifest: manifest["counts"].update(nodes=7))
    with pytest.raises(CorruptIndexError, match=r"manifest counts 7 nodes.*vectors in index.faiss: 8"):
        FaissStore.open(committed.parent.parent, verify=False)


@pytest.mark.parametrize(
    ("dimension", "message"),
    [
        (32, r"manifest.json says the embedding has 32 dimensions but the vectors in index.faiss have 16: "),
        (-1, r"manifest.json holds an invalid embedding config \(dimension: Input should be greater than 0\)"),
    ],
)
def test_a_manifest_with_a_wrong_dimension_is_one_clear_sentence(committed, dimension, message):
    rewrite_manifest(committed, lambda manifest: manifest["config"].update(dimension=dimension))
    with pytest.raises(CorruptIndexError, match=message) as raised:
        FaissStore.open(committed.parent.parent)
    assert "\n" not in str(raised.value) and str(raised.value).count(":") <= 3


def test_offsets_are_never_unpickled(committed):
    """A hostile offsets.npy, even with a manifest that vouches for it, is refused rather than unpickled."""
    path = committed / "offsets.npy"
    with open(path, "wb") as handle:
        np.save(handle, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    entry = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    rewrite_manifest(committed, lambda manifest: manifest["files"].update({"offsets.npy": entry}))
    with pytest.raises(CorruptIndexError, match=r"offsets.npy is unreadable"):
        FaissStore.open(committed.parent.parent)


def test_leftovers_of_a_crashed_writer_are_ignored_then_cleaned(committed):
    index_dir = committed.parent.parent
    junk = index_dir / "versions" / ".tmp-v-000002-deadbeef"
    junk.mkdir()
    (junk / "index.faiss").write_bytes(b"half")
    (index_dir / "staging-0123.jsonl").write_text('{"id": 99')
    orphan = index_dir / "versions" / "v-000002"  # renamed into place, but CURRENT was never replaced
    shutil.copytree(committed, orphan)
    with FaissStore.open(index_dir) as reader:
        assert reader.version == 1
    with FaissStore.open(index_dir, writable=True) as store:
        assert store.num_nodes == 8
        add_docs(store, {"c": 1})
        assert store.commit() == 3  # the orphan's number is never reused
    assert not junk.exists() and not (index_dir / "staging-0123.jsonl").exists()
    assert (index_dir / "quarantine" / "v-000002" / "index.faiss").is_file()  # kept, not deleted
    with FaissStore.open(index_dir) as reader:
        assert reader.version == 3 and reader.num_nodes == 9


def test_old_versions_are_collected_but_the_previous_one_is_kept(index_dir):
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        for i in range(4):
            add_docs(store, {f"d{i}": 2}, seed=i)
            store.commit()
    assert sorted(p.name for p in (index_dir / "versions").iterdir()) == ["v-000003", "v-000004"]


def test_a_reader_keeps_answering_from_its_version_after_it_is_collected(index_dir):
    with FaissStore.create(index_dir, fake_config(DIM)) as writer:
        vectors = add_docs(writer, {"a": 3})
        writer.commit()
        reader = FaissStore.open(index_dir)
        for i in range(3):
            add_docs(writer, {f"n{i}": 2}, seed=10 + i)
            writer.commit()
        assert not (index_dir / "versions" / "v-000001").exists()
        _, ids = reader.search(vectors["a"][2], k=1)
        assert reader.get_nodes(ids[0])[0].text == "a chunk 2"
        reader.close()


def test_filtered_search_exact_and_through_faiss_selector(index_dir, monkeypatch):
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        vectors = add_docs(store, {"a": 10, "b": 10})
        store.commit()
        allowed = store.documents["b"].node_ids
        for limit in (vector_index.EXACT_FILTER_LIMIT, 0):
            monkeypatch.setattr(vector_index, "EXACT_FILTER_LIMIT", limit)
            scores, ids = store.search(vectors["a"][:2], k=12, allowed_ids=allowed)
            assert set(ids[ids >= 0].tolist()) <= set(allowed) and (ids >= 0).sum(axis=1).tolist() == [10, 10]
            assert np.all(np.diff(scores[:, :10], axis=1) <= 1e-6)


@pytest.mark.parametrize("limit", [vector_index.EXACT_FILTER_LIMIT, 0])
def test_an_allowed_id_marked_removed_is_never_returned(limit, monkeypatch):
    """HNSW cannot remove at once: removed ids stay in FAISS, marked, until commit rebuilds it. A stale allowed
    list naming one (a caller's own ids) must still not bring it back, scored exactly or through the selector."""
    monkeypatch.setattr(vector_index, "EXACT_FILTER_LIMIT", limit)
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((20, DIM)).astype(np.float32)
    index = vector_index.VectorIndex.empty("HNSW8", DIM)
    index.add(np.arange(20, dtype=np.int64), vectors)
    index.remove(np.array([4, 5], dtype=np.int64))
    _, ids = index.search(vectors[4:5], k=3, allowed=np.array([4, 5, 6], dtype=np.int64))
    assert ids[0].tolist() == [6, -1, -1]


def test_readers_do_not_need_write_access(committed):
    index_dir = committed.parent.parent
    if os.geteuid() == 0:
        pytest.skip("root ignores permissions")
    shutil.copytree(index_dir, copy := index_dir.parent / "ro")
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    with FaissStore.open(copy) as store:
        assert store.num_nodes == 8


def test_versions_are_ordered_by_number_past_the_padded_width(index_dir):
    """Past v-999999 the names are 7 digits: garbage collection and orphan removal must compare numbers."""
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        add_docs(store, {"a": 2})
        store.commit()
        store.version = 999_998  # as if this index had been committed that often
        for i in range(3):
            add_docs(store, {f"n{i}": 1}, seed=i)
            store.commit()
        assert store.version == 1_000_001
    assert sorted(p.name for p in (index_dir / "versions").iterdir()) == ["v-1000000", "v-1000001"]
    with FaissStore.open(index_dir, writable=True) as store:
        assert store.version == 1_000_001 and store.num_nodes == 5
        add_docs(store, {"b": 1})
        store.commit()
    assert sorted(p.name for p in (index_dir / "versions").iterdir()) == ["v-1000001", "v-1000002"]


def test_hnsw_removals_rebuild_the_index_once_per_commit(index_dir, monkeypatch):
    rebuilds = []
    original = vector_index.rebuild_without

    def counting(*args, **kwargs):
        rebuilds.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(vector_index, "rebuild_without", counting)
    with FaissStore.create(index_dir, fake_config(DIM), index_factory="HNSW32") as store:
        vectors = add_docs(store, {f"d{i}": 10 for i in range(8)})
        store.commit()
        store.delete("d0")
        replaced = add_docs(store, {f"d{i}": 3 for i in range(1, 6)}, seed=50)  # 5 replacements
        _, ids = store.search(vectors["d0"], k=5)  # marked removals are hidden before the commit
        assert not set(ids.ravel().tolist()) & set(range(10))
        assert rebuilds == []
        store.commit()
        assert rebuilds == [1]
    with FaissStore.open(index_dir, fake_config(DIM)) as store:
        assert store.num_nodes == store.index.ntotal == 5 * 3 + 2 * 10
        _, ids = store.search(replaced["d3"], k=1)
        assert [node.text for node in store.get_nodes(ids[:, 0])] == [f"d3 chunk {i}" for i in range(3)]


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_batch_reconstruction_and_partial_top_k_match_the_exact_answer(index_dir, index_type):
    with FaissStore.create(index_dir, fake_config(DIM), index_factory=index_type, train_size=64) as store:
        add_docs(store, {f"d{i}": 20 for i in range(5)})
        store.commit()
        allowed = np.array(store.documents["d1"].node_ids[::2] + store.documents["d4"].node_ids, dtype=np.int64)
        vectors = store.vectors.reconstruct(allowed)
        assert np.array_equal(vectors, np.vstack([store.index.reconstruct(int(i)) for i in allowed]))
        queries = random_vectors(3, seed=7)
        scores, ids = store.search(queries, k=7, allowed_ids=allowed)
        exact = queries @ vectors.T
        order = np.argsort(-exact, axis=1, kind="stable")[:, :7]
        assert np.array_equal(ids, allowed[order]) and np.allclose(scores, np.take_along_axis(exact, order, 1))


def test_lost_current_is_recovered_by_readers_and_writers(index_dir, caplog):
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        add_docs(store, {"a": 3})
        store.commit()
        add_docs(store, {"b": 2}, seed=3)
        store.commit()
    (index_dir / "CURRENT").unlink()
    assert FaissStore.exists(index_dir)
    assert FaissStore.read_manifest(index_dir)["version"] == 2
    with FaissStore.open(index_dir) as store:
        assert store.version == 2 and set(store.documents) == {"a", "b"}
    assert "recovered the newest complete, verified version" in caplog.text and "v-000002" in caplog.text
    assert not (index_dir / "CURRENT").exists()  # readers do not write
    reader = FaissStore.open(index_dir)
    assert not reader.refresh()
    with FaissStore.open(index_dir, fake_config(DIM), writable=True, create=True) as store:  # what ingest does
        assert store.version == 2 and set(store.documents) == {"a", "b"}
        add_docs(store, {"c": 1}, seed=4)
        assert store.commit() == 3
    assert reader.refresh() and set(reader.documents) == {"a", "b", "c"}
    reader.close()


def test_creating_over_versions_whose_current_is_lost_is_refused(index_dir):
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        add_docs(store, {"a": 3})
        store.commit()
    (index_dir / "CURRENT").unlink()
    with pytest.raises(IndexExistsError, match=r"CURRENT file is missing but committed version v-000001 is there"):
        FaissStore.create(index_dir, fake_config(DIM))
    assert (index_dir / "versions" / "v-000001").is_dir()
    with FaissStore.open(index_dir) as store:
        assert set(store.documents) == {"a"}


def test_lost_current_skips_a_damaged_newest_version(index_dir, caplog):
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        for i in range(2):
            add_docs(store, {f"d{i}": 2}, seed=i)
            store.commit()
    (index_dir / "CURRENT").unlink()
    damaged = index_dir / "versions" / "v-000002" / "index.faiss"
    damaged.write_bytes(damaged.read_bytes()[:-4])
    with FaissStore.open(index_dir) as store:
        assert store.version == 1 and set(store.documents) == {"d0"}
    assert "v-000001" in caplog.text and "skipped unverifiable v-000002" in caplog.text
    damaged.parent.with_name("v-000001").joinpath("nodes.jsonl").write_text("")
    with pytest.raises(CorruptIndexError, match=r"CURRENT is missing and no version under .* verifies"):
        FaissStore.open(index_dir)


def test_importing_the_store_loads_no_torch_transformers_or_llama_index():
    code = (
        "import sys; import tempscale_index.store; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'llama_index'}))"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=True)
    assert done.stdout.strip() == "[]"


def test_searching_an_emptied_index_finds_nothing(index_dir):
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        vectors = add_docs(store, {"a": 3})
        store.commit()
        store.delete("a")
        store.commit()
    with FaissStore.open(index_dir) as store:
        scores, ids = store.search(vectors["a"], k=2)
        assert ids.tolist() == [[-1, -1]] * 3 and np.isneginf(scores).all()


def test_atomic_writes_from_many_threads_never_collide(tmp_path) -> None:
    """One atomic-write helper for the store and the query-path records: concurrent writers of one file (serving
    threads recording a query path) each use their own temporary file, and nothing is left behind."""
    from concurrent.futures import ThreadPoolExecutor

    from tempscale_index.store.files import write_atomic_text

    target = tmp_path / "record.json"
    texts = [json.dumps({"writer": i, "pad": "x" * 2000}) for i in range(64)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda text: write_atomic_text(target, text), texts))
    assert target.read_text() in texts and [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_an_index_written_before_per_chunk_metadata_is_filtered_per_chunk(index_dir):
    """A version whose records hold only what a document's chunks share (no ``chunk_metadata`` in its manifest)
    has its chunks' own values read from the node table before a filter runs, and recorded by the next commit."""
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

    from tempscale_index.store.filters import allowed_node_ids

    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        nodes = [TextNode(text=f"page {page}", metadata={"file_name": "a.pdf", "page": page}) for page in (1, 2)]
        store.add("a", "hash-a", nodes, random_vectors(2, 0), {"file_name": "a.pdf"})
        store.commit()
        version = index_dir / "versions" / store.version_name
    documents = version / "documents.jsonl"
    lines = [json.loads(line) for line in documents.read_text().splitlines()]
    assert lines[0].pop("node_metadata") and documents.write_text("".join(json.dumps(line) + "\n" for line in lines))
    entry = {"bytes": documents.stat().st_size, "sha256": sha256_file(documents)}
    rewrite_manifest(
        version, lambda manifest: (manifest.pop("chunk_metadata"), manifest["files"].update({"documents.jsonl": entry}))
    )
    page_2 = MetadataFilters(filters=[MetadataFilter(key="page", value=2)])
    with FaissStore.open(index_dir) as reader:
        assert not reader.documents["a"].node_metadata  # as an older version recorded it
        assert len(allowed_node_ids(reader, page_2)) == 1
    with FaissStore.open(index_dir, writable=True) as writer:
        writer.add("b", "hash-b", make_nodes("b", 1), random_vectors(1, 1))
        writer.commit()
    with FaissStore.open(index_dir) as reader:
        assert reader.manifest["chunk_metadata"] and reader.documents["a"].node_metadata
