"""Serial lines into values: each format, split lines, garbage, overlong lines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.connections import SerialPort
from gateway.inputs.parsers import PARSERS, LineError, LineSplitter


def port(**kw: object) -> SerialPort:
    return SerialPort.model_validate({"port": "/dev/null", **kw})


@pytest.mark.parametrize(
    ("config", "line", "fields"),
    [
        (
            {"format": "json"},
            '{"temp_c": 21.5, "hum": 40, "ok": true}',
            {"temp_c": 21.5, "hum": 40, "ok": True},
        ),
        ({"format": "kv"}, "temp=21.5 hum=40 door:open", {"temp": 21.5, "hum": 40, "door": "open"}),
        ({"format": "csv", "fields": ["temp", "hum"]}, "21.5, 40", {"temp": 21.5, "hum": 40}),
        (
            {"format": "csv", "fields": ["temp", "where"]},
            '21.5, "hall, upstairs"',
            {"temp": 21.5, "where": "hall, upstairs"},
        ),
        (
            {"format": "regex", "pattern": r"T=(?P<temp>-?[\d.]+)C H=(?P<hum>\d+)%"},
            "T=-3.5C H=80%",
            {"temp": -3.5, "hum": 80},
        ),
        ({"format": "raw"}, "HELLO 1", {"line": "HELLO 1"}),
    ],
)
def test_each_format(config: dict[str, object], line: str, fields: dict[str, object]) -> None:
    p = port(**config)
    assert PARSERS[p.format](line, p) == fields


@pytest.mark.parametrize(
    ("config", "line", "why"),
    [
        ({"format": "json"}, "{temp: 1", "not JSON"),
        ({"format": "json"}, "[1, 2]", "must be an object"),
        ({"format": "kv"}, "@@@@", "no key=value"),
        ({"format": "csv", "fields": ["a", "b"]}, "1,2,3", "3 columns, expected 2"),
        ({"format": "regex", "pattern": r"T=(?P<t>\d+)"}, "garbage", "does not match"),
    ],
)
def test_malformed_lines_say_why(config: dict[str, object], line: str, why: str) -> None:
    p = port(**config)
    with pytest.raises(LineError, match=why):
        PARSERS[p.format](line, p)


def test_lines_split_across_reads_are_reassembled() -> None:
    splitter = LineSplitter(b"\n", 64)
    assert splitter.feed(b'{"t": 2') == []
    assert splitter.feed(b'1.5}\r\n{"t"') == [b'{"t": 21.5}']
    assert splitter.feed(b": 22}\n") == [b'{"t": 22}']


def test_an_overlong_line_is_dropped_without_losing_the_next() -> None:
    splitter = LineSplitter(b"\n", 16)
    assert splitter.feed(b"x" * 40) == []
    assert splitter.feed(b"y" * 40 + b"\nok=1\n") == [b"ok=1"]
    assert splitter.overlong == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"format": "csv"}, "format csv needs fields"),
        ({"format": "regex", "pattern": "(unclosed"}, "not a valid regular expression"),
        ({"format": "regex", "pattern": r"\d+"}, "needs named groups"),
        ({"stopbits": 3}, "stopbits is 1, 1.5 or 2"),
    ],
)
def test_port_config_errors(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        port(**config)


@settings(max_examples=500, deadline=None)
@given(
    pattern=st.lists(st.sampled_from(["a", "b", "+", "$SYS", ""]), min_size=1, max_size=4).map(
        "/".join
    )
    | st.sampled_from(["#", "a/#", "+/#", "$SYS/#"]),
    topic=st.lists(st.sampled_from(["a", "b", "$SYS", "$x", ""]), min_size=1, max_size=4).map(
        "/".join
    ),
)
def test_topic_matching_is_paho_s(pattern: str, topic: str) -> None:
    from paho.mqtt.client import topic_matches_sub

    from gateway.events import topic_matches

    assert topic_matches(pattern, topic) == topic_matches_sub(pattern, topic)
