"""bench_peer's command line, its Node-RED flow and settings, and its arithmetic (no npm run)."""

import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import orjson
import pytest
import yaml
from bench_ingest import RateSearch, behind_schedule_s
from bench_peer import (
    ROOT,
    WARM_UP_S,
    Run,
    SideResult,
    Windows,
    cpu_when_quiet,
    grown,
    latency_percentiles_ms,
    median_cpu_run,
    parse_args,
    peer_figures,
    ratio_lines,
    stage_lines,
    stage_seconds_of,
    table_lines,
    thread_lines,
    warm_up_messages,
)
from node_red_peer import (
    BATCH_INTERVAL_MS,
    BATCH_ROWS,
    PEER_TABLE,
    node_red_flow,
    node_red_settings,
)
from prometheus_client import CollectorRegistry, generate_latest

from hub.ingest.metrics import StageCpu


def test_the_defaults_are_a_short_run_of_every_side() -> None:
    args = parse_args([])

    assert args.messages == 100_000
    assert args.members == [1, 2]
    assert not args.no_peer
    assert (args.steps, args.low_fraction, args.high_fraction) == (5, 0.4, 1.5)
    # Three runs each at full speed and at the steady rate: no single noisy run decides.
    assert (args.repeats, args.steady_repeats) == (3, 3)


def test_longer_runs_are_options() -> None:
    args = parse_args(["--messages", "300000", "--repeats", "6", "--paced-seconds", "30"])

    assert (args.messages, args.repeats, args.paced_seconds) == (300_000, 6, 30.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--messages", "0"],
        ["--low-fraction", "1.6"],
        ["--no-peer", "--members"],
        ["--steady-repeats", "0"],
    ],
)
def test_nonsense_is_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_the_flow_subscribes_at_qos_1_and_batches_into_the_peer_table() -> None:
    flow = node_red_flow("peernr", 18830, "postgresql://postgres@127.0.0.1:5999/hub")

    # The file Node-RED reads is plain JSON, every wire points at a node of the flow.
    nodes = {node["id"]: node for node in json.loads(json.dumps(flow))}
    mqtt_in = next(node for node in flow if node["type"] == "mqtt in")
    broker = nodes[mqtt_in["broker"]]
    function = nodes[mqtt_in["wires"][0][0]]
    assert mqtt_in["topic"] == "peernr/+/+/telemetry"
    assert mqtt_in["qos"] == "1"
    assert mqtt_in["datatype"] == "json"
    assert (broker["type"], broker["broker"], broker["port"]) == (
        "mqtt-broker",
        "127.0.0.1",
        "18830",
    )
    assert function["type"] == "function"
    assert f"length >= {BATCH_ROWS}" in function["func"]
    assert f"setTimeout(state.flush, {BATCH_INTERVAL_MS})" in function["func"]
    assert (
        f"INSERT INTO {PEER_TABLE} (device_id, ts, received_at, payload)" in function["initialize"]
    )
    assert "ON CONFLICT DO NOTHING" in function["initialize"]
    assert '"postgresql://postgres@127.0.0.1:5999/hub"' in function["initialize"]
    assert all(node.get("z", "peer-tab") in nodes for node in flow)


def test_the_settings_have_no_editor_and_give_the_function_node_pg(tmp_path: Path) -> None:
    text = node_red_settings(tmp_path / "flows.json", tmp_path, 18801, tmp_path / "pg")

    assert text.startswith("module.exports = {")
    assert "httpAdminRoot: false" in text
    assert "uiPort: 18801" in text
    assert f"functionGlobalContext: {{ pg: require({json.dumps(str(tmp_path / 'pg'))}) }}" in text
    assert f"flowFile: {json.dumps(str(tmp_path / 'flows.json'))}" in text


def test_bisection_narrows_to_the_highest_rate_kept_up() -> None:
    search = RateSearch(4_000, 11_000)

    first = search.next_rate()
    search.record(first, kept=True)
    second = search.next_rate()
    search.record(second, kept=False)

    assert (first, second) == (7_500, 9_200)
    assert search.kept == 7_500
    assert search.describe() == "7,500 (not 9,200)"
    assert search.next_rate() == 8_400


def test_nothing_kept_up_is_said_as_below_the_lowest_failure() -> None:
    search = RateSearch(4_000, 11_000)
    search.record(7_500, kept=False)

    assert search.describe() == "< 7,500"


def test_a_paced_run_kept_up_only_when_the_last_row_came_within_a_second_of_its_schedule() -> None:
    # 1,000 messages at 100 msg/s from t = 50 s: the schedule's last publish at 60 s.
    on_time = behind_schedule_s(60.3, 50.0, 1_000, 100.0)
    # The publisher held back 1.7 s on a saturated machine, the last row 0.5 s after it:
    # 2.2 s behind the schedule, though only 0.5 s behind the last publish.
    held_back = behind_schedule_s(62.2, 50.0, 1_000, 100.0)

    def run(behind_s: float, stored: int = 1_000) -> Run:
        return Run("hub", 100.0, 1_000, stored, 100.0, 0.5, (0.004,), behind_s=behind_s)

    assert on_time == pytest.approx(0.3)
    assert held_back == pytest.approx(2.2)
    assert behind_schedule_s(59.0, 50.0, 1_000, 100.0) == 0.0  # never negative
    assert run(on_time).kept_up
    assert not run(held_back).kept_up
    assert not run(1.2).kept_up
    assert not run(on_time, stored=999).kept_up


def test_latency_is_read_from_the_row_count_series() -> None:
    # 1,000 msg/s from t = 10 s: message i out at 10 + i/1000; rows seen in two batches.
    progress = [(10.0, 0), (10.6, 500), (11.3, 1000)]

    p50, p99 = latency_percentiles_ms(progress, 10.0, 1000.0, 1000)

    # Messages 0-499 waited 600 down to 101 ms, messages 500-999 waited 800 down to 301 ms.
    assert p50 == pytest.approx(450.5, abs=1)
    assert p99 == pytest.approx(790, abs=1)  # the first of the second batch waited longest


def _run(side: str, paced: float | None, stored: int = 100, p99: float = 200.0) -> Run:
    return Run(side, paced, 100, stored, 1_000.0, 0.1, (0.004,), 100.0, p99)


def test_the_steady_run_and_the_ratios_to_the_peer_are_reported() -> None:
    hub = SideResult("hub, 1 process", full=[_run("hub, 1 process", None)], members=1)
    hub.paced = [_run("hub, 1 process", 9_000), _run("hub, 1 process", 12_000, stored=90)]
    hub.steady = [_run("hub, 1 process", 7_200, p99=321.0), _run("hub, 1 process", 7_200)]
    peer = SideResult("Node-RED 4 batch flow", full=[_run("Node-RED 4 batch flow", None)])
    peer.paced = [_run("Node-RED 4 batch flow", 10_000)]

    table = table_lines([hub, peer])
    ratios = ratio_lines([hub, peer], "Node-RED 4 batch flow")

    assert "| 100 / 321 ms at 7,200 |" in table[2]  # the steady runs' highest p99
    assert table[3].split(" | ")[4] == "—"  # the peer ran no steady run here
    # 12,000 was not kept up (10 of 100 lost): the hub's best is 9,000 against 10,000.
    assert ratios == [
        "hub, 1 process: 0.90× Node-RED 4 batch flow's highest rate kept up"
        " (9,000 against 10,000 msg/s; issue 23: >= 1×, missed)",
        "hub, 1 process: CPU per message at the steady rate 1.000× full speed's"
        " (40.0 against 40.0 µs, the runs of median CPU of 2 steady and 1 full-speed runs;"
        " issue 23: <= 1×, met)",
    ]
    assert ratio_lines([hub], "Node-RED 4 batch flow") == ratios[1:]  # no peer: no rate ratio


def test_the_cpu_by_thread_compares_full_speed_with_the_steady_rate() -> None:
    def run(paced: float | None, writer_s: float, rules_s: float) -> Run:
        threads = {"alarm-flow": rules_s, "ingest-writer": writer_s}
        return Run("hub", paced, 100_000, 100_000, 20_000.0, 0.1, (2.0,), threads=threads)

    hub = SideResult("hub, 1 process", full=[run(None, 1.7, 1.5)])
    hub.steady = [run(16_000, 1.8, 1.4)]
    peer = SideResult("Node-RED 4 batch flow", full=[_run("Node-RED 4 batch flow", None)])

    lines = thread_lines([hub, peer])

    assert lines[2:] == [  # the busiest thread first; the peer had no steady run
        "| hub, 1 process | ingest-writer | 17.0 µs | 18.0 µs | +1.0 µs |",
        "| hub, 1 process | alarm-flow | 15.0 µs | 14.0 µs | -1.0 µs |",
    ]
    assert thread_lines([peer]) == []  # nothing to compare: no table


def test_the_cpu_by_stage_is_read_from_the_hubs_metrics_and_compared() -> None:
    registry = CollectorRegistry()
    stages = StageCpu(registry)
    stages.add("decode", 0.75, 1_000)
    stages.add("rules", 1.25, 1_000)
    page = generate_latest(registry).decode()  # what a hub's /metrics serves

    seconds = stage_seconds_of(page)

    assert seconds["decode"] == 0.75
    assert seconds["rules"] == 1.25
    assert seconds["store"] == 0.0  # every stage is there from the start
    assert stage_seconds_of("# a page without them\n") == {}  # a hub that does not count
    assert grown({"rules": 1.0, "store": 0.5}, {"rules": 1.25, "store": 0.5, "decode": 0.5}) == {
        "rules": 0.25,
        "decode": 0.5,
    }

    def run(paced: float | None, decode_s: float, rules_s: float) -> Run:
        by_stage = {"decode": decode_s, "rules": rules_s, "store": 0.0}
        return Run("hub", paced, 100_000, 100_000, 20_000.0, 0.1, (2.0,), stages=by_stage)

    hub = SideResult("hub, 2 members", full=[run(None, 0.8, 1.1)])
    hub.steady = [run(16_000, 0.9, 1.3)]
    assert stage_lines([hub])[2:] == [  # the costliest stage first
        "| hub, 2 members | rules | 11.0 µs | 13.0 µs | +2.0 µs |",
        "| hub, 2 members | decode | 8.0 µs | 9.0 µs | +1.0 µs |",
        "| hub, 2 members | store | 0.0 µs | 0.0 µs | +0.0 µs |",
    ]
    assert stage_lines([SideResult("Node-RED 4 batch flow", full=[hub.full[0]])]) == []
    assert not parse_args([]).by_stage  # the hubs serve no API unless asked


def _cpu_run(paced: float | None, cpu_s: float, p99: float = 200.0, stored: int = 1_000) -> Run:
    return Run("hub", paced, 1_000, stored, 10_000.0, 0.1, (cpu_s,), 100.0, p99)


def test_the_run_of_median_cpu_stands_for_its_repeats() -> None:
    runs = [_cpu_run(None, s) for s in (0.050, 0.030, 0.041, 0.029)]

    assert median_cpu_run(runs).cpu_s == (0.030,)  # of four, the lower middle one
    assert median_cpu_run(runs[:3]).cpu_s == (0.041,)
    assert median_cpu_run(runs[1:2]).cpu_s == (0.030,)


def test_issue_23s_targets_are_judged_on_the_median_runs_and_the_worst_latency() -> None:
    """Two members: rate 1.30× the peer's (met), steady CPU 31 against 30 µs (missed); one
    process: rate 0.95× (missed), steady CPU 29 against 30 µs (met); the latency target reads
    the highest p99 of the steady runs, not the one of median CPU."""
    peer = SideResult("Node-RED 4 batch flow", full=[_cpu_run(None, 0.050)])
    peer.paced = [_cpu_run(10_000, 0.050)]
    peer.steady = [_cpu_run(8_000, 0.060)]
    two = SideResult("hub, 2 members", full=[_cpu_run(None, s) for s in (0.029, 0.030, 0.045)])
    two.members = 2
    two.paced = [_cpu_run(13_000, 0.030), _cpu_run(14_000, 0.030, stored=900)]
    two.steady = [_cpu_run(10_400, 0.031, p99=210), _cpu_run(10_400, 0.026, p99=620)]
    two.steady.append(_cpu_run(10_400, 0.040, p99=300))
    one = SideResult("hub, 1 process", full=[_cpu_run(None, s) for s in (0.030, 0.060)])
    one.members = 1
    one.paced = [_cpu_run(9_500, 0.030)]
    one.steady = [_cpu_run(7_600, 0.029, p99=250)]
    results = [two, one, peer]

    lines = ratio_lines(results, peer.name)
    figures = {f.metric: f for f in peer_figures(results, peer.name)}

    assert lines[0].endswith("(13,000 against 10,000 msg/s; issue 23: >= 1.25×, met)")
    assert lines[1].endswith("(9,500 against 10,000 msg/s; issue 23: >= 1×, missed)")
    assert "1.033× full speed's (31.0 against 30.0 µs" in lines[2]
    assert lines[2].endswith("issue 23: <= 1×, missed)")
    assert lines[3].endswith("issue 23: <= 1×, met)")
    assert "1.200× full speed's" in lines[4]  # the peer's own, with no target
    assert "issue 23" not in lines[4]
    ratio = figures["hub, 2 members / Node-RED 4 batch flow, highest paced rate kept up"]
    assert ratio.value == pytest.approx(1.3)
    assert (ratio.unit, ratio.target) == ("×", ">= 1.25")
    assert figures["hub, 1 process / Node-RED 4 batch flow, highest paced rate kept up"].target == (
        ">= 1"
    )
    cpu = figures["hub, 2 members, CPU per message at the steady rate / at full speed"]
    assert cpu.value == pytest.approx(31 / 30)
    assert cpu.target == "<= 1"
    latency = figures["hub, 2 members, p99 publish→stored at 10,400 msg/s (steady)"]
    assert (latency.value, latency.target) == (620, "< 500")
    assert latency.note == "the highest of 3 run(s); 3 of 3 kept up"
    assert figures["hub, 2 members, CPU per message at the steady rate"].value == pytest.approx(31)
    peer_cpu = figures["Node-RED 4 batch flow, CPU per message at the steady rate / at full speed"]
    assert peer_cpu.target is None
    assert not any(metric.startswith("Node-RED 4 batch flow /") for metric in figures)


def test_a_setting_for_the_hub_sides_of_this_checkout() -> None:
    args = parse_args(["--hub-setting", "HUB_BATCH_MAX_WAIT_MS=200"])
    assert args.hub_setting == ["HUB_BATCH_MAX_WAIT_MS=200"]
    for wrong in ("BATCH_MAX_WAIT_MS=200", "HUB_BATCH_MAX_WAIT_MS"):
        with pytest.raises(SystemExit):
            parse_args(["--hub-setting", wrong])


def test_the_steady_fraction_is_a_share() -> None:
    assert parse_args([]).steady_fraction == 0.8
    with pytest.raises(SystemExit):
        parse_args(["--steady-fraction", "1.5"])


def test_cpu_is_counted_until_the_side_is_quiet_again() -> None:
    """A process that works on after the call (a hub's rules after its last row) has that
    work counted: its CPU is read once it idles, not at once."""
    busy = (
        "import time\n"
        "while time.process_time() < 0.5:\n"
        "    pass\n"
        "print('idle', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", busy], stdout=subprocess.PIPE, text=True)
    try:
        cpu, quiet_after_s = cpu_when_quiet([child.pid], timeout_s=30)
        assert child.stdout is not None
        assert child.stdout.readline() == "idle\n"  # it had finished its work
    finally:
        child.kill()
        child.wait()
    assert cpu[0] >= 0.45  # /proc counts in 10 ms ticks
    assert quiet_after_s > 0


def test_the_warm_up_takes_every_truck_past_its_permit_raise_without_a_track_gap() -> None:
    rules = yaml.safe_load((ROOT / "hub" / "rules" / "rules.yaml").read_text())["rules"]
    repeat_s = 300  # the permit rule's update_interval_s: the rules' default, not in the file
    assert "update_interval_s" not in rules["truck_permit"]
    windows = Windows(devices=600)
    start_ms = windows.take_span(WARM_UP_S)
    messages = warm_up_messages("peer", 600, start_ms)

    seen: dict[str, list[int]] = {}
    stamps = [int(orjson.loads(body)["ts"]) for _, body in messages]
    assert stamps == sorted(stamps)  # published in event-time order
    for (topic, _), ts in zip(messages, stamps, strict=True):
        seen.setdefault(topic, []).append(ts)
    assert len(seen) == 600  # every device
    for times in seen.values():
        assert times[-1] == start_ms + WARM_UP_S * 1000  # all end together
        assert times[-1] - times[0] >= rules["truck_permit"]["raise_after_s"] * 1000
        gaps = [b - a for a, b in pairwise(times)]
        assert 0 < max(gaps) < rules["truck_track"]["min_gap_s"] * 1000
    # Each device starts at its own offset: the raises, and so the repeats, spread over
    # the repeat interval instead of coming together.
    firsts = sorted({times[0] - start_ms for times in seen.values()})
    assert len(firsts) == repeat_s
    assert firsts[-1] - firsts[0] >= (repeat_s - 1) * 1000
    # The measured runs continue after the warm-up, never before its last reading.
    assert windows.take(600) > max(stamps)
