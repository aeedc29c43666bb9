"""What the API needs to know about the running hub, as a Protocol the composition root fills."""

from typing import Protocol


class RuntimeStatus(Protocol):
    """Live facts about the ingest side of this process."""

    def broker_connected(self) -> bool:
        """Whether the MQTT client is connected now."""
        ...

    def ingest_lag_s(self) -> float:
        """Age of the oldest received message not yet committed."""
        ...

    def ingest_pending(self) -> int:
        """Messages received and not yet committed."""
        ...

    def ingest_problems(self) -> list[str]:
        """Why ingest is not healthy now, in words for an operator; empty when it is."""
        ...


class NoIngest:
    """Status of an API-only process: no broker connection of its own."""

    def broker_connected(self) -> bool:
        """An API-only process has no broker connection."""
        return False

    def ingest_lag_s(self) -> float:
        """No ingest, no lag."""
        return 0.0

    def ingest_pending(self) -> int:
        """No ingest, nothing pending."""
        return 0

    def ingest_problems(self) -> list[str]:
        """An API-only process has no ingest to be unhealthy."""
        return []
