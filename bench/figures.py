"""Benchmark figures: the one row format every benchmark prints and writes with `--json PATH`.

A figure is one measured value with its unit, the target it is held against (text such
as "< 250 ms" or ">= 20,000 msg/s", compared with the value in the row's own unit) and a
remark. The JSON file is `{"rows": [{"benchmark", "metric", "value", "unit", "target",
"note"}]}`; a value of null means "not measurable here" and the note says why.
`bench/report.py` collects these files into the table of docs/performance.md.
"""

import argparse
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

_TARGET = re.compile(r"^\s*(<=|>=|<|>|≤|≥)\s*([0-9][0-9,_]*(?:\.[0-9]+)?)")


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured value of a benchmark."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # as a JSON row: no unknown keys

    benchmark: str
    metric: str
    value: float | None
    unit: str
    target: str | None = None
    note: str | None = None


class FiguresDocument(BaseModel):
    """The `--json` file of one benchmark run (pydantic validates the dataclass rows)."""

    model_config = ConfigDict(extra="forbid")

    rows: list[Figure]


def encode_figures(figures: Sequence[Figure]) -> str:
    """The JSON document of figures; NaN and infinities become null (not measurable)."""
    rows = [
        f if f.value is None or math.isfinite(f.value) else replace(f, value=None) for f in figures
    ]
    return FiguresDocument(rows=rows).model_dump_json(indent=2) + "\n"


def decode_figures(text: str | bytes) -> list[Figure]:
    """Figures from a `--json` document; pydantic's ValidationError if it is malformed."""
    return FiguresDocument.model_validate_json(text).rows


def target_met(value: float | None, target: str | None) -> bool | None:
    """Whether a value meets a target like "< 250 ms"; None when either is missing or unreadable."""
    if value is None or target is None or not math.isfinite(value):
        return None
    match = _TARGET.match(target)
    if match is None:
        return None
    limit = float(match[2].replace(",", "").replace("_", ""))
    operator = match[1]
    if operator == "<":
        return value < limit
    if operator in ("<=", "≤"):
        return value <= limit
    if operator == ">":
        return value > limit
    return value >= limit


def format_value(value: float | None, unit: str) -> str:
    """A value for a table: thousands separated, decimals only where they carry information."""
    if value is None or not math.isfinite(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100 or value == int(value):
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:,.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    if not unit:
        return text
    return f"{text}{unit}" if unit in ("×", "%") else f"{text} {unit}"


def met_text(figure: Figure) -> str:
    """yes / no / — for a figure against its target."""
    met = target_met(figure.value, figure.target)
    return "—" if met is None else ("yes" if met else "no")


def print_figures(title: str, figures: Sequence[Figure]) -> None:
    """Print figures as an aligned table with their targets and notes."""
    cells = [
        (
            f.metric,
            format_value(f.value, f.unit) if f.value is not None else (f.note or "n/a"),
            f.target or "",
            met_text(f) if f.target else "",
        )
        for f in figures
    ]
    widths = [
        max([len(header), *(len(c[i]) for c in cells)])
        for i, header in enumerate(("metric", "value", "target", "met?"))
    ]
    print(title)
    header = ("metric", "value", "target", "met?")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for c in cells:
        print(
            "  ".join(
                [c[0].ljust(widths[0]), c[1].rjust(widths[1]), c[2].ljust(widths[2]), c[3]]
            ).rstrip()
        )
    notes = [f for f in figures if f.note and f.value is not None]
    for f in notes:
        print(f"  note on {f.metric}: {f.note}")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """The `--json PATH` option every benchmark has."""
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help='also write the figures as {"rows": [...]} JSON to PATH (for bench/report.py)',
    )


def publish_figures(title: str, figures: Sequence[Figure], json_path: Path | None) -> None:
    """Print the table and, when asked, write the JSON file."""
    print_figures(title, figures)
    if json_path is not None:
        json_path.write_text(encode_figures(figures), encoding="utf-8")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100, linear interpolation); NaN for no values."""
    if not values:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
