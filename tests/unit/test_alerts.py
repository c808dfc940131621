"""Alert episodes: once per episode, a recovery, rate-limited, quiet about themselves."""

from __future__ import annotations

from gateway.alerts import Episodes

DEAD = ("dead", "hub")
SENSOR = ("sensor", "freezer")


def texts(episodes: Episodes, problems: dict[tuple[str, str], str], now: float) -> list[str]:
    return [
        ("ok: " if m.recovered else "") + m.text for m in episodes.observe(problems, now, set())
    ]


def test_a_problem_is_sent_once_and_its_recovery_once() -> None:
    episodes = Episodes(min_interval=600)
    assert texts(episodes, {SENSOR: "sensor freezer is unavailable"}, 0) == [
        "sensor freezer is unavailable"
    ]
    assert texts(episodes, {SENSOR: "sensor freezer is unavailable"}, 5) == []  # still open
    assert texts(episodes, {}, 10) == ["ok: sensor freezer is reading again"]
    assert texts(episodes, {}, 15) == []


def test_a_flapping_problem_is_not_sent_again_within_min_interval() -> None:
    episodes = Episodes(min_interval=600)
    texts(episodes, {SENSOR: "gone"}, 0)
    texts(episodes, {}, 10)
    assert texts(episodes, {SENSOR: "gone"}, 20) == []  # back after 20 s: counted, not sent
    assert texts(episodes, {}, 30) == []  # nor its recovery
    assert episodes.suppressed == 1
    assert texts(episodes, {SENSOR: "gone"}, 700) == ["gone"]  # a new episode later is


def test_problems_of_the_alerts_own_endpoint_are_never_sent() -> None:
    episodes = Episodes(min_interval=0)
    sent = episodes.observe({DEAD: "dead letters for ops"}, 0, quiet={DEAD})
    assert sent == []
    assert episodes.observe({}, 10, quiet=set()) == []  # and no recovery for it either
