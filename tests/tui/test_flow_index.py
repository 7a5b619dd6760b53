"""Flows: events by correlation id, found by any id they name, drawn in order."""

from tui.event_index import EventIndex
from tui.flow_index import FlowIndex, journey

from .test_world_view import HEADER, ev

DEAL = "deal:0P1"


def index_of(events):
    index = EventIndex(None, HEADER)
    for e in events:
        index.append(e, 0)
    return index


EVENTS = [
    ev(0, "vendor.effect", "crm", id="0P1", kind="update", table="Opportunity"),
    ev(5, "core.deal.won", "core", corr=DEAL, deal="0P1"),
    ev(10, "fault.request_lost", "core", "erp", corr=DEAL, msg="m1", method="PUT", path="/customers/eid:A1"),
    ev(20, "net.timeout", "core", "erp", corr=DEAL, msg="m1", method="PUT", path="/customers/eid:A1"),
    ev(21, "core.op.retry", "core", corr=DEAL, msg="ob1", op="erp.upsert_customer", attempt=1, retry_in_ms=500),
    ev(30, "net.request", "core", "erp", corr=DEAL, msg="m2", method="PUT", path="/customers/eid:A1", body={}),
    ev(31, "net.request", "core", "erp", corr=DEAL, msg="m2", method="PUT", path="/customers/eid:A1", copy=1, body={}),
    ev(40, "net.response", "erp", "core", corr=DEAL, msg="m2", status=201, body={"id": "CUS-7"}),
    ev(41, "core.op.done", "core", corr=DEAL, msg="ob1", op="erp.upsert_customer", attempt=2),
    ev(50, "net.request", "core", "psa", corr="te:9", msg="m3", method="POST", path="/time", body={}),
]


def test_a_flow_is_its_events_plus_the_records_it_names_in_order():
    index = index_of(EVENTS)
    flows = FlowIndex()
    flows.update(index, len(index))
    ids = flows.event_ids(DEAL, len(index))
    assert ids == list(range(9))  # the CRM's own update (no corr) belongs to the deal
    participants, steps = journey(index, ids)
    assert participants == ["crm", "core", "erp"]
    labels = [s.label for s in steps]
    assert labels[2].startswith("✕ lost PUT") and steps[2].lost
    assert labels[3].startswith("⊘ timeout")
    assert labels[4].startswith("↻ retry erp.upsert_customer #1")
    assert labels[6].startswith("dup PUT")
    assert labels[7] == "201 PUT /customers/eid:A1" and steps[7].tone == "ok"
    assert labels[8].startswith("✓ erp.upsert_customer #2")


def test_flows_are_found_by_any_id_they_name():
    index = index_of(EVENTS)
    flows = FlowIndex()
    flows.update(index, len(index))
    assert [f.corr for f in flows.search("CUS-7", index, len(index))] == [DEAL]
    assert [f.corr for f in flows.search("0p1", index, len(index))] == [DEAL]
    assert [f.corr for f in flows.search("", index, len(index))] == [DEAL, "te:9"]
    summary = flows.summary(DEAL, index, len(index))
    assert summary.systems == ("core", "erp") and summary.faults >= 3
    # what was not visible yet is not shown
    assert flows.summary("te:9", index, 5) is None


def test_a_violation_leads_to_the_flow_it_names():
    index = index_of(EVENTS)
    flows = FlowIndex()
    flows.update(index, len(index))
    assert flows.corr_in_text("deal 0P1 billed twice [corr deal:0P1; see the trace]") == DEAL
    assert flows.corr_in_text("customer CUS-7 has two invoices") == DEAL
    assert flows.corr_in_text("nothing to see") is None
