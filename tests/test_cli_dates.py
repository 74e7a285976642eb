"""`--start +Nd HH:MM`: the relative form the README's demo uses so that it never rots."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ratio_zoom.cli.dates import StartTimeError, resolve_start


def test_absolute_times_pass_through_for_the_contract_to_validate() -> None:
    assert resolve_start("2031-01-07T10:00:00+01:00", "Europe/Berlin") == "2031-01-07T10:00:00+01:00"


def test_relative_days_at_a_wall_clock_time_in_the_zone() -> None:
    now = datetime(2026, 12, 2, 22, 30, tzinfo=timezone.utc)  # already 23:30 on the 2nd in Berlin
    assert resolve_start("+7d 10:00", "Europe/Berlin", now=now) == "2026-12-09T10:00:00+01:00"


def test_today_is_the_zones_today_not_utcs() -> None:
    now = datetime(2026, 12, 2, 23, 30, tzinfo=timezone.utc)  # 00:30 on the 3rd in Berlin
    assert resolve_start("+1d 09:15", "Europe/Berlin", now=now) == "2026-12-04T09:15:00+01:00"


def test_across_a_dst_change_the_wall_clock_time_holds() -> None:
    now = datetime(2027, 3, 25, 12, 0, tzinfo=timezone.utc)  # Berlin switches to CEST on 28 March 2027
    assert resolve_start("+7d 10:00", "Europe/Berlin", now=now) == "2027-04-01T10:00:00+02:00"


def test_without_a_zone_relative_means_utc() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
    assert resolve_start("+2d@08:00", None, now=now) == "2026-12-04T08:00:00+00:00"


@pytest.mark.parametrize(("value", "zone"), [("+7d 25:00", "UTC"), ("+7d 10:00", "Mars/Olympus")])
def test_nonsense_is_refused_in_plain_words(value: str, zone: str) -> None:
    with pytest.raises(StartTimeError):
        resolve_start(value, zone)
