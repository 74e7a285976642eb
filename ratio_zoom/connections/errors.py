"""Why a workspace's Zoom connection cannot be used right now. Activities turn these into parking."""

from __future__ import annotations


class ConnectionUnavailable(Exception):
    """Base: no usable Zoom connection for the workspace."""


class NotConnected(ConnectionUnavailable):
    """The workspace has never connected Zoom (or its row is gone)."""


class NeedsReconnect(ConnectionUnavailable):
    """The grant is dead (invalid_grant, missing scope, app uninstalled elsewhere); a human must reconnect."""


class Detached(ConnectionUnavailable):
    """An Owner/Admin disconnected Zoom, or the app was deauthorized: no Zoom call may be made."""


class RefreshUnavailable(Exception):
    """Zoom's token endpoint did not answer usably (5xx, timeout, lost response). Retryable."""
