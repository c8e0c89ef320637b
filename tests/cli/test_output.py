"""What the commands print (musicsearch/cli/output.py)."""

from musicsearch.cli.output import mmss, report_line
from musicsearch.events import IndexReport


def test_mmss():
    assert [mmss(None), mmss(0), mmss(59.6), mmss(75.4), mmss(3600)] == ["", "0:00", "1:00", "1:15", "60:00"]


def test_report_line_names_only_what_changed():
    report = IndexReport(root="/music")
    assert report_line(report) == "/music: no change"
    report.added.extend(["a", "b"])
    report.moved.append(("c", "d"))
    assert report_line(report) == "/music: 2 added, 1 moved"
