"""The event log's filter line: every word must match, -word must not."""

import pytest

from tui.log_filter import LogFilter

from .test_flow_index import EVENTS, index_of

INDEX = index_of(EVENTS)


def shown(text: str) -> list[int]:
    return LogFilter(text).rows(INDEX, 0, len(INDEX))


@pytest.mark.parametrize(
    "text, rows",
    [
        ("", list(range(10))),
        ("system:psa", [9]),
        ("sys:ERP", [2, 3, 5, 6, 7]),  # either end, any case
        ("src:erp", [7]),
        ("dst:erp", [2, 3, 5, 6]),
        ("kind:net.re", [5, 6, 7, 9]),  # kinds starting with the word
        ("corr:te:", [9]),
        ("is:business", [0, 1, 8]),  # a vendor effect, the core's decisions; not its retries
        ("is:fault", [2, 3]),
        ("is:core", [1, 4, 8]),
        ("timeout", [3]),  # a bare word: in the kind, an actor or the correlation id
        ("deal:0p1 -kind:net", [1, 2, 4, 8]),
        ("system:erp -src:erp", [2, 3, 5, 6]),
        ("op.done", [8]),
        ("nothing-like-this", []),
        ("-", []),  # a lone dash is a word, not a negation of nothing
    ],
)
def test_words(text, rows):
    assert shown(text) == rows


def test_a_filter_reads_only_the_rows_it_is_given():
    assert LogFilter("dst:erp").rows(INDEX, 4, 6) == [5]
    assert not LogFilter("  ") and LogFilter(" kind:net ").text == "kind:net"
