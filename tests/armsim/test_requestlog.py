"""The request log's round-trip count: requests in flight together count once."""

from __future__ import annotations

from armsim.requestlog import LogEntry, RequestLog


def _log(*intervals: tuple[float, float]) -> RequestLog:
    log = RequestLog()
    for start, end in intervals:
        log.append(LogEntry("GET", "/x", "", 200, start, end - start, "sub", "read"))
    return log


def test_sequential_requests_count_one_each() -> None:
    assert _log((0, 1), (1, 2), (2.5, 3)).round_trips() == 3


def test_requests_in_flight_together_count_once() -> None:
    # a wave of three overlapping reads, then one write, then two overlapping writes
    assert _log((0, 1), (0.01, 1.02), (0.02, 0.99), (1.1, 2), (2.1, 3), (2.1, 3.1)).round_trips() == 3


def test_an_empty_log_has_no_round_trips() -> None:
    assert RequestLog().round_trips() == 0
