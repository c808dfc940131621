"""history.db's batches: every row written, many rows a statement (not a step per row)."""

from __future__ import annotations

from pathlib import Path

from gateway.history.store import Batch, HistoryStore
from gateway.sqlrows import CHUNK


def test_a_batch_is_written_many_rows_a_statement(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.db")
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    rows = 2 * CHUNK + 7
    batch = Batch(
        readings=[("freezer", 1000.0 + n, -18.0 + n / 100, -18.5, -17.5) for n in range(rows)],
        switches=[("light", 1000.0 + n, float(n % 2), "api:ops") for n in range(rows)],
        traces=[(f"tr_{n % 3}", "warm", 1000.0 + n, "{}") for n in range(5)],  # ids again: replaced
    )
    store.write(batch)
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == 3 + 3 + 1  # a statement per CHUNK rows of each table
    db = store._db
    assert db.execute("SELECT count(*), min(t), max(t) FROM readings").fetchone() == (
        rows,
        1000.0,
        1000.0 + rows - 1,
    )
    assert db.execute("SELECT count(*), sum(state) FROM switches").fetchone() == (rows, rows // 2)
    assert db.execute("SELECT id, started FROM traces ORDER BY id").fetchall() == [
        ("tr_0", 1003.0),
        ("tr_1", 1004.0),
        ("tr_2", 1002.0),
    ]
    store.close()
