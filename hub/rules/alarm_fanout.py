"""The in-process fan-out of alarm changes to subscribers on event loops (the SSE streams).

Thread-safe and never blocking the publisher (the rule engine's thread): each subscriber has
a bounded queue on its own loop; one that falls `max_pending` documents behind is ended.
"""

import asyncio
import threading
from collections.abc import Sequence

from hub.rules.alarm_changes import AlarmChange, alarm_change_document

Document = dict[str, object]


class _Subscriber:
    """One SSE client: a bounded queue on its event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_pending: int) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Document | None] = asyncio.Queue(maxsize=max_pending + 1)
        self.max_pending = max_pending
        self.overflowed = False

    def offer(self, documents: Sequence[Document]) -> None:
        """Queue documents (on the subscriber's loop); on overflow, end the stream."""
        if self.overflowed:
            return
        for document in documents:
            if self.queue.qsize() >= self.max_pending:
                self.overflowed = True
                self.queue.put_nowait(None)
                return
            self.queue.put_nowait(document)


class AlarmFanout:
    """Alarm changes to every connected SSE client; thread-safe, never blocks the publisher."""

    def __init__(self, max_pending: int = 1000) -> None:
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._subscribers: set[_Subscriber] = set()

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> _Subscriber:
        """A new subscriber fed on `loop`."""
        subscriber = _Subscriber(loop, self._max_pending)
        with self._lock:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        """Stop feeding a subscriber."""
        with self._lock:
            self._subscribers.discard(subscriber)

    @property
    def subscribers(self) -> int:
        """Connected clients."""
        with self._lock:
            return len(self._subscribers)

    def publish_changes(self, changes: Sequence[AlarmChange]) -> None:
        """Hand the changes to every subscriber's loop (nothing is built when none listens)."""
        if not changes or not self.subscribers:
            return
        self.publish_documents([alarm_change_document(c) for c in changes])

    def publish_documents(self, documents: Sequence[Document]) -> None:
        """Hand ready-made documents (e.g. crew alerts) to every subscriber's loop."""
        if not documents:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber.loop.call_soon_threadsafe(subscriber.offer, documents)
            except RuntimeError:  # the loop is closed: the client is gone
                self.unsubscribe(subscriber)
