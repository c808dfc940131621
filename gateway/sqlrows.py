"""Many rows a statement: what both SQLite files (the outbox, the history) insert with.

``executemany`` steps once per row, and each step gives the GIL away and
waits to take it back: while the event loop is busy that wait is up to the
interpreter's switch interval, and the loop is made to hand the GIL over
for every row. One ``INSERT ... VALUES (...), (...)`` per ``CHUNK`` rows
waits once.
"""

from __future__ import annotations

import sqlite3
from typing import Any

CHUNK = 500  # rows per statement (at 8 columns, well under SQLite's 32,766 parameters)


def insert_many(db: sqlite3.Connection, insert: str, rows: list[tuple[Any, ...]]) -> None:
    """``{insert} VALUES`` of many rows, ``CHUNK`` rows a statement."""
    if not rows:
        return
    marks = "(" + ", ".join("?" * len(rows[0])) + ")"
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        values = [value for row in chunk for value in row]
        db.execute(f"{insert} VALUES " + ", ".join([marks] * len(chunk)), values)
