"""A stand-in for the appointment workflow that records what arrives as `zoom_meeting_changed`.
(Its own module: the workflow sandbox re-imports the module that defines a workflow.)"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ratio_zoom.contract.zoom_events import ZOOM_MEETING_CHANGED_SIGNAL, ZoomMeetingChanged


@workflow.defn(name="MeetingEventRecorder")
class Recorder:
    def __init__(self) -> None:
        self.events: list[ZoomMeetingChanged] = []
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.signal(name=ZOOM_MEETING_CHANGED_SIGNAL)
    def changed(self, event: ZoomMeetingChanged) -> None:
        self.events.append(event)

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.query
    def seen(self) -> list[ZoomMeetingChanged]:
        return self.events
