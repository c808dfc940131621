"""A webhook receiver for benchmarks, run as its own process (the other core).

POST /hook records the webhook-id, the arrival time and, when the body's
``data`` carries them, ``seq`` and ``sent_ns`` (the publisher's clock, for
latency); GET /stats answers {"received": N, "unique": M, "seqs": S}; GET /dump answers
every [id, arrival, seq, sent_ns]; POST /reset forgets them. A message the gateway
took twice (a kill -9 between its commit and its acknowledgement) is two
webhooks with one ``seq``: "seqs" counts the messages.

    python tests/bench/sink.py PORT
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from aiohttp import web

arrivals: list[tuple[str, float, int | None, int | None]] = []
seen: set[str] = set()
seqs: set[int] = set()


def _fields(body: bytes) -> tuple[int | None, int | None]:
    try:
        data: Any = json.loads(body).get("data", {})
        return int(data["seq"]), int(data["sent_ns"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, None


async def hook(request: web.Request) -> web.Response:
    body = await request.read()
    arrived = time.time()
    seq, sent_ns = _fields(body)
    msg_id = request.headers.get("webhook-id", "")
    arrivals.append((msg_id, arrived, seq, sent_ns))
    seen.add(msg_id)
    if seq is not None:
        seqs.add(seq)
    return web.Response(text="ok")


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"received": len(arrivals), "unique": len(seen), "seqs": len(seqs)})


async def dump(request: web.Request) -> web.Response:
    return web.json_response(arrivals)


async def reset(request: web.Request) -> web.Response:
    arrivals.clear()
    seen.clear()
    seqs.clear()
    return web.json_response({})


def main() -> None:
    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    app.router.add_get("/dump", dump)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
