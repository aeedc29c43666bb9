"""The peer of bench_peer: a Node-RED 4 flow that batches MQTT readings into PostgreSQL.

The flow is what a user would build in the editor: an MQTT-in node (QoS 1, JSON) wired to a
function node that keeps rows in memory and writes them with one multi-row
`INSERT … ON CONFLICT DO NOTHING` per 1,000 rows or 200 ms through a `pg` pool. It validates
nothing and runs no rules; the MQTT client acknowledges on receipt. Node-RED and `pg` are
installed with npm into a scratch folder; `pg` reaches the function node through the
settings' `functionGlobalContext`.
"""

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_RED_SPEC = "node-red@4"
PG_SPEC = "pg"
PEER_TABLE = "peer_readings"
BATCH_ROWS = 1000
BATCH_INTERVAL_MS = 200

PEER_TABLE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {PEER_TABLE} (device_id text NOT NULL, ts timestamptz NOT NULL,"
    " received_at timestamptz NOT NULL, payload jsonb NOT NULL, PRIMARY KEY (device_id, ts))"
)

# The function node's "On Start" code: one pool, one buffer, one flush shared by the messages.
_SETUP_JS = """\
const pg = global.get("pg");
const state = {
  rows: [],
  timer: null,
  pool: new pg.Pool({ connectionString: %(url)s, max: 4 }),
};
state.flush = function () {
  if (state.timer) {
    clearTimeout(state.timer);
    state.timer = null;
  }
  const rows = state.rows;
  if (rows.length === 0) return;
  state.rows = [];
  const params = [];
  const values = [];
  for (let i = 0; i < rows.length; i++) {
    const b = i * 4;
    values.push(`($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4})`);
    params.push(rows[i][0], rows[i][1], rows[i][2], rows[i][3]);
  }
  state.pool
    .query(
      "INSERT INTO %(table)s (device_id, ts, received_at, payload) VALUES " +
        values.join(", ") + " ON CONFLICT DO NOTHING",
      params
    )
    .catch((err) => node.error(err));
};
context.set("state", state);
"""

# Per message: device id from the topic (root/kind/device/telemetry), ts from the payload.
_ON_MESSAGE_JS = """\
const state = context.get("state");
const device = msg.topic.split("/")[2];
state.rows.push([device, new Date(msg.payload.ts), new Date(), msg.payload]);
if (state.rows.length >= %(rows)d) {
  state.flush();
} else if (!state.timer) {
  state.timer = setTimeout(state.flush, %(interval_ms)d);
}
return null;
"""

_CLOSE_JS = """\
const state = context.get("state");
state.flush();
return state.pool.end();
"""


def node_red_flow(root: str, mqtt_port: int, database_url: str) -> list[dict[str, Any]]:
    """The flow file: a tab, the broker config, MQTT-in (QoS 1) and the batching function."""
    return [
        {"id": "peer-tab", "type": "tab", "label": "telemetry to PostgreSQL", "disabled": False},
        {
            "id": "peer-broker",
            "type": "mqtt-broker",
            "name": "bench broker",
            "broker": "127.0.0.1",
            "port": str(mqtt_port),
            "clientid": f"bench-peer-{root}",
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": True,
            "autoUnsubscribe": True,
            "birthTopic": "",
            "closeTopic": "",
            "willTopic": "",
        },
        {
            "id": "peer-in",
            "type": "mqtt in",
            "z": "peer-tab",
            "name": "telemetry",
            "topic": f"{root}/+/+/telemetry",
            "qos": "1",
            "datatype": "json",
            "broker": "peer-broker",
            "nl": False,
            "rap": True,
            "rh": 0,
            "inputs": 0,
            "x": 120,
            "y": 80,
            "wires": [["peer-batch"]],
        },
        {
            "id": "peer-batch",
            "type": "function",
            "z": "peer-tab",
            "name": f"batch INSERT per {BATCH_ROWS} rows or {BATCH_INTERVAL_MS} ms",
            "func": _ON_MESSAGE_JS % {"rows": BATCH_ROWS, "interval_ms": BATCH_INTERVAL_MS},
            "outputs": 0,
            "timeout": 0,
            "noerr": 0,
            "initialize": _SETUP_JS % {"url": json.dumps(database_url), "table": PEER_TABLE},
            "finalize": _CLOSE_JS,
            "libs": [],
            "x": 360,
            "y": 80,
            "wires": [],
        },
    ]


def node_red_settings(flow_file: Path, user_dir: Path, ui_port: int, pg_module: Path) -> str:
    """settings.js: our flow and folder, no editor or HTTP nodes, `pg` as a global."""
    return (
        "module.exports = {\n"
        f"  flowFile: {json.dumps(str(flow_file))},\n"
        f"  userDir: {json.dumps(str(user_dir))},\n"
        f"  uiPort: {ui_port},\n"
        '  uiHost: "127.0.0.1",\n'
        "  httpAdminRoot: false,\n"
        "  httpNodeRoot: false,\n"
        "  credentialSecret: false,\n"
        "  flowFilePretty: true,\n"
        "  functionExternalModules: false,\n"
        f"  functionGlobalContext: {{ pg: require({json.dumps(str(pg_module))}) }},\n"
        "  logging: { console: { level: 'info', metrics: false, audit: false } },\n"
        "};\n"
    )


def installed(prefix: Path) -> bool:
    """Whether Node-RED 4 and pg are already in `prefix`/node_modules."""
    package = prefix / "node_modules" / "node-red" / "package.json"
    if not package.exists() or not (prefix / "node_modules" / "pg" / "package.json").exists():
        return False
    version = str(json.loads(package.read_text("utf-8")).get("version", ""))
    return version.startswith("4.")


def install_node_red(prefix: Path, timeout_s: float = 600.0) -> str | None:
    """npm install Node-RED 4 and pg into `prefix`; None when done, else why it could not be."""
    if installed(prefix):
        return None
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node or npm is not installed"
    prefix.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                NODE_RED_SPEC,
                PG_SPEC,
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"npm install did not finish in {timeout_s:.0f} s (is the npm registry reachable?)"
    if result.returncode != 0 or not installed(prefix):
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return f"npm install failed (is the npm registry reachable?): {' / '.join(tail)}"
    return None


@dataclass
class NodeRedProcess:
    """Node-RED running our flow from `work`; its console log goes to a file there."""

    prefix: Path
    work: Path
    root: str
    mqtt_port: int
    database_url: str
    ui_port: int
    process: "subprocess.Popen[bytes] | None" = None

    @property
    def pid(self) -> int:
        """Process id of the node process."""
        if self.process is None:
            raise RuntimeError("Node-RED not started")
        return self.process.pid

    @property
    def log_path(self) -> Path:
        """Node-RED's console output."""
        return self.work / "node-red.log"

    def start(self, timeout_s: float = 60.0) -> None:
        """Write flow and settings, start `node red.js`, wait until it is connected."""
        user_dir = self.work / "node-red"
        user_dir.mkdir(parents=True, exist_ok=True)
        flow_file = user_dir / "flows.json"
        flow = node_red_flow(self.root, self.mqtt_port, self.database_url)
        flow_file.write_text(json.dumps(flow, indent=2), "utf-8")
        settings = user_dir / "settings.js"
        modules = self.prefix.resolve() / "node_modules"
        settings.write_text(
            node_red_settings(flow_file, user_dir, self.ui_port, modules / "pg"), "utf-8"
        )
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["node", str(modules / "node-red" / "red.js"), "--settings", str(settings)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=user_dir,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "Connected to broker" in self.log_path.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        text = self.log_path.read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"Node-RED did not connect to the broker:\n{text[-3000:]}")

    def stop(self) -> None:
        """SIGTERM (the flow's finalize flushes its rows), then wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
