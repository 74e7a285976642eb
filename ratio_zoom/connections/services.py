"""The shared dependencies, built once at start-up from the settings and passed down (never globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ratio_zoom.connections.broker import TokenBroker
from ratio_zoom.connections.limiter import LimiterConfig, LimiterMetrics, ZoomLimiter
from ratio_zoom.core.settings import Settings
from ratio_zoom.events.outbox import Outbox
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.vault import Vault
from ratio_zoom.zoom.client import ResponseObserver, ZoomClient, new_http_client
from ratio_zoom.zoom.oauth import ZoomOAuth


@dataclass
class Services:
    settings: Settings
    db: Database
    vault: Vault
    zoom: ZoomClient
    oauth: ZoomOAuth
    broker: TokenBroker
    outbox: Outbox
    limiter: ZoomLimiter | None = None

    @classmethod
    def create(cls, settings: Settings, *, observer: ResponseObserver | None = None,
               on_refresh: Callable[[str], None] | None = None,
               refresh_margin: timedelta = timedelta(minutes=5), pooled: bool = True,
               limiter_metrics: LimiterMetrics | None = None) -> Services:
        db = Database(settings.database_url, pooled=pooled)
        vault = Vault(settings.token_keyring())
        http = new_http_client()
        limiter = ZoomLimiter(db, limiter_config(settings), metrics=limiter_metrics) if settings.zoom_rate_limiter else None
        zoom = ZoomClient(settings.zoom_api_base_url, http, observer=observer)
        oauth = ZoomOAuth(settings.zoom_oauth_base_url, settings.zoom_client_id, settings.zoom_client_secret,
                          settings.zoom_redirect_uri, http)
        outbox = Outbox(enabled=settings.core_app_events_enabled())
        broker = TokenBroker(db, vault, oauth, refresh_margin=refresh_margin, on_refresh=on_refresh, limiter=limiter,
                             outbox=outbox)
        return cls(settings=settings, db=db, vault=vault, zoom=zoom, oauth=oauth, broker=broker, outbox=outbox,
                   limiter=limiter)

    async def aclose(self) -> None:
        await self.zoom.aclose()
        await self.db.dispose()


def limiter_config(settings: Settings) -> LimiterConfig:
    return LimiterConfig.for_plan(settings.zoom_plan, overrides=settings.zoom_rate_overrides(),  # type: ignore[arg-type]
                                  headroom=settings.zoom_rate_headroom, daily_budget=settings.zoom_daily_budget)
