"""Attendee confirmations: the email (text + HTML) with an iCalendar invite, and the SMTP sender."""
