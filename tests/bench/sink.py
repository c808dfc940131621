"""A webhook receiver for benchmarks, run as its own process (the other core).

POST /hook records the webhook-id and the arrival time; GET /stats answers
{"received": N, "unique": M}; GET /dump answers every (id, arrival) pair.

    python tests/bench/sink.py PORT
"""

from __future__ import annotations

import sys
import time

from aiohttp import web

arrivals: list[tuple[str, float]] = []
seen: set[str] = set()


async def hook(request: web.Request) -> web.Response:
    await request.read()
    msg_id = request.headers.get("webhook-id", "")
    arrivals.append((msg_id, time.time()))
    seen.add(msg_id)
    return web.Response(text="ok")


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"received": len(arrivals), "unique": len(seen)})


async def dump(request: web.Request) -> web.Response:
    return web.json_response(arrivals)


async def reset(request: web.Request) -> web.Response:
    arrivals.clear()
    seen.clear()
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
