"""The docker-compose stack parses, names the services it must, and mounts files that exist."""

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]


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


def interpolated(value: str) -> str:
    """A compose value with its ${VARIABLE...} references replaced by a plain word."""
    return re.sub(r"\$\{[^}]*\}", "secret", value)


def broker_listeners(path: Path) -> dict[int, dict[str, str]]:
    """Each listener's port and the options set under it (per_listener_settings true)."""
    listeners: dict[int, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, value = line.partition(" ")
        if name == "listener":
            current = listeners.setdefault(int(value.split()[0]), {})
        elif current is not None:
            current[name] = value
    return listeners


def test_broker_listeners_tie_client_ids_to_accounts() -> None:
    conf = ROOT / "deploy/mosquitto/mosquitto.conf"
    options = [line for line in conf.read_text().splitlines() if line and line[0] != "#"]
    assert options[0] == "per_listener_settings true"  # before any other security option
    for path in (conf, ROOT / "deploy/mosquitto/tls.conf.example"):
        listeners = broker_listeners(path)
        device = [port for port, o in listeners.items() if o.get("use_username_as_clientid")]
        assert len(device) == 1, path
        for port, settings in listeners.items():
            assert settings["allow_anonymous"] == "false", (path, port)
            kind = "devices" if port in device else "platform"
            assert settings["password_file"] == f"/mosquitto/data/{kind}.passwd", (path, port)
            assert settings["acl_file"] == f"/mosquitto/config/{kind}.acl", (path, port)
            if port in device:
                assert settings["use_username_as_clientid"] == "true"


def test_hub_on_the_platform_listener_devices_on_the_device_listener() -> None:
    services = load_compose()["services"]
    listeners = broker_listeners(ROOT / "deploy/mosquitto/mosquitto.conf")
    device = next(p for p, o in listeners.items() if o.get("use_username_as_clientid") == "true")
    platform = next(p for p in listeners if p != device)
    hub_url = urlsplit(interpolated(services["hub"]["environment"]["HUB_MQTT_URL"]))
    assert (hub_url.username, hub_url.port) == ("hub", platform)
    command = interpolated(" ".join(services["simulators"]["command"]))
    simulator_url = urlsplit(command.split("--mqtt-url ")[1].split()[0])
    assert (simulator_url.username, simulator_url.port) == ("simulator", device)
    # The hub's broker password stays out of the simulators' container.
    assert "HUB_MQTT_URL" not in services["simulators"].get("environment", {})
    published = [int(str(p).split(":")[-1]) for p in services["mosquitto"]["ports"]]
    assert published == [device]


def test_every_config_file_the_broker_reads_is_mounted() -> None:
    mosquitto = load_compose()["services"]["mosquitto"]
    mounted = [str(v).split(":")[1] for v in mosquitto["volumes"]]
    deploy = ROOT / "deploy/mosquitto"
    for path in (deploy / "mosquitto.conf", deploy / "tls.conf.example", deploy / "entrypoint.sh"):
        for name in re.findall(r"/mosquitto/config/[\w./-]+", path.read_text()):
            assert any(name == m or name.startswith(m + "/") for m in mounted), (path, name)


def test_hub_image_builds_from_files_that_exist() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)$", dockerfile, flags=re.MULTILINE)
    for line in dockerfile.splitlines():
        if line.startswith("COPY --from="):
            # From an earlier stage of this file, not from the build context.
            assert line.split()[1].removeprefix("--from=") in stages, line
        elif line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_hub_image_runs_the_compiled_modules_it_builds() -> None:
    """The native stage's build lands where HUB_NATIVE_DIR points (hub/native.py)."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    out = re.search(r"scripts/build_native\.py --out (\S+)", dockerfile)
    assert out is not None
    assert f"COPY --from=native {out[1]} {out[1]}" in dockerfile
    assert f"ENV HUB_NATIVE_DIR={out[1]}" in dockerfile


def test_jt808_gateway_publishes_as_its_own_platform_account() -> None:
    services = load_compose()["services"]
    gateway = services["jt808"]
    assert gateway["command"] == ["python", "-m", "hub", "jt808", "serve"]
    environment = gateway["environment"]
    listeners = broker_listeners(ROOT / "deploy/mosquitto/mosquitto.conf")
    platform = next(p for p, o in listeners.items() if o.get("use_username_as_clientid") is None)
    url = urlsplit(interpolated(environment["HUB_JT808_MQTT_URL"]))
    assert (url.username, url.port) == ("jt808", platform)
    # Neither the hub's broker account nor its password in the gateway's container.
    assert "HUB_MQTT_URL" not in environment
    assert "HUB_MQTT_PASSWORD" not in " ".join(map(str, environment.values()))
    assert "HUB_JT808_AUTH_SECRET" in environment
    # Terminals reach it from outside on the port it listens on.
    published = [str(p).split(":") for p in gateway["ports"]]
    assert published == [[environment["HUB_JT808_PORT"]] * 2]
    # The broker writes the account from the same variable the gateway's URL uses.
    assert "JT808_MQTT_PASSWORD" in services["mosquitto"]["environment"]
    assert "JT808_MQTT_PASSWORD" in environment["HUB_JT808_MQTT_URL"]
    assert "user jt808" in (ROOT / "deploy/mosquitto/platform.acl").read_text()
