"""The typed search attributes every appointment workflow carries (part of the public contract).

Search attributes are NOT encrypted by the payload codec, so they hold identifiers and statuses only:
never a name, an email address or a join URL.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

APPOINTMENT_ID = SearchAttributeKey.for_keyword("AppointmentId")
WORKSPACE_ID = SearchAttributeKey.for_keyword("WorkspaceId")
CONFERENCE_STATUS = SearchAttributeKey.for_keyword("ConferenceStatus")
APPOINTMENT_START = SearchAttributeKey.for_datetime("AppointmentStart")
SEARCH_ATTRIBUTE_KEYS = (APPOINTMENT_ID, WORKSPACE_ID, CONFERENCE_STATUS, APPOINTMENT_START)

# For `temporal server start-dev --search-attribute Name=Type`.
SEARCH_ATTRIBUTE_FLAGS = tuple(
    f"{key.name}={'Datetime' if key.value_type.__name__ == 'datetime' else 'Keyword'}" for key in SEARCH_ATTRIBUTE_KEYS
)
