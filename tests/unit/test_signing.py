"""Standard Webhooks signatures, checked against the specification's test vector."""

from __future__ import annotations

import pytest

from gateway.signing import SignatureError, sign, signature_header, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature: str, stamp: int = STAMP, msg_id: str = MSG_ID) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def test_signature_matches_the_spec_test_vector() -> None:
    assert sign(SECRET, MSG_ID, STAMP, BODY) == EXPECTED


def test_rotation_signs_with_every_secret_and_either_verifies() -> None:
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    header = signature_header([other, SECRET], MSG_ID, STAMP, BODY)
    assert header.split() == [sign(other, MSG_ID, STAMP, BODY), EXPECTED]
    assert verify([SECRET], headers(header), BODY, now=STAMP) == MSG_ID


@pytest.mark.parametrize(
    ("hdrs", "body", "now", "why"),
    [
        (headers(EXPECTED), b'{"test":2432232314}', STAMP, "no webhook-signature matches"),
        (headers(EXPECTED), BODY, STAMP + 301, "too old"),
        (headers(EXPECTED), BODY, STAMP - 301, "in the future"),
        (headers("v1,AAAA"), BODY, STAMP, "no webhook-signature matches"),
        (headers("garbage ,,, v2,xx"), BODY, STAMP, "no webhook-signature matches"),
        (headers(EXPECTED, msg_id="msg_other"), BODY, STAMP, "no webhook-signature matches"),
        ({"webhook-id": MSG_ID}, BODY, STAMP, "missing"),
        ({**headers(EXPECTED), "webhook-timestamp": "12x"}, BODY, STAMP, "not a number"),
    ],
)
def test_bad_requests_fail_verification(
    hdrs: dict[str, str], body: bytes, now: float, why: str
) -> None:
    with pytest.raises(SignatureError, match=why):
        verify([SECRET], hdrs, body, now=now)


def test_the_envelope_and_event_time_share_one_format() -> None:
    """``timestamp`` and a rule's ``{{ event.time }}`` in one body read alike:
    ISO 8601, UTC, milliseconds, Z."""
    import datetime as dt
    import json

    from gateway.outbox.jobs import encode_body
    from gateway.rules.context import iso_time
    from gateway.rules.decisions import Snapshot

    moment = 1_768_511_100.25
    local = dt.datetime.fromtimestamp(moment, dt.timezone(dt.timedelta(hours=2)))
    snap = Snapshot({}, {}, local)
    body = json.loads(encode_body("motion.detected", {"at": iso_time(moment, snap)}, moment))
    assert body["timestamp"] == body["data"]["at"] == "2026-01-15T21:05:00.250Z"
