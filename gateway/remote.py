"""The running daemon's API, from the command line: ``gateway trace``, ``gateway
watch`` and ``gateway log-level``. The standard library only (the CLI starts fast).

The address is the config's ``server.listen`` (``--url`` to override); the
token is ``--token``, else ``$GATEWAY_TOKEN``, else one from the config
(whoever may read the config may use its tokens anyway).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from gateway.config.models import GatewayConfig
from gateway.errors import GatewayError


class Api:
    def __init__(self, config: GatewayConfig, url: str | None, token: str | None) -> None:
        server = config.server
        if url is None:
            host, _, port = server.listen.rpartition(":")
            host = host.strip("[]")
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            elif ":" in host:
                host = f"[{host}]"
            url = f"{'https' if server.tls else 'http'}://{host}:{port}"
        self.url = url.rstrip("/")
        self.token = token or os.environ.get("GATEWAY_TOKEN") or self._config_token(config)
        # the gateway's own certificate is often self-signed: this is its own machine
        self.context = ssl._create_unverified_context() if self.url.startswith("https") else None

    @staticmethod
    def _config_token(config: GatewayConfig) -> str | None:
        tokens = config.server.tokens.values()
        best = sorted(tokens, key=lambda t: (t.read_only, t.actuators is not None))
        return best[0].token.get_secret_value() if best else None

    def _request(self, method: str, path: str, body: Any = None) -> urllib.request.Request:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return urllib.request.Request(self.url + path, data, headers, method=method)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            with urllib.request.urlopen(
                self._request(method, path, body), timeout=10, context=self.context
            ) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise GatewayError(f"{method} {path}: {exc.code}: {_message(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise GatewayError(f"cannot reach the gateway at {self.url}: {reason}") from None

    def events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(kind, data)`` of each event of the stream, until it ends."""
        request = self._request("GET", "/api/v1/events")
        request.add_header("Accept", "text/event-stream")
        try:
            answer = urllib.request.urlopen(request, timeout=60, context=self.context)
        except urllib.error.HTTPError as exc:
            raise GatewayError(f"the event stream: {exc.code}: {_message(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise GatewayError(f"cannot reach the gateway at {self.url}: {exc}") from None
        kind, data = "message", ""
        with answer:
            try:
                for raw in answer:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif not line and data:
                        yield kind, json.loads(data)
                        kind, data = "message", ""
            except (http.client.IncompleteRead, ConnectionError, TimeoutError):
                return


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace")


def _local(stamp: str | float | None, seconds: bool = True) -> str:
    if stamp is None:
        return "-"
    if isinstance(stamp, str):
        moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
    else:
        moment = dt.datetime.fromtimestamp(stamp).astimezone()
    return f"{moment:%Y-%m-%d %H:%M:%S}" if seconds else f"{moment:%H:%M:%S}"


def trace_lines(trace: dict[str, Any]) -> list[str]:
    """A trace for a person: a head line, a line per condition and per step."""
    took = f" in {trace['duration']:.3f}s" if trace.get("duration") is not None else ""
    head = f"{_local(trace['started'])}  {trace['rule']}  {trace['result']}{took}"
    lines = [f"{head}  <- {trace['trigger']}"]
    for condition in trace.get("conditions", []):
        lines.append(f"    {'yes' if condition['holds'] else 'NO '}  if {condition['condition']}")
    for step in trace.get("steps", []):
        mark = "   " if step["ok"] else "ERR"
        lines.append(
            f"    {mark}  {_local(step['at'], False)}  {step['action']}: {step['outcome']}"
        )
    if trace.get("why"):
        lines.append(f"    ->   {trace['result']}: {trace['why']}")
    if trace.get("who"):
        lines.append(f"    by   {trace['who']}")
    return lines


def event_line(kind: str, data: dict[str, Any]) -> str:
    """One event of the stream, one line."""
    when = _local(data.get("time"), False)
    match kind:
        case "sensor":
            shown = "unavailable" if not data.get("available", True) else _word(data["value"])
            return f"{when}  sensor    {data['id']} = {shown}"
        case "actuator":
            return f"{when}  actuator  {data['id']} {_word(data['state'])} by {data['who']}"
        case "trace":
            why = f": {data['why']}" if data.get("why") else ""
            return f"{when}  rule      {data['rule']} {data['result']}{why} <- {data['trigger']}"
        case "webhook":
            status = f" ({data['status']})" if data.get("status") else ""
            return f"{when}  webhook   {data['id']} to {data['endpoint']} {data['outcome']}{status}"
        case "input":
            return f"{when}  input     {data['id']} {data['state']}"
        case "log":
            return f"{when}  {data['level']:<9} {data['logger']}: {data['message']}"
        case "hello":
            return f"watching {data.get('name', '')} (Ctrl-C to stop)"
        case _:
            return f"{when}  {kind}  {json.dumps(data)}"


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)
