"""The Python client the core app uses: `await starter.connect()` and the `Appointments` facade."""

from starter.appointments import Appointments, BookingRejected, connect

__all__ = ["Appointments", "BookingRejected", "connect"]
