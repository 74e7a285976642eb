"""A local SMTP sink: stores every message and lists them over HTTP (`ratio-zoom emulate smtp`)."""
