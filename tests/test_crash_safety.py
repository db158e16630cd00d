"""Kill the ingest process (a subprocess) at random moments and at every step of a commit: the last committed
index always loads and answers exactly as that version should; readers during an ingest never see a
half-written index. The slow tier (`pytest -m slow`) runs 20 random kills and every crash point."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tempscale_index.node_metadata import embedded_text
from tempscale_index.pipeline import ingest
from tempscale_index.store import CorruptIndexError, FaissStore
from tempscale_index.store.files import CRASH_POINT_ENV
from tests.pipeline_helpers import package_docs, write_corpus

K = 4
QUERIES = [
    "How do I install this package with pip?",
    "file locking between processes",
    "fast similarity search over dense vectors",
    "tensors and GPU acceleration",
    "templates for HTML",
]
DRIVER = """
import sys
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.index_config import IndexConfig
from tempscale_index.pipeline import ingest
from tempscale_index.store import FaissStore
corpus, index, commit_every = sys.argv[1], sys.argv[2], int(sys.argv[3])
embedding = TempScaleEmbedding.from_index_config(IndexConfig.from_manifest(FaissStore.read_manifest(index)))
print("ready", flush=True)
ingest(corpus, index, embedding, commit_every=commit_every or None, batch_chunks=8)
print("done", flush=True)
"""
BEFORE_CURRENT = [
    "commit:index-written",
    "commit:nodes-half-written",
    "commit:version-written",
    "commit:version-renamed",
]
AFTER_CURRENT = ["commit:current-replaced"]


class Scenario:
    """A base index (corpus A) and the reference result of ingesting corpus B into it, with every chunk's
    reference vector, so that the right answers of any committed state can be computed independently."""

    def __init__(self, root: Path, embedding) -> None:
        self.root = root
        self.embedding = embedding
        self.corpus_a = root / "a"
        self.corpus_b = root / "b"
        write_corpus(self.corpus_a, package_docs(count=3, max_chars=1500))
        self.b_files = write_corpus(self.corpus_b, package_docs(count=6, max_chars=1500, skip=3))
        self.base = root / "base"
        ingest(self.corpus_a, self.base, embedding, chunk_size=96, chunk_overlap=16)
        reference = root / "reference"
        shutil.copytree(self.base, reference)
        started = time.time()
        ingest(self.corpus_b, reference, embedding)
        self.ingest_seconds = time.time() - started
        self.b_order = [str(path.resolve()) for path in sorted(self.b_files)]
        with FaissStore.open(self.base) as store:
            self.a_ids = set(store.documents)
            self.base_version = store.version
        self.chunks: dict[str, list[tuple[str, np.ndarray]]] = {}
        with FaissStore.open(reference) as store:
            for doc_id, record in store.documents.items():
                nodes = store.get_nodes(record.node_ids)
                self.chunks[doc_id] = [(n.text, store.index.reconstruct(i)) for n, i in zip(nodes, record.node_ids)]
        self.query_vectors = embedding.encode(QUERIES, "query").embeddings
        self.config = embedding.index_config()

    def trial_dir(self, name: str) -> Path:
        target = self.root / name
        shutil.copytree(self.base, target)
        return target

    def expected(self, doc_ids: set[str]) -> list[list[tuple[str, str, float]]]:
        """Top-K (doc id, text, score) per query over the reference vectors of ``doc_ids``."""
        rows = [(doc_id, text, vector) for doc_id in sorted(doc_ids) for text, vector in self.chunks[doc_id]]
        matrix = np.vstack([vector for *_, vector in rows])
        scores = self.query_vectors @ matrix.T
        out = []
        for query_scores in scores:
            top = np.argsort(-query_scores, kind="stable")[:K]
            out.append([(rows[i][0], rows[i][1], float(query_scores[i])) for i in top])
        return out

    def check(self, index_dir: Path) -> FaissStore:
        """Load the committed index and prove it is a complete, consistent state answering exactly right."""
        store = FaissStore.open(index_dir, self.config)  # sizes, hashes and counts are checked on load
        docs = set(store.documents)
        new = docs - self.a_ids
        assert self.a_ids <= docs, "a committed document was lost"
        assert new == set(self.b_order[: len(new)]), f"not a committed prefix of the ingest: {sorted(new)}"
        for doc_id in docs:
            texts = [node.text for node in store.get_nodes(store.documents[doc_id].node_ids)]
            assert texts == [text for text, _ in self.chunks[doc_id]], f"chunks of {doc_id} differ"
        scores, ids = store.search(self.query_vectors, K)
        for query, expected, row_scores, row_ids in zip(QUERIES, self.expected(docs), scores, ids):
            nodes = store.get_nodes(row_ids)
            got = [(node.ref_doc_id, node.text) for node in nodes]
            assert got == [(doc_id, text) for doc_id, text, _ in expected], f"answers to {query!r} differ"
            assert np.allclose(row_scores, [score for *_, score in expected], atol=1e-4)
        return store


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, minilm):
    return Scenario(tmp_path_factory.mktemp("crash"), minilm)


def start_ingest(scenario: Scenario, index_dir: Path, commit_every: int, crash_point: str | None = None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop(CRASH_POINT_ENV, None)
    if crash_point:
        env[CRASH_POINT_ENV] = crash_point
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(scenario.corpus_b), str(index_dir), str(commit_every)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )


def wait_ready(process: subprocess.Popen) -> None:
    line = process.stdout.readline()
    assert line.strip() == "ready", f"driver failed before ingesting (exit {process.poll()})"


def resume_and_finish(scenario: Scenario, index_dir: Path) -> None:
    """After any crash, the next ingest takes the lock, cleans up and completes to the reference state."""
    ingest(scenario.corpus_b, index_dir, scenario.embedding, lock_timeout=5)
    store = scenario.check(index_dir)
    assert set(store.documents) == scenario.a_ids | set(scenario.b_order)
    assert not list((index_dir / "versions").glob(".tmp-*")) and not list(index_dir.glob("staging-*"))
    store.close()


def crash_point_trial(scenario: Scenario, point: str) -> None:
    index_dir = scenario.trial_dir(f"point-{point.split(':')[1]}")
    process = start_ingest(scenario, index_dir, commit_every=0, crash_point=point)
    assert process.wait(timeout=600) == -9, "the crash point was not reached"
    store = scenario.check(index_dir)
    if point in AFTER_CURRENT:
        assert set(store.documents) == scenario.a_ids | set(scenario.b_order)
    else:
        assert store.version == scenario.base_version and set(store.documents) == scenario.a_ids
    store.close()
    resume_and_finish(scenario, index_dir)


def random_kill_trial(scenario: Scenario, seed: int) -> None:
    rng = random.Random(seed)
    index_dir = scenario.trial_dir(f"kill-{seed}")
    process = start_ingest(scenario, index_dir, commit_every=2)
    wait_ready(process)
    time.sleep(rng.uniform(0, 1.5 * scenario.ingest_seconds))
    process.kill()
    process.wait(timeout=60)
    scenario.check(index_dir).close()
    resume_and_finish(scenario, index_dir)


@pytest.mark.parametrize("point", ["commit:nodes-half-written", "commit:version-renamed", "commit:current-replaced"])
def test_crash_at_a_commit_step_leaves_a_loadable_index(scenario, point):
    crash_point_trial(scenario, point)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_at_a_random_moment_leaves_the_last_commit(scenario, seed):
    random_kill_trial(scenario, seed)


@pytest.mark.slow
@pytest.mark.parametrize("point", BEFORE_CURRENT + AFTER_CURRENT)
def test_crash_at_every_commit_step(scenario, point):
    crash_point_trial(scenario, point)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
def test_twenty_random_kills(scenario, seed):
    random_kill_trial(scenario, seed)


@pytest.mark.parametrize("point", [None, "commit:version-renamed"])
def test_a_lost_current_file_is_recovered_not_overwritten(scenario, point, caplog):
    """With ``CURRENT`` gone (after a clean commit, or after a crash between renaming a version into place and
    naming it), the newest complete version is loaded, and the next ingest continues it instead of starting over."""
    index_dir = scenario.trial_dir(f"lost-current-{point or 'clean'}")
    if point:
        assert start_ingest(scenario, index_dir, commit_every=0, crash_point=point).wait(timeout=600) == -9
    (index_dir / "CURRENT").unlink()
    store = scenario.check(index_dir)
    assert store.version == scenario.base_version + (1 if point else 0)
    store.close()
    assert "recovered the newest complete, verified version" in caplog.text
    resume_and_finish(scenario, index_dir)
    # one version on top of the base holds corpus B: the resumed ingest's, or the recovered one that already did
    assert (index_dir / "CURRENT").read_text().split()[0] == f"v-{scenario.base_version + 1:06d}"


def test_an_edited_manifest_is_refused_by_queries_and_ingest(scenario):
    index_dir = scenario.trial_dir("edited-manifest")
    path = index_dir / "versions" / f"v-{scenario.base_version:06d}" / "manifest.json"
    text = path.read_text()
    manifest = json.loads(text)
    manifest["config"]["query_temperature"] = {"type": "constant", "value": 0.3}
    path.write_text(json.dumps(manifest, indent=2))
    with pytest.raises(CorruptIndexError, match=r"manifest.json does not match the SHA-256 recorded in CURRENT"):
        FaissStore.open(index_dir, scenario.config)
    with pytest.raises(CorruptIndexError, match=r"manifest.json does not match"):
        ingest(scenario.corpus_b, index_dir, scenario.embedding, lock_timeout=5)
    path.write_text(text)  # restored: the index was left exactly as it was
    scenario.check(index_dir).close()


def test_concurrent_queries_during_ingest_never_see_a_half_written_index(scenario):
    index_dir = scenario.trial_dir("concurrent")
    process = start_ingest(scenario, index_dir, commit_every=1)
    wait_ready(process)
    rng = random.Random(0)
    versions, checks = set(), 0
    while True:
        finished = process.poll() is not None
        store = scenario.check(index_dir)
        versions.add(store.version)
        # every stored chunk's vector still belongs to its text: the text it was embedded as (metadata included,
        # the one text view), as a query, finds it first
        record = rng.choice(list(store.documents.values()))
        node = store.get_nodes([rng.choice(record.node_ids)])[0]
        _, ids = store.search(scenario.embedding.encode([embedded_text(node)], "query").embeddings, 1)
        assert store.get_nodes(ids[0])[0].text == node.text
        store.close()
        checks += 1
        if finished:
            break
    assert process.returncode == 0
    assert len(versions) >= 2 and max(versions) == scenario.base_version + len(scenario.b_order)
    assert checks >= 3
