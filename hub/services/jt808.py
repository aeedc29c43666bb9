"""Runs the JT/T 808 gateway: the registry as its terminal directory, settings as its config."""

import asyncio
import logging
import signal
import time
from collections.abc import Callable

from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.ingest.jt808.gateway import Gateway, GatewayConfig, Terminal
from hub.ingest.jt808.mapping import BodyMapping, normalize_phone, parse_bit_source
from hub.settings import Settings
from hub.store.database import Database

log = logging.getLogger(__name__)
_PAGE = 10_000


def terminal_of(record: DeviceRecord) -> Terminal | None:
    """A truck's terminal from its registry attributes, if it has a `jt808_phone`."""
    phone = normalize_phone(record.attributes.get("jt808_phone"))
    if record.kind != Kind.TRUCK or phone is None:
        return None
    plate = record.attributes.get("plate")
    colour = record.attributes.get("plate_colour")
    return Terminal(
        device_id=record.device_id,
        phone=phone,
        plate=str(plate) if plate not in (None, "") else None,
        plate_colour=colour if isinstance(colour, int) and not isinstance(colour, bool) else None,
    )


class RegistryDirectory:
    """Terminal numbers of registered trucks, reloaded now and then and on an unknown number."""

    def __init__(self, load: Callable[[], list[DeviceRecord]], refresh_s: float) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self._by_phone: dict[str, Terminal] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _reload(self, min_age_s: float) -> None:
        async with self._lock:
            if time.monotonic() - self._loaded_at < min_age_s:
                return
            records = await asyncio.to_thread(self._load)
            by_phone = {}
            for record in records:
                terminal = terminal_of(record)
                if terminal is not None:
                    by_phone[terminal.phone] = terminal
            self._by_phone = by_phone
            self._loaded_at = time.monotonic()

    async def find(self, phone: str) -> Terminal | None:
        """The terminal with this number; a miss reloads at most once a second."""
        await self._reload(self._refresh_s)
        terminal = self._by_phone.get(phone)
        if terminal is None:
            await self._reload(1.0)
            terminal = self._by_phone.get(phone)
        return terminal


def gateway_config(settings: Settings) -> GatewayConfig:
    """The gateway's configuration from the hub's settings."""
    return GatewayConfig(
        mqtt_url=settings.jt808_mqtt_url or settings.mqtt_url,
        mqtt_root=settings.mqtt_root,
        client_id=settings.jt808_client_id,
        auth_secret=settings.jt808_auth_secret.get_secret_value().encode(),
        body_mapping=BodyMapping(
            parse_bit_source(settings.jt808_lift_source),
            parse_bit_source(settings.jt808_cover_source),
        ),
        idle_timeout_s=settings.jt808_idle_timeout_s,
        max_frame_bytes=settings.jt808_max_frame_bytes,
        metrics_port=settings.jt808_metrics_port or None,
    )


def run_gateway(settings: Settings, host: str, port: int) -> int:
    """Serve terminals until interrupted."""
    if not settings.jt808_auth_secret.get_secret_value():
        log.warning("HUB_JT808_AUTH_SECRET is not set: terminal auth codes are guessable")
    db = Database(settings.database_url, max_size=2)
    db.open()

    def load() -> list[DeviceRecord]:
        out: list[DeviceRecord] = []
        while True:
            page = db.list_devices(Kind.TRUCK, _PAGE, len(out))
            out += page
            if len(page) < _PAGE:
                return out

    directory = RegistryDirectory(load, settings.registry_refresh_s)
    gateway = Gateway(gateway_config(settings), directory)

    async def serve_until_signalled() -> None:
        # Handlers of our own: a process started in the background by a script inherits
        # SIGINT ignored, and Ctrl-C on the script must still stop the gateway.
        serving = asyncio.ensure_future(gateway.serve(host, port))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, serving.cancel)
        await serving

    try:
        asyncio.run(serve_until_signalled())
    except (KeyboardInterrupt, asyncio.CancelledError):
        log.info("JT/T 808 gateway stopped")
    finally:
        db.close()
    return 0
