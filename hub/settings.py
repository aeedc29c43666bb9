"""The hub's one settings class, read from the environment (HUB_*) when the entry point asks."""

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.devices.decode import DecodeLimits
from hub.devices.partition import Seat

DEFAULT_DATABASE_URL = "postgresql://hub@127.0.0.1:55432/hub"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:51883"


class Settings(BaseSettings):
    """Everything configurable about a hub process; defaults match the local demo stack."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL, description="postgresql:// URL of the store"
    )
    mqtt_url: str = Field(
        default=DEFAULT_MQTT_URL, description="mqtt://[user:password@]host:port of the broker"
    )
    mqtt_root: str = Field(default="city", pattern=r"^[A-Za-z0-9_-]+$")
    mqtt_client_id: str = Field(default="city-hub", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    mqtt_shared_group: str | None = Field(
        default=None, description="MQTT v5 shared-subscription group when several hubs share"
    )
    cluster_members: int = Field(
        default=1, ge=1, le=64, description="hubs sharing the stream (docs/scaling.md)"
    )
    cluster_member: int = Field(default=0, ge=0, description="this hub's number, 0 … members-1")
    mqtt_session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    # MQTT's largest: at 20,000 one process paced at 32,000 msg/s fell behind in three runs
    # of three, the window closing before the batches were committed (docs/performance.md).
    mqtt_receive_maximum: int = Field(
        default=65_535,
        ge=1,
        le=65_535,
        description="QoS 1 messages the broker may have unacknowledged with us: the memory bound",
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65_535)
    api_enabled: bool = True
    api_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="largest request body the API accepts; larger ones get 413 before parsing",
    )
    batch_max_rows: int = Field(default=20_000, ge=1)
    batch_interval_ms: int = Field(
        default=50, ge=1, description="longest wait before a batch is committed: alarm latency"
    )
    batch_min_rows: int = Field(
        default=1_000,
        ge=1,
        description="a smaller batch waits for more, up to HUB_BATCH_MAX_WAIT_MS (steady load)",
    )
    batch_max_wait_ms: int = Field(
        default=100, ge=1, description="longest a small batch waits to fill (docs/performance.md)"
    )
    # Measured in docs/performance.md (twelfth session): alone, publish → stored p50 117 →
    # 88 ms at 18,000 msg/s on 2 cores; two members sharing those cores, 143 → 252 ms.
    decode_ahead: bool | None = Field(
        default=None,
        description="decode the next batch while the last one commits: it pays with a core"
        " to spare; unset, a hub alone does and a cluster member (whose core the cluster"
        " keeps busy) does not",
    )
    max_payload_bytes: int = Field(default=256 * 1024, ge=64)
    max_age_s: int = Field(default=7 * 24 * 3600, ge=1, description="oldest accepted ts")
    max_ahead_s: int = Field(default=300, ge=0, description="furthest future ts accepted")
    health_max_lag_s: float = Field(
        default=30.0, gt=0, description="ingest lag beyond which /health says degraded"
    )
    registry_refresh_s: float = Field(default=5.0, gt=0)
    retention_days: int = Field(default=365, ge=1, description="telemetry kept this long")
    deadletter_retention_days: int = Field(default=90, ge=1)
    compress_after_days: int = Field(
        default=7,
        ge=1,
        description="TimescaleDB compresses telemetry older than this; keep it >= max_age_s",
    )
    city_timezone: str = Field(
        default="Asia/Shanghai",
        description="the city's day: daily aggregates start at local midnight in this zone",
    )
    log_level: str = "INFO"
    data_dir: Path = Field(default=Path("var"), description="local demo services keep data here")
    # rules, alarms and cases
    rules_file: Path | None = Field(default=None, description="rules YAML; default: packaged")
    case_policy_file: Path | None = Field(
        default=None, description="case policy YAML (routing, filing, deadlines); default: packaged"
    )
    calendar_file: Path | None = Field(
        default=None, description="working calendar YAML; default: packaged"
    )
    grid_file: Path | None = Field(
        default=None,
        description="GeoJSON of unit grids (polygons with a 15-digit grid_code property)",
    )
    case_number_prefix: str = Field(
        default="", pattern=r"^(?:[A-Za-z](?:[A-Za-z0-9_-]*[A-Za-z_-])?)?$"
    )
    alarm_tick_s: float = Field(
        default=1.0, gt=0, le=60, description="rule engine clock tick and filing check interval"
    )
    alarm_queue_readings: int = Field(
        default=40_000,
        ge=1,
        description="committed readings the rules may lag before ingest waits: a memory bound",
    )
    case_clear_confirm_s: float = Field(
        default=900.0,
        ge=0,
        description="how long an alarm behind a case must stay clear to be attached as evidence",
    )
    case_webhook_url: str | None = Field(
        default=None, description="external case system: POST each case event here as JSON"
    )
    case_webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key of the X-Hub-Signature-256 header"
    )
    case_webhook_timeout_s: float = Field(default=10.0, gt=0)
    case_retry_base_s: float = Field(
        default=2.0, gt=0, description="first retry delay of a failed delivery; doubles after"
    )
    case_retry_max_s: float = Field(default=600.0, gt=0, description="longest retry delay")
    case_open311_url: str | None = Field(
        default=None, description="a city's Open311 GeoReport v2 endpoint to file cases into"
    )
    case_open311_api_key: SecretStr | None = None
    case_open311_jurisdiction_id: str | None = None
    open311_api_keys: SecretStr = Field(
        default=SecretStr(""),
        description="comma-separated api_key values accepted by POST /open311/v2/requests",
    )
    # street lighting (docs/lighting.md)
    modbus_enabled: bool = Field(
        default=True, description="poll cabinets with modbus_host/modbus_port attributes"
    )
    modbus_poll_interval_s: float = Field(default=30.0, gt=0)
    modbus_timeout_s: float = Field(default=2.0, gt=0)
    modbus_retries: int = Field(default=2, ge=0, le=10, description="re-reads after a failure")
    modbus_backoff_max_s: float = Field(
        default=300.0, gt=0, description="longest poll interval of a failing cabinet"
    )
    lighting_timezone: str = Field(default="Asia/Shanghai", description="schedules' local time")
    lighting_control_tick_s: float = Field(default=1.0, gt=0, le=60)
    command_ttl_s: float = Field(default=3600.0, gt=0, description="default command lifetime")
    command_ack_timeout_s: float = Field(
        default=30.0, gt=0, description="first wait for an ack before resending; doubles"
    )
    command_max_attempts: int = Field(default=3, ge=1, le=20)
    command_effect_window_s: float = Field(
        default=600.0, gt=0, description="how long after an ack telemetry may show its effect"
    )
    command_supersede: bool = Field(
        default=True, description="a newer command cancels older open ones for the same device"
    )
    lighting_webhook_url: str | None = Field(
        default=None, description="POST each lighting crew alert here as JSON"
    )
    lighting_webhook_timeout_s: float = Field(default=5.0, gt=0)
    # access and console (docs/console.md)
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="console login")
    cookie_secure: bool = Field(
        default=False,
        description="always mark the session cookie Secure (it is on https requests anyway,"
        " including those a trusted proxy says came over https)",
    )
    login_max_failures: int = Field(
        default=5, ge=1, description="failed logins per IP and user before a pause"
    )
    login_user_max_failures: int = Field(
        default=20, ge=1, description="failed logins per user name from any address before a pause"
    )
    login_window_s: float = Field(default=300.0, gt=0, description="failure window and pause")
    trusted_proxies: str = Field(
        default="",
        description="comma-separated addresses or CIDR networks of reverse proxies whose"
        " X-Forwarded-For and X-Forwarded-Proto are believed; none by default",
    )
    open311_public_details: bool = Field(
        default=False,
        description="show description, address and media_url in Open311 request lists read"
        " without an api_key (off: location, service and status only)",
    )
    # manhole covers (docs/manholes-parking.md)
    manhole_command_resend_s: float = Field(
        default=600.0, gt=0, description="send a recalibrate command again after this silence"
    )
    # JT/T 808 gateway for truck terminals (docs/trucks.md)
    jt808_host: str = Field(default="0.0.0.0", description="address terminals connect to")  # noqa: S104
    jt808_port: int = Field(default=7808, ge=0, le=65_535)
    jt808_mqtt_url: str | None = Field(
        default=None, description="the gateway's broker account; default HUB_MQTT_URL"
    )
    jt808_client_id: str = Field(default="jt808-gateway", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    jt808_auth_secret: SecretStr = Field(
        default=SecretStr(""), description="HMAC key of the auth codes given at registration"
    )
    jt808_idle_timeout_s: float = Field(
        default=180.0, gt=0, description="close a terminal connection silent this long"
    )
    jt808_metrics_port: int = Field(
        default=9808, ge=0, le=65_535, description="HTTP port of the gateway's /metrics; 0 off"
    )
    jt808_max_frame_bytes: int = Field(
        default=4096, ge=64, description="a connection's buffer limit for one frame"
    )
    jt808_lift_source: str = Field(
        default="item:0xEB:0", description="body lifted: status:<bit> or item:<id>[:<bit>]"
    )
    jt808_cover_source: str = Field(
        default="item:0xEB:1", description="cover closed: status:<bit> or item:<id>[:<bit>]"
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError("HUB_DATABASE_URL must start with postgresql://")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("HUB_MQTT_URL must look like mqtt://host:port")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError as err:
                    raise ValueError(
                        f"HUB_TRUSTED_PROXIES: {part.strip()!r} is not an address or network"
                        " (e.g. 10.0.0.5,192.168.10.0/24)"
                    ) from err
        return value

    @field_validator("case_webhook_url", "case_open311_url", "lighting_webhook_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Self:
        if self.case_webhook_url and not self.case_webhook_secret:
            raise ValueError(
                "HUB_CASE_WEBHOOK_URL needs HUB_CASE_WEBHOOK_SECRET to sign deliveries"
            )
        return self

    @model_validator(mode="after")
    def _cluster_needs_shared_group(self) -> Self:
        if self.cluster_member >= self.cluster_members:
            raise ValueError(
                f"HUB_CLUSTER_MEMBER must be below HUB_CLUSTER_MEMBERS ({self.cluster_members})"
            )
        if self.cluster_members > 1 and not self.mqtt_shared_group:
            raise ValueError(
                "HUB_CLUSTER_MEMBERS > 1 needs HUB_MQTT_SHARED_GROUP, the shared subscription"
                " the hubs split the stream through"
            )
        return self

    @property
    def decodes_ahead(self) -> bool:
        """Whether the ingest writer decodes a batch ahead (HUB_DECODE_AHEAD, or by the seat)."""
        if self.decode_ahead is not None:
            return self.decode_ahead
        return self.cluster_members == 1

    @property
    def seat(self) -> Seat:
        """This hub's place in its cluster (member 0 of 1 when it runs alone)."""
        return Seat(self.cluster_members, self.cluster_member)

    @property
    def client_id(self) -> str:
        """This process's MQTT client id: one per cluster member, so sessions stay apart."""
        if self.cluster_members == 1:
            return self.mqtt_client_id
        return f"{self.mqtt_client_id}-m{self.cluster_member}"

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The reverse proxies whose forwarding headers the API believes."""
        parts = (p.strip() for p in self.trusted_proxies.split(","))
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts if p)

    @property
    def open311_api_key_set(self) -> frozenset[str]:
        """The api_key values Open311 clients may post with."""
        keys = self.open311_api_keys.get_secret_value().split(",")
        return frozenset(k.strip() for k in keys if k.strip())

    @property
    def decode_limits(self) -> DecodeLimits:
        """What ingest and dead-letter replay accept: payload size and the `ts` window."""
        return DecodeLimits(
            max_payload_bytes=self.max_payload_bytes,
            max_age=self.max_age,
            max_ahead=self.max_ahead,
        )

    @property
    def max_age(self) -> timedelta:
        """Oldest accepted reading relative to its receipt."""
        return timedelta(seconds=self.max_age_s)

    @property
    def max_ahead(self) -> timedelta:
        """Furthest-future accepted reading relative to its receipt."""
        return timedelta(seconds=self.max_ahead_s)


class MqttEndpoint:
    """Host, port, TLS and credentials parsed from an mqtt:// URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.tls = parts.scheme == "mqtts"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (8883 if self.tls else 1883)
        self.username = parts.username
        self.password = parts.password
        # mqtts://host:8883?cafile=/etc/hub/ca.crt: the CA of a private broker certificate
        # (default: the system's trusted CAs).
        self.ca_file = parse_qs(parts.query).get("cafile", [None])[0]
