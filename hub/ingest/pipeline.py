"""The ingest pipeline: buffer raw messages, decode, commit a batch, then acknowledge."""

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import NamedTuple, Protocol, runtime_checkable

from hub.devices.batch import Batch, BatchObserver, BatchRejectedError, BatchSink, DeadLetter
from hub.devices.decode import (
    Decoded,
    DecodeError,
    DecodeLimits,
    Reading,
    RejectReason,
    StatusChange,
    decode_message,
)
from hub.devices.kinds import Kind
from hub.devices.registry import resume_point
from hub.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, aware UTC (the production clock)."""
    return datetime.now(UTC)


class RawMessage(NamedTuple):
    """A message as received, with the token that acknowledges it to the broker.

    A named tuple, built for every message on the network thread: half the time of a
    frozen dataclass (~0.2 µs less per message).
    """

    topic: str
    payload: bytes
    received_at: datetime
    ack_token: int
    retained: bool = False


class Acknowledger(Protocol):
    """Tells the broker that messages are durably handled."""

    def ack(self, tokens: Sequence[int]) -> None:
        """Acknowledge these messages (tokens as given in RawMessage)."""
        ...


@runtime_checkable
class StatusObserver(Protocol):
    """A batch observer that also takes the batch's device statuses (the rules' offline
    evidence in event time), in the same call as its readings so their order holds."""

    def on_batch_statuses(
        self, readings: Sequence[Reading], statuses: Sequence[StatusChange], now: datetime
    ) -> None:
        """Look at readings and statuses that are now durably stored."""
        ...


KindIndexFetch = Callable[[datetime | None], tuple[dict[str, Kind], datetime | None]]
IdsFetch = Callable[[], set[str]]


class KindIndex:
    """Device id → kind, refreshed from the registry incrementally and on a miss."""

    def __init__(
        self,
        fetch_changes: KindIndexFetch,
        fetch_ids: IdsFetch,
        refresh_s: float,
        full_reload_s: float = 60.0,
    ) -> None:
        self._fetch_changes = fetch_changes
        self._fetch_ids = fetch_ids
        self._refresh_s = refresh_s
        self._full_reload_s = full_reload_s
        self._kinds: dict[str, Kind] = {}
        self._since: datetime | None = None
        self._refreshed_at = 0.0
        self._full_at = 0.0
        self._misses: set[str] = set()

    def refresh(self, *, force: bool = False) -> None:
        """Pick up devices added or changed since the last refresh (and deletions, now and then)."""
        mono = time.monotonic()
        if not force and mono - self._refreshed_at < self._refresh_s:
            return
        changes, newest = self._fetch_changes(self._since)
        self._kinds.update(changes)
        self._since = resume_point(newest, utc_now())
        self._refreshed_at = mono
        self._misses.clear()
        if mono - self._full_at >= self._full_reload_s:
            ids = self._fetch_ids()
            for gone in set(self._kinds) - ids:
                del self._kinds[gone]
            self._full_at = mono

    def lookup(self, device_id: str) -> Kind | None:
        """The registered kind of a device, refreshing once (rate-limited) on a miss."""
        kind = self._kinds.get(device_id)
        if kind is None and device_id not in self._misses:
            self._misses.add(device_id)
            if time.monotonic() - self._refreshed_at > 1.0:
                try:
                    self.refresh(force=True)
                except Exception:  # the registry is away: judge by what is cached
                    log.warning("registry refresh for %r failed", device_id, exc_info=True)
                kind = self._kinds.get(device_id)
        return kind

    def __len__(self) -> int:
        return len(self._kinds)


class _Prepared(NamedTuple):
    """A batch taken from the buffer and decoded, waiting for its commit."""

    messages: list[RawMessage]
    items: list[Decoded | DeadLetter | None]
    batch: Batch
    started: float  # perf_counter when it was taken


class StoppedWhileFailingError(Exception):
    """The hub is stopping while batches cannot be committed; they stay unacknowledged."""


class IngestPipeline:
    """Buffers messages from the network thread; a writer thread commits batches and acks."""

    def __init__(
        self,
        *,
        sink: BatchSink,
        kinds: KindIndex,
        root: str,
        limits: DecodeLimits,
        metrics: IngestMetrics,
        batch_max_rows: int = 20_000,
        batch_interval_s: float = 0.2,
        batch_min_rows: int = 1,
        batch_max_wait_s: float = 0.0,
        decode_ahead: bool = True,
        clock: Clock = utc_now,
        retry_max_s: float = 10.0,
    ) -> None:
        self._sink = sink
        self._kinds = kinds
        self._root = root
        self._limits = limits
        self._metrics = metrics
        self._batch_max_rows = batch_max_rows
        self._batch_interval_s = batch_interval_s
        # A batch smaller than this waits for more, until its oldest message is this old.
        self._batch_min_rows = batch_min_rows
        self._batch_max_wait_s = max(batch_max_wait_s, batch_interval_s)
        self._decode_ahead = decode_ahead
        self._clock = clock
        self._retry_max_s = retry_max_s
        self._buffer: deque[RawMessage] = deque()
        # The first `_taken` messages of the buffer are in batches being decoded or
        # committed; they leave it when committed. Both change under `_take_lock`.
        self._taken = 0
        self._take_lock = threading.Lock()
        self._decoding = True  # the writer loop's decoder may go on
        self._wake = threading.Event()
        self._observers: list[BatchObserver] = []
        self._acknowledger: Acknowledger | None = None
        self.committed_messages = 0
        self.last_commit_at: datetime | None = None
        # Messages handed in by the network thread (the only writer), and how many of them
        # the received counter has: it is brought up to date with each batch, as the
        # counter's lock per message cost ~1 µs of the network thread's time.
        self._submitted = 0
        self._submitted_counted = 0
        self._stop: threading.Event | None = None  # set by run(): retries end with it
        # The last write error while the store is unavailable, None once a write succeeds.
        self.write_error: str | None = None

    def set_acknowledger(self, acknowledger: Acknowledger) -> None:
        """Where acknowledgements go once a batch is committed."""
        self._acknowledger = acknowledger

    def add_observer(self, observer: BatchObserver) -> None:
        """Call this observer (e.g. the rule engine) with every committed batch."""
        self._observers.append(observer)

    def submit(self, message: RawMessage) -> None:
        """Accept a message from the network thread; never blocks."""
        self._buffer.append(message)
        self._submitted += 1
        if len(self._buffer) - self._taken >= self._batch_max_rows:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Messages received and not yet committed."""
        return len(self._buffer)

    def lag_s(self) -> float:
        """Age of the oldest message waiting to be committed, 0 when none waits."""
        try:
            oldest = self._buffer[0]
        except IndexError:
            return 0.0
        return max(0.0, (self._clock() - oldest.received_at).total_seconds())

    def decode(self, message: RawMessage) -> Decoded | DeadLetter | None:
        """What one message becomes: readings, a status, an ack, a dead letter, or nothing.

        An empty payload is how MQTT clears a retained message: nothing to keep. Any failure
        of the decoder itself makes a dead letter too, so that no message can stop ingest.
        """
        if not message.payload:
            return None
        try:
            return decode_message(
                message.topic,
                message.payload,
                message.received_at,
                root=self._root,
                registry=self._kinds.lookup,
                limits=self._limits,
            )
        except Exception as err:  # noqa: BLE001 - a decoder bug costs one message
            return self._refused(message, err)

    def _decode_all(self, messages: Sequence[RawMessage]) -> list[Decoded | DeadLetter | None]:
        """`decode` of each message, with the per-message lookups done once for the batch."""
        items: list[Decoded | DeadLetter | None] = []
        append = items.append
        root, lookup, limits = self._root, self._kinds.lookup, self._limits
        for message in messages:
            topic, payload, received_at = message[0], message[1], message[2]
            if not payload:
                append(None)
                continue
            try:
                append(
                    decode_message(
                        topic, payload, received_at, root=root, registry=lookup, limits=limits
                    )
                )
            except Exception as err:  # noqa: BLE001 - a decoder bug costs one message
                append(self._refused(message, err))
        return items

    def _refused(self, message: RawMessage, err: Exception) -> DeadLetter:
        """The dead letter of a message the decoder refused, or failed on."""
        if isinstance(err, DecodeError):
            reason, detail = err.reason, err.detail
        else:  # a decoder bug must cost one message, not the stream
            log.error("decoding a message on %r failed", message.topic[:200], exc_info=err)
            reason, detail = RejectReason.DECODE_FAILED, f"{type(err).__name__}: {err}"
        return DeadLetter.of(
            message.topic,
            message.payload,
            reason,
            detail,
            message.received_at,
            retained=message.retained,
        )

    def flush(self) -> int:
        """Commit what is buffered (up to one batch), acknowledge it, notify observers.

        Decoding and committing in one call, on the caller's thread: what the writer loop
        does in two threads, one batch apart (`run`), and what it does itself at a stop.
        """
        prepared = self._prepare()
        return 0 if prepared is None else self._commit(prepared)

    def _untaken(self) -> int:
        """Messages buffered and not yet in a batch being decoded or committed."""
        return len(self._buffer) - self._taken

    def _prepare(self) -> "_Prepared | None":
        """Take the next batch after those already taken, and decode it."""
        with self._take_lock:
            offset = self._taken
            count = min(len(self._buffer) - offset, self._batch_max_rows)
            if count <= 0:
                return None
            messages = list(itertools.islice(self._buffer, offset, offset + count))
            self._taken = offset + count
        started = time.perf_counter()
        try:
            self._kinds.refresh()
        except Exception:
            log.exception("registry refresh failed; decoding with the cached registry")
        cpu_started = time.thread_time()
        try:
            items = self._decode_all(messages)
            batch = Batch.of(items)
        except BaseException:
            # Not handed to the writer: its messages go back to the untaken part, or the
            # writer would take a later batch's commit for theirs.
            with self._take_lock:
                self._taken = offset
            raise
        self._metrics.stages.add("decode", time.thread_time() - cpu_started, count)
        return _Prepared(messages, items, batch, started)

    def _commit(self, prepared: "_Prepared") -> int:
        """Commit a decoded batch (the first taken), acknowledge it, notify observers."""
        messages, items, batch, started = prepared
        count = len(messages)
        cpu_started = time.thread_time()
        result = self._write(batch)
        if isinstance(result, BatchRejectedError):
            batch, inserted = self._isolate(messages, items, result)
        else:
            inserted = result
        self._metrics.stages.add("store", time.thread_time() - cpu_started, count)
        with self._take_lock:
            buffer = self._buffer
            for _ in range(count):
                buffer.popleft()
            self._taken -= count
        if self._acknowledger is not None:
            self._acknowledger.ack([m.ack_token for m in messages])
        self._record(batch, inserted, count, time.perf_counter() - started)
        now = self._clock()
        self.committed_messages += count
        self.last_commit_at = now
        for observer in self._observers:
            try:
                if batch.statuses and isinstance(observer, StatusObserver):
                    observer.on_batch_statuses(batch.readings, batch.statuses, now)
                else:
                    observer.on_batch(batch.readings, now)
            except Exception:
                log.exception("batch observer %r failed; continuing", observer)
        return count

    def _isolate(
        self,
        messages: Sequence[RawMessage],
        items: Sequence[Decoded | DeadLetter | None],
        rejection: BatchRejectedError,
    ) -> tuple[Batch, int]:
        """Commit a rejected batch in halves until the messages the store refuses are alone.

        Each refused message becomes a `store_rejected` dead letter with the database's
        words; the rest are committed. Parts are written in arrival order, so the rules
        still see each device's readings in the order they came. Returns what was committed.
        """
        log.warning(
            "the store refused a batch of %d message(s) (%s); splitting it to find the cause",
            len(messages),
            rejection,
        )
        committed = Batch()
        inserted = 0
        refused: list[DeadLetter] = []
        # (start, end, why it was refused, or None when not yet tried), leftmost on top.
        parts: list[tuple[int, int, BatchRejectedError | None]] = [(0, len(messages), rejection)]
        while parts:
            start, end, error = parts.pop()
            if error is None:
                part = Batch.of(items[start:end])
                result = self._write(part)
                if not isinstance(result, BatchRejectedError):
                    inserted += result
                    committed.extend(part)
                    continue
                error = result
            if end - start == 1:
                message = messages[start]
                refused.append(
                    DeadLetter.of(
                        message.topic,
                        message.payload,
                        RejectReason.STORE_REJECTED,
                        str(error),
                        message.received_at,
                        retained=message.retained,
                    )
                )
                continue
            middle = (start + end) // 2
            parts.append((middle, end, None))
            parts.append((start, middle, None))
        dead = Batch(dead_letters=refused)
        result = self._write(dead)
        if isinstance(result, BatchRejectedError):
            raise RuntimeError(f"the store refused dead letters too: {result}") from result
        committed.extend(dead)
        return committed, inserted

    def _write(self, batch: Batch) -> int | BatchRejectedError:
        """Commit a batch, retrying while the store is unavailable; or say why it refused it."""
        delay_s = 0.1
        while True:
            try:
                inserted = self._sink.write_batch(batch)
            except BatchRejectedError as err:
                self._metrics.write_failures.inc()
                return err
            except Exception as err:
                # The sink's own errors (database down, connection lost) are retried for
                # ever: nothing is acknowledged meanwhile, so the broker keeps the messages
                # and stops sending once our receive maximum is reached. Until the hub is
                # told to stop: then the messages stay with the broker, unacknowledged.
                self._metrics.write_failures.inc()
                self.write_error = f"{type(err).__name__}: {err}"
                stop = self._stop
                if stop is not None and stop.is_set():
                    raise StoppedWhileFailingError(str(err)) from err
                log.exception("batch write failed; retrying in %.1f s", delay_s)
                if stop is None:
                    time.sleep(delay_s)
                else:
                    stop.wait(delay_s)
                delay_s = min(delay_s * 2, self._retry_max_s)
            else:
                self.write_error = None
                return inserted

    def _record(self, batch: Batch, inserted: int, count: int, elapsed_s: float) -> None:
        metrics = self._metrics
        submitted = self._submitted
        metrics.received.inc(submitted - self._submitted_counted)
        self._submitted_counted = submitted
        metrics.batch_size.observe(count)
        metrics.write_seconds.observe(elapsed_s)
        if batch.readings:
            per_kind: dict[Kind, int] = {}
            for reading in batch.readings:
                per_kind[reading.kind] = per_kind.get(reading.kind, 0) + 1
            # Duplicates are rare; attribute them to the total rather than per kind.
            for kind, n in per_kind.items():
                metrics.stored.labels(kind.value).inc(n)
            metrics.duplicates.inc(len(batch.readings) - inserted)
        for dead in batch.dead_letters:
            metrics.rejected.labels(dead.reason.value).inc()
        metrics.pending.set(len(self._buffer))
        metrics.lag_seconds.set(self.lag_s())

    def run(self, stop: threading.Event) -> None:
        """The writer loop: commit a batch each interval or when a full one waits; then the
        rest on stop.

        With `decode_ahead` a decoder thread takes and decodes the next batch while this
        one commits the last: a batch's commit is mostly waiting for PostgreSQL (its COPY,
        its commit), and decoding is the other half of the writer's work (issue 23). That
        pays where the process has a core to spare; where it has not, the two threads only
        take turns at the GIL. Either way batches are committed, acknowledged and handed
        to the observers in the order they arrived.

        A stop while the database is failing ends the loop at once: what is not committed
        is not acknowledged, and the broker delivers it again to the next hub.
        """
        self._stop = stop
        try:
            if self._decode_ahead:
                self._run_decoding_ahead(stop)
            else:
                self._run_in_turn(stop)
            while self.flush():
                pass
        except StoppedWhileFailingError as err:
            log.warning(
                "stopping while the database fails (%s): %d message(s) not acknowledged;"
                " the broker keeps them for the next start",
                err,
                len(self._buffer),
            )

    def _run_in_turn(self, stop: threading.Event) -> None:
        """Decode and commit on this thread, one batch after the other."""
        while not stop.is_set():
            self._wait_interval()
            self._gather(stop)
            try:
                while self.flush() >= self._batch_max_rows:
                    pass
            except StoppedWhileFailingError:
                raise
            except Exception:
                log.exception("ingest writer iteration failed; continuing")
                stop.wait(1.0)
            self._metrics.pending.set(len(self._buffer))
            self._metrics.lag_seconds.set(self.lag_s())

    def _run_decoding_ahead(self, stop: threading.Event) -> None:
        """Commit what the decoder thread hands over, until it hands over the end."""
        self._decoding = True
        handoff: queue.Queue[_Prepared | None] = queue.Queue(maxsize=1)
        turn = threading.Semaphore(1)
        decoder = threading.Thread(
            target=self._decode_loop,
            args=(stop, handoff, turn),
            name="ingest-decoder",
            daemon=True,
        )
        decoder.start()
        try:
            while True:
                prepared = handoff.get()
                if prepared is None:
                    return
                turn.release()  # the decoder may take the next batch meanwhile
                self._commit_until_done(prepared, stop)  # its _record sets pending and lag
        finally:
            self._decoding = False
            decoder.join()
            with self._take_lock:  # a batch the decoder could not hand over
                self._taken = 0

    def _commit_until_done(self, prepared: "_Prepared", stop: threading.Event) -> None:
        """Commit a handed batch; after an unexpected failure, try the same batch again.

        The same batch, not the next: the batches after it are decoded from the messages
        after its own, which stay first in the buffer until it is committed. (The store's
        own failures are retried inside `_write`; this is for what is not expected.)
        """
        while True:
            try:
                self._commit(prepared)
            except StoppedWhileFailingError:
                raise
            except Exception:
                if self._taken_below(prepared):
                    log.exception("ingest writer failed after its commit; continuing")
                    return
                log.exception("ingest writer iteration failed; trying the batch again")
                if stop.wait(1.0):
                    raise StoppedWhileFailingError("stopped while a batch kept failing") from None
            else:
                return

    def _taken_below(self, prepared: "_Prepared") -> bool:
        """Whether this batch's messages have left the buffer (it was committed)."""
        with self._take_lock:
            return not self._buffer or self._buffer[0] is not prepared.messages[0]

    def _decode_loop(
        self,
        stop: threading.Event,
        handoff: "queue.Queue[_Prepared | None]",
        turn: threading.Semaphore,
    ) -> None:
        """Wait for a batch's turn, decode it and hand it over.

        The next batch is taken only once the writer has begun committing the last one
        (`turn`), and an interval after that: one batch decoded ahead, never more.
        """
        try:
            while not stop.is_set() and self._decoding:
                if not turn.acquire(timeout=0.1):
                    continue
                # The writer has begun committing the last batch (or none is in flight):
                # the next one gathers for an interval meanwhile, and is decoded while
                # that commit waits for PostgreSQL.
                self._wait_interval()
                self._gather(stop)
                if stop.is_set():
                    break
                try:
                    prepared = self._prepare()
                except Exception:
                    log.exception("ingest decoder iteration failed; continuing")
                    prepared = None
                    stop.wait(1.0)
                if prepared is None:
                    turn.release()
                else:
                    self._hand_over(handoff, prepared)
        finally:
            # The writer commits the batches handed over, then leaves at this None.
            self._hand_over(handoff, None)

    def _hand_over(
        self, handoff: "queue.Queue[_Prepared | None]", item: "_Prepared | None"
    ) -> None:
        """Put a batch (or the end) in the hand-off, unless the writer has left."""
        while self._decoding:
            try:
                handoff.put(item, timeout=0.1)
            except queue.Full:
                continue
            else:
                return

    def _wait_interval(self) -> None:
        """Wait `batch_interval_s` for messages to gather, unless a full batch waits."""
        if self._untaken() < self._batch_max_rows:
            self._wake.wait(self._batch_interval_s)
        self._wake.clear()

    def _gather(self, stop: threading.Event) -> None:
        """Under a light, steady load, wait for a fuller batch, up to the latency cap.

        Each batch costs the same few milliseconds whatever its size (a transaction, a
        COPY and a merge per kind, a commit, a wake-up of the rules and of the network
        thread for the acknowledgements): paced at a few thousand messages a second, batches
        of a few hundred spent a fifth of the hub's CPU on that. While fewer than
        `batch_min_rows` wait, the writer waits another interval, until the oldest has
        waited `batch_max_wait_s` (by the clock, and by the intervals waited when the
        clock is a test's). A backlog or a fast stream fills a batch at once and is not held.
        """
        waited_s = self._batch_interval_s
        while (
            0 < self._untaken() < self._batch_min_rows
            and waited_s < self._batch_max_wait_s
            and not stop.is_set()
        ):
            oldest = self._oldest_untaken()
            if oldest is None:
                return
            age_s = (self._clock() - oldest.received_at).total_seconds()
            left_s = self._batch_max_wait_s - max(age_s, waited_s)
            if left_s <= 0:
                return
            step_s = min(self._batch_interval_s, left_s)
            self._wake.wait(step_s)
            self._wake.clear()
            waited_s += step_s

    def _oldest_untaken(self) -> RawMessage | None:
        """The first message not yet in a batch, None when there is none."""
        with self._take_lock:
            if len(self._buffer) <= self._taken:
                return None
            return self._buffer[self._taken]

    def stop_waiting(self) -> None:
        """Wake the writer loop (used at shutdown)."""
        self._wake.set()
