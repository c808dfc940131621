"""Durations, on/off words and times of day as people write them."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.config.types import format_duration, parse_binary, parse_duration, parse_time_of_day


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1h 30m", 5400),
        ("1.5s", 1.5),
        (45, 45),
        (0.5, 0.5),
        ("90", 90),
    ],
)
def test_durations_parse_to_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5 parsecs", "m5", "1h30", "-5s", "5s5", True, None, [1]])
def test_bad_durations_are_rejected_with_an_example(text: object) -> None:
    with pytest.raises(ValueError, match=r"duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(90, "1m30s"), (0.25, "250ms"), (3600, "1h"), (0, "0s")]
)
def test_durations_format_back_shortly(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("word", [True, "on", "ON", "true", "yes", "1", 1, "high"])
def test_on_words(word: object) -> None:
    assert parse_binary(word) is True


@pytest.mark.parametrize("word", [False, "off", "Off", "false", "no", "0", 0, "low"])
def test_off_words(word: object) -> None:
    assert parse_binary(word) is False


@pytest.mark.parametrize("word", ["maybe", 2, None, "onn"])
def test_other_words_are_not_states(word: object) -> None:
    with pytest.raises(ValueError, match="expected on or off"):
        parse_binary(word)


def test_times_of_day() -> None:
    assert parse_time_of_day("07:30") == dt.time(7, 30)
    assert parse_time_of_day("23:59:30") == dt.time(23, 59, 30)
    with pytest.raises(ValueError, match=r'put it in quotes, e.g. "18:00"'):
        parse_time_of_day(1080)  # YAML 1.1 reads a bare 18:00 as 1080
    with pytest.raises(ValueError, match="time of day"):
        parse_time_of_day("25:00")
