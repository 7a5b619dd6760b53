"""The invariants every business world must hold after healing.

Each check reads ground truth -- the fake systems' records and effect logs,
the trace, and of the core's store only its dead-letter and exception
queues -- and returns ``{"name", "ok", "violations", "checked", "excused"}``:
each violation names the business keys, the correlation id and the last
events of its chain; ``checked`` says how much was verified, so a pass is
never vacuous (a check that finds nothing to verify where the world gave
reason to expect something fails and says so). How a core's records point
back to their sources is fixed by the integration contract
(docs/integration-contract.md); the checks rely on nothing else, so a
user's own core is judged exactly like the reference core.

A missing downstream record is excused when the core's exception queue or
dead-letter queue names it (or the deal, account or line it belongs to):
that is a gap accounted for, counted in ``excused``. A duplicate, a wrong
amount or an orphan is never excused. Whatever is missing with no
explanation is also what "nothing silently lost" lists, source by source.

The checks, by module (ground truth is indexed in `invariants_truth`;
violation wording, event chains and excuses are in `invariants_evidence`):

  invariants_setup      ERP customer per account, PSA project per deal,
                        every deal set up in every system
  invariants_postings   ERP time postings exactly once, at the contract rate;
                        expense postings exactly once
  invariants_billing    every billable thing billed once; invoices tie
  invariants_contracts  latest contract version everywhere, applied in order;
                        revenue schedules tie; no closed-period postings
  invariants_reconcile  PSA = ERP = billing = revenue per project and month;
                        traceability (coverage %)
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .invariants_billing import analyse_billed_once, analyse_invoices
from .invariants_contracts import (
    analyse_closed_periods, analyse_latest_version, analyse_revenue_schedules, analyse_version_order,
)
from .invariants_postings import analyse_expense_postings, analyse_time_amounts, analyse_time_postings
from .invariants_reconcile import analyse_reconciliation, analyse_traceability
from .invariants_setup import analyse_deal_setup, analyse_erp_customers, analyse_psa_projects
from .invariants_truth import Findings, Truth, result

__all__ = ["check_world", "CHECKS", "ANALYSES", "analyses", "Truth"]

#: the business analyses, in report order; each is memoised per Truth
ANALYSES = [
    analyse_erp_customers,
    analyse_psa_projects,
    analyse_deal_setup,
    analyse_time_postings,
    analyse_time_amounts,
    analyse_expense_postings,
    analyse_billed_once,
    analyse_invoices,
    analyse_latest_version,
    analyse_version_order,
    analyse_revenue_schedules,
    analyse_closed_periods,
    analyse_reconciliation,
    analyse_traceability,
]


def analyses(truth: Truth) -> list[Findings]:
    return [truth.memo(a.__name__, a) for a in ANALYSES]


def liveness(truth: Truth, outcome: dict) -> dict:
    world = truth.world
    name = "liveness: quiet after healing"
    if outcome.get("quiet"):
        return result(name, [], checked=1)
    return result(name, [
        f"the world was still busy {world.liveness_limit_us // 86_400_000_000} days after every fault was healed "
        f"(core idle: {world.core.idle()}, messages in flight: {world.sim.network.in_flight})"], checked=1)


def no_crashed_code(truth: Truth, outcome: dict) -> dict:
    """An exception escaping a fake or the core is a bug, never weather."""
    errors = truth.sim.trace.kind_counts.get("actor.error", 0)
    return result("no unhandled exceptions", [f"{errors} actor.error events in the trace"] if errors else [],
                  checked=truth.sim.trace.seq)


def nothing_silently_lost(truth: Truth, outcome: dict) -> dict:
    """Every operation the core gave up on is visible, with a reason; every
    source event that did not get through is explained by an exception or
    dead letter. Unexplained gaps are listed per source (deal, time entry,
    expense), gathering what every other check found missing."""
    violations = []
    for key, item, _ in truth.queue_items:
        if not item.get("reason") and not item.get("code"):
            violations.append(f"{key} ({item.get('op')}) has no reason")
    by_source: dict[str, list[str]] = defaultdict(list)
    gaps = 0
    for findings in analyses(truth):
        for gap in findings.gaps:
            gaps += 1
            if truth.explain(gap) is None:
                by_source[gap.corr or "?"].append(gap.what)
    for corr, whats in sorted(by_source.items()):
        shown = "; ".join(whats[:4]) + (f"; and {len(whats) - 4} more" if len(whats) > 4 else "")
        violations.append(truth.say(f"{corr} did not get through and no exception or dead letter says why: {shown}",
                                    corr))
    sources = len(truth.won) + len(truth.entries) + len(truth.expense_entries) + len(truth.psa_milestones)
    return result("nothing silently lost", violations, checked=len(truth.queue_items) + sources,
                  excused=gaps - sum(len(w) for w in by_source.values()))


def _from_analysis(analyse):
    def check(truth: Truth, outcome: dict) -> dict:
        return truth.memo(analyse.__name__, analyse).to_result(truth)
    check.__name__ = analyse.__name__.replace("analyse_", "check_")
    check.__doc__ = analyse.__doc__
    return check


CHECKS = [liveness, no_crashed_code, *(_from_analysis(a) for a in ANALYSES), nothing_silently_lost]


def check_world(world, outcome: dict) -> list[dict[str, Any]]:
    from .kpis import truth_for

    truth = truth_for(world, fresh=True)
    return [c(truth, outcome) for c in CHECKS]
