"""The docker-compose stack parses, names the services it must, and mounts files that exist."""

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_required_services_exist() -> None:
    services = load_compose()["services"]
    assert {"timescaledb", "mosquitto", "hub", "grafana", "simulators"} <= set(services)
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert services["grafana"]["image"].startswith("grafana/")


def test_hub_migrates_before_it_runs() -> None:
    services = load_compose()["services"]
    assert services["hub-migrate"]["command"] == ["python", "-m", "hub", "migrate"]
    assert services["hub"]["command"] == ["python", "-m", "hub", "run"]
    condition = services["hub"]["depends_on"]["hub-migrate"]["condition"]
    assert condition == "service_completed_successfully"


def test_every_bind_mount_exists_in_the_repository() -> None:
    for name, service in load_compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_broker_config_requires_auth_and_raises_limits() -> None:
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf
    assert "acl_file" in conf
    tuning = (ROOT / "deploy/mosquitto/conf.d/tuning.conf").read_text()
    assert "max_queued_messages 5000000" in tuning
    assert "max_inflight_messages 0" in tuning


def test_hub_image_builds_from_files_that_exist() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
