"""Run PostgreSQL and Mosquitto as local processes for the demo, the tests and the benchmarks."""

import logging
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MOSQUITTO_TUNING = Path(__file__).resolve().parents[2] / "deploy/mosquitto/conf.d/tuning.conf"


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    """Block until something accepts connections on the loopback port, or raise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def _as_service_user(user: str) -> list[str]:
    """Prefix that drops root privileges: PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", user, "--"]


def _chown(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        for item in [path, *path.rglob("*")]:
            os.chown(item, entry.pw_uid, entry.pw_gid)


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL server's bin directory."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise FileNotFoundError("no PostgreSQL server found; install the postgresql package")


@dataclass
class LocalPostgres:
    """A PostgreSQL cluster in a directory of ours, on a port of ours."""

    data_dir: Path
    port: int
    user: str = "hub"
    durable: bool = True

    @property
    def url(self) -> str:
        """Connection URL of the default `hub` database."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/hub"

    def _os_user(self) -> str:
        return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def start(self) -> None:
        """Initialise the cluster if new, start it, and create the `hub` database."""
        bindir = postgres_bindir()
        pgdata = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os_user = self._os_user()
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(parents=True, exist_ok=True)
            _chown(self.data_dir, os_user)
            subprocess.run(
                [
                    *_as_service_user(os_user),
                    str(bindir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                check=True,
                capture_output=True,
            )
        options = [
            f"-p {self.port}",
            f"-k {self.data_dir}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=200",
            "-c shared_buffers=256MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        if not self.is_running():
            subprocess.run(
                [
                    *_as_service_user(os_user),
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(pgdata),
                    "-o",
                    " ".join(options),
                    "-l",
                    str(self.data_dir / "postgres.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                check=True,
                capture_output=True,
            )
        wait_for_port(self.port)
        self._create_database("hub")

    def _create_database(self, name: str) -> None:
        import psycopg  # noqa: PLC0415 - only the service runner needs a client here

        with psycopg.connect(
            f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    def is_running(self) -> bool:
        """Whether the cluster's postmaster is up."""
        pid_file = self.data_dir / "pgdata" / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, IndexError):
            return False
        return True

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster (mode `fast` or `immediate`)."""
        if not self.is_running():
            return
        subprocess.run(
            [
                *_as_service_user(self._os_user()),
                str(postgres_bindir() / "pg_ctl"),
                "-D",
                str(self.data_dir / "pgdata"),
                "-m",
                mode,
                "-w",
                "stop",
            ],
            check=False,
            capture_output=True,
        )


@dataclass
class LocalMosquitto:
    """A Mosquitto broker with the repository's tuning, on a port of ours."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker's mqtt:// URL."""
        return f"mqtt://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        """Write the broker config: the repository's tuning plus our listener and data dir."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        lines = [
            MOSQUITTO_TUNING.read_text(),
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence_location {self.data_dir}/",
            f"log_dest file {self.data_dir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.write_config()
        self.process = subprocess.Popen(
            [mosquitto, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        """Stop the broker; it saves persistent sessions on a clean stop."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
