"""Asset kinds and MQTT channels of the wire contract."""

from enum import StrEnum


class Kind(StrEnum):
    """An asset kind; one telemetry table and one payload model each."""

    LIGHTING = "lighting"
    CABINET = "cabinet"
    TRUCK = "truck"
    MANHOLE = "manhole"
    PARKING = "parking"


class Channel(StrEnum):
    """The last topic level(s): what a message on that topic means."""

    TELEMETRY = "telemetry"
    EVENT = "event"
    STATUS = "status"
    CMD = "cmd"
    CMD_ACK = "cmd/ack"


class Load(StrEnum):
    """Muck truck load state (JT/T 808 status bits 8-9)."""

    EMPTY = "empty"
    HALF = "half"
    FULL = "full"
