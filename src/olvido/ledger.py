"""The deletion ledger: one row per honoured deletion request in an SQLite file, chained by hashes.

A row holds the request id, its time, the deleted ids and file names, the method and its configuration,
the parent and child model hashes, where the child bundle and the audit report were written (with the
report's hashes), the previous row's hash and its own hash (SHA-256 over every other field, its position
included). ``verify`` recomputes every row's hash and every link: each row's ``previous_hash`` is the row
before's hash and its parent model is the row before's child, so the rows form one line of models
(deletions are never undone, and a model has at most one child: ``parent_hash`` is UNIQUE). A hash chain
protects what it covers; rewriting the newest rows consistently, hashes included, is caught only against an
anchor outside the ledger: the deployed model (``verify(model_hash=...)``).

A child bundle and its audit reports commit with their row: their bytes are stored in the same transaction
(table ``pending``) and written to their paths after the commit, then dropped. A process killed before the
commit leaves none of them; one killed after it leaves the row and the files' bytes, and the next opening of
the ledger writes the files: the bundle and its row exist together or not at all. Writers serialise on
SQLite's write lock; the checks that a request id is new and that the parent is still the latest model run
under that lock, so two requests on the same parent never both commit.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from olvido.errors import OlvidoError
from olvido.storage import atomic_write_bytes, file_sha256

LEDGER_NAME = "ledger.sqlite3"
FIELDS = (
    "seq",
    "request_id",
    "created",
    "ids",
    "files",
    "method",
    "config",
    "parent_hash",
    "child_hash",
    "child_path",
    "report_path",
    "report_sha256",
    "previous_hash",
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    ids TEXT NOT NULL,
    files TEXT NOT NULL,
    method TEXT NOT NULL,
    config TEXT NOT NULL,
    parent_hash TEXT NOT NULL UNIQUE,
    child_hash TEXT NOT NULL UNIQUE,
    child_path TEXT NOT NULL,
    report_path TEXT NOT NULL,
    report_sha256 TEXT NOT NULL,
    previous_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    request_id TEXT NOT NULL,
    path TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (request_id, path)
);
"""


@dataclass(frozen=True)
class LedgerRow:
    seq: int
    request_id: str
    created: str
    ids: list[int]
    files: list[str]
    method: str
    config: dict
    parent_hash: str
    child_hash: str
    child_path: str
    report_path: str
    report_sha256: dict
    previous_hash: str
    row_hash: str

    def expected_hash(self) -> str:
        return row_hash({name: getattr(self, name) for name in FIELDS})

    def to_dict(self) -> dict:
        return asdict(self)


def row_hash(fields: dict) -> str:
    """SHA-256 of a row's fields (every field but its own hash) as canonical JSON."""
    text = json.dumps({name: fields[name] for name in FIELDS}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Verification:
    ok: bool
    rows: int
    problems: list[str]  # the first broken link first
    latest_child: str | None


class Ledger:
    """The ledger file at ``path`` (created if missing). ``timeout``: seconds a writer waits for another's
    lock before failing."""

    def __init__(self, path: str | os.PathLike, timeout: float = 120.0):
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as db:
                db.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            raise OlvidoError(
                f"{self.path}: not a readable ledger ({error}); expected an olvido SQLite ledger"
            ) from None
        self.write_pending()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (BEGIN IMMEDIATE): checks made inside it still hold at commit."""
        with self._connect() as db:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                raise OlvidoError(
                    f"{self.path}: ledger busy for over {self.timeout:g} s ({error}); another request is being "
                    "committed, retry"
                ) from None
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- reading ---------------------------------------------------------------------------------
    def rows(self) -> list[LedgerRow]:
        with self._connect() as db:
            cursor = db.execute(f"SELECT {', '.join(FIELDS)}, row_hash FROM requests ORDER BY seq")
            return [_row(values) for values in cursor.fetchall()]

    def find(self, request_id: str) -> LedgerRow | None:
        return next((row for row in self.rows() if row.request_id == request_id), None)

    def latest(self) -> LedgerRow | None:
        rows = self.rows()
        return rows[-1] if rows else None

    # -- writing ---------------------------------------------------------------------------------
    def commit(self, entry: dict, files: dict[str, bytes]) -> LedgerRow:
        """Append the row for ``entry`` (every field of ``FIELDS`` but ``seq``, ``created`` and
        ``previous_hash``) and write ``files`` (path -> bytes: the child bundle, the reports), together or
        not at all.

        The same request again (same id, parent and ids) returns its recorded row and writes nothing. Fails,
        writing nothing, when the request id is recorded for something else, or when the parent is not the
        latest model of the ledger (another request was committed on it first, or it is an older model)."""
        with self._writing() as db:
            recorded = db.execute(
                "SELECT parent_hash, child_hash, ids FROM requests WHERE request_id = ?", (entry["request_id"],)
            ).fetchone()
            if recorded:
                if recorded[0] == entry["parent_hash"] and json.loads(recorded[2]) == sorted(map(int, entry["ids"])):
                    return self.find(entry["request_id"])  # the same request again: its recorded result
                raise OlvidoError(
                    f"request {entry['request_id']}: already recorded for other ids or another model "
                    f"({recorded[0][:12]} -> {recorded[1][:12]}); expected a new request id"
                )
            last = db.execute("SELECT seq, child_hash, request_id, row_hash FROM requests ORDER BY seq DESC LIMIT 1")
            last = last.fetchone()
            if last and last[1] != entry["parent_hash"]:
                child = db.execute(
                    "SELECT request_id FROM requests WHERE parent_hash = ?", (entry["parent_hash"],)
                ).fetchone()
                why = f"it already has a child (request {child[0]})" if child else "it is not in this ledger's line"
                raise OlvidoError(
                    f"model {entry['parent_hash'][:12]} is not the latest model of ledger {self.path}: {why}; "
                    f"expected the latest model {last[1][:12]} (request {last[2]})"
                )
            fields = {
                **{name: entry[name] for name in FIELDS if name not in ("seq", "created", "previous_hash")},
                "seq": (last[0] + 1) if last else 1,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "previous_hash": last[3] if last else "",
            }
            fields["ids"] = sorted(int(i) for i in fields["ids"])
            self._insert(db, fields, files)
        self.write_pending()
        return self.find(entry["request_id"])

    def _insert(self, db: sqlite3.Connection, fields: dict, files: dict[str, bytes]) -> None:
        values = [_column(fields[name]) for name in FIELDS] + [row_hash(fields)]
        marks = ", ".join("?" * (len(FIELDS) + 1))
        db.execute(f"INSERT INTO requests ({', '.join(FIELDS)}, row_hash) VALUES ({marks})", values)
        db.executemany(
            "INSERT INTO pending (request_id, path, data) VALUES (?, ?, ?)",
            [(fields["request_id"], str(path), sqlite3.Binary(data)) for path, data in files.items()],
        )

    def write_pending(self) -> list[Path]:
        """Write the committed files not yet on disk (a process killed after its commit), then drop them."""
        with self._connect() as db:
            pending = db.execute("SELECT request_id, path FROM pending").fetchall()
        written = []
        for request_id, path in pending:
            with self._writing() as db:
                query = "SELECT data FROM pending WHERE request_id = ? AND path = ?"
                row = db.execute(query, (request_id, path)).fetchone()
                if row is None:  # another process wrote it meanwhile
                    continue
                atomic_write_bytes(path, row[0])
                db.execute("DELETE FROM pending WHERE request_id = ? AND path = ?", (request_id, path))
            written.append(Path(path))
        return written

    # -- checking --------------------------------------------------------------------------------
    def verify(self, model_hash: str | None = None, file_hash=None) -> Verification:
        """Recompute the chain. ``model_hash``: the deployed model's hash, which must be the latest child.
        ``file_hash(path) -> hash``: if given, every child bundle still on disk must hash to its row's
        child hash, and every report to its recorded hashes."""
        rows, problems = self.rows(), []
        previous: LedgerRow | None = None
        for position, row in enumerate(rows, start=1):
            name = f"row {row.seq} (request {row.request_id})"
            if row.seq != position:
                problems.append(f"{name}: at position {position}; rows were removed or reordered")
            if row.expected_hash() != row.row_hash:
                problems.append(f"{name}: its contents do not match its hash; the row was edited")
            if previous is not None and row.previous_hash != previous.row_hash:
                problems.append(f"{name}: previous hash does not match row {previous.seq}'s hash")
            if previous is None and row.previous_hash != "":
                problems.append(f"{name}: the first row has a previous hash; rows before it were removed")
            if previous is not None and row.parent_hash != previous.child_hash:
                problems.append(f"{name}: its parent model is not row {previous.seq}'s child")
            if file_hash is not None:
                problems += _file_problems(name, row, file_hash)
            previous = row
        latest = rows[-1].child_hash if rows else None
        if model_hash is not None:
            if latest is None:
                problems.append(f"model {model_hash[:12]}: the ledger has no rows")
            elif model_hash != latest:
                known = next((r for r in rows if model_hash in (r.child_hash, r.parent_hash)), None)
                where = f"it appears in row {known.seq}" if known else "it is not in the ledger"
                problems.append(f"model {model_hash[:12]} is not the latest model {latest[:12]} ({where})")
        return Verification(not problems, len(rows), problems, latest)


def _file_problems(name: str, row: LedgerRow, file_hash) -> list[str]:
    problems = []
    if Path(row.child_path).exists() and file_hash(row.child_path) != row.child_hash:
        problems.append(f"{name}: bundle {row.child_path} does not match the recorded child hash; it was changed")
    for path, digest in row.report_sha256.items():
        if Path(path).exists() and file_sha256(path) != digest:
            problems.append(f"{name}: report {path} does not match its recorded hash; it was changed")
    return problems


def _column(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def _row(values: tuple) -> LedgerRow:
    fields = dict(zip((*FIELDS, "row_hash"), values))
    for name in ("ids", "files", "config", "report_sha256"):
        try:
            fields[name] = json.loads(fields[name])
        except (TypeError, json.JSONDecodeError):
            pass  # an edited row: verify() reports the hash mismatch
    return LedgerRow(**fields)
