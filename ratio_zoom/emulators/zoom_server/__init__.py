"""A Zoom emulator that speaks Zoom's documented wire format (OAuth, meetings, errors, rate limits)."""
