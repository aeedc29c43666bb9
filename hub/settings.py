"""The hub's one settings class, read from the environment (HUB_*) when the entry point asks."""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    mqtt_session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    mqtt_receive_maximum: int = Field(
        default=20_000,
        ge=1,
        le=65_535,
        description="QoS 1 messages the broker may have unacknowledged with us: the memory bound",
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65_535)
    api_enabled: bool = True
    batch_max_rows: int = Field(default=20_000, ge=1)
    batch_interval_ms: int = Field(default=200, ge=1)
    max_payload_bytes: int = Field(default=256 * 1024, ge=64)
    max_age_s: int = Field(default=7 * 24 * 3600, ge=1, description="oldest accepted ts")
    max_ahead_s: int = Field(default=300, ge=0, description="furthest future ts accepted")
    registry_refresh_s: float = Field(default=5.0, gt=0)
    retention_days: int = Field(default=365, ge=1, description="telemetry kept this long")
    deadletter_retention_days: int = Field(default=90, ge=1)
    log_level: str = "INFO"
    data_dir: Path = Field(default=Path("var"), description="local demo services keep data here")

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
