"""Reading and repairing the outbox: for the API, the CLI and housekeeping.

Plain functions of a database connection: the daemon runs them on the
outbox thread (``OutboxStore.call``), ``gateway outbox`` on its own
connection while the daemon runs or not.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from gateway.localtime import iso_utc
from gateway.outbox.database import PENDING, transaction


def counters(db: sqlite3.Connection) -> dict[str, int]:
    return {name: value for name, value in db.execute("SELECT name, value FROM counters")}


def hook_seen(db: sqlite3.Connection, hook: str, msg_id: str, since: float) -> bool:
    """Whether an inbound webhook with this id was acted on at ``since`` or later."""
    row = db.execute(
        "SELECT 1 FROM seen_hooks WHERE id = ? AND time >= ?", (f"{hook}:{msg_id}", since)
    )
    return row.fetchone() is not None


def prune(db: sqlite3.Connection, attempts_before: float, seen_before: float) -> int:
    """Delete attempt logs and seen inbound ids older than these; free the pages."""
    with transaction(db):
        count = db.execute("DELETE FROM attempts WHERE time < ?", (attempts_before,)).rowcount
        db.execute("DELETE FROM seen_hooks WHERE time < ?", (seen_before,))
    db.execute("PRAGMA incremental_vacuum")
    return int(count)


def stats(db: sqlite3.Connection, now: float) -> dict[str, Any]:
    """Depth, oldest age and dead letters, overall and per endpoint."""
    per: dict[str, dict[str, Any]] = {}
    for endpoint, state, count, oldest in db.execute(
        "SELECT endpoint, state, count(*), min(created) FROM messages GROUP BY endpoint, state"
    ):
        entry = per.setdefault(endpoint, {"pending": 0, "dead": 0, "oldest_age": None})
        entry[state] = count
        if state == PENDING and oldest is not None:
            entry["oldest_age"] = round(now - oldest, 3)
    for name, disabled, reason in db.execute("SELECT name, disabled, reason FROM endpoints"):
        entry = per.setdefault(name, {"pending": 0, "dead": 0, "oldest_age": None})
        entry["disabled"] = bool(disabled)
        entry["disabled_reason"] = reason if disabled else None
    ages = [e["oldest_age"] for e in per.values() if e["oldest_age"] is not None]
    recent = db.execute(
        "SELECT msg_id, endpoint, time, status, error FROM attempts WHERE error IS NOT NULL"
        " ORDER BY time DESC LIMIT 10"
    )
    failures = [
        {"id": m, "endpoint": e, "time": iso_utc(t), "status": st, "error": err}
        for m, e, t, st, err in recent
    ]
    return {
        "pending": sum(e["pending"] for e in per.values()),
        "dead": sum(e["dead"] for e in per.values()),
        "oldest_age": max(ages) if ages else None,
        "endpoints": per,
        "counters": counters(db),
        "recent_failures": failures,
    }


def list_messages(
    db: sqlite3.Connection,
    state: str | None = None,
    limit: int = 100,
    endpoint: str | None = None,
) -> list[dict[str, Any]]:
    """Messages in queue order, optionally of one state and endpoint."""
    clauses, params = [], []
    for column, value in (("state", state), ("endpoint", endpoint)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = db.execute(
        "SELECT seq, id, endpoint, event, created, attempts, next_try, state, last_status,"
        f" last_error FROM messages {where} ORDER BY seq LIMIT ?",
        (*params, limit),
    )
    names = [d[0] for d in rows.description]
    return [dict(zip(names, r, strict=True)) for r in rows]


def show_message(db: sqlite3.Connection, msg_id: str) -> dict[str, Any] | None:
    cursor = db.execute("SELECT * FROM messages WHERE id = ?", (msg_id,))
    row = cursor.fetchone()
    if row is None:
        return None
    message = dict(zip([d[0] for d in cursor.description], row, strict=True))
    message["body"] = bytes(message["body"]).decode("utf-8", "replace")
    if message.get("request"):  # a shaped request: method, url, content type (no secrets)
        message["request"] = json.loads(message["request"])
    attempts = db.execute(
        "SELECT time, duration, status, error, response FROM attempts WHERE msg_id = ?"
        " ORDER BY time",
        (msg_id,),
    )
    message["attempts_log"] = [
        dict(zip(("time", "duration", "status", "error", "response"), a, strict=True))
        for a in attempts
    ]
    return message


def retry(
    db: sqlite3.Connection,
    now: float,
    msg_id: str | None = None,
    dead: bool = False,
    endpoint: str | None = None,
) -> int:
    """Make messages due now: one by id, or every dead letter (of one endpoint)."""
    clauses, params = [], []
    if msg_id is not None:
        clauses.append("id = ?")
        params.append(msg_id)
    if dead:
        clauses.append("state = 'dead'")
    if endpoint is not None:
        clauses.append("endpoint = ?")
        params.append(endpoint)
    if not clauses:
        return 0
    with transaction(db):
        return db.execute(
            "UPDATE messages SET state = 'pending', next_try = ?, first_try = NULL,"
            f" attempts = 0 WHERE {' AND '.join(clauses)}",
            (now, *params),
        ).rowcount


def purge_dead(db: sqlite3.Connection, endpoint: str | None = None) -> int:
    with transaction(db):
        if endpoint is None:
            return db.execute("DELETE FROM messages WHERE state = 'dead'").rowcount
        return db.execute(
            "DELETE FROM messages WHERE state = 'dead' AND endpoint = ?", (endpoint,)
        ).rowcount


def enable_endpoint(db: sqlite3.Connection, endpoint: str, now: float) -> bool:
    with transaction(db):
        changed = db.execute(
            "UPDATE endpoints SET disabled = 0, reason = NULL WHERE name = ? AND disabled = 1",
            (endpoint,),
        ).rowcount
        db.execute(
            "UPDATE messages SET next_try = ? WHERE endpoint = ? AND state = 'pending'",
            (now, endpoint),
        )
    return bool(changed)
