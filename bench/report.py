"""Run every benchmark and rewrite the summary table of docs/performance.md.

Each benchmark runs as its own process with its default (report) sizes, or small ones with
`--quick`, and writes its figures with `--json`; its own output passes through. The rows
go into a Markdown table between the markers `<!-- bench:begin -->` and
`<!-- bench:end -->` of docs/performance.md with the date, the machine and the command;
the rest of the file is left alone. With `--only`/`--skip` the rows of the benchmarks not
run are kept from the table already there. A `--quick` run leaves the file alone unless
`--doc PATH` is given.

    python bench/report.py                       # everything, report sizes
    python bench/report.py --only api memory     # rerun two, keep the other rows
    python bench/report.py --quick --skip soak   # a smoke run; prints, writes nothing
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from figures import Figure, decode_figures, format_value, met_text
from pydantic import ValidationError

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEFAULT_DOC = ROOT / "docs" / "performance.md"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
TABLE_HEADER = ("| benchmark | metric | value | target | met? |", "|---|---|---|---|---|")
_NOTE = re.compile(r"^- `([^`]+)` ")


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A benchmark script, the name to select it by, and its small sizes for `--quick`."""

    name: str
    script: str
    quick_args: tuple[str, ...]
    optional: bool = False  # skipped with a message when the script is not there


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "ingest",
        "bench_ingest.py",
        (
            *("--messages", "20000", "--naive-messages", "2000", "--devices", "2000"),
            *("--sustain-rate", "2000", "--sustain-seconds", "5"),
            *("--paced-steps", "1", "--paced-seconds", "3"),
        ),
    ),
    Benchmark("rules", "bench_rules.py", ()),
    Benchmark("stages", "bench_stages.py", ("--messages", "20000", "--devices", "2000")),
    Benchmark("instructions", "bench_instructions.py", ("--messages", "1000", "--devices", "300")),
    Benchmark(
        "latency",
        "bench_latency.py",
        ("--devices", "2000", "--warmup", "3", "--duration", "10", "--packaged-duration", "4"),
    ),
    Benchmark(
        "api",
        "bench_api.py",
        ("--days", "2", "--spots", "300", "--trucks", "20", "--cases", "200", "--requests", "30"),
    ),
    Benchmark(
        "peer",
        "bench_peer.py",
        (
            *("--messages", "5000", "--devices", "1000", "--steps", "1", "--paced-seconds", "3"),
            *("--repeats", "1", "--steady-repeats", "1"),
        ),
    ),
    Benchmark("memory", "bench_memory.py", ("--devices", "10000")),
    Benchmark("storage", "bench_storage.py", ("--readings", "20000")),
    Benchmark(
        "soak",
        "soak_kill.py",
        ("--seconds", "10", "--kills", "1", "--devices", "2000"),
        optional=True,
    ),
)


@dataclass(frozen=True, slots=True)
class RunContext:
    """What the table's header says about the run."""

    at: datetime
    machine: str
    command: str
    quick: bool = False
    problems: tuple[str, ...] = ()


# --- the document (pure) ------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_rows(figures: Sequence[Figure]) -> list[str]:
    """One Markdown table line per figure: benchmark | metric | value | target | met?."""
    lines = []
    for f in figures:
        value = format_value(f.value, f.unit) if f.value is not None else (f.note or "n/a")
        target = f.target or "—"
        lines.append(
            f"| {_cell(f.benchmark)} | {_cell(f.metric)} | {_cell(value)} | {_cell(target)} "
            f"| {met_text(f)} |"
        )
    return lines


def note_lines(figures: Sequence[Figure]) -> list[str]:
    """The figures' notes as a list (a value-less figure's note is its value cell instead)."""
    return [
        f"- `{f.benchmark}` {f.metric}: {f.note}" for f in figures if f.note and f.value is not None
    ]


def kept_lines(section: str, replaced: set[str]) -> tuple[list[str], list[str]]:
    """Table lines and note lines of a previous section whose benchmark is not being replaced."""
    rows: list[str] = []
    notes: list[str] = []
    for line in section.splitlines():
        if line.startswith("| ") and line not in TABLE_HEADER:
            benchmark = line[2:].split(" | ", 1)[0].replace("\\|", "|")
            if benchmark not in replaced:
                rows.append(line)
        elif (match := _NOTE.match(line)) is not None and match[1] not in replaced:
            notes.append(line)
    return rows, notes


def render_section(
    figures: Sequence[Figure],
    context: RunContext,
    previous: str = "",
    replaced: set[str] | None = None,
) -> str:
    """The text between the markers: header, table and notes.

    `previous` is the old section; its rows of benchmarks not in `replaced` (the ones that
    ran, by benchmark name and by the names in their rows) are kept after the new rows.
    """
    replace = set(replaced or ()) | {f.benchmark for f in figures}
    old_rows, old_notes = kept_lines(previous, replace) if previous else ([], [])
    header = (
        f"Generated {context.at:%Y-%m-%d %H:%M} UTC by `{context.command}` on {context.machine}."
    )
    if context.quick:
        header += " **Quick smoke sizes: not the reported figures.**"
    if old_rows:
        header += " Rows of benchmarks not run then are kept from the previous report."
    lines = [header, ""]
    lines += [f"- {problem}" for problem in context.problems]
    if context.problems:
        lines.append("")
    lines += [*TABLE_HEADER, *table_rows(figures), *old_rows]
    notes = note_lines(figures) + old_notes
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines)


def rewrite_document(text: str, section: str) -> str:
    """The document with the text between the markers replaced; ValueError without markers."""
    begin = text.find(BEGIN)
    end = text.find(END)
    if begin < 0 or end < begin:
        raise ValueError(f"the document has no {BEGIN} ... {END} section")
    return text[: begin + len(BEGIN)] + "\n" + section.strip("\n") + "\n" + text[end:]


def current_section(text: str) -> str:
    """The text between the markers ('' when there are none)."""
    begin = text.find(BEGIN)
    end = text.find(END)
    if begin < 0 or end < begin:
        return ""
    return text[begin + len(BEGIN) : end]


# --- running ------------------------------------------------------------------------------


def _first_field(path: str, key: str, separator: str) -> str | None:
    """The value of the first `key<separator>value` line of a text file, if there is one."""
    file = Path(path)
    if not file.exists():
        return None
    for line in file.read_text().splitlines():
        if line.startswith(key):
            return line.split(separator, 1)[1].strip().strip('"')
    return None


def machine_description() -> str:
    """Cores, memory and CPU from /proc; the OS, PostgreSQL and Mosquitto versions."""
    parts = [f"{os.cpu_count() or 1} cores"]
    mem_kib = _first_field("/proc/meminfo", "MemTotal:", ":")
    if mem_kib:
        parts.append(f"{int(mem_kib.split()[0]) / 1024 / 1024:.1f} GiB RAM")
    found = [
        _first_field("/proc/cpuinfo", "model name", ":"),
        _first_field("/etc/os-release", "PRETTY_NAME=", "="),
        _version("postgres"),
        _version("mosquitto"),
    ]
    parts += [part for part in found if part]
    return ", ".join(parts)


def _version(program: str) -> str | None:
    if program == "postgres":
        from hub.cli.local_stack import postgres_bindir  # noqa: PLC0415 - optional detail

        try:
            binary = str(postgres_bindir() / "postgres")
        except FileNotFoundError:
            return None
        args = [binary, "--version"]
    else:
        found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(found).exists():
            return None
        args = [found, "-h"]
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    first = (result.stdout or result.stderr).strip().splitlines()
    if not first:
        return None
    text = first[0]
    text = text.replace("postgres (PostgreSQL)", "PostgreSQL").replace(" version ", " ")
    return text.split(" is ")[0].strip()


def run_benchmark(
    benchmark: Benchmark, quick: bool, json_dir: Path
) -> tuple[list[Figure], str | None]:
    """Run one benchmark; its figures, and a problem to report (None when it went well)."""
    script = BENCH / benchmark.script
    json_path = json_dir / f"{benchmark.name}.json"
    args = [
        sys.executable,
        str(script),
        *(benchmark.quick_args if quick else ()),
        "--json",
        str(json_path),
    ]
    shown = " ".join([f"bench/{benchmark.script}", *args[2:]])
    print(f"\n=== {benchmark.name}: python {shown}", flush=True)
    started = time.monotonic()
    result = subprocess.run(args, cwd=ROOT, check=False)
    elapsed = time.monotonic() - started
    print(f"=== {benchmark.name}: exit {result.returncode} after {elapsed:.0f} s", flush=True)
    figures: list[Figure] = []
    problem = None
    if json_path.exists():
        try:
            figures = decode_figures(json_path.read_bytes())
        except ValidationError as err:
            problem = f"{benchmark.script} wrote malformed figures: {err.error_count()} error(s)"
    if result.returncode != 0:
        problem = f"{benchmark.script} exited with status {result.returncode}" + (
            "; its figures are shown" if figures else "; no figures"
        )
    if not figures:
        figures = [Figure(benchmark.name, "run failed", None, "", None, problem or "no figures")]
    return figures, problem


def selected(only: Sequence[str], skip: Sequence[str]) -> list[Benchmark]:
    """The benchmarks to run, in table order."""
    names = {b.name for b in BENCHMARKS}
    unknown = (set(only) | set(skip)) - names
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}"
        )
    return [b for b in BENCHMARKS if (not only or b.name in only) and b.name not in skip]


def main(argv: Sequence[str] | None = None) -> int:
    """Run, collect, rewrite the document."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = [b.name for b in BENCHMARKS]
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help=f"of {names}")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME", help="run all but these")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--doc",
        type=Path,
        default=None,
        help=f"document to rewrite (default {DEFAULT_DOC.relative_to(ROOT)}; "
        "not written by --quick unless given)",
    )
    parser.add_argument("--no-doc", action="store_true", help="print only")
    parser.add_argument("--json-dir", type=Path, help="keep each benchmark's JSON here")
    args = parser.parse_args(argv)
    doc: Path | None = args.doc or (None if args.quick else DEFAULT_DOC)
    if args.no_doc:
        doc = None

    figures: list[Figure] = []
    problems: list[str] = []
    ran: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="hub-report-") as tmp:
        json_dir = args.json_dir or Path(tmp)
        json_dir.mkdir(parents=True, exist_ok=True)
        for benchmark in selected(args.only, args.skip):
            if benchmark.optional and not (BENCH / benchmark.script).exists():
                print(f"\n=== {benchmark.name}: bench/{benchmark.script} is missing; skipped")
                continue
            found, problem = run_benchmark(benchmark, args.quick, json_dir)
            figures += found
            ran.add(benchmark.name)
            if problem:
                problems.append(problem)
    command = " ".join(["python bench/report.py", *(argv if argv is not None else sys.argv[1:])])
    context = RunContext(
        datetime.now(UTC), machine_description(), command.strip(), args.quick, tuple(problems)
    )
    if doc is None:
        print("\n" + render_section(figures, context))
        return 1 if problems else 0
    text = doc.read_text(encoding="utf-8")
    section = render_section(figures, context, current_section(text), ran)
    doc.write_text(rewrite_document(text, section), encoding="utf-8")
    print(f"\n{doc}: summary table rewritten ({len(figures)} rows from {len(ran)} benchmarks)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
