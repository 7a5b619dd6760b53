"""The firm generator: reproducible, realistic in volume, internally consistent."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from fake_systems.firm_generator import (
    ACCEPTANCE_WINDOW_DAYS,
    FirmParams,
    FirmParamsError,
    business_days,
    firm_to_json,
    generate_firm,
)
from fake_systems.firm_model import (
    APPROVED,
    FIXED_FEE,
    FLAG_DUPLICATE_NAME,
    FLAG_MISSING_TAX_ID,
    MANAGED_SERVICE,
    RECALLED_CORRECTED,
    REJECTED,
    RETAINER,
    SCOPE_CHANGE,
    Firm,
    TimeEntry,
)
from simulator.random_streams import RandomStreams

ROOT = Path(__file__).resolve().parents[2]
SEED = 2026


@pytest.fixture(scope="module")
def firm500() -> Firm:
    return generate_firm(FirmParams(consultants=500), RandomStreams(SEED))


@pytest.fixture(scope="module")
def firm500_3m() -> Firm:
    return generate_firm(FirmParams(consultants=500, months=3), RandomStreams(SEED))


def full_month_workers(firm: Firm, month_index: int) -> set[str]:
    """Workers employed on every business day of the month."""
    month = firm.months[month_index]
    ended = {
        e.worker_id
        for m in firm.months[: month_index + 1]
        for e in m.hr_events
        if e.kind == "termination"
    }
    return {w.id for w in firm.workers if w.hire_date < month.month and w.id not in ended}


# -- reproducibility --------------------------------------------------------


def test_same_seed_gives_the_same_firm_byte_for_byte(firm500):
    again = generate_firm(FirmParams(consultants=500), RandomStreams(SEED))
    assert firm_to_json(again) == firm_to_json(firm500)
    assert again == firm500


_HASH_SCRIPT = """
import hashlib
from fake_systems.firm_generator import FirmParams, generate_firm, firm_to_json
from simulator.random_streams import RandomStreams
firm = generate_firm(FirmParams(consultants=80, months=2), RandomStreams(11))
print(hashlib.sha256(firm_to_json(firm).encode()).hexdigest())
"""


def test_same_seed_gives_the_same_firm_in_processes_with_different_hash_seeds():
    digests = []
    for hash_seed in ("0", "4242"):
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=hash_seed)
        done = subprocess.run(
            [sys.executable, "-c", _HASH_SCRIPT],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        digests.append(done.stdout.strip())
    here = generate_firm(FirmParams(consultants=80, months=2), RandomStreams(11))
    assert digests[0] == digests[1] == hashlib.sha256(firm_to_json(here).encode()).hexdigest()


def test_another_seed_gives_another_firm():
    a = generate_firm(FirmParams(consultants=50), RandomStreams(1))
    b = generate_firm(FirmParams(consultants=50), RandomStreams(2))
    assert firm_to_json(a) != firm_to_json(b)
    assert [w.last_name for w in a.workers] != [w.last_name for w in b.workers]
    hours = [[e.hours for e in f.months[0].time_entries] for f in (a, b)]
    assert hours[0] != hours[1]


def test_later_months_never_change_earlier_ones(firm500, firm500_3m):
    assert firm500_3m.months[0] == firm500.months[0]
    n = len(firm500.workers)
    assert firm500_3m.workers[:n] == firm500.workers
    assert firm500_3m.clients == firm500.clients
    assert firm500_3m.deals[: len(firm500.deals)] == firm500.deals
    assert firm500_3m.assignments[: len(firm500.assignments)] == firm500.assignments


def test_faker_is_used_for_names_only_not_per_record():
    streams = RandomStreams(5)
    calls = Counter()
    real_faker = streams.faker

    class Counting:
        def __init__(self, fk):
            self._fk = fk

        def __getattr__(self, method):
            def call(*args, **kwargs):
                calls[method] += 1
                return getattr(self._fk, method)(*args, **kwargs)

            return call

    streams.faker = lambda name, locale="en_US": Counting(real_faker(name, locale))
    firm = generate_firm(FirmParams(consultants=200, months=2), streams)
    entries = sum(len(m.time_entries) for m in firm.months)
    assert set(calls) <= {"first_name", "last_name", "company"}
    assert calls["first_name"] == calls["last_name"] == len(firm.workers)
    assert calls["company"] < 2 * len(firm.clients) < entries


# -- volumes at 500 consultants (DOMAIN.md, "What the firm looks like") --------


def test_month_volumes_at_500_consultants_match_the_benchmarks(firm500):
    month = firm500.months[0]
    full = full_month_workers(firm500, 0)
    assert len(full) > 480
    entries = Counter(e.worker_id for e in month.time_entries)
    hours: dict[str, Decimal] = defaultdict(Decimal)
    for e in month.time_entries:
        hours[e.worker_id] += e.hours
    assert all(20 <= entries[w] <= 60 for w in full), "20-60 time entries per consultant"
    mean_hours = sum(hours[w] for w in full) / len(full)
    assert 100 <= mean_hours <= 140, mean_hours
    available = Decimal(8 * month.business_days)
    utilisation = mean_hours / available
    assert abs(utilisation - Decimal("0.69")) <= Decimal("0.04"), utilisation
    mean_target = sum(w.target_utilisation for w in firm500.workers) / len(firm500.workers)
    assert abs(mean_target - Decimal("0.69")) <= Decimal("0.03"), mean_target


def test_a_month_has_every_kind_of_activity(firm500_3m):
    s = firm500_3m.summary()
    assert s["workers"] > 500 and 40 <= s["clients"] <= 60
    for kind in ("expenses", "milestone_events", "amendments", "hr_events"):
        assert s[kind] > 0, kind
    for model in ("t_and_m", "fixed_fee", "retainer", "managed_service"):
        assert s["lines_" + model] > 0, model
    assert 0 < s["time_entries_rejected"] < s["time_entries"] * 0.05
    assert 0 < s["time_entries_recalled"] < s["time_entries"] * 0.03
    assert any(len(d.lines) > 1 and len({ln.billing_model for ln in d.lines}) > 1
               for d in firm500_3m.deals), "a contract family mixes billing models"
    hr_kinds = {e.kind for m in firm500_3m.months for e in m.hr_events}
    assert hr_kinds == {"hire", "cost_rate_change", "termination"}
    assert all(m.closed_deal_ids for m in firm500_3m.months)


def test_summary_counts_the_records(firm500):
    s = firm500.summary()
    m = firm500.months[0]
    assert s["workers"] == len(firm500.workers)
    assert s["time_entries"] == len(m.time_entries)
    assert s["contract_lines"] == sum(len(d.lines) for d in firm500.deals)
    assert s["milestones"] == sum(len(ln.milestones) for d in firm500.deals for ln in d.lines)
    assert s["time_entries_rejected"] == sum(e.outcome == REJECTED for e in m.time_entries)


# -- money --------------------------------------------------------------------


def all_lines(firm: Firm):
    yield from (ln for d in firm.deals for ln in d.lines)
    for m in firm.months:
        yield from (a.added_line for a in m.amendments if a.added_line is not None)


def test_fixed_fee_milestones_sum_exactly_to_the_line_price(firm500_3m):
    fixed = [ln for ln in all_lines(firm500_3m) if ln.billing_model == FIXED_FEE]
    assert len(fixed) > 20
    for ln in fixed:
        assert len(ln.milestones) >= 2
        assert sum(m.amount for m in ln.milestones) == ln.price, ln.id
        assert all(m.amount > 0 and m.amount.as_tuple().exponent == -2 for m in ln.milestones)
        dues = [m.due_date for m in ln.milestones]
        assert dues == sorted(dues) and dues[-1] <= ln.service_end
        assert [m.seq for m in ln.milestones] == list(range(1, len(dues) + 1))


def test_recurring_lines_price_is_fee_times_term(firm500_3m):
    recurring = [
        ln for ln in all_lines(firm500_3m) if ln.billing_model in (RETAINER, MANAGED_SERVICE)
    ]
    assert recurring
    for ln in recurring:
        assert ln.price == ln.monthly_fee * ln.term_months
        assert ln.milestones == () and ln.rate_card == ()


def test_bill_rates_exceed_cost_rates_in_every_currency(firm500):
    for role in firm500.roles:
        assert [r.currency for r in role.rates] == sorted(firm500.params.currencies)
        for r in role.rates:
            assert r.cost_rate.as_tuple().exponent == r.bill_rate.as_tuple().exponent == -2
            assert Decimal("1.8") <= r.bill_rate / r.cost_rate <= Decimal("3")
    for a in firm500.assignments:
        role = next(r for r in firm500.roles if r.id == a.role_id)
        assert a.bill_rate > role.rate(a.currency).cost_rate


# -- time, expenses, events -------------------------------------------------------


def test_business_days_are_monday_to_friday():
    assert len(business_days(date(2026, 1, 1))) == 22
    assert len(business_days(date(2026, 2, 1))) == 20
    assert business_days(date(2026, 1, 1))[:2] == [date(2026, 1, 1), date(2026, 1, 2)]
    assert date(2026, 1, 5) in business_days(date(2026, 1, 1))  # Monday after a weekend
    assert date(2026, 1, 3) not in business_days(date(2026, 1, 1))  # Saturday


def test_time_entries_are_on_business_days_of_their_month_and_assigned_projects(firm500_3m):
    assignments = {a.id: a for a in firm500_3m.assignments}
    tasks = {t.id: t for p in firm500_3m.projects for t in p.tasks}
    workers = {w.id: w for w in firm500_3m.workers}
    ended = {e.worker_id: e.effective_date for m in firm500_3m.months for e in m.hr_events
             if e.kind == "termination"}  # fmt: skip
    quarter = Decimal("0.25")
    for month in firm500_3m.months:
        days = set(business_days(month.month))
        assert len(days) == month.business_days
        for e in month.time_entries:
            a = assignments[e.assignment_id]
            assert e.work_date in days and e.work_date.weekday() < 5, e
            assert (a.worker_id, a.project_id) == (e.worker_id, e.project_id), e
            assert a.start <= e.work_date <= a.end, e
            assert tasks[e.task_id].project_id == e.project_id, e
            assert workers[e.worker_id].hire_date <= e.work_date <= ended.get(e.worker_id, date.max)
            assert e.hours > 0 and e.hours % quarter == 0 and e.hours.as_tuple().exponent == -2


def test_assignments_fit_their_project_and_worker(firm500_3m):
    projects = {p.id: p for p in firm500_3m.projects}
    workers = {w.id: w for w in firm500_3m.workers}
    shares: dict[str, Decimal] = defaultdict(Decimal)
    for a in firm500_3m.assignments:
        p = projects[a.project_id]
        assert p.start <= a.start <= a.end == p.end, a
        assert a.start >= workers[a.worker_id].hire_date, a
        assert a.currency == p.currency and a.role_id == workers[a.worker_id].role_id
        shares[a.worker_id] += a.allocation
    assert set(shares) == set(workers), "everyone is staffed"


def test_time_entry_outcomes_are_mostly_approved_with_corrections_only_when_recalled(firm500):
    entries = firm500.months[0].time_entries
    outcomes = Counter(e.outcome for e in entries)
    assert set(outcomes) == {APPROVED, REJECTED, RECALLED_CORRECTED}
    assert outcomes[APPROVED] > 0.9 * len(entries)
    for e in entries:
        if e.outcome == RECALLED_CORRECTED:
            assert e.corrected_hours is not None and e.corrected_hours != e.hours
            assert e.corrected_hours > 0 and e.corrected_hours % Decimal("0.25") == 0
        else:
            assert e.corrected_hours is None


def test_expenses_are_on_assigned_projects_with_tax_and_a_billable_flag(firm500):
    entities = {e.id: e for e in firm500.entities}
    workers = {w.id: w for w in firm500.workers}
    assigned = {(a.worker_id, a.project_id) for a in firm500.assignments}
    expenses = firm500.months[0].expenses
    assert {x.billable for x in expenses} == {True, False}
    for x in expenses:
        w = workers[x.worker_id]
        assert (x.worker_id, x.project_id) in assigned
        assert x.currency == w.cost_currency and x.amount > 0
        rate = entities[w.entity_id].tax_regime.services_rate
        assert x.tax_amount == (x.amount * rate).quantize(Decimal("0.01"))
        assert x.incurred_on.weekday() < 5 and x.incurred_on.month == 1


def test_milestones_complete_before_acceptance_and_late_means_late(firm500_3m):
    due = {m.id: m.due_date for ln in all_lines(firm500_3m) for m in ln.milestones}
    completed, accepted = {}, {}
    for month in firm500_3m.months:
        for ev in month.milestone_events:
            assert (ev.on.year, ev.on.month) == (month.month.year, month.month.month)
            book = completed if ev.kind == "completed" else accepted
            assert ev.milestone_id not in book
            book[ev.milestone_id] = ev
    assert completed and accepted
    assert any(ev.late for ev in accepted.values())
    for mid, ev in accepted.items():
        assert mid in completed and completed[mid].on <= ev.on
        assert ev.late == ((ev.on - due[mid]).days > ACCEPTANCE_WINDOW_DAYS)


def test_amendments_are_versioned_per_deal(firm500_3m):
    versions = defaultdict(list)
    for month in firm500_3m.months:
        for a in month.amendments:
            versions[a.deal_id].append(a.version)
            if a.kind == SCOPE_CHANGE:
                assert a.added_line.billing_model == FIXED_FEE
                assert a.price_delta == a.added_line.price
    assert versions
    for vs in versions.values():
        assert vs == list(range(2, len(vs) + 2))


def test_hr_events_are_effective_dated_in_their_month(firm500_3m):
    workers = {w.id: w for w in firm500_3m.workers}
    for month in firm500_3m.months:
        for e in month.hr_events:
            assert (e.effective_date.year, e.effective_date.month) == (
                month.month.year, month.month.month,
            )  # fmt: skip
            if e.kind == "hire":
                assert workers[e.worker_id].hire_date == e.effective_date
            if e.kind == "cost_rate_change":
                assert e.new_cost_rate > e.old_cost_rate


# -- clients ----------------------------------------------------------------------


def test_awkward_clients_are_present_and_flagged(firm500):
    regimes = {"GB", "DE", "FR", "NL", "IE", "ES", "AU"}  # countries needing a tax id
    clients = {c.id: c for c in firm500.clients}
    missing = [c for c in firm500.clients if FLAG_MISSING_TAX_ID in c.flags]
    twins = [c for c in firm500.clients if FLAG_DUPLICATE_NAME in c.flags]
    assert missing and twins
    assert all(c.tax_id is None and c.country in regimes for c in missing)
    for c in firm500.clients:
        if c.country in regimes and FLAG_MISSING_TAX_ID not in c.flags:
            if c.country == "AU":
                assert c.tax_id.isdigit() and len(c.tax_id) == 11  # an ABN
            else:
                assert c.tax_id.startswith(c.country)
    for t in twins:
        original = clients[t.duplicate_of]
        assert t.name != original.name
        assert (t.country, t.tax_id, t.currency, t.bill_to_entity_id) == (
            original.country, original.tax_id, original.currency, original.bill_to_entity_id,
        )  # fmt: skip
    assert len({c.name for c in firm500.clients}) == len(firm500.clients)


# -- records and encoding ------------------------------------------------------------


def test_ids_are_sequential_counters_per_kind(firm500):
    assert [w.id for w in firm500.workers[:3]] == ["W000001", "W000002", "W000003"]
    ids = [e.id for e in firm500.months[0].time_entries]
    assert ids == [f"TE{n:07d}" for n in range(1, len(ids) + 1)]
    every = [w.id for w in firm500.workers] + [c.id for c in firm500.clients]
    assert len(set(every)) == len(every)


def test_records_are_frozen_plain_data_and_the_encoding_has_no_floats(firm500):
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        firm500.workers[0].cost_rate = Decimal("1.00")
    assert all(isinstance(getattr(firm500, f.name), tuple)
               for f in attrs.fields(Firm) if f.name not in ("seed", "params"))  # fmt: skip
    encoded = firm_to_json(firm500)

    def walk(x):
        assert not isinstance(x, float), x
        for v in x.values() if isinstance(x, dict) else x if isinstance(x, list) else ():
            walk(v)

    walk(json.loads(encoded, parse_float=float))
    assert '"hours":"' in encoded and '"work_date":"2026-01-' in encoded
    bad = attrs.evolve(firm500.months[0].time_entries[0], hours=1.5)
    with pytest.raises(TypeError, match="float"):
        firm_to_json(attrs.evolve(firm500, months=(attrs.evolve(
            firm500.months[0], time_entries=(bad,)),)))  # fmt: skip


def test_time_entry_encoding_is_canonical():
    e = TimeEntry("TE0000001", "W000001", "A000001", "P00001", "T000001",
                  date(2026, 1, 2), Decimal("7.25"), APPROVED)  # fmt: skip
    from fake_systems.firm_model import _plain

    assert json.dumps(_plain(e), sort_keys=True) == json.dumps({
        "assignment_id": "A000001", "corrected_hours": None, "hours": "7.25", "id": "TE0000001",
        "outcome": "approved", "project_id": "P00001", "task_id": "T000001",
        "work_date": "2026-01-02", "worker_id": "W000001",
    }, sort_keys=True)  # fmt: skip


# -- parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"consultants": 0}, ["consultants", "1 to 50000", "got 0"]),
        ({"consultants": True}, ["consultants", "got True"]),
        ({"consultants": "500"}, ["consultants", "got '500'"]),
        ({"clients": 2}, ["clients", "3 to 50000"]),
        ({"months": 0}, ["months", "1 to 36"]),
        ({"months": 37}, ["months", "1 to 36"]),
        ({"entities": 0}, ["entities", "1 to 6"]),
        ({"entities": 7}, ["entities", "1 to 6", "add currencies"]),
        ({"currencies": ("CAD",), "entities": 2}, ["entities", "1 to 1"]),
        ({"currencies": ()}, ["currencies", "non-empty"]),
        ({"currencies": "USD"}, ["currencies", "'USD'"]),
        ({"currencies": ("USD", "XYZ")}, ["currencies", "XYZ"]),
        ({"currencies": ("USD", "USD")}, ["currencies", "distinct"]),
        ({"start": date(2026, 1, 15)}, ["start", "first day of a month", "date(2026, 1, 1)"]),
        ({"start": datetime(2026, 1, 1)}, ["start", "datetime.date"]),
    ],
)
def test_bad_params_raise_a_value_error_naming_the_parameter_and_range(kwargs, fragments):
    with pytest.raises(ValueError) as info:
        FirmParams(**kwargs)
    assert isinstance(info.value, FirmParamsError)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_good_params_are_accepted_and_clients_are_derived():
    assert FirmParams().client_count == 50
    assert FirmParams(consultants=5).client_count == 3
    assert FirmParams(consultants=5, clients=9).client_count == 9
    assert FirmParams(currencies=["GBP"], entities=1).currencies == ("GBP",)
    small_params = FirmParams(consultants=5, currencies=("GBP",), entities=1)
    small = generate_firm(small_params, RandomStreams(3))
    assert [e.country for e in small.entities] == ["GB"]
    assert len(small.clients) == 3 and small.months[0].time_entries


def test_generate_firm_rejects_the_wrong_arguments():
    with pytest.raises(TypeError, match="FirmParams"):
        generate_firm({"consultants": 5}, RandomStreams(1))
    with pytest.raises(TypeError, match="RandomStreams"):
        generate_firm(FirmParams(consultants=5), 1)
