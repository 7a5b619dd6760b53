"""Time and expenses to finance: approved work into the ERP, the bill and
the revenue engine -- exactly once, and undone when the approval is.

From the PSA's change feed (kind ``"time_entry"``) the flow keeps each
entry's newest snapshot and decides, per entry, which version should stand
in the books: the current one if it is approved, else none
(`time_state`). A version that should stand is priced under the contract
and posted (ERP actual, and for billable T&M work an invoice item and a
revenue event); a version that stood and no longer does -- recalled to
draft, or corrected -- is reversed first (`time_postings`). Rejected and
draft entries are never posted. From the expense system's feed (kind
``"entry"``), approved lines on a project are posted (and, billable, billed)
and marked (`time_expenses`).

Everything about one deal runs in the deal's outbox line (aggregate
``deal:<Opportunity Id>``), after the provisioning queued there before it.
Work on a deal whose provisioning is not finished waits in ``t2f_waiting``;
the ``t2f-waiting`` poller (store only, no vendor calls) releases it when it
is, and after `WAIT_REPORT_US` reports it to IT once (it keeps waiting).

References written, per the integration contract: ERP ``projectActuals``
``te:<id>:v<n>`` / ``te:<id>:v<n>:rev`` / ``ex:<EntryId>``; billing items
source ``time_entry`` ``<id>:v<n>`` (a reversal: ``adjustment``
``te:<id>:v<n>:rev``, or a credit note with that memo) and
``expense`` ``<EntryId>``; revenue events ``te:<id>:v<n>`` (``...:rev``);
correlation ``te:<id>`` for time, ``ex:<EntryId>`` for expenses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import xrefs
from ..pollers import Poller
from ..ports import Transaction
from . import time_state as st
from .time_expenses import EXPENSES, ExpensePostings
from .time_postings import TimePostings

if TYPE_CHECKING:
    from ..core import ReferenceCore
    from ..dispatcher import Operation

__all__ = ["TimeToFinance", "build", "SNAP_KEYS", "WAIT_REPORT_US"]

# What a version's postings need of a time entry snapshot.
SNAP_KEYS = ("date", "hours", "task_id", "assignment_id", "resource_id", "billable", "bill_rate", "bill_currency",
             "cost_rate", "cost_currency")
WAIT_REPORT_US = 3 * 24 * 3600 * 1_000_000
RELEASE_INTERVAL_S = 300.0


def build(core: ReferenceCore) -> TimeToFinance:
    return TimeToFinance(core)


class TimeToFinance:
    name = "time_to_finance"

    def __init__(self, core: ReferenceCore) -> None:
        self.core = core
        self.time = TimePostings(core)
        self.expenses = ExpensePostings(core)
        core.feeds.on("psa", "time_entry", self.on_time_entry)
        core.feeds.on("psa", "assignment", self.on_assignment)
        core.feeds.on("expenses", "entry", self.on_expense_line)
        core.feeds.on("core", "worker.cost_rates_changed", self.on_cost_rates_changed)

    def operations(self) -> list[Operation]:
        return self.time.operations() + self.expenses.operations()

    def pollers(self) -> list[Poller]:
        interval = self.core.config.get("poll_interval", {}).get("t2f-waiting", RELEASE_INTERVAL_S)
        return [self.core.poller("t2f-waiting", self.release_waiting, interval)]

    def webhooks(self) -> dict:
        return {}

    # ------------------------------------------------------------ the PSA feed

    def on_assignment(self, txn: Transaction, change: dict) -> None:
        """Remember each assignment's role: pricing then rarely asks the PSA."""
        snap = change.get("snapshot") or {}
        if snap.get("id") is not None and snap.get("role_id") is not None:
            txn.put(st.CACHE, f"assignment:{snap['id']}", snap["role_id"])

    def on_time_entry(self, txn: Transaction, change: dict) -> None:
        snap = change["snapshot"]
        entry = str(snap["id"])
        state = txn.get(st.ENTRIES, entry) or {"entry": entry, "lock": 0, "decided": None}
        if snap["lock_version"] <= state["lock"]:
            return  # an older or repeated snapshot: the feed promises no order
        project = str(snap["project_id"])
        state.update(lock=snap["lock_version"], version=snap["version"], status=snap["status"], project=project,
                     deal=state.get("deal") or xrefs.deal_of_psa_project(txn, project),
                     snap={k: snap.get(k) for k in SNAP_KEYS})
        self._decide_time(txn, state, cause=f"psa:{change['id']}")

    def _decide_time(self, txn: Transaction, state: dict, cause: str | None) -> None:
        entry, deal = state["entry"], state["deal"]
        group = deal if deal is not None else f"psa_project:{state['project']}"
        should_stand = state["version"] if state["status"] == "approved" else None
        if should_stand == state["decided"]:
            st.unwait(txn, group, f"te:{entry}")
            txn.put(st.ENTRIES, entry, state)
            return
        missing = st.missing_for(txn, deal)
        if missing is not None:
            st.wait(txn, group, f"te:{entry}", missing, self.core.now_us())
            txn.put(st.ENTRIES, entry, state)
            return
        st.unwait(txn, group, f"te:{entry}")
        if state["decided"] is not None:
            self.time.enqueue_reverse(txn, entry, state["decided"], deal, state.get("billed", True), cause)
            state["decided"] = None
        if should_stand is not None:
            state["billed"] = self.time.enqueue_post(txn, state, cause)
            state["decided"] = should_stand
        txn.put(st.ENTRIES, entry, state)

    def on_cost_rates_changed(self, txn: Transaction, change: dict) -> None:
        """HR restated a person's cost rates from a day on: what was posted
        for their time from then is re-costed, so margins use the rate in
        force on the work date."""
        n = self.time.enqueue_recost(txn, change["resource_id"], change["from"], change.get("cause"))
        self.core.trace("core.t2f.recost", {"employee": change["employee_id"], "resource": change["resource_id"],
                                            "from": change["from"], "postings": n},
                        corr=f"worker:{change['employee_id']}", cause=change.get("cause"))

    # ------------------------------------------------------------ the expense feed

    def on_expense_line(self, txn: Transaction, line: dict) -> None:
        entry = line["EntryId"]
        if not line.get("ProjectRef"):
            return  # not project work: reimbursement's business, not project accounting's
        if txn.get(EXPENSES, entry) is not None:
            return  # decided already (the feed repeats an approved line after reimbursement)
        state = {"line": line, "deal": line["ProjectRef"], "decided": False}
        self._decide_expense(txn, state, cause=f"expenses:{entry}:approved")

    def _decide_expense(self, txn: Transaction, state: dict, cause: str | None) -> None:
        entry, deal = state["line"]["EntryId"], state["deal"]
        missing = st.missing_for(txn, deal, expense=True, billable=bool(state["line"].get("IsBillable")))
        if missing is not None:
            st.wait(txn, deal, f"ex:{entry}", missing, self.core.now_us())
        elif not state["decided"]:
            st.unwait(txn, deal, f"ex:{entry}")
            self.expenses.enqueue_post(txn, state, cause)
            state["decided"] = True
        txn.put(EXPENSES, entry, state)

    # ------------------------------------------------------------ releasing what waited

    async def release_waiting(self) -> bool:
        """Decide again what waits on deals now ready; True if any was released.
        What has waited `WAIT_REPORT_US` is reported to IT, once per deal (or
        unlinked PSA project) -- it goes on waiting. Groups are looked at
        first: the items of a deal that is not even close to ready (no
        contract or ERP project yet) are not read at all."""
        core = self.core
        released = 0
        now = core.now_us()
        with core.env.store.transaction() as txn:
            ready: dict[tuple, bool] = {}
            for group, g in list(txn.scan(st.WAIT_GROUPS)):
                deal = (xrefs.deal_of_psa_project(txn, group.split(":", 1)[1])
                        if group.startswith("psa_project:") else group)
                if deal is None or st.missing_for(txn, deal, expense=True, billable=False) is not None:
                    if now - g["since_us"] >= WAIT_REPORT_US:
                        self._report_overdue(txn, group, now)
                    continue
                for item, info in st.waiting_in(txn, group):
                    kind, _, ident = item.partition(":")
                    state = txn.get(st.ENTRIES if kind == "te" else EXPENSES, ident)
                    if state is None:
                        st.unwait(txn, group, item)
                        continue
                    if kind == "te" and state.get("deal") is None:
                        state["deal"] = deal
                    need = (kind, kind == "ex" and bool(state["line"].get("IsBillable")))
                    if (deal, need) not in ready:
                        ready[deal, need] = st.missing_for(txn, deal, expense=kind == "ex", billable=need[1]) is None
                    if ready[deal, need]:
                        st.unwait(txn, group, item)
                        if kind == "te":
                            self._decide_time(txn, state, cause=None)
                        else:
                            self._decide_expense(txn, state, cause=None)
                        released += 1
                if txn.get(st.WAIT_GROUPS, group) is not None and now - g["since_us"] >= WAIT_REPORT_US:
                    self._report_overdue(txn, group, now)
        return released > 0

    def _report_overdue(self, txn: Transaction, group: str, now: int) -> None:
        """Tell IT, once, what of `group` has waited `WAIT_REPORT_US`."""
        if txn.get(st.CACHE, f"reported:{group}"):
            return
        items = [item for item, info in st.waiting_in(txn, group) if now - info["since_us"] >= WAIT_REPORT_US]
        if not items:
            return
        txn.put(st.CACHE, f"reported:{group}", True)
        info = txn.get(st.WAITING, st.waiting_key(group, items[0]))
        self.core.open_exception(txn, "it", "DEAL_NOT_PROVISIONED",
                                 f"{len(items)} time entries and expenses of {group} wait: {info['missing']}",
                                 {"deal": group, "items": items[:100], "count": len(items)})
