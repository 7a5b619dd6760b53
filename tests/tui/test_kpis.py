"""KPI sparklines are drawn over virtual time, not over samples."""

from tui.widgets.kpis import over_time, sparkline


def test_each_bar_is_an_equal_stretch_of_virtual_time():
    # three samples in the first minute (a person stepping), one an hour later
    points = [(0, 0.0), (10, 5.0), (20, 0.0), (3600, 2.0)]
    # the start, then four quarter hours: the spike kept, then the value in force
    assert over_time(points, 5) == [0.0, 5.0, 0.0, 0.0, 2.0]
    assert sparkline(over_time(points, 5)) == "▁█▁▁▄"
    # by samples, the first minute would have taken three bars of four
    assert sparkline([v for _, v in points]) == "▁█▁▄"


def test_edges():
    assert over_time([], 8) == [] and sparkline([]) == ""
    assert over_time([(5, 1.0), (5, 3.0)], 8) == [3.0]  # one moment: one bar
    assert over_time([(0, 1.0), (100, 1.0)], 5) == [1.0] * 5
    assert over_time([(0, 0.0), (1, 2.0), (100, 2.0)], 5) == [0.0, 2.0, 2.0, 2.0, 2.0]  # a rise right away shows
    assert over_time([(0, 1.0), (100, 2.0)], 1) == [2.0]
    assert sparkline([1.0] * 5) == "─────"
    assert over_time([(0, 1.0), (100, 2.0)], 0) == []
