"""Which conference event a change of the conference record means (pure: no database, no server)."""

from __future__ import annotations

import pytest

from ratio_zoom.events.conference import ConferenceSnapshot as S
from ratio_zoom.events.conference import event_type

A = "https://zoom.example/j/1?pwd=a"
B = "https://zoom.example/j/2?pwd=b"


@pytest.mark.parametrize(("before", "after", "expected"), [
    (None, S("pending", None, None), None),
    (S("pending", None, None), S("ready", 1, A), "conference.ready"),
    (None, S("ready", 1, A), "conference.ready"),
    (S("ready", 1, A), S("ready", 1, A), None),                      # nothing changed
    (S("ready", 1, A), S("ready", 2, B), "conference.updated"),      # recreated after the host deleted it
    (S("ready", 1, A), S("ready", 1, B), "conference.updated"),      # the host regenerated the link
    (S("ready", 1, A), S("waiting_for_zoom", 1, A), "conference.waiting"),
    (S("waiting_for_zoom", 1, A), S("waiting_for_zoom", 1, A), None),
    (S("waiting_for_zoom", 1, A), S("ready", 1, A), "conference.ready"),   # usable again, same link
    (S("waiting_for_zoom", 1, A), S("ready", 2, B), "conference.updated"),  # usable again, new link
    (S("ready", 1, A), S("detached", 1, A), "conference.detached"),
    (S("ready", 1, A), S("deleted", 1, A), "conference.deleted"),
    (S("pending", None, None), S("failed", None, None), "conference.needs_attention"),
    (S("ready", 1, A), S("pending", 1, A), None),
])
def test_event_for_each_change(before: S | None, after: S, expected: str | None) -> None:
    assert event_type(before, after) == expected
