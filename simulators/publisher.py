"""Where simulated messages go: the Publisher protocol and an in-memory fake for tests."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Publisher(Protocol):
    """Sends MQTT messages at QoS 1; implementations decide how (paho, memory)."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue one message; may block briefly when the broker is behind (backpressure)."""
        ...

    def wait(self, timeout_s: float) -> None:
        """Idle for up to timeout_s while servicing the connection."""
        ...

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything published so far is acknowledged; False on timeout."""
        ...

    def close(self) -> None:
        """Disconnect cleanly."""
        ...


@dataclass(frozen=True, slots=True)
class Message:
    """One published message."""

    topic: str
    payload: bytes
    retain: bool


@dataclass(slots=True)
class MemoryPublisher:
    """Keeps every message in a list, in publish order; `wait` only counts idle time."""

    messages: list[Message] = field(default_factory=list)
    waited_s: float = 0.0
    closed: bool = False
    on_wait: Callable[[float], None] | None = None

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Record the message."""
        self.messages.append(Message(topic, payload, retain))

    def wait(self, timeout_s: float) -> None:
        """Account the idle time without sleeping (and let a fake clock advance)."""
        self.waited_s += timeout_s
        if self.on_wait is not None:
            self.on_wait(timeout_s)

    def flush(self, timeout_s: float) -> bool:
        """Nothing is ever pending."""
        del timeout_s
        return True

    def close(self) -> None:
        """Mark closed."""
        self.closed = True


@dataclass(slots=True)
class CountingPublisher:
    """Discards messages but counts them; for dry runs and the Modbus-only mode."""

    count: int = 0
    bytes_total: int = 0

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Count the message."""
        del topic, retain
        self.count += 1
        self.bytes_total += len(payload)

    def wait(self, timeout_s: float) -> None:
        """Nothing to service."""
        del timeout_s

    def flush(self, timeout_s: float) -> bool:
        """Nothing is pending."""
        del timeout_s
        return True

    def close(self) -> None:
        """Nothing to close."""


def topic_for(root: str, kind: str, device_id: str, channel: str) -> str:
    """`<root>/<kind>/<device_id>/<channel>` per the wire contract."""
    return f"{root}/{kind}/{device_id}/{channel}"
