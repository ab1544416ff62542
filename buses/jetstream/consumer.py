"""JetStream deliveries and durable pull consumers (transport only: never decides when to acknowledge)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import NotFoundError

from sensorium.buses.base import (
    Consumer,
    ConsumerSpec,
    Delivery,
    EventKey,
)
from sensorium.buses.jetstream.connection import JetStreamConnection
from sensorium.buses.jetstream.pull import Puller
from sensorium.buses.jetstream.stream import STREAM, STREAM_SUBJECTS, durable_name, subject_for
from sensorium.engine.core.errors import BusError

log = logging.getLogger("buses.jetstream.bus")

MAX_FILTER_SUBJECTS = 256
"""Above this many subjects a consumer filters on the stream's wildcard and drops (acks) the messages of other
subjects itself: one short consumer configuration instead of thousands of filters (the shared intake of an
engine with many sensors)."""


def ack_fields(msg: Msg) -> tuple[str, int, int]:
    """(stream, stream sequence, times delivered) of a JetStream message, from its reply subject: what
    `msg.metadata` holds, without the datetime and the dataclasses nats-py builds for it (3.5 us of the 4.4 us a
    delivery cost per message, timeit). The two forms nats-py reads: `$JS.ACK.<stream>.<consumer>.<delivered>.
    <stream seq>.<consumer seq>.<time>.<pending>` and, with a domain and an account hash after `$JS.ACK`, eleven
    or more tokens. Anything else goes to nats-py (which raises NotJSMessageError: not a JetStream message).
    tests/buses/test_jetstream_ack_fields.py holds this to `msg.metadata`."""
    tokens = msg.reply.split(".")
    count = len(tokens)
    if tokens[0] == "$JS" and tokens[1:2] == ["ACK"]:
        if count == 9:
            return tokens[2], int(tokens[5]), int(tokens[4])
        if count >= 11:
            return tokens[4], int(tokens[7]), int(tokens[6])
    metadata = msg.metadata
    return metadata.stream, metadata.sequence.stream, metadata.num_delivered


class JetStreamDelivery(Delivery):
    def __init__(self, msg: Msg) -> None:
        stream, sequence, delivered = ack_fields(msg)
        super().__init__(msg.data, dict(msg.headers or {}), f"{msg.subject} seq {sequence}",
                         {"subject": msg.subject, "stream": stream, "sequence": str(sequence)})
        self._msg = msg
        self.delivery_count = delivered
        self.order = sequence

    async def _ack(self) -> None:
        try:
            await self._msg.ack()
        except NatsError as exc:
            raise BusError(f"ack of {self.position} failed: {exc!r}") from exc

    async def _nak(self, delay: float) -> None:
        try:
            await self._msg.nak(delay=delay if delay > 0 else None)
        except NatsError as exc:
            raise BusError(f"nak of {self.position} failed: {exc!r}") from exc

    async def _in_progress(self) -> None:
        # Best effort: a lost progress signal only risks an early redelivery, never a loss.
        with contextlib.suppress(NatsError):
            await self._msg.in_progress()


class JetStreamConsumer(Consumer):
    def __init__(self, bus: JetStreamConnection, spec: ConsumerSpec) -> None:
        if not spec.keys:
            raise BusError(f"consumer {spec.name!r} has no event keys")
        self._bus, self.spec = bus, spec
        self.durable = durable_name(spec.name)
        self.subjects, self._wanted = self._filters(spec.keys)
        self._puller: Puller | None = None
        self._problem: str | None = None
        self._closed = False

    @staticmethod
    def _filters(keys: Sequence[EventKey]) -> tuple[list[str], frozenset[str] | None]:
        """The consumer's filter subjects, and the subjects kept by the client (None: every one fetched)."""
        subjects = sorted({subject_for(k) for k in keys})
        if len(subjects) > MAX_FILTER_SUBJECTS:
            return [STREAM_SUBJECTS], frozenset(subjects)
        return subjects, None

    async def retarget(self, keys: Sequence[EventKey]) -> None:
        """New filter subjects on the same durable (its position is kept: later messages of added subjects are
        delivered, earlier ones are not)."""
        if not keys:
            raise BusError(f"consumer {self.spec.name!r} has no event keys")
        subjects, wanted = self._filters(keys)
        self.spec = replace(self.spec, keys=tuple(keys))
        self._wanted = wanted
        if subjects != self.subjects:
            self.subjects = subjects
            try:
                await self.bind()
            except (NatsError, OSError, TimeoutError) as exc:
                raise BusError(f"NATS at {self._bus.url}: cannot update consumer {self.durable}: "
                               f"{self._bus.redact(repr(exc))}") from exc

    async def head(self) -> int:
        """The stream's last sequence."""
        try:
            info = await self._bus.js.stream_info(STREAM)
        except (NatsError, OSError, TimeoutError) as exc:
            raise BusError(f"NATS at {self._bus.url}: stream {STREAM} info: {self._bus.redact(repr(exc))}") from exc
        return int(info.state.last_seq)

    async def bind(self) -> None:
        """Create the durable (DeliverNew) or update an existing one's filters/limits, then subscribe."""
        js = self._bus.js
        want = api.ConsumerConfig(
            name=self.durable, durable_name=self.durable, deliver_policy=api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT, ack_wait=self.spec.ack_wait,
            max_ack_pending=self.spec.max_in_flight, filter_subjects=self.subjects)
        try:
            info = await js.consumer_info(STREAM, self.durable)
        except NotFoundError:
            info = None
        if info is None:
            if isinstance(self.spec.start_after, int):
                want.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
                want.opt_start_seq = self.spec.start_after + 1
            await js.add_consumer(STREAM, want)
            log.info("created durable consumer %s on %s (deliver new) for %s", self.durable, self._bus.url,
                     ", ".join(self.subjects))
        else:
            have = info.config
            current = sorted(have.filter_subjects or ([have.filter_subject] if have.filter_subject else []))
            if current != self.subjects and self._puller is None and info.num_waiting:
                # Someone pulls from this durable right now, for other events than ours: most likely a second
                # deployment sharing the name (`--group`). Both stay up (a worker of this deployment still on the
                # old files would look the same), but each now takes, or filters away, the other's events.
                log.error("consumer %s on %s is being read by another engine that listens to other events "
                          "(%s); every engine sharing a consumer must load the same sensors, so give each "
                          "deployment on this bus its own name (sensorium run --group NAME)", self.durable,
                          self._bus.url, ", ".join(current)[:300])
            if (current, have.ack_wait, have.max_ack_pending) != (self.subjects, want.ack_wait,
                                                                   want.max_ack_pending):
                want.deliver_policy = have.deliver_policy  # immutable on an existing consumer
                await js.add_consumer(STREAM, want)  # create-or-update
                log.info("updated durable consumer %s on %s: subjects %s", self.durable, self._bus.url,
                         ", ".join(self.subjects))
        if self._puller is None:
            puller = Puller(self._bus.nc, STREAM, self.durable)
            await puller.start()
            self._puller = puller

    async def fetch(self, max_messages: int, timeout: float) -> list[Delivery]:
        if self._closed or self._bus.closed:
            raise BusError(f"consumer {self.durable} on {self._bus.url} is closed")
        deadline = time.monotonic() + timeout
        if not await self._bus.wait_connected(timeout):
            return []
        remaining = deadline - time.monotonic()
        if remaining <= 0.001:
            return []
        try:
            if self._problem is not None or self._puller is None:
                await self._bus.ensure_stream()  # e.g. a server that came back with no data
                await self.bind()
            assert self._puller is not None
            msgs = await self._puller.fetch(max(1, max_messages), remaining)
        except TimeoutError:
            msgs = []
        except (NatsError, OSError) as exc:
            if self._bus.closed:
                raise BusError(f"consumer {self.durable}: bus {self._bus.url} closed") from exc
            problem = self._bus.redact(repr(exc))
            if problem != self._problem:
                log.warning("consumer %s on %s cannot fetch, retrying: %s", self.durable, self._bus.url,
                            problem)
            self._problem = problem
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            return []
        if self._problem is not None:
            log.info("consumer %s on %s fetching again", self.durable, self._bus.url)
            self._problem = None
        out: list[Delivery] = []
        for m in msgs:
            if not m.reply:
                continue
            if self._wanted is not None and m.subject not in self._wanted:  # another deployment's subject
                with contextlib.suppress(NatsError):
                    await m.ack()
                continue
            try:
                out.append(JetStreamDelivery(m))
            except (NatsError, ValueError):  # sent to the consumer's inbox by someone else: nothing to settle
                log.warning("consumer %s on %s: ignored a message on %s whose reply subject %r is not a "
                            "JetStream delivery's", self.durable, self._bus.url, m.subject[:200], m.reply[:200])
        return out

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        puller, self._puller = self._puller, None
        if puller is not None and not self._bus.closed:
            with contextlib.suppress(NatsError, OSError):
                await puller.close()
