"""The ``gateway`` command line.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or invalid config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.config import ConfigError, default_config_path, load_config
from gateway.errors import GatewayError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SWITCH_INTERVAL = 0.001  # seconds a thread may hold the GIL while another waits (see _run)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Edge Gateway: GPIO, serial and MQTT sensors -> rules -> signed webhooks.",
    )
    parser.add_argument("--version", action="version", version=f"edge-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            "-c",
            default=None,
            help="config file (default: $GATEWAY_CONFIG, /etc/edge-gateway/gateway.yaml, "
            "./config/gateway.yaml)",
        )

    run = commands.add_parser("run", help="run the daemon")
    with_config(run)
    run.add_argument("--simulate", action="store_true", help="simulated GPIO (no Pi needed)")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text (with <N> priorities when stderr is the journal) or one JSON object a line",
    )

    check = commands.add_parser("check", help="validate a config and print every error")
    with_config(check)

    test = commands.add_parser("test", help="run rule scenarios on a virtual clock")
    with_config(test)
    test.add_argument(
        "files",
        nargs="*",
        help="scenario files (default: the config's name with .test.yaml, e.g. gateway.test.yaml)",
    )

    commands.add_parser("schema", help="print the JSON Schema of the config file")

    def with_api(p: argparse.ArgumentParser) -> None:
        with_config(p)
        p.add_argument("--url", help="the gateway's API (default: from server.listen)")
        p.add_argument("--token", help="a bearer token (default: $GATEWAY_TOKEN, the config's)")

    trace = commands.add_parser("trace", help="why a rule did or did not fire: its last traces")
    with_api(trace)
    trace.add_argument("rule")
    trace.add_argument("--limit", type=int, default=10, help="the newest this many")
    trace.add_argument("--json", action="store_true", help="JSON for scripts")
    watch = commands.add_parser("watch", help="follow the gateway's live events")
    with_api(watch)
    watch.add_argument("--json", action="store_true", help="one JSON object a line")
    level = commands.add_parser("log-level", help="show or change the log level at run time")
    with_api(level)
    level.add_argument("level", nargs="?", choices=["debug", "info", "warning", "error"])
    level.add_argument("--logger", help="one logger, e.g. gateway.inputs.mqtt")

    outbox = commands.add_parser("outbox", help="inspect and repair the webhook outbox")
    with_config(outbox)
    outbox.add_argument("--state-dir", help="state directory (default: from the config)")
    # --config/--state-dir also after the action (gateway outbox stats --config F)
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--config", "-c", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    where.add_argument("--state-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    actions = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, text: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, help=text, parents=[where])

    for name, text in (
        ("stats", "queue depth, oldest age, dead letters per endpoint"),
        ("list", "undelivered webhooks"),
        ("dead", "dead letters (gave up after max_age)"),
        ("show", "one webhook with its attempt log"),
    ):
        read = action(name, text)
        read.add_argument("--json", action="store_true", help="JSON for scripts, not a table")
        if name in ("list", "dead"):
            read.add_argument("--limit", type=int, default=50)
        elif name == "show":
            read.add_argument("id")
    retry = action("retry", "send again now: one webhook, or --dead for all")
    retry.add_argument("id", nargs="?")
    retry.add_argument("--dead", action="store_true", help="every dead letter")
    retry.add_argument("--endpoint", help="only this endpoint's dead letters")
    purge = action("purge", "delete dead letters")
    purge.add_argument("--dead", action="store_true", required=True)
    purge.add_argument("--endpoint")
    action("enable", "re-enable an endpoint disabled by 410 Gone").add_argument("endpoint")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "run": _run,
        "check": _check,
        "test": _test,
        "schema": _schema,
        "outbox": _outbox,
        "trace": _trace,
        "watch": _watch,
        "log-level": _log_level,
    }
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} error(s) in the config", file=sys.stderr)
        return EXIT_USAGE
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # `gateway schema | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def setup_logging(level: str, style: str = "text") -> None:
    from gateway import logs

    logs.setup(level, style)


def _run(args: argparse.Namespace) -> int:
    from gateway.app import run_daemon

    setup_logging(args.log_level, args.log_format)
    # The outbox's thread gives the GIL away at every SQLite call and waits to take it
    # back while the event loop runs Python: at most this long, not the default 5 ms
    # (a 20,000-message burst: 2,692-2,856 -> 2,889-3,030 delivered/s, 4 pairs).
    sys.setswitchinterval(SWITCH_INTERVAL)
    path = args.config or default_config_path()
    logging.getLogger("gateway").info("edge-gateway %s starting with %s", __version__, path)
    try:
        return asyncio.run(run_daemon(path, simulate=args.simulate))
    except ConfigError as exc:
        for problem in exc.problems:
            logging.getLogger("gateway").error("%s", problem)
        return EXIT_USAGE
    except GatewayError as exc:
        logging.getLogger("gateway").error("%s", exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    path = args.config or default_config_path()
    loaded = load_config(path)
    print(f"{path}: ok: {loaded.summary()}")
    return EXIT_OK


def _test(args: argparse.Namespace) -> int:
    from gateway.rules.scenarios import run_files

    path = args.config or default_config_path()
    loaded = load_config(path)
    files = [Path(f) for f in args.files]
    if not files:
        default = Path(str(path).removesuffix(".yaml").removesuffix(".yml") + ".test.yaml")
        if not default.exists():
            print(f"error: no scenario files given and no {default}", file=sys.stderr)
            return EXIT_USAGE
        files = [default]
    logging.basicConfig(level=logging.CRITICAL)  # rule logs would drown the report
    results, problems = run_files(loaded, files)
    for problem in problems:
        print(problem, file=sys.stderr)
    for result in results:
        print(f"{'PASS' if result.passed else 'FAIL'}  {result.name}")
        for failure in result.failures:
            print(f"      {failure}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    if problems:
        return EXIT_USAGE
    return EXIT_FAILURE if failed else EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from gateway.config.models import GatewayConfig

    schema = GatewayConfig.model_json_schema(by_alias=True)
    rule = schema["$defs"]["Rule"]["properties"]
    for key in ("when", "if", "then"):  # one item may be written without the list
        many = rule[key]
        one = many["items"]
        rule[key] = {"anyOf": [one, many], "description": many.get("description", "")}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Edge Gateway config"
    print(json.dumps(schema, indent=2))
    return EXIT_OK


def _outbox(args: argparse.Namespace) -> int:
    from gateway import tables
    from gateway.outbox import queries
    from gateway.outbox.database import open_database

    if args.state_dir:
        state_dir = Path(args.state_dir)
    else:
        state_dir = load_config(args.config or default_config_path()).state_dir
    path = state_dir / "outbox.db"
    if not path.exists():
        print(f"error: no outbox at {path}", file=sys.stderr)
        return EXIT_FAILURE
    db = open_database(path)
    now = time.time()
    try:
        if args.action == "stats":
            stats = queries.stats(db, now)
            print(_json(stats) if args.json else tables.stats(stats))
        elif args.action in ("list", "dead"):
            rows = queries.list_messages(db, "dead" if args.action == "dead" else None, args.limit)
            print(_json(rows) if args.json else tables.messages(rows, now))
        elif args.action == "show":
            message = queries.show_message(db, args.id)
            if message is None:
                print(f"error: no message {args.id!r}", file=sys.stderr)
                return EXIT_FAILURE
            print(_json(message) if args.json else tables.message(message, now))
        elif args.action == "retry":
            if not args.id and not args.dead:
                print("error: give a message id or --dead", file=sys.stderr)
                return EXIT_USAGE
            count = queries.retry(db, now, msg_id=args.id, dead=args.dead, endpoint=args.endpoint)
            print(f"{count} message(s) will be sent again")
        elif args.action == "purge":
            print(f"{queries.purge_dead(db, args.endpoint)} dead letter(s) deleted")
        elif args.action == "enable":
            changed = queries.enable_endpoint(db, args.endpoint, now)
            print(f"endpoint {args.endpoint} " + ("re-enabled" if changed else "was not disabled"))
    finally:
        db.close()
    return EXIT_OK


def _api(args: argparse.Namespace) -> Any:
    from gateway.remote import Api

    return Api(load_config(args.config or default_config_path()).config, args.url, args.token)


def _trace(args: argparse.Namespace) -> int:
    from gateway.remote import trace_lines

    traces = _api(args).call("GET", f"/api/v1/rules/{args.rule}/traces")["traces"][: args.limit]
    if args.json:
        print(_json(traces))
    elif not traces:
        print(f"rule {args.rule} has not been triggered (no traces kept)")
    for trace in [] if args.json else reversed(traces):  # oldest first, the newest last
        print("\n".join(trace_lines(trace)))
    return EXIT_OK


def _watch(args: argparse.Namespace) -> int:
    from gateway.remote import event_line

    try:
        for kind, data in _api(args).events():
            line = json.dumps({"event": kind, **data}) if args.json else event_line(kind, data)
            print(line, flush=True)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _log_level(args: argparse.Namespace) -> int:
    api = _api(args)
    if args.level is None:
        print(api.call("GET", "/api/v1/log-level")["level"])
    else:
        answer = api.call("POST", "/api/v1/log-level", {"level": args.level, "logger": args.logger})
        print(f"log level of {answer['logger'] or 'the gateway'}: {answer['level']}")
    return EXIT_OK


def _json(doc: Any) -> str:
    return json.dumps(doc, indent=2, default=str)
