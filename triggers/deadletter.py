"""`dlqTrigger`: after a trigger's last retry fails, fire its dead-letter trigger with the same events.

Argo only does this with `atLeastOnce: true`; Sensorium always does (section 8 of the semantics reference). The
firing's outcome stays a failure (the trigger did fail) and carries the dead-letter outcome, so the runner, the
trace and `sensorium test` can show both. The bus message is acknowledged after both finished.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import msgspec

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.triggers.outcome import Fireable, FiringOutcome

log = logging.getLogger("sensorium.triggers")


class DeadLettering:
    def __init__(self, primary: Fireable, dead_letter: Fireable, name: str) -> None:
        self.primary, self.dead_letter, self.name = primary, dead_letter, name

    async def fire(self, events: Mapping[str, CloudEvent]) -> FiringOutcome:
        outcome = await self.primary.fire(events)
        if outcome.success:
            return outcome
        dlq = await self.dead_letter.fire(events)
        ids = ", ".join(e.id for e in events.values())
        if dlq.success:
            log.warning("trigger %s failed for event(s) %s; dead-lettered to %s", self.name, ids, dlq.trigger)
        else:
            log.error("trigger %s failed for event(s) %s and its dlqTrigger %s failed too: %s", self.name, ids,
                      dlq.trigger, dlq.error)
        return msgspec.structs.replace(outcome, dead_letter=dlq)
