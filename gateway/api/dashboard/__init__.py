"""The dashboard: static files served at ``/``, and the session that logs it in.

Plain HTML, CSS and JavaScript in ``static/`` (no build step, no library):
the page reads and acts through the same ``/api/v1`` a script uses, with a
session cookie instead of a bearer token. Every answer here carries a strict
Content-Security-Policy: scripts only from this origin, no inline script.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import Scope
from gateway.api.middleware import (
    CLIENT_KEY,
    SESSIONS_KEY,
    TOKENS_KEY,
    Handler,
    blocked,
    error,
    failed,
    json_response,
    read_json,
)
from gateway.api.session import COOKIE, LIFETIME

STATIC = resources.files(__package__) / "static"
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".txt": "text/plain",
}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=512)


@functools.lru_cache(maxsize=32)  # our few files; a stranger's names push each other out
def _read(name: str) -> bytes | None:
    """A static file's bytes, read once (None: not one of ours)."""
    path = STATIC / name
    suffix = "." + name.rsplit(".", 1)[-1]
    if "/" in name or suffix not in TYPES or not path.is_file():
        return None
    return path.read_bytes()


def _file(name: str) -> web.Response:
    body = _read(name) if len(name) <= 64 else None
    if body is None:
        raise web.HTTPNotFound(text=f"no file {name[:60]!r}")
    suffix = "." + name.rsplit(".", 1)[-1]
    return web.Response(body=body, content_type=TYPES[suffix], charset="utf-8", headers=HEADERS)


async def index(request: web.Request) -> web.Response:
    return _file("index.html")


async def static(request: web.Request) -> web.Response:
    return _file(request.match_info["name"])


def _session(request: web.Request, cookie: str | None) -> dict[str, Any]:
    client = request[CLIENT_KEY]
    csrf = request.app[SESSIONS_KEY].csrf(cookie) if cookie else ""
    return {
        "name": client.name,
        "read_only": client.read_only,
        "manage": client.may(Scope.MANAGE),
        "outbox": client.may(Scope.CHANGE_OUTBOX),
        "csrf": csrf,
    }


async def get_session(request: web.Request) -> web.Response:
    """Who the cookie (or token) is, and the CSRF token of the session."""
    return json_response(_session(request, request.cookies.get(COOKIE)))


async def login(request: web.Request) -> web.Response:
    """A token for a session cookie; wrong tokens count as failed logins."""
    body: Login = await read_json(request, Login)
    credential = f"Bearer {body.token}"
    if (refusal := blocked(request, "API", credential)) is not None:
        return refusal
    client = request.app[TOKENS_KEY].client(credential)
    if client is None:
        failed(request, "API", credential)
        return error(401, "unauthorized", "that token is not one of server.tokens")
    cookie = request.app[SESSIONS_KEY].open(client, body.token)
    request[CLIENT_KEY] = client
    response = json_response(_session(request, cookie))
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(LIFETIME),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    response = json_response({"name": request[CLIENT_KEY].name, "logged_out": True})
    response.del_cookie(COOKIE, path="/")
    return response


ROUTES: tuple[tuple[str, str, Handler, Scope | None], ...] = (
    ("GET", "/api/v1/session", get_session, Scope.READ),
    ("POST", "/api/v1/session", login, None),
    ("DELETE", "/api/v1/session", logout, Scope.READ),
)
PAGES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/", index),
    ("GET", "/static/{name}", static),
)
