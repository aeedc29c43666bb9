"""The gateway's counters as Prometheus metrics, served over HTTP from the gateway's own loop.

The counters are plain fields that only the event loop changes, so the HTTP handler runs on
that loop too (a thread, as in prometheus-client's start_http_server, would read them while
they change). prometheus-client still does the registry and the text format.
"""

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

log = logging.getLogger(__name__)

_MAX_REQUEST_BYTES = 8192
_REQUEST_TIMEOUT_S = 5.0


@dataclass(slots=True)
class GatewayCounters:
    """Counters of the gateway, the figures of `/metrics`-style reporting."""

    connections_open: int = 0
    connections_total: int = 0
    terminals_online: int = 0
    frames: Counter[str] = field(default_factory=Counter)
    bad_frames: Counter[str] = field(default_factory=Counter)
    positions_published: int = 0
    acks_withheld: int = 0
    commands_sent: int = 0
    resend_requests: int = 0

    def render(self) -> str:
        """Prometheus text exposition of the counters."""
        lines = [
            f"jt808_connections_open {self.connections_open}",
            f"jt808_connections_total {self.connections_total}",
            f"jt808_terminals_online {self.terminals_online}",
            f"jt808_positions_published_total {self.positions_published}",
            f"jt808_acks_withheld_total {self.acks_withheld}",
            f"jt808_commands_sent_total {self.commands_sent}",
            f"jt808_resend_requests_total {self.resend_requests}",
        ]
        lines += [f'jt808_frames_total{{msg_id="{k}"}} {v}' for k, v in sorted(self.frames.items())]
        lines += [
            f'jt808_bad_frames_total{{reason="{k}"}} {v}'
            for k, v in sorted(self.bad_frames.items())
        ]
        return "\n".join(lines) + "\n"


class GatewayCollector:
    """Reads GatewayCounters at each scrape (a prometheus-client custom collector)."""

    def __init__(self, counters: GatewayCounters) -> None:
        self._counters = counters

    def collect(self) -> Iterable[Metric]:
        """The metric families of one scrape."""
        c = self._counters
        yield GaugeMetricFamily(
            "jt808_connections_open", "Terminal connections open", value=c.connections_open
        )
        yield CounterMetricFamily(
            "jt808_connections", "Terminal connections accepted", value=c.connections_total
        )
        yield GaugeMetricFamily(
            "jt808_terminals_online", "Authenticated terminals connected", value=c.terminals_online
        )
        yield CounterMetricFamily(
            "jt808_positions_published",
            "Positions published and acknowledged by the broker",
            value=c.positions_published,
        )
        yield CounterMetricFamily(
            "jt808_acks_withheld",
            "Position messages not acknowledged to the terminal (broker away)",
            value=c.acks_withheld,
        )
        yield CounterMetricFamily(
            "jt808_commands_sent", "Hub commands sent to terminals", value=c.commands_sent
        )
        yield CounterMetricFamily(
            "jt808_resend_requests",
            "Missing packages of subpackaged messages asked for again (0x8003)",
            value=c.resend_requests,
        )
        frames = CounterMetricFamily(
            "jt808_frames", "Frames received by message id", labels=["msg_id"]
        )
        for msg_id, count in sorted(c.frames.items()):
            frames.add_metric([msg_id], count)
        yield frames
        bad = CounterMetricFamily(
            "jt808_bad_frames", "Frames dropped or refused, by reason", labels=["reason"]
        )
        for reason, count in sorted(c.bad_frames.items()):
            bad.add_metric([reason], count)
        yield bad


def gateway_registry(counters: GatewayCounters) -> CollectorRegistry:
    """A registry with the gateway's counters and the process's CPU and memory."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(counters))
    ProcessCollector(registry=registry)
    return registry


async def _answer(
    registry: CollectorRegistry, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REQUEST_TIMEOUT_S)
        method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if method not in ("GET", "HEAD"):
            status, content_type, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
        elif path.split("?", 1)[0] in ("/metrics", "/"):
            status, content_type = "200 OK", CONTENT_TYPE_LATEST
            body = generate_latest(registry)
        else:
            status, content_type, body = "404 Not Found", "text/plain", b"see /metrics\n"
        head_out = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        writer.write(head_out if method == "HEAD" else head_out + body)
        await writer.drain()
    except (TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass  # a scraper that sent no request, or too much of one: hang up
    except (ConnectionError, OSError) as err:
        log.debug("metrics request ended: %s", err)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def start_metrics_server(registry: CollectorRegistry, host: str, port: int) -> asyncio.Server:
    """Listen for GET /metrics (answered from the registry); serve_forever() is the caller's."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _answer(registry, reader, writer)

    server = await asyncio.start_server(answer, host, port, limit=_MAX_REQUEST_BYTES)
    log.info("jt808 metrics on http://%s:%d/metrics", host, server.sockets[0].getsockname()[1])
    return server
