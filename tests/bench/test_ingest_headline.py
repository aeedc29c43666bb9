"""bench_ingest's headline: the highest paced rate a hub kept up, before its full speed."""

import argparse

from bench_ingest import HubRun, RateSearch, best_kept, paced_figures


def probe(rate: float, stored: int, drain_s: float, published: int = 1_000) -> HubRun:
    return HubRun(1, published, rate, stored, 0, 1.0, paced=rate, drain_s=drain_s)


def test_a_paced_run_kept_up_when_every_row_came_within_a_second_of_the_last_ack() -> None:
    assert probe(5_000, 1_000, 0.4).kept_up
    assert not probe(5_000, 1_000, 1.6).kept_up  # fell behind
    assert not probe(5_000, 999, 0.2).kept_up  # lost one


def test_the_headline_is_the_highest_rate_kept_up_with_its_cpu() -> None:
    search = RateSearch(4_000, 11_000)
    probes = [probe(7_500, 1_000, 0.3), probe(9_200, 1_000, 2.5), probe(8_400, 1_000, 0.9)]
    for run in probes:
        search.record(run.paced or 0.0, run.kept_up)

    best = best_kept(probes)
    figures = paced_figures(argparse.Namespace(paced_seconds=10.0), {1: (search, probes)})

    assert best is not None
    assert best.paced == 8_400
    assert [f.metric for f in figures] == [
        "hub, every rule on, highest paced rate kept up, 1 process",
        "hub CPU per message at the highest paced rate kept up, 1 process",
    ]
    assert figures[0].value == 8_400
    assert figures[0].note is not None
    assert figures[0].note.startswith("8,400 (not 9,200) msg/s")


def test_nothing_kept_up_has_no_value_and_says_so() -> None:
    search = RateSearch(4_000, 11_000)
    probes = [probe(7_500, 1_000, 3.0)]
    search.record(7_500, kept=False)

    figures = paced_figures(argparse.Namespace(paced_seconds=10.0), {1: (search, probes)})

    assert len(figures) == 1
    assert figures[0].value is None
    assert figures[0].note is not None
    assert figures[0].note.startswith("< 7,500 msg/s")
