"""Building and running the Temporal worker (`ratio-zoom worker`, `python worker.py`)."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.bots import BotActivities
from activities.emails import EmailActivities
from activities.meetings import MeetingActivities
from ratio_zoom.confirmations.smtp import SmtpConfig, SmtpSender
from ratio_zoom.recording_bot.recall import RecallProvider
from activities.records import RecordActivities
from activities.schemas import Policy
from ratio_zoom.core.metrics import Metrics, runtime_with_metrics
from ratio_zoom.connections.services import Services
from ratio_zoom.core.mode import check_start
from ratio_zoom.core.settings import Settings
from ratio_zoom.core.temporal import connect_client
from ratio_zoom.events.dispatcher import EventDispatcher
from ratio_zoom.events.signing import EventSigner
from workflows.appointment import AppointmentWorkflow
from workflows.runner import workflow_runner


def emails_on(settings: Settings) -> bool:
    return settings.emails_enabled and bool(settings.smtp_url.get_secret_value())


def bots_on(settings: Settings) -> bool:
    return bool(settings.recording_bot_api_url and settings.recording_bot_api_key.get_secret_value())


def policy_from(settings: Settings) -> Policy:
    return Policy(pre_start_check_minutes=settings.pre_start_check_minutes,
                  grace_hours=settings.appointment_grace_hours, emails_enabled=emails_on(settings),
                  bots_enabled=bots_on(settings))


def event_dispatcher(services: Services, metrics: Metrics | None = None) -> EventDispatcher:
    settings = services.settings
    signer = EventSigner(settings.core_app_webhook_secret.get_secret_value())
    observer = metrics.core_app_event if metrics is not None else None
    return EventDispatcher(services.db, settings.core_app_webhook_url, signer, observer=observer)


def build_worker(client: Client, services: Services, *, task_queue: str | None = None,
                 max_concurrent_activities: int = 100) -> Worker:
    settings = services.settings
    meetings = MeetingActivities(services.db, services.broker, services.zoom, outbox=services.outbox)
    records = RecordActivities(services.db, policy_from(settings), services.outbox)
    activities = [
        meetings.create_meeting, meetings.update_meeting, meetings.delete_meeting, meetings.check_meeting,
        records.load_conference, records.save_conference_status, records.write_audit_events, records.record_consent,
    ]
    if emails_on(settings):
        sender = SmtpSender(SmtpConfig.from_url(settings.smtp_url.get_secret_value(),
                                                allow_plaintext=settings.smtp_allow_plaintext))
        activities.append(EmailActivities(services.db, services.vault, sender, settings.email_from).send_confirmations)
    if bots_on(settings):
        provider = RecallProvider(settings.recording_bot_api_url, settings.recording_bot_api_key)
        bots = BotActivities(services.db, provider, services.vault, settings.public_base_url,
                             obf_grace=timedelta(minutes=settings.recording_bot_obf_grace_minutes))
        activities += [bots.schedule_bot, bots.move_bot, bots.cancel_bot]
    return Worker(
        client,
        task_queue=task_queue or settings.temporal_task_queue,
        workflows=[AppointmentWorkflow],
        workflow_runner=workflow_runner(),
        activities=activities,
        max_concurrent_activities=max_concurrent_activities,
        max_cached_workflows=settings.temporal_max_cached_workflows,
    )


async def run_worker(settings: Settings) -> None:
    check_start(settings, "worker")  # production refuses insecure settings before anything connects
    runtime = runtime_with_metrics(settings.metrics_bind) if settings.metrics_bind else None
    metrics = Metrics(runtime.metric_meter if runtime is not None else None)
    services = Services.create(settings, observer=metrics.zoom_call, on_refresh=metrics.refresh,
                               limiter_metrics=metrics)
    client = await connect_client(settings, runtime)
    if settings.metrics_bind:
        print(f"ratio-zoom worker metrics on http://{settings.metrics_bind}/metrics", flush=True)
    worker = build_worker(client, services)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Events to the core app go out from every worker process; claims are per event, so they never collide.
    delivery = (asyncio.create_task(event_dispatcher(services, metrics).run(stop), name="core-app-events")
                if settings.core_app_events_enabled() else None)
    try:
        async with worker:
            print(f"ratio-zoom worker polling task queue {settings.temporal_task_queue!r} "
                  f"on {settings.temporal_address} ({settings.temporal_namespace})", flush=True)
            await stop.wait()
    finally:
        if delivery is not None:
            stop.set()
            await delivery
        await services.aclose()
