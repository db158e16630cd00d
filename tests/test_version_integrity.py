"""Issue 15, points 1–2: every version verifies itself (independent of ``CURRENT``), and recovery never deletes a
version that was once committed (random vectors, no model)."""

from __future__ import annotations

import json
import logging

import pytest

from tempscale_index.store import CorruptIndexError, FaissStore
from tempscale_index.store.manifest import verify_version
from tests.pipeline_helpers import fake_config
from tests.test_store import DIM, add_docs


def two_versions(index_dir):
    with FaissStore.create(index_dir, fake_config(DIM)) as store:
        add_docs(store, {"a": 3})
        store.commit()
        add_docs(store, {"b": 2}, seed=3)
        store.commit()
    return index_dir / "versions"


def edit_query_tau(manifest_path) -> None:
    manifest = json.loads(manifest_path.read_text())
    manifest["config"]["query_temperature"] = {"type": "constant", "value": 0.3}
    manifest_path.write_text(json.dumps(manifest, indent=2))


def test_an_edited_manifest_is_refused_after_current_is_lost(tmp_path):
    """The issue's reproduction: edit the query τ, remove CURRENT. Neither a reader nor the next ingest may
    accept the edited version (the ingest would otherwise write a CURRENT vouching for the edit)."""
    versions = two_versions(tmp_path / "index")
    edit_query_tau(versions / "v-000002" / "manifest.json")
    (tmp_path / "index" / "CURRENT").unlink()
    with FaissStore.open(tmp_path / "index") as reader:  # recovers v-000001, the newest that verifies
        assert reader.version == 1 and reader.config.query_temperature["value"] == 1.0
    with pytest.raises(CorruptIndexError, match=r"does not match the SHA-256 recorded in manifest.sha256"):
        verify_version(versions / "v-000002")
    with FaissStore.open(tmp_path / "index", writable=True) as writer:
        add_docs(writer, {"c": 1}, seed=7)
        assert writer.commit() == 3
    with FaissStore.open(tmp_path / "index") as reader:
        assert reader.config.query_temperature["value"] == 1.0 and set(reader.documents) == {"a", "c"}


def test_an_edited_manifest_named_by_a_one_word_current_is_refused(tmp_path):
    versions = two_versions(tmp_path / "index")
    edit_query_tau(versions / "v-000002" / "manifest.json")
    (tmp_path / "index" / "CURRENT").write_text("v-000002\n")
    for open_it in (lambda: FaissStore.open(tmp_path / "index"), lambda: FaissStore.read_manifest(tmp_path / "index")):
        with pytest.raises(CorruptIndexError, match=r"v-000002/manifest.json does not match the SHA-256 recorded in"):
            open_it()


def test_recovery_quarantines_a_damaged_version_and_never_reuses_its_name(tmp_path, caplog):
    """The issue's reproduction: two versions, CURRENT removed, one byte of the newest FAISS file flipped, then an
    ingest. The damaged version is moved to quarantine/ (one line), kept byte for byte, and v-000003 follows."""
    index_dir = tmp_path / "index"
    versions = two_versions(index_dir)
    (index_dir / "CURRENT").unlink()
    faiss_file = versions / "v-000002" / "index.faiss"
    data = bytearray(faiss_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    faiss_file.write_bytes(bytes(data))
    with (
        caplog.at_level(logging.WARNING, logger="tempscale_index.store.versions"),
        FaissStore.open(index_dir, writable=True) as writer,
    ):
        add_docs(writer, {"new": 1}, seed=9)
        assert writer.commit() == 3
    kept = index_dir / "quarantine" / "v-000002" / "index.faiss"
    assert kept.read_bytes() == bytes(data) and (index_dir / "quarantine" / "v-000002" / "nodes.jsonl").is_file()
    moved = [r.getMessage() for r in caplog.records if r.getMessage().startswith("moved ")]
    assert len(moved) == 1 and "never reused" in moved[0]
    assert sorted(p.name for p in versions.iterdir()) == ["v-000001", "v-000003"]
    with FaissStore.open(index_dir, writable=True) as writer:  # later commits keep skipping the name too
        add_docs(writer, {"newer": 1}, seed=10)
        assert writer.commit() == 4
