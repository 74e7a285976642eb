"""Confirmation emails and invites, parsed back with a real iCalendar library, sent through a real SMTP
server (aiosmtpd in-process)."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timezone

import pytest
from icalendar import Calendar

from ratio_zoom.confirmations.ics import event_uid
from ratio_zoom.confirmations.models import InviteFacts, Recipient
from ratio_zoom.confirmations.render import build_message
from ratio_zoom.confirmations.smtp import SmtpConfig, SmtpPermanentError, SmtpSender, SmtpTemporaryError
from ratio_zoom.emulators.smtp_sink.testing import running_smtp_sink

JOIN = "https://zoom.example/j/84000000001?pwd=abc123"


def facts(**overrides: object) -> InviteFacts:
    values: dict[str, object] = dict(
        appointment_id="a-1", title="Tax review", description="Bring last year's return",
        start=datetime(2026, 3, 28, 14, 0, tzinfo=timezone.utc), duration_minutes=45, host_timezone="America/New_York",
        join_url=JOIN, sequence=1, kind="confirmation", organizer_email="no-reply@ratio.example")
    values.update(overrides)
    return InviteFacts(**values)  # type: ignore[arg-type]


def parts(message: email.message.EmailMessage) -> tuple[str, str, Calendar]:
    text = html = ""
    cal = None
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_content()
        elif part.get_content_type() == "text/html":
            html = part.get_content()
        elif part.get_content_type() == "text/calendar":
            cal = Calendar.from_ical(part.get_payload(decode=True))
    assert cal is not None
    return text, html, cal


def event_of(cal: Calendar):  # type: ignore[no-untyped-def]
    return next(c for c in cal.walk() if c.name == "VEVENT")


def test_confirmation_carries_the_join_url_and_never_a_start_url() -> None:
    msg = build_message(facts(), Recipient(name="Ada", email="ada@example.com"), sender="Ratio <no-reply@ratio.example>",
                        message_id="<m1@ratio-zoom>")
    text, html, cal = parts(msg)
    event = event_of(cal)
    assert str(cal["METHOD"]) == "REQUEST" and str(event["UID"]) == event_uid("a-1") and int(event["SEQUENCE"]) == 1
    assert str(event["LOCATION"]) == JOIN and JOIN in str(event["DESCRIPTION"])
    assert JOIN in text and "Duration: 45 minutes" in text and msg["Subject"] == "Confirmed: Tax review"
    raw = msg.as_string()
    assert "start_url" not in raw and "zak=" not in raw and "/s/" not in raw


def test_times_are_shown_in_the_attendees_zone_across_daylight_saving() -> None:
    # 2026-03-28 14:00Z: New York is already on summer time (UTC-4), Berlin switches the next day (still UTC+1).
    host = build_message(facts(), Recipient(email="host-side@example.com"), sender="r@x.io", message_id="<a@x>")
    berlin = build_message(facts(), Recipient(email="b@example.com", timezone="Europe/Berlin"), sender="r@x.io",
                           message_id="<b@x>")
    assert "Saturday, 28 March 2026, 10:00–10:45 (America/New_York, UTC-04:00)" in parts(host)[0]
    assert "Saturday, 28 March 2026, 15:00–15:45 (Europe/Berlin, UTC+01:00)" in parts(berlin)[0]
    after = build_message(facts(start=datetime(2026, 3, 30, 14, 0, tzinfo=timezone.utc)),
                          Recipient(email="b@example.com", timezone="Europe/Berlin"), sender="r@x.io", message_id="<c@x>")
    assert "Monday, 30 March 2026, 16:00–16:45 (Europe/Berlin, UTC+02:00)" in parts(after)[0]
    event = event_of(parts(berlin)[2])
    assert event["DTSTART"].dt == datetime(2026, 3, 28, 14, 0, tzinfo=timezone.utc)  # the invite itself is in UTC


def test_update_keeps_the_uid_and_raises_the_sequence_and_cancel_cancels() -> None:
    update = event_of(parts(build_message(facts(kind="update", sequence=2), Recipient(email="a@example.com"),
                                          sender="r@x.io", message_id="<u@x>"))[2])
    cancel_text, _, cancel_cal = parts(build_message(facts(kind="cancellation", sequence=3, join_url=None),
                                                     Recipient(email="a@example.com"), sender="r@x.io", message_id="<c@x>"))
    cancel = event_of(cancel_cal)
    assert str(update["UID"]) == str(cancel["UID"]) == event_uid("a-1")
    assert (int(update["SEQUENCE"]), int(cancel["SEQUENCE"])) == (2, 3)
    assert str(cancel_cal["METHOD"]) == "CANCEL" and str(cancel["STATUS"]) == "CANCELLED"
    assert "LOCATION" not in cancel and "zoom.example" not in cancel_text


def test_hostile_titles_are_escaped_in_html() -> None:
    _, html, _ = parts(build_message(facts(title='<script>alert("x")</script>'), Recipient(email="a@example.com"),
                                     sender="r@x.io", message_id="<h@x>"))
    assert "<script>" not in html and "&lt;script&gt;" in html


async def test_smtp_outcomes_are_classified_per_recipient() -> None:
    with running_smtp_sink() as sink:
        sender = SmtpSender(SmtpConfig.from_url(sink.smtp_url, allow_plaintext=True))  # loopback sink, no STARTTLS
        msg = build_message(facts(), Recipient(email="ok@example.com"), sender="r@x.io", message_id="<s1@x>")
        await sender.send(msg, "ok@example.com")
        sink.sink.reject = {"gone@example.com"}
        with pytest.raises(SmtpPermanentError, match="550"):
            await sender.send(msg, "gone@example.com")
        sink.sink.tempfail_next = 1
        with pytest.raises(SmtpTemporaryError, match="451"):
            await sender.send(msg, "later@example.com")
        await sender.send(msg, "later@example.com")
        assert [m["to"] for m in sink.messages] == [["ok@example.com"], ["later@example.com"]]
        parsed = email.message_from_string(sink.sink.messages[0]["raw"], policy=email.policy.default)
        assert parsed["Message-ID"] == "<s1@x>"
    with pytest.raises(SmtpTemporaryError):
        await SmtpSender(SmtpConfig.from_url("smtp://127.0.0.1:1")).send(msg, "x@example.com")


def test_the_password_never_shows() -> None:
    config = SmtpConfig.from_url("smtps://mailer:s3cr%40t@smtp.example.com")
    assert config.password == "s3cr@t" and config.port == 465 and config.implicit_tls
    assert "s3cr" not in repr(config) and "s3cr" not in repr(SmtpSender(config))
    with pytest.raises(ValueError):
        SmtpConfig.from_url("http://smtp.example.com")


def test_end_time_of_a_meeting_that_spans_a_daylight_saving_change() -> None:
    # Berlin springs forward at 01:00Z on 2026-03-29 (02:00 -> 03:00 local): 00:30Z for 60 min ends 01:30Z,
    # which is 03:30 summer time, not the 02:30 that wall-clock arithmetic would claim.
    text = parts(build_message(facts(start=datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc), duration_minutes=60),
                               Recipient(email="b@example.com", timezone="Europe/Berlin"), sender="r@x.io",
                               message_id="<d@x>"))[0]
    assert "Sunday, 29 March 2026, 01:30–03:30 (Europe/Berlin, UTC+01:00, ends UTC+02:00)" in text


def test_invite_facts_errors_do_not_echo_the_join_url() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as error:
        InviteFacts(appointment_id="a", title="t", start=datetime(2030, 1, 1, tzinfo=timezone.utc), duration_minutes=5,
                    host_timezone="UTC", join_url=[JOIN], sequence=1, kind="confirmation",  # type: ignore[arg-type]
                    organizer_email="x@y.z")
    assert "abc123" not in str(error.value)
