"""The deletion ledger (olvido.ledger): the hash chain, tampering, all-or-nothing commits under kills, and
concurrent writers."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from olvido.errors import OlvidoError
from olvido.ledger import Ledger, row_hash


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha(path) -> str:
    return sha(Path(path).read_bytes())


def entry(folder: Path, number: int, parent: str) -> tuple[dict, dict]:
    """Request ``number`` on model ``parent``: its row fields and files (a child 'bundle' and a report)."""
    bundle, report = f"model {number}".encode(), f"report {number}".encode()
    child, report_path = folder / f"m{number}.olvido", folder / f"m{number}.audit.md"
    fields = {
        "request_id": f"r{number}",
        "ids": [number, 100 + number],
        "files": [f"{number}.jpg"],
        "method": "finetune",
        "config": {"epochs": 2},
        "parent_hash": parent,
        "child_hash": sha(bundle),
        "child_path": str(child),
        "report_path": str(report_path),
        "report_sha256": {str(report_path): sha(report)},
    }
    return fields, {str(child): bundle, str(report_path): report}


def chain(folder: Path, length: int = 3) -> Ledger:
    book, parent = Ledger(folder / "ledger.sqlite3"), "root"
    for number in range(1, length + 1):
        fields, files = entry(folder, number, parent)
        book.commit(fields, files)
        parent = fields["child_hash"]
    return book


def test_commits_write_their_files_and_chain(tmp_path):
    book = chain(tmp_path)
    rows = book.rows()
    assert [r.request_id for r in rows] == ["r1", "r2", "r3"]
    assert rows[0].previous_hash == "" and rows[1].previous_hash == rows[0].row_hash
    assert (tmp_path / "m2.olvido").read_bytes() == b"model 2"
    assert (tmp_path / "m2.audit.md").read_bytes() == b"report 2"
    result = book.verify(model_hash=sha(b"model 3"), file_hash=file_sha)
    assert result.ok and result.rows == 3 and result.problems == []
    with sqlite3.connect(book.path) as db:
        assert db.execute("SELECT COUNT(*) FROM pending").fetchone()[0] == 0  # written, then dropped


def test_an_older_model_or_a_second_child_is_refused(tmp_path):
    book = chain(tmp_path, 2)
    fields, files = entry(tmp_path, 9, parent=sha(b"model 1"))  # model 1 already has a child (r2)
    with pytest.raises(OlvidoError, match=r"not the latest model .*already has a child \(request r2\)"):
        book.commit(fields, files)
    assert len(book.rows()) == 2 and not (tmp_path / "m9.olvido").exists()


def test_the_same_request_again_returns_its_row_and_a_reused_id_is_refused(tmp_path):
    book = chain(tmp_path, 1)
    fields, files = entry(tmp_path, 1, "root")
    assert book.commit(fields, files).row_hash == book.rows()[0].row_hash
    fields["ids"] = [7]
    with pytest.raises(OlvidoError, match="request r1: already recorded for other ids"):
        book.commit(fields, files)
    assert len(book.rows()) == 1


def _rewrite(path: Path, seq: int, rehash: bool, **changes) -> None:
    with sqlite3.connect(path) as db:
        for column, value in changes.items():
            db.execute(f"UPDATE requests SET {column} = ? WHERE seq = ?", (value, seq))
        db.commit()
        if rehash:
            row = Ledger(path).rows()[seq - 1]
            db.execute("UPDATE requests SET row_hash = ? WHERE seq = ?", (row_hash(row.to_dict()), seq))


def test_an_edited_row_is_the_first_broken_link(tmp_path):
    book = chain(tmp_path)
    _rewrite(book.path, 2, rehash=False, ids="[2]")  # someone hides an id from the record
    result = book.verify(file_hash=file_sha)
    assert not result.ok and result.problems[0].startswith("row 2 (request r2): its contents do not match")


def test_a_consistently_rewritten_row_breaks_the_next_link(tmp_path):
    book = chain(tmp_path)
    _rewrite(book.path, 2, rehash=True, method="retrain")
    problems = book.verify().problems
    assert problems and problems[0].startswith("row 3 (request r3): previous hash does not match row 2")


def test_removed_rows_and_a_rewritten_tail_are_detected(tmp_path):
    book = chain(tmp_path)
    with sqlite3.connect(book.path) as db:
        db.execute("DELETE FROM requests WHERE seq = 1")
    assert "rows were removed" in book.verify().problems[0]
    book = chain(tmp_path / "other")
    with sqlite3.connect(book.path) as db:
        db.execute("DELETE FROM requests WHERE seq = 3")  # the chain itself still verifies ...
    assert book.verify().ok
    result = book.verify(model_hash=sha(b"model 3"))  # ... but not against the deployed model
    assert not result.ok and "is not the latest model" in result.problems[0]


def test_edited_bundles_and_reports_on_disk_are_detected(tmp_path):
    book = chain(tmp_path)
    (tmp_path / "m1.olvido").write_bytes(b"model 1, retouched")
    (tmp_path / "m3.audit.md").write_bytes(b"report 3: all forgotten")
    problems = book.verify(file_hash=file_sha).problems
    assert problems[0].startswith("row 1 (request r1): bundle") and "was changed" in problems[0]
    assert any(p.startswith("row 3 (request r3): report") for p in problems)


def test_a_file_that_is_not_a_ledger_fails_clearly(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"not a database at all, " * 100)
    with pytest.raises(OlvidoError, match="not a readable ledger"):
        Ledger(path)


SCRIPT = """
import json, os, sys, time
from olvido.errors import OlvidoError
from olvido.ledger import Ledger
fields, files = json.loads(sys.argv[1]), {k: v.encode() for k, v in json.loads(sys.argv[2]).items()}
mode, start = sys.argv[3], float(sys.argv[4])
book = Ledger(sys.argv[5])
if mode == "die-before-commit":
    inserted = Ledger._insert
    def insert_then_die(self, db, fields, files):
        inserted(self, db, fields, files)
        os._exit(9)                       # killed inside the transaction, before COMMIT
    Ledger._insert = insert_then_die
if mode == "die-after-commit":
    import olvido.ledger
    olvido.ledger.atomic_write_bytes = lambda path, data: os._exit(9)   # killed writing the committed files
time.sleep(max(0.0, start - time.time()))
try:
    book.commit(fields, files)
    print("committed")
except OlvidoError as error:
    print("refused:", error)
"""


def _commit_in_process(path: Path, number: int, parent: str, mode: str = "", start: float = 0.0):
    import json

    fields, files = entry(path.parent, number, parent)
    texts = {k: v.decode() for k, v in files.items()}
    arguments = [json.dumps(fields), json.dumps(texts), mode, str(start), str(path)]
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), *arguments], stdout=subprocess.PIPE, text=True
    )


def _raw_counts(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:  # read without Ledger, which would finish pending writes
        return tuple(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("requests", "pending"))


def test_a_kill_before_the_commit_leaves_neither_row_nor_files(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    Ledger(path)
    process = _commit_in_process(path, 1, "root", "die-before-commit")
    assert process.wait(60) == 9
    assert _raw_counts(path) == (0, 0)
    assert not (tmp_path / "m1.olvido").exists()
    book = Ledger(path)  # a rerun completes
    book.commit(*entry(tmp_path, 1, "root"))
    assert book.verify(model_hash=sha(b"model 1"), file_hash=file_sha).ok


def test_a_kill_after_the_commit_leaves_both_and_the_next_opening_writes_the_files(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    Ledger(path)
    process = _commit_in_process(path, 1, "root", "die-after-commit")
    assert process.wait(60) == 9
    assert _raw_counts(path) == (1, 2)  # the row, and the bundle's and report's bytes beside it
    assert not (tmp_path / "m1.olvido").exists()
    book = Ledger(path)
    assert (tmp_path / "m1.olvido").read_bytes() == b"model 1"
    assert _raw_counts(path) == (1, 0)
    assert book.verify(model_hash=sha(b"model 1"), file_hash=file_sha).ok


def test_concurrent_requests_on_one_parent_make_one_child(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    Ledger(path)
    start = time.time() + 2.0  # every process waits for this moment, then commits
    processes = [_commit_in_process(path, number, "root", start=start) for number in range(1, 5)]
    outputs = [process.communicate(timeout=60)[0].strip() for process in processes]
    assert sorted(o.split(":")[0] for o in outputs) == ["committed", "refused", "refused", "refused"]
    assert all("not the latest model" in o for o in outputs if o.startswith("refused"))
    rows = Ledger(path).rows()
    assert len(rows) == 1 and rows[0].parent_hash == "root"
    made = [number for number in range(1, 5) if (tmp_path / f"m{number}.olvido").exists()]
    assert made == [int(rows[0].request_id[1:])]
