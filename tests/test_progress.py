"""Progress of long loops: a bar on a terminal, a log line every N items elsewhere."""

from __future__ import annotations

import io
import logging

import pytest

from lrrnet import progress as progress_module
from lrrnet.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lrrnet.progress"]


def test_off_a_terminal_a_line_every_n_items_and_at_the_end(caplog, monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with (
        caplog.at_level(logging.INFO, logger="lrrnet.progress"),
        Progress(7, "test", every=3) as bar,
    ):
        for _ in range(7):
            bar.update()
    lines = _lines(caplog)
    assert [line.split(" in ")[0] for line in lines] == [
        "test: 3/7 img",
        "test: 6/7 img",
        "test: 7/7 img",
    ]
    assert lines[-1].endswith("img/s)")
    # A batch that jumps over a multiple still gives one line, and a resumed count starts late.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lrrnet.progress"):
        bar = Progress(10, "val", every=4, initial=2)
        bar.update(5)
        bar.update(3)
    assert [line.split(" in ")[0] for line in _lines(caplog)] == ["val: 7/10 img", "val: 10/10 img"]


def test_disabled_or_without_every_logs_nothing(caplog, monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with caplog.at_level(logging.INFO, logger="lrrnet.progress"):
        for bar in (Progress(3, "a", enabled=False), Progress(3, "b", every=None)):
            bar.update(3)
            bar.close()
            assert bar.bar is None
    assert _lines(caplog) == []


def test_on_a_terminal_a_bar_and_no_lines(caplog, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with caplog.at_level(logging.INFO, logger="lrrnet.progress"), Progress(4, "scoring") as bar:
        bar.update(4)
        bar.set_postfix("12 ms/img")
        assert bar.bar is not None and bar.bar.n == 4
    assert _lines(caplog) == []
    assert "scoring" in terminal.getvalue()


@pytest.mark.parametrize("count", [1, 250])
def test_default_every_gives_a_few_lines_for_hundreds(caplog, monkeypatch, count):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with caplog.at_level(logging.INFO, logger="lrrnet.progress"):
        bar = Progress(count, "test")
        for _ in range(count):
            bar.update()
    expected = count // progress_module.LOG_EVERY + (count % progress_module.LOG_EVERY > 0)
    assert len(_lines(caplog)) == expected


def test_a_slow_loop_reports_every_30_seconds(caplog, monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    clock = iter([0.0, 10.0, 31.0, 40.0, 62.0])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="lrrnet.progress"):
        bar = Progress(50, "tune ipi")  # started at 0
        for _ in range(4):
            bar.update()  # at 10 s: nothing; 31 s: a line; 40 s: nothing; 62 s: a line
    assert [line.split(" in ")[0] for line in _lines(caplog)] == [
        "tune ipi: 2/50 img",
        "tune ipi: 4/50 img",
    ]
