"""The canonical model and its JSON codec.

Every expected number here was worked by hand (shown in the comments), not
computed with the code under test.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal as D

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_core import model, model_contracts
from sync_core.codec import CodecError, from_json, to_json
from sync_core.model import (
    Assignment, Audit, BillingRule, CustomerAccount, Dimensions, EffectiveRate, InvalidRecord, LegalEntity,
    Project, Record, SourceConflict, SourceRef, Task, TaxTreatment, Worker, format_gid,
)
from sync_core.model_contracts import (
    Contract, ContractLine, ContractVersion, Expense, FulfilmentEvent, Invoice, InvoiceLine, Milestone,
    MilestoneTerm, Payment, RateCardEntry, RevenueObligation, TimeEntry, VersionOutOfOrder,
)

AUDIT = Audit(
    correlation_id="corr-000001",
    causation_id="ob00000001",
    source_event="crm:evt-000001",
    recorded_at="2024-03-01T09:30:00+00:00",
)
VAT20 = TaxTreatment("GB-S20", D("0.20"), False)


# -- builders: one valid record of each kind, changed per test with evolve ----


def legal_entity() -> LegalEntity:
    return LegalEntity(
        gid="le-000001", source_ids=(SourceRef("erp", "SUB-2"),), status="active", audit=AUDIT,
        code="GB01", name="Meridian Advisory Ltd", country="GB", functional_currency="GBP",
    )


def customer() -> CustomerAccount:
    return CustomerAccount(
        gid="cust-000001", source_ids=(SourceRef("crm", "001A"), SourceRef("erp", "C-17")), status="active",
        audit=AUDIT, name="Acme Widgets Ltd", country="GB", currency="GBP", legal_entity="GB01",
        tax_registration="GB123456789", tax=VAT20, bill_to=("1 High Street", "London", "EC1A 1AA"),
    )


def worker() -> Worker:
    return Worker(
        gid="wkr-000001", source_ids=(SourceRef("hris", "E-1001"),), status="active", audit=AUDIT,
        employee_id="E-1001", name="Ada Lovelace", role="senior_consultant", cost_centre="CC-GB-ADV",
        legal_entity="GB01", hire_date=date(2020, 5, 4),
        cost_rates=(EffectiveRate(date(2024, 1, 1), D("80.00"), "GBP"), EffectiveRate(date(2024, 7, 1), D("84.00"), "GBP")),
    )


def project() -> Project:
    return Project(
        gid="proj-000001", source_ids=(SourceRef("psa", "P-1042"),), status="active", audit=AUDIT,
        name="Acme ERP rollout", contract_gid="ctr-000001", customer_gid="cust-000001", legal_entity="GB01",
        currency="GBP",
        billing_rule=BillingRule(model="t_and_m", currency="GBP", invoice_frequency="monthly", hold_until_acceptance=False),
        dimensions=Dimensions("ADVISORY", "SERVICES", "LONDON"),
        effective_from=date(2024, 1, 1), effective_to=date(2024, 12, 31),
    )


def task() -> Task:
    return Task(
        gid="task-000001", status="open", audit=AUDIT, project_gid="proj-000001", wbs_code="1.2",
        name="Design workshops", billable=True, line_id="L1",
    )


def assignment() -> Assignment:
    return Assignment(
        gid="asg-000001", status="active", audit=AUDIT, worker_gid="wkr-000001", project_gid="proj-000001",
        role="senior_consultant", allocation=D("0.60"), effective_from=date(2024, 1, 8),
    )


def time_entry(**changes) -> TimeEntry:
    entry = TimeEntry(
        gid="te-000001", source_ids=(SourceRef("psa", "T-9"),), status="approved", audit=AUDIT,
        worker_gid="wkr-000001", project_gid="proj-000001", task_gid="task-000001", work_date=date(2024, 3, 4),
        hours=D("7.25"), version=1, contract_version=1, currency="GBP", bill_rate=D("123.45"),
        cost_currency="GBP", cost_rate=D("80.00"),
    )
    return attrs.evolve(entry, **changes)


def expense() -> Expense:
    return Expense(
        gid="exp-000001", source_ids=(SourceRef("expenses", "X-5"),), status="approved", audit=AUDIT,
        worker_gid="wkr-000001", project_gid="proj-000001", incurred_on=date(2024, 3, 5), category="travel",
        amount=D("100.00"), tax_amount=D("20.00"), currency="GBP", tax=VAT20, billable=True,
    )


def tm_line(rate: str = "150.00", *, line_id: str = "L1", role: str = "consultant") -> ContractLine:
    return ContractLine(
        line_id=line_id, billing_model="t_and_m", description="Advisory time", quantity=D("400"),
        rate=D(rate), price=D("60000.00"), standalone_selling_price=D("60000.00"),
        service_start=date(2024, 1, 1), service_end=date(2024, 12, 31),
        rate_card=(RateCardEntry(role, D(rate)), RateCardEntry("partner", D("300.00"))),
    )


def fixed_line() -> ContractLine:
    return ContractLine(
        line_id="L2", billing_model="fixed_fee", description="Data migration", quantity=D("1"),
        rate=D("25000.00"), price=D("25000.00"), standalone_selling_price=D("27000.00"),
        service_start=date(2024, 6, 1), service_end=date(2024, 9, 30),
        milestones=(
            MilestoneTerm("M1", "Mapping signed off", D("10000.00"), date(2024, 7, 15)),
            MilestoneTerm("M2", "Cut-over", D("15000.00"), date(2024, 9, 30)),
        ),
    )


def contract() -> Contract:
    return Contract(
        gid="ctr-000001", source_ids=(SourceRef("crm", "006-OPP-1"),), status="active", audit=AUDIT,
        customer_gid="cust-000001", opportunity_id="006-OPP-1", legal_entity="GB01", currency="GBP",
        versions=(ContractVersion.of(1, date(2024, 1, 1), (tm_line("150.00"),)),),
    )


def milestone() -> Milestone:
    return Milestone(
        gid="ms-000001", status="accepted", audit=AUDIT, project_gid="proj-000001", contract_gid="ctr-000001",
        line_id="L2", milestone_id="M1", name="Mapping signed off", amount=D("10000.00"), currency="GBP",
        due_date=date(2024, 7, 15), completed_on=date(2024, 7, 12), accepted_on=date(2024, 7, 19), billing_hold=False,
    )


def obligation() -> RevenueObligation:
    return RevenueObligation(
        gid="pob-000001", source_ids=(SourceRef("revenue", "POB-3"),), status="open", audit=AUDIT,
        contract_gid="ctr-000001", contract_version=1, line_id="L1", method="t_and_m", currency="GBP",
        standalone_selling_price=D("60000.00"), allocated=D("58200.00"),
        service_start=date(2024, 1, 1), service_end=date(2024, 12, 31),
    )


def fulfilment() -> FulfilmentEvent:
    return FulfilmentEvent(
        gid="ful-000001", status="recorded", audit=AUDIT, obligation_gid="pob-000001", kind="time_approved",
        reference="te-000001", occurred_on=date(2024, 3, 6), currency="GBP", amount=D("895.01"), quantity=D("7.25"),
    )


def invoice() -> Invoice:
    lines = (
        InvoiceLine.of("te-000001", "Advisory 2024-03-04", D("7.25"), D("123.45")),  # 864.15 + 30.8625 -> 895.01
        InvoiceLine.of("exp-000001", "Travel", D("1"), D("100.00")),  # 100.00
    )
    return Invoice(
        gid="inv-000001", source_ids=(SourceRef("billing", "in_77"),), status="issued", audit=AUDIT,
        number="INV-2024-0001", customer_gid="cust-000001", project_gid="proj-000001", currency="GBP",
        lines=lines, total=D("995.01"), issued_on=date(2024, 3, 31),
    )


def payment() -> Payment:
    return Payment(
        gid="pay-000001", status="received", audit=AUDIT, invoice_gid="inv-000001", amount=D("995.01"),
        currency="GBP", received_on=date(2024, 4, 20),
    )


SAMPLES = [
    legal_entity(), customer(), worker(), project(), task(), assignment(), time_entry(), expense(),
    contract(), milestone(), obligation(), fulfilment(), invoice(), payment(),
    # value records, on their own too
    SourceRef("psa", "P-1"), AUDIT, VAT20, Dimensions("ADVISORY"), EffectiveRate(date(2024, 1, 1), D("80"), "GBP"),
    project().billing_rule, RateCardEntry("consultant", D("150.00")), fixed_line().milestones[0], fixed_line(),
    contract().latest, invoice().lines[0],
]


def _model_record_types() -> set[type]:
    exported = {getattr(m, name) for m in (model, model_contracts) for name in m.__all__}
    return {t for t in exported if isinstance(t, type) and attrs.has(t) and t is not Record}


# -- round trips ----------------------------------------------------------------


def test_every_model_record_type_has_a_round_trip_sample():
    assert _model_record_types() - {type(s) for s in SAMPLES} == set()


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip_through_json_text(record):
    text = json.dumps(to_json(record), sort_keys=True)  # no default=: everything is JSON data already
    assert from_json(type(record), json.loads(text)) == record
    assert "e+" not in text.lower()


def test_encoding_is_plain_canonical_data():
    rate = EffectiveRate(date(2024, 7, 1), D("84.50"), "GBP")
    assert json.dumps(to_json(rate), sort_keys=True) == '{"currency": "GBP", "effective_from": "2024-07-01", "rate": "84.50"}'
    # Exponent notation never reaches the wire: 1E+3 is written 1000.
    assert to_json(RateCardEntry("partner", D("1E+3"))) == {"role": "partner", "rate": "1000"}
    assert to_json(Dimensions("ADVISORY")) == {"department": "ADVISORY", "class_": None, "location": None}


def test_nested_records_and_tuples_encode_as_objects_and_lists():
    data = to_json(contract())
    line = data["versions"][0]["lines"][0]
    assert data["source_ids"] == [{"system": "crm", "id": "006-OPP-1"}]
    assert line["rate_card"] == [{"role": "consultant", "rate": "150.00"}, {"role": "partner", "rate": "300.00"}]
    assert data["versions"][0]["amendment_kind"] is None
    assert data["versions"][0]["total"] == "60000.00"


quarter_hours = st.integers(1, 96).map(lambda q: D(q) * D("0.25"))
cents = st.integers(0, 10**10).map(lambda c: D(c).scaleb(-2))
rates = st.decimals(min_value=0, max_value=5000, places=4, allow_nan=False, allow_infinity=False)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))


@settings(deadline=None)
@given(hours=quarter_hours, bill=rates, cost=rates, worked=days, version=st.integers(1, 50))
def test_time_entries_round_trip(hours, bill, cost, worked, version):
    entry = time_entry(hours=hours, bill_rate=bill, cost_rate=cost, work_date=worked, version=version)
    assert from_json(TimeEntry, json.loads(json.dumps(to_json(entry)))) == entry
    # amount is the product to the nearest cent, never more than half a cent off
    assert abs(entry.amount - hours * bill) <= D("0.005")
    assert entry.amount.as_tuple().exponent == -2


@settings(deadline=None)
@given(st.lists(st.tuples(days, rates), min_size=0, max_size=6, unique_by=lambda t: t[0]))
def test_workers_with_any_cost_history_round_trip_sorted(history):
    w = attrs.evolve(worker(), hire_date=date(2000, 1, 1), cost_rates=[EffectiveRate(d, r, "GBP") for d, r in history])
    assert [r.effective_from for r in w.cost_rates] == sorted(d for d, _ in history)
    assert from_json(Worker, to_json(w)) == w


@settings(deadline=None)
@given(quantity=st.integers(-400, 400).map(lambda q: D(q) * D("0.25")), unit=rates)
def test_invoice_lines_round_trip_and_a_credit_mirrors_its_debit(quantity, unit):
    line = InvoiceLine.of("te-000042", "Advisory", quantity, unit)
    assert from_json(InvoiceLine, to_json(line)) == line
    assert InvoiceLine.of("te-000042", "Advisory", -quantity, unit).amount == -line.amount


@settings(deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["analyst", "consultant", "manager", "partner"]), cents), min_size=1,
                unique_by=lambda t: t[0]), cents)
def test_contracts_with_any_rate_card_round_trip(card, price):
    line = attrs.evolve(tm_line(), rate_card=[RateCardEntry(role, rate) for role, rate in card], price=price)
    c = attrs.evolve(contract(), versions=(ContractVersion.of(1, date(2024, 1, 1), (line,)),))
    assert from_json(Contract, to_json(c)) == c


# -- validators ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "changes", "message"),
    [
        (time_entry, {"hours": D("7.3")}, "TimeEntry.hours is 7.3; hours are quarter steps to 24"),
        (time_entry, {"hours": D("0")}, "TimeEntry.hours is 0;"),
        (time_entry, {"hours": D("24.25")}, "TimeEntry.hours is 24.25;"),
        (time_entry, {"bill_rate": 123.45}, "TimeEntry.bill_rate is the float 123.45; use Decimal only -- write Decimal('123.45')"),
        (time_entry, {"bill_rate": 150}, "TimeEntry.bill_rate is int 150; it must be a finite Decimal"),
        (time_entry, {"bill_rate": D("NaN")}, "TimeEntry.bill_rate is Decimal Decimal('NaN'); it must be a finite Decimal"),
        (time_entry, {"cost_rate": D("-1")}, "TimeEntry.cost_rate is -1; it must not be negative"),
        (time_entry, {"currency": "gbp"}, "TimeEntry.currency is 'gbp'; write an ISO 4217 code"),
        (time_entry, {"version": 0}, "TimeEntry.version is 0; it must be an int >= 1"),
        (time_entry, {"version": True}, "TimeEntry.version is True; it must be an int >= 1"),
        (time_entry, {"status": "posted"}, "TimeEntry.status is 'posted'; use one of ('draft', 'submitted', 'approved'"),
        (time_entry, {"gid": "te-1"}, "TimeEntry.gid is 'te-1'; it must be a gid like 'te-000001'"),
        (time_entry, {"worker_gid": "proj-000001"}, "TimeEntry.worker_gid is 'proj-000001'; it must be a gid like 'wkr-000001'"),
        (time_entry, {"work_date": datetime(2024, 3, 4, 9)}, "TimeEntry.work_date is datetime.datetime(2024, 3, 4, 9, 0)"),
        (expense, {"amount": D("100.005")}, "Expense.amount is 100.005; money is whole cents and not negative"),
        (expense, {"tax_amount": D("-1.00")}, "Expense.tax_amount is -1.00; money is whole cents and not negative"),
        (project, {"effective_to": date(2023, 12, 31)}, "Project.effective_to 2023-12-31 is before effective_from 2024-01-01"),
        (project, {"currency": "EUR"}, "Project proj-000001 is in EUR but its billing rule bills in GBP"),
        (project, {"customer_gid": "wkr-000001"}, "Project.customer_gid is 'wkr-000001'; it must be a gid like 'cust-000001'"),
        (assignment, {"allocation": D("1.5")}, "Assignment.allocation is 1.5; a share is above 0 and at most 1"),
        (task, {"wbs_code": "1.a"}, "Task.wbs_code is '1.a'; a WBS code is dotted numbers"),
        (customer, {"country": "GBR"}, "CustomerAccount.country is 'GBR'; write an ISO 3166 code"),
        (customer, {"bill_to": ()}, "CustomerAccount.bill_to is (); give 1 to 6 non-empty address lines"),
        (customer, {"tax": TaxTreatment("EU-RC", D("0"), True), "tax_registration": None},
         "CustomerAccount cust-000001: reverse charge 'EU-RC' needs the customer's tax_registration"),
        (customer, {"name": "  "}, "CustomerAccount.name is '  '; it must be a non-empty string"),
        (customer, {"source_ids": (SourceRef("crm", "A"), SourceRef("crm", "B"))},
         "CustomerAccount.source_ids has two entries with system 'crm'; keep one"),
        (worker, {"status": "terminated"}, "Worker wkr-000001 is terminated: set termination_date"),
        (worker, {"termination_date": date(2019, 1, 1)}, "Worker.termination_date 2019-01-01 is before hire_date 2020-05-04"),
        (milestone, {"accepted_on": None}, "Milestone ms-000001 is accepted, so accepted_on must be a date"),
        (milestone, {"status": "planned"}, "Milestone ms-000001 is planned, so completed_on must be None"),
        (milestone, {"accepted_on": date(2024, 7, 1)}, "Milestone.accepted_on 2024-07-01 is before completed_on 2024-07-12"),
        (invoice, {"total": D("995.00")}, "Invoice inv-000001: total 995.00 is not the sum of its lines 995.01"),
        (invoice, {"number": None}, "Invoice inv-000001 is issued, so it needs a number and issued_on"),
        (fulfilment, {"reference": "ms-000001"}, "a time_approved refers to a te- gid, not 'ms-000001'"),
        (fulfilment, {"amount": None}, "FulfilmentEvent ful-000001: a time_approved needs amount"),
        (payment, {"amount": D("0.00")}, "Payment pay-000001: amount must be above zero"),
        (contract, {"versions": ()}, "Contract.versions must not be empty"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_invariants_are_refused_with_a_message_naming_record_field_and_fix(build, changes, message):
    with pytest.raises(InvalidRecord, match=re.escape(message)):
        attrs.evolve(build(), **changes)


def test_audit_timestamps_are_utc_iso_strings():
    with pytest.raises(InvalidRecord, match=re.escape("Audit.recorded_at is '2024-03-01T10:30:00+01:00'; write now.astimezone(UTC)")):
        attrs.evolve(AUDIT, recorded_at="2024-03-01T10:30:00+01:00")
    with pytest.raises(InvalidRecord, match="Audit.recorded_at is '2024-03-01T09:30:00Z'"):
        attrs.evolve(AUDIT, recorded_at="2024-03-01T09:30:00Z")
    # Audit.at takes the environment's clock in any zone and records UTC.
    paris = timezone(timedelta(hours=1))
    audit = Audit.at(datetime(2024, 3, 1, 10, 30, tzinfo=paris), correlation_id="corr-1", source_event="psa:chg-9")
    assert audit.recorded_at == "2024-03-01T09:30:00+00:00"
    assert audit.causation_id is None
    with pytest.raises(InvalidRecord, match="needs an aware datetime"):
        Audit.at(datetime(2024, 3, 1, 9, 30), correlation_id="corr-1", source_event="psa:chg-9")


def test_contract_lines_tie_their_prices():
    with pytest.raises(InvalidRecord, match=re.escape("ContractLine L1 (t_and_m) has no rate_card")):
        attrs.evolve(tm_line(), rate_card=())
    with pytest.raises(InvalidRecord, match=re.escape("ContractLine L2 (fixed_fee): milestones sum to 25000.00, not the price 26000.00")):
        attrs.evolve(fixed_line(), price=D("26000.00"))
    # A retainer is months x monthly fee, exactly: 12 x 4500.00 = 54000.00.
    retainer = attrs.evolve(fixed_line(), billing_model="retainer", milestones=(), quantity=D("12"), rate=D("4500.00"),
                            price=D("54000.00"))
    assert retainer.price == D("54000.00")
    with pytest.raises(InvalidRecord, match=re.escape("12 months x 4500.00 is not the price 54000.01")):
        attrs.evolve(retainer, price=D("54000.01"))
    with pytest.raises(InvalidRecord, match=re.escape("has milestones; only fixed_fee lines bill by milestone")):
        attrs.evolve(fixed_line(), billing_model="t_and_m", rate_card=(RateCardEntry("consultant", D("1")),))


def test_contract_versions_know_their_baseline_and_totals():
    with pytest.raises(InvalidRecord, match=re.escape("the baseline (version 1) and only it has amendment_kind None; got 'rate_change'")):
        ContractVersion.of(1, date(2024, 1, 1), (tm_line(),), "rate_change")
    with pytest.raises(InvalidRecord, match="got None"):
        ContractVersion.of(2, date(2024, 1, 1), (tm_line(),))
    with pytest.raises(InvalidRecord, match=re.escape("total 60000.01 is not the sum of line prices 60000.00")):
        ContractVersion(version=1, effective_date=date(2024, 1, 1), lines=(tm_line(),), total=D("60000.01"))
    # 60000.00 + 25000.00
    assert ContractVersion.of(1, date(2024, 1, 1), (tm_line(), fixed_line())).total == D("85000.00")
    with pytest.raises(InvalidRecord, match="versions must run 1, 2, 3... with no gap or repeat; got \\[1, 3\\]"):
        v3 = ContractVersion.of(3, date(2024, 5, 1), (tm_line(),), "scope_change")
        attrs.evolve(contract(), versions=(contract().latest, v3))


# -- contract versions, in order --------------------------------------------------


def v(n: int, effective: date, rate: str, kind: str | None = "rate_change", *extra: ContractLine) -> ContractVersion:
    return ContractVersion.of(n, effective, (tm_line(rate), *extra), kind)


def test_with_version_appends_exactly_the_next_version():
    c1 = contract()
    c2 = c1.with_version(v(2, date(2024, 4, 1), "165.00"))
    assert [x.version for x in c2.versions] == [1, 2]
    assert c2.latest.version == 2 and c2.version(1) == c1.latest
    assert len(c1.versions) == 1  # records are values: the original is unchanged


def test_an_early_version_is_refused_so_the_flow_can_buffer_it():
    with pytest.raises(VersionOutOfOrder, match="version 3 arrived before version 2; buffer it") as raised:
        contract().with_version(v(3, date(2024, 6, 1), "170.00"))
    assert (raised.value.expected, raised.value.got, raised.value.contract_gid) == (2, 3, "ctr-000001")


def test_a_replayed_version_is_refused_as_already_applied():
    c2 = contract().with_version(v(2, date(2024, 4, 1), "165.00"))
    with pytest.raises(VersionOutOfOrder, match=re.escape("version 2 is already applied (latest is 2); a replay, drop it")):
        c2.with_version(v(2, date(2024, 4, 1), "165.00"))
    with pytest.raises(InvalidRecord, match="takes a ContractVersion, not dict"):
        c2.with_version({"version": 3})


def test_version_lookup_names_the_range():
    assert contract().version(1).version == 1
    with pytest.raises(LookupError, match="has versions 1 to 1; there is no version 2"):
        contract().version(2)


def test_rate_for_uses_the_version_in_force_on_the_day():
    # v1 from 1 Jan at 150.00; v2 from 1 Apr at 165.00; v3 from 1 Jun adds a fixed-fee line, T&M unchanged.
    c = (contract()
         .with_version(v(2, date(2024, 4, 1), "165.00"))
         .with_version(v(3, date(2024, 6, 1), "165.00", "scope_change", fixed_line())))
    assert c.rate_for("consultant", date(2024, 1, 1)) == D("150.00")
    assert c.rate_for("consultant", date(2024, 3, 31)) == D("150.00")
    assert c.rate_for("consultant", date(2024, 4, 1)) == D("165.00")
    assert c.rate_for("consultant", date(2024, 7, 1)) == D("165.00")
    assert c.in_force_on(date(2024, 7, 1)).version == 3
    assert c.rate_for("partner", date(2024, 7, 1)) == D("300.00")
    with pytest.raises(LookupError, match="not in force on 2023-12-31; its first version is effective 2024-01-01"):
        c.rate_for("consultant", date(2023, 12, 31))
    with pytest.raises(LookupError, match="version 3 \\(in force on 2024-07-01\\) has no rate for role 'intern'"):
        c.rate_for("intern", date(2024, 7, 1))


def test_a_retroactive_amendment_reprices_from_its_effective_date():
    # v2 from 1 Apr at 165.00; then v3, signed later but effective 1 Feb, at 170.00.
    c = contract().with_version(v(2, date(2024, 4, 1), "165.00")).with_version(v(3, date(2024, 2, 1), "170.00"))
    assert c.rate_for("consultant", date(2024, 1, 31)) == D("150.00")  # only v1 in force
    assert c.rate_for("consultant", date(2024, 2, 1)) == D("170.00")  # v3 beats v1
    assert c.rate_for("consultant", date(2024, 5, 1)) == D("170.00")  # v3 beats v2: the later amendment wins


def test_rate_for_asks_for_a_line_when_two_lines_disagree():
    other = tm_line("175.00", line_id="L9")
    c = attrs.evolve(contract(), versions=(ContractVersion.of(1, date(2024, 1, 1), (tm_line("150.00"), other)),))
    with pytest.raises(LookupError, match="rates role 'consultant' at 150.00, 175.00 on different lines: pass line_id"):
        c.rate_for("consultant", date(2024, 2, 1))
    assert c.rate_for("consultant", date(2024, 2, 1), line_id="L9") == D("175.00")
    assert c.rate_for("partner", date(2024, 2, 1)) == D("300.00")  # both lines agree
    with pytest.raises(LookupError, match="has no line 'L5'"):
        c.rate_for("consultant", date(2024, 2, 1), line_id="L5")


# -- worker cost rates ----------------------------------------------------------------


def test_cost_rate_on_picks_the_rate_in_force():
    w = worker()  # 80.00 from 1 Jan, 84.00 from 1 Jul
    assert w.cost_rate_on(date(2024, 1, 1)).rate == D("80.00")
    assert w.cost_rate_on(date(2024, 6, 30)).rate == D("80.00")
    assert w.cost_rate_on(date(2024, 7, 1)) == EffectiveRate(date(2024, 7, 1), D("84.00"), "GBP")
    with pytest.raises(LookupError, match="no cost rate in force on 2023-12-31 \\(earliest: 2024-01-01\\)"):
        w.cost_rate_on(date(2023, 12, 31))


def test_a_retroactive_cost_rate_changes_the_past_from_its_date_only():
    before = worker()
    after = before.with_cost_rate(EffectiveRate(date(2024, 4, 1), D("82.00"), "GBP"))  # told in August
    assert after.cost_rate_on(date(2024, 3, 31)).rate == D("80.00")
    assert after.cost_rate_on(date(2024, 5, 15)).rate == D("82.00")
    assert after.cost_rate_on(date(2024, 7, 2)).rate == D("84.00")
    assert before.cost_rate_on(date(2024, 5, 15)).rate == D("80.00")  # the old record is unchanged
    assert [r.effective_from for r in after.cost_rates] == [date(2024, 1, 1), date(2024, 4, 1), date(2024, 7, 1)]
    # The HRIS corrects the April rate: same day replaces, it does not duplicate.
    corrected = after.with_cost_rate(EffectiveRate(date(2024, 4, 1), D("82.50"), "GBP"))
    assert len(corrected.cost_rates) == 3
    assert corrected.cost_rate_on(date(2024, 5, 15)).rate == D("82.50")


def test_cost_rates_on_the_same_day_are_refused():
    rate = EffectiveRate(date(2024, 1, 1), D("80.00"), "GBP")
    with pytest.raises(InvalidRecord, match="two entries with effective_from datetime.date\\(2024, 1, 1\\)"):
        attrs.evolve(worker(), cost_rates=(rate, attrs.evolve(rate, rate=D("81.00"))))


# -- money arithmetic, worked by hand ---------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "rate", "amount"),
    [
        ("7.25", "123.45", "895.01"),  # 7 x 123.45 + 123.45 / 4 = 864.15 + 30.8625 = 895.0125 -> down
        ("0.25", "10.10", "2.53"),  # 2.525 -> half up (half-even would give 2.52)
        ("1.50", "99.99", "149.99"),  # 149.985 -> half up
        ("8", "150", "1200.00"),  # exact, still two places
        ("0.75", "0.01", "0.01"),  # 0.0075 -> up
        ("0.25", "0.01", "0.00"),  # 0.0025 -> down
    ],
)
def test_time_entry_amount_rounds_half_up_to_the_cent(hours, rate, amount):
    entry = time_entry(hours=D(hours), bill_rate=D(rate))
    assert str(entry.amount) == amount


def test_a_credit_line_rounds_like_the_debit_it_reverses():
    assert InvoiceLine.of("te-000001", "reversal", D("-0.25"), D("10.10")).amount == D("-2.53")  # -2.525 away from zero
    with pytest.raises(InvalidRecord, match=re.escape("amount 2.52 is not 0.25 x 10.10 rounded half-up to the cent (2.53)")):
        InvoiceLine(source_ref="te-000001", description="x", quantity=D("0.25"), unit_amount=D("10.10"), amount=D("2.52"))


# -- identity: gids and source ids ---------------------------------------------------------


def test_gids_come_from_counters():
    assert format_gid("cust", 1) == "cust-000001"
    assert Project.gid_for(1234567) == "proj-1234567"
    assert TimeEntry.gid_for(42) == "te-000042"
    for bad in (0, -1, True):
        with pytest.raises(InvalidRecord, match="a counter >= 1"):
            format_gid("cust", bad)


def test_source_ids_are_sorted_by_system_whatever_the_input_order():
    c = attrs.evolve(customer(), source_ids=[SourceRef("psa", "9"), SourceRef("billing", "cus_1"), SourceRef("crm", "1")])
    assert [r.system for r in c.source_ids] == ["billing", "crm", "psa"]


def test_id_in_and_with_source():
    c = customer()  # crm 001A, erp C-17
    assert c.id_in("crm") == "001A"
    assert c.id_in("billing") is None
    linked = c.with_source("billing", "cus_9")
    assert linked.id_in("billing") == "cus_9"
    assert [r.system for r in linked.source_ids] == ["billing", "crm", "erp"]
    assert c.id_in("billing") is None  # evolved, not mutated
    assert linked.with_source("billing", "cus_9") is linked  # idempotent


def test_with_source_refuses_a_second_id_in_the_same_system():
    c = customer()
    with pytest.raises(SourceConflict, match="cust-000001 is already erp 'C-17'; refusing erp 'C-18'"):
        c.with_source("erp", "C-18")
    relinked = c.without_source("erp").with_source("erp", "C-18")
    assert relinked.id_in("erp") == "C-18"
    with pytest.raises(InvalidRecord, match="SourceRef.system is 'ERP'; a system is a lowercase name"):
        c.with_source("ERP", "C-18")


# -- from_json refusals ------------------------------------------------------------------------


def _bad(cls, data, message):
    with pytest.raises(CodecError, match=re.escape(message)):
        from_json(cls, data)


def test_from_json_refuses_unknown_and_missing_keys():
    data = to_json(payment())
    _bad(Payment, {**data, "amount_usd": "1.00"}, "Payment: unknown key(s) amount_usd for a Payment; its fields are")
    _bad(Payment, {k: x for k, x in data.items() if k != "received_on"}, "Payment: a Payment needs received_on")
    _bad(Payment, {**data, "audit": {**data["audit"], "user": "x"}}, "Payment.audit: unknown key(s) user for a Audit")


def test_from_json_refuses_wrong_types_naming_the_field():
    data = to_json(time_entry())
    _bad(TimeEntry, {**data, "hours": 7.25}, "TimeEntry.hours: expected a decimal string like '1250.00'")
    _bad(TimeEntry, {**data, "hours": 7}, "TimeEntry.hours: expected a decimal string like '1250.00' (money is never a JSON number), got an integer 7")
    _bad(TimeEntry, {**data, "hours": "7,25"}, "TimeEntry.hours: expected a decimal string")
    _bad(TimeEntry, {**data, "hours": "1e1"}, "TimeEntry.hours: expected a decimal string")
    _bad(TimeEntry, {**data, "hours": "NaN"}, "TimeEntry.hours: expected a decimal string")
    _bad(TimeEntry, {**data, "version": True}, "TimeEntry.version: expected an integer, got a boolean True")
    _bad(TimeEntry, {**data, "version": "2"}, "TimeEntry.version: expected an integer, got a string '2'")
    _bad(TimeEntry, {**data, "worker_gid": None}, "TimeEntry.worker_gid: expected a string, got null")
    _bad(TimeEntry, {**data, "work_date": "2024-02-30"}, "TimeEntry.work_date: expected an ISO date string like '2024-03-01'")
    _bad(TimeEntry, {**data, "work_date": "2024-03-04T00:00:00"}, "TimeEntry.work_date: expected an ISO date string")
    _bad(TimeEntry, {**data, "source_ids": {"psa": "T-9"}}, "TimeEntry.source_ids: expected a list, got an object")
    _bad(TimeEntry, {**data, "source_ids": [{"system": "psa"}]}, "TimeEntry.source_ids[0]: a SourceRef needs id")
    _bad(TimeEntry, [], "TimeEntry: expected an object for a TimeEntry, got a list []")


def test_from_json_paths_reach_into_nested_records():
    data = to_json(contract())
    data["versions"][0]["lines"][0]["rate_card"][1]["rate"] = 300
    _bad(Contract, data, "Contract.versions[0].lines[0].rate_card[1].rate: expected a decimal string")
    data = to_json(project())
    data["billing_rule"]["hold_until_acceptance"] = "no"
    _bad(Project, data, "Project.billing_rule.hold_until_acceptance: expected true or false, got a string 'no'")


def test_from_json_reports_broken_invariants_with_the_record_type():
    data = to_json(time_entry())
    _bad(TimeEntry, {**data, "hours": "7.30"}, "TimeEntry: TimeEntry.hours is 7.30; hours are quarter steps")
    data = to_json(contract())
    data["versions"][0]["total"] = "1.00"
    _bad(Contract, data, "Contract.versions[0]: ContractVersion 1: total 1.00 is not the sum of line prices 60000.00")


def test_optional_fields_may_be_omitted_and_mean_none():
    data = to_json(worker())
    del data["termination_date"]
    assert from_json(Worker, data).termination_date is None


@attrs.frozen
class _WithDict:
    tags: dict


@attrs.frozen
class _WithUnion:
    amount: int | str


def test_codec_refuses_types_it_cannot_round_trip():
    with pytest.raises(TypeError, match="_WithDict.tags: the codec cannot encode <class 'dict'>"):
        from_json(_WithDict, {"tags": {}})
    with pytest.raises(TypeError, match="_WithUnion.amount: the codec handles X \\| None"):
        from_json(_WithUnion, {"amount": 1})
    with pytest.raises(TypeError, match="to_json cannot encode float 1.5"):
        to_json(_WithUnion(1.5))
    with pytest.raises(TypeError, match="to_json takes a model record"):
        to_json({"gid": "cust-000001"})
    with pytest.raises(TypeError, match="from_json needs a model record class"):
        from_json(dict, {})
