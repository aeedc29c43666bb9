"""bench/report.py's table in docs/performance.md: rewritten between the markers only."""

import math
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from figures import Figure, decode_figures, encode_figures, target_met
from report import BEGIN, END, RunContext, current_section, render_section, rewrite_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "performance.md"
CONTEXT = RunContext(
    at=datetime(2026, 11, 21, 9, 30, tzinfo=UTC),
    machine="2 cores, 23.5 GiB RAM",
    command="python bench/report.py",
)
FIGURES = [
    Figure("latency", "publish → alarm p99", 182.4, "ms", "< 250 ms", "300 of 300 triggers"),
    Figure("api", "truck track, last 24 h p99", 71.0, "ms", "< 50 ms", None),
    Figure("memory", "registered devices", 100_000, "", None, None),
    Figure("storage", "parking: compressed bytes per reading", None, "B", None, "n/a (plain)"),
]


def outside_markers(text: str) -> tuple[str, str]:
    """The document before the begin marker and after the end marker."""
    return text[: text.index(BEGIN)], text[text.index(END) :]


def test_the_table_replaces_only_the_marked_section(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    shutil.copy(DOC, doc)
    original = doc.read_text(encoding="utf-8")

    doc.write_text(rewrite_document(original, render_section(FIGURES, CONTEXT)), "utf-8")

    rewritten = doc.read_text(encoding="utf-8")
    assert outside_markers(rewritten) == outside_markers(original)
    section = current_section(rewritten)
    assert "Generated 2026-11-21 09:30 UTC by `python bench/report.py` on 2 cores" in section
    assert "| benchmark | metric | value | target | met? |" in section
    assert "| latency | publish → alarm p99 | 182 ms | < 250 ms | yes |" in section
    assert "| api | truck track, last 24 h p99 | 71 ms | < 50 ms | no |" in section
    assert "| memory | registered devices | 100,000 | — | — |" in section
    assert "| storage | parking: compressed bytes per reading | n/a (plain) | — | — |" in section
    assert "- `latency` publish → alarm p99: 300 of 300 triggers" in section


def test_rewriting_twice_gives_the_same_document() -> None:
    original = DOC.read_text(encoding="utf-8")
    section = render_section(FIGURES, CONTEXT)
    once = rewrite_document(original, section)
    assert rewrite_document(once, section) == once


def test_a_partial_run_keeps_the_rows_of_benchmarks_it_did_not_run() -> None:
    first = rewrite_document(DOC.read_text(encoding="utf-8"), render_section(FIGURES, CONTEXT))
    rerun = [Figure("api", "truck track, last 24 h p99", 38.5, "ms", "< 50 ms", "faster now")]

    second = render_section(rerun, CONTEXT, current_section(first), replaced={"api"})

    assert "| api | truck track, last 24 h p99 | 38.5 ms | < 50 ms | yes |" in second
    assert "71 ms" not in second
    assert "| latency | publish → alarm p99 | 182 ms | < 250 ms | yes |" in second
    assert "- `latency` publish → alarm p99: 300 of 300 triggers" in second
    assert "- `api` truck track, last 24 h p99: faster now" in second
    assert "kept from the previous report" in second


def test_a_benchmark_that_ran_without_rows_loses_its_old_ones() -> None:
    first = render_section(FIGURES, CONTEXT)
    failed = [Figure("memory", "run failed", None, "", None, "bench_memory.py exited with 1")]

    second = render_section(failed, CONTEXT, first, replaced={"memory"})

    assert "| memory | run failed | bench_memory.py exited with 1 | — | — |" in second
    assert "100,000" not in second


def test_a_document_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="bench:begin"):
        rewrite_document("# Performance\n\nno table here\n", "anything")


@pytest.mark.parametrize(
    ("value", "target", "met"),
    [
        (182.0, "< 250 ms", True),
        (250.0, "< 250 ms", False),
        (250.0, "<= 250 ms", True),
        (16_177.0, ">= 20,000 msg/s", False),
        (21_000.0, "≥ 20,000 msg/s", True),
        (0.0, "<= 0", True),
        (12.0, "about 10", None),
        (None, "< 1 ms", None),
        (math.nan, "< 1 ms", None),
        (5.0, None, None),
    ],
)
def test_targets_are_read_as_a_comparison_with_a_number(
    value: float | None, target: str | None, met: bool | None
) -> None:
    assert target_met(value, target) is met


def test_figures_survive_the_json_file_and_nan_becomes_null() -> None:
    figures = [*FIGURES, Figure("rules", "tick()", math.nan, "ms", None, None)]

    decoded = decode_figures(encode_figures(figures))

    assert decoded[:-1] == FIGURES
    assert decoded[-1] == Figure("rules", "tick()", None, "ms", None, None)
