"""What ``gateway outbox`` prints for a person: aligned tables, local times, ages.

``--json`` prints the same data for scripts (queue times as Unix seconds
there, as the API gives them).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any


def when(epoch: float | None) -> str:
    """A moment in local time, to the second (``2026-01-15 21:05:03``)."""
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float | None) -> str:
    """``42s``, ``5m``, ``3h12m``, ``2d4h``; ``-`` for none."""
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def stats(doc: dict[str, Any]) -> str:
    head = f"{doc['pending']} pending, {doc['dead']} dead; oldest waiting {age(doc['oldest_age'])}"
    endpoints = [
        (
            name,
            e.get("pending", 0),
            e.get("dead", 0),
            age(e.get("oldest_age")),
            f"disabled: {e.get('disabled_reason')}" if e.get("disabled") else "enabled",
        )
        for name, e in sorted(doc["endpoints"].items())
    ]
    out = [head]
    if endpoints:
        out += ["", table(("ENDPOINT", "PENDING", "DEAD", "OLDEST", "STATE"), endpoints)]
    if doc["counters"]:
        out += ["", table(("COUNTER", "VALUE"), sorted(doc["counters"].items()))]
    failures = [
        (f["time"], f["endpoint"], f["id"], f["status"] or "-", f["error"] or "")
        for f in doc["recent_failures"]
    ]
    if failures:
        out += ["", "recent failures:"]
        out.append(table(("TIME (UTC)", "ENDPOINT", "ID", "STATUS", "ERROR"), failures))
    return "\n".join(out)


def messages(rows: list[dict[str, Any]], now: float) -> str:
    if not rows:
        return "(none)"
    return table(
        ("ID", "ENDPOINT", "EVENT", "STATE", "TRIES", "AGE", "NEXT TRY", "LAST ERROR"),
        [
            (
                r["id"],
                r["endpoint"],
                r["event"],
                r["state"],
                r["attempts"],
                age(now - r["created"]),
                "-" if r["state"] == "dead" else _next(r["next_try"], now),
                r["last_error"] or "",
            )
            for r in rows
        ],
    )


def _next(epoch: float, now: float) -> str:
    return "now" if epoch <= now else f"in {age(epoch - now)}"


def message(doc: dict[str, Any], now: float) -> str:
    fields = [
        ("id", doc["id"]),
        ("endpoint", doc["endpoint"]),
        ("event", doc["event"]),
        ("state", doc["state"]),
        ("queued", f"{when(doc['created'])} ({age(now - doc['created'])} ago)"),
        ("attempts", doc["attempts"]),
        ("next try", "-" if doc["state"] == "dead" else _next(doc["next_try"], now)),
        ("last error", doc.get("last_error") or "-"),
    ]
    width = max(len(k) for k, _ in fields) + 1
    out = [f"{k + ':':<{width}}  {v}" for k, v in fields]
    try:
        body = json.dumps(json.loads(doc["body"]), indent=2, ensure_ascii=False)
    except ValueError:
        body = doc["body"]
    out += ["", "body:", body]
    log = doc.get("attempts_log") or []
    if log:
        rows = [
            (
                when(a["time"]),
                f"{a['duration'] * 1000:.0f} ms",
                a["status"] or "-",
                a["error"] or "",
            )
            for a in log
        ]
        out += ["", "attempts:", table(("TIME", "TOOK", "STATUS", "ERROR"), rows)]
    return "\n".join(out)
