"""Amendments: a signed change order, versioned, applied in order everywhere.

The CRM signs a change order as ContractVersion n+1 (``Kind``,
``EffectiveDate``, the ``ChangedLines`` it changed or added) in the same
transaction that bumps the opportunity's ``ContractVersion__x``; both reach
the core through the CDC feed. What the core does with version n:

  1. **Version the canonical contract** (table ``contracts``, the deal's
     `Contract`; version 1, the baseline, is quote-to-project's). Versions
     are applied strictly in order: n is buffered (``amendment_versions``)
     until n-1 is applied, one already applied is dropped with a trace, and
     the contract never regresses (`Contract.with_version`). Pricing reads
     the contract from then on -- time approved for a day on or after the
     effective date is priced at version n's rates (`Contract.rate_for`).
  2. **Propagate** version n, by enqueuing on the deal's aggregate
     (``deal:<Opportunity Id>``), in version order -- behind the deal's
     provisioning plan, which quote-to-project queued there when the deal
     was won, before its contract existed:

     * per added line: a PSA task (looked up by ``external_reference`` =
       QuoteLine Id before any create: PSA creates are not idempotent), its
       PSA milestones (``<QuoteLine Id>:<name>``), and a billing schedule
       like the baseline's (``contract_ref`` = Opportunity Id, metadata
       ``line``; looked up, then created under an Idempotency-Key);
     * per changed line: its billing schedule's terms (rate card, milestone
       fees, end date) as the contract's latest version sets them -- but a
       recurring fee as the version in force for the next period billing
       will charge (`amendment_terms.recurring_fee`): billing charges a
       period at the fee the schedule holds when the run comes, so a fee
       signed today to take effect next month is written when that month
       begins (table ``amendment_fee_changes``, let through by the poller);
     * the revenue contract: the version number, and the modification with
       the treatment `amendment_terms` chooses (idempotent: the engine keys
       modifications by version and recognises a replay);
     * the ERP project's end date when the contract now runs longer (the
       ERP's project record has no contract value to update).

     The operations read the canonical contract when they run, so a retried
     or late message writes the current truth, never an older one. A
     version that arrives before the deal's contract exists waits in the
     buffer; a poller lets it through once the contract is there.

A version whose predecessor never arrives (the feed's retention ran out
while the core was away) is fetched from the CRM's REST API after
``GAP_WAIT_S``; so is one the opportunity announced (``ContractVersion__x``)
but no ContractVersion event delivered.

Store tables: ``amendment_versions`` (``<deal>\\x00<n:06d>`` -> the CRM's
version fields, buffered), ``amendment_deals`` (deal -> announced, applied
and propagated versions, what it waits for), ``amendment_fee_changes``
(``<deal>\\x00<line>`` -> the day a recurring line's schedule must take
another fee), ``amendment_fee_notices`` (periods charged at a superseded fee
that finance was told of, once each).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import xrefs
from ..codec import from_json, to_json
from ..dispatcher import OpContext, Operation
from ..model import Audit
from ..model_contracts import Contract, ContractLine, VersionOutOfOrder
from ..replies import check, error_code
from ..retry import BusinessException, RetryLater
from .amendment_terms import (
    RECURRING, change_between, mischarged_periods, next_version, recurring_fee, revenue_treatment, schedule_updates,
)
from .milestone_billing import create_once, find_one
from .milestone_calls import patient_operation
from .quote_contract import milestone_key, schedule_terms
from .quote_deal import require_xref
from .quote_psa import VERIFY_DELAY_US

if TYPE_CHECKING:
    from ..core import ReferenceCore
    from ..ports import Transaction

__all__ = ["build", "AmendmentFlow", "VERSIONS", "DEALS"]

VERSIONS = "amendment_versions"
DEALS = "amendment_deals"
FEE_CHANGES = "amendment_fee_changes"
FEE_NOTICES = "amendment_fee_notices"
SEP = "\x00"
GAP_WAIT_S = 15 * 60  # a missing version is fetched after this long (config "amendment_gap_wait_s")
_RC_TERMS = ("pob_ref", "pob_name", "rec_method", "ssp_amount", "start_date", "end_date")
_CRM_FIELDS = ("OpportunityId", "VersionNumber", "Kind", "EffectiveDate", "SignedDate", "ChangedLines",
               "ContractValue", "PriceDelta", "CurrencyIsoCode", "Amendment_Ref__x")


def build(core: ReferenceCore) -> AmendmentFlow:
    return AmendmentFlow(core)


def _id(value: Any) -> str | None:
    return value.get("id") if isinstance(value, dict) else value


def _key(deal: str, version: int) -> str:
    return f"{deal}{SEP}{version:06d}"


def _fetch_due(state: dict) -> bool:
    """A version is missing (a gap, or announced but never seen) and the
    CRM has not been asked for it since it went missing."""
    if state.get("gap") is not None:
        since = state.get("gap_since_us", 0)
    elif state["announced"] > state["applied"]:
        since = state.get("announced_us", 0)
    else:
        return False
    return state.get("fetched_us", -1) < since


class AmendmentFlow:
    name = "amendments"

    def __init__(self, core: ReferenceCore) -> None:
        self.core = core
        self.gap_wait_us = int(core.config.get("amendment_gap_wait_s", GAP_WAIT_S) * 1_000_000)
        core.feeds.on("crm", "ContractVersion", self.on_contract_version)
        core.feeds.on("crm", "Opportunity", self.on_opportunity)

    def operations(self) -> list[Operation]:
        return [
            patient_operation("psa.create_added_line_task", self.create_line_task, self.line_task_created),
            patient_operation("psa.sync_line_milestones", self.create_line_milestones,
                              self.line_milestones_created),
            patient_operation("billing.create_added_line_schedule", self.create_line_schedule,
                              self.line_schedule_created),
            patient_operation("billing.sync_schedule_terms", self.sync_schedule_terms, self.schedule_terms_synced),
            patient_operation("revenue.apply_contract_version", self.apply_revenue_version, self.done("revenue")),
            patient_operation("erp.update_project_terms", self.update_erp_project, self.done("erp")),
            patient_operation("crm.read_contract_versions", self.read_contract_versions, self.contract_versions_read),
        ]

    def pollers(self) -> list:
        interval = self.core.config.get("poll_interval", {}).get("amendments", 60.0)
        return [self.core.poller("amendments-waiting", self.let_through, interval)]

    def webhooks(self) -> dict:
        return {}

    def idle(self) -> bool:
        """False while a missing version is still to be fetched: that work
        is due on a timer, not on a message, so nothing else shows it."""
        with self.core.env.store.transaction() as txn:
            return not any(_fetch_due(state) and xrefs.contract_json(txn, deal) for deal, state in txn.scan(DEALS))

    # ------------------------------------------------------------ the feed

    def on_contract_version(self, txn: Transaction, event: dict) -> None:
        if event["header"]["changeType"] != "CREATE":
            return
        fields = {k: event["fields"].get(k) for k in _CRM_FIELDS}
        if not isinstance(fields["VersionNumber"], int) or fields["VersionNumber"] < 2:
            return  # the baseline: quote-to-project's
        self._receive(txn, fields, f"crm:{event['replayId']}")

    def on_opportunity(self, txn: Transaction, event: dict) -> None:
        n = event["fields"].get("ContractVersion__x")
        if isinstance(n, int) and n >= 2:
            deal = event["header"]["recordIds"][0]
            state = self._deal(txn, deal)
            if n > state["announced"]:
                state.update(announced=n, announced_us=self.core.now_us())
                txn.put(DEALS, deal, state)

    def _receive(self, txn: Transaction, fields: dict, source: str) -> None:
        deal, n = fields["OpportunityId"], fields["VersionNumber"]
        corr = f"deal:{deal}"
        state = self._deal(txn, deal)
        data = {"deal": deal, "version": n, "kind": fields["Kind"], "effective": fields["EffectiveDate"]}
        if n <= state["applied"]:
            self.core.trace("core.amendment.dropped", {**data, "applied": state["applied"],
                                                       "reason": "already applied (a replay or a stale copy)"},
                            corr=corr, cause=source)
            return
        if txn.get(VERSIONS, _key(deal, n)) is not None:
            return  # the same version from another source (feed and REST): kept once
        txn.put(VERSIONS, _key(deal, n), {"fields": fields, "source": source, "received_us": self.core.now_us()})
        state["announced"] = max(state["announced"], n)
        txn.put(DEALS, deal, state)
        self.core.trace("core.amendment.received", data, corr=corr, cause=source)
        self._advance(txn, deal)

    def _deal(self, txn: Transaction, deal: str) -> dict:
        state = txn.get(DEALS, deal)
        if state is None:
            contract = xrefs.contract_json(txn, deal)
            applied = len(contract["versions"]) if contract else 1
            state = {"announced": applied, "applied": applied, "propagated": applied}
        return state

    # ------------------------------------------------------------ versioning and propagating

    def _advance(self, txn: Transaction, deal: str) -> bool:
        """Apply buffered versions in order, then propagate what the deal's
        provisioning allows. True if anything moved."""
        moved = self._apply_buffered(txn, deal)
        return self._propagate(txn, deal) or moved

    def _apply_buffered(self, txn: Transaction, deal: str) -> bool:
        state = self._deal(txn, deal)
        corr = f"deal:{deal}"
        data = xrefs.contract_json(txn, deal)
        buffered = list(txn.scan(VERSIONS, prefix=deal + SEP))
        if data is None:
            if buffered and not state.get("waiting_for_contract"):
                state["waiting_for_contract"] = True
                txn.put(DEALS, deal, state)
                self.core.trace("core.amendment.waiting", {"deal": deal, "for": "the baseline contract"}, corr=corr)
            return False
        state.pop("waiting_for_contract", None)
        contract = from_json(Contract, data)
        applied = []
        for key, item in buffered:
            fields = item["fields"]
            n, latest = fields["VersionNumber"], contract.latest.version
            if n != latest + 1:
                why = VersionOutOfOrder(contract.gid, latest + 1, n)
                if n <= latest:  # applied meanwhile (fetched twice): drop, never regress
                    txn.delete(VERSIONS, key)
                    self.core.trace("core.amendment.dropped", {"deal": deal, "version": n, "applied": latest,
                                                               "reason": str(why)}, corr=corr)
                    continue
                if state.get("gap") != latest + 1:
                    state.update(gap=latest + 1, gap_since_us=self.core.now_us())
                    self.core.trace("core.amendment.buffered", {"deal": deal, "version": n, "waiting_for": latest + 1,
                                                                "reason": str(why)}, corr=corr)
                break
            new = next_version(contract.latest, fields)
            contract = contract.with_version(new, audit=Audit.at(self.core.env.now(), correlation_id=corr,
                                                                 source_event=item["source"]))
            txn.delete(VERSIONS, key)
            applied.append(n)
            if fields.get("ContractValue") is not None and Decimal(fields["ContractValue"]) != new.total:
                self.core.trace("core.amendment.value_mismatch", {
                    "deal": deal, "version": n, "crm": fields["ContractValue"], "canonical": str(new.total)}, corr=corr)
            self.core.trace("core.amendment.applied", {
                "deal": deal, "version": n, "kind": new.amendment_kind, "effective": new.effective_date.isoformat(),
                "total": str(new.total)}, corr=corr, cause=item["source"])
        if applied:
            xrefs.put_contract_json(txn, deal, to_json(contract))
        state["applied"] = contract.latest.version
        if state.get("gap") is not None and state["gap"] <= state["applied"]:
            state.pop("gap", None)
            state.pop("gap_since_us", None)
        txn.put(DEALS, deal, state)
        return bool(applied)

    def _propagate(self, txn: Transaction, deal: str) -> bool:
        state = self._deal(txn, deal)
        data = xrefs.contract_json(txn, deal)
        if data is None or state["propagated"] >= state["applied"]:
            return False
        contract = from_json(Contract, data)
        corr = f"deal:{deal}"
        moved = False
        while state["propagated"] < contract.latest.version:
            # The deal's provisioning plan was queued on its aggregate when it
            # was won, before its contract existed: whatever is queued now
            # runs after it.
            n = state["propagated"] + 1
            self._enqueue_version(txn, deal, contract, n)
            state["propagated"] = n
            moved = True
        txn.put(DEALS, deal, state)
        return moved

    def _enqueue_version(self, txn: Transaction, deal: str, contract: Contract, n: int) -> None:
        old, new = contract.version(n - 1), contract.version(n)
        change = change_between(old, new)
        corr = agg = f"deal:{deal}"
        cause = f"amendment:{deal}:v{n}"
        after = {ln.line_id: ln for ln in new.lines}
        ops: list[str] = []

        def enqueue(op: str, payload: dict, **kw: Any) -> None:
            self.core.enqueue(txn, op, {"deal": deal, "version": n, **payload}, aggregate=kw.pop("aggregate", agg),
                              corr=corr, cause=cause, **kw)
            ops.append(op)

        for lid in change.added:
            enqueue("psa.create_added_line_task", {"line": lid})
            if after[lid].milestones:
                enqueue("psa.sync_line_milestones", {"line": lid})
            enqueue("billing.create_added_line_schedule", {"line": lid})
        for lid in change.milestones_changed:  # a fixed-fee line's milestones repriced, moved or added
            enqueue("psa.sync_line_milestones", {"line": lid})
        for lid in change.billing_terms:
            enqueue("billing.sync_schedule_terms", {"line": lid})
        enqueue("revenue.apply_contract_version", {})
        if max(ln.service_end for ln in new.lines) > max(ln.service_end for ln in old.lines):
            enqueue("erp.update_project_terms", {})
        self.core.trace("core.amendment.propagating", {
            "deal": deal, "version": n, "ops": ops, "added": list(change.added), "changed": list(change.billing_terms)},
            corr=corr)

    async def let_through(self) -> bool:
        """The waiting room: deals whose contract or provisioning has come,
        and versions whose predecessor is overdue (fetched from the CRM)."""
        moved = False
        now = self.core.now_us()
        with self.core.env.store.transaction() as txn:
            moved = self._fees_due(txn)
            for deal, state in list(txn.scan(DEALS)):
                if state["propagated"] >= state["announced"] and state.get("gap") is None:
                    continue
                if self._advance(txn, deal):
                    moved = True
                state = self._deal(txn, deal)
                gap_overdue = state.get("gap") is not None and now - state.get("gap_since_us", now) > self.gap_wait_us
                unseen_overdue = (state["announced"] > state["applied"]
                                  and not list(txn.scan(VERSIONS, prefix=deal + SEP))
                                  and now - state.get("announced_us", now) > self.gap_wait_us)
                overdue = gap_overdue or unseen_overdue
                if overdue and now - state.get("fetched_us", 0) > self.gap_wait_us and xrefs.contract_json(txn, deal):
                    state["fetched_us"] = now
                    txn.put(DEALS, deal, state)
                    self.core.enqueue(txn, "crm.read_contract_versions", {"deal": deal}, aggregate=f"deal:{deal}:crm",
                                      corr=f"deal:{deal}")
                    self.core.trace("core.amendment.fetching", {"deal": deal, "applied": state["applied"],
                                                                "announced": state["announced"]}, corr=f"deal:{deal}")
                    moved = True
        return moved

    def _fees_due(self, txn: Transaction) -> bool:
        """Recurring fees whose day has come: the schedule is synced again, on
        the deal's aggregate (behind any version still propagating there, so
        it never writes an older truth over a newer one)."""
        today = self.core.env.now().date().isoformat()
        moved = False
        for key, item in list(txn.scan(FEE_CHANGES)):
            if item["on"] > today:
                continue
            txn.delete(FEE_CHANGES, key)
            data = xrefs.contract_json(txn, item["deal"])
            if data is None:
                continue
            corr = f"deal:{item['deal']}"
            self.core.enqueue(txn, "billing.sync_schedule_terms",
                              {"deal": item["deal"], "version": len(data["versions"]), "line": item["line"]},
                              aggregate=corr, corr=corr, cause=f"fee-change:{item['deal']}:{item['line']}:{item['on']}")
            self.core.trace("core.amendment.fee_due", item, corr=corr)
            moved = True
        return moved

    # ------------------------------------------------------------ reading the store in an operation

    def _contract(self, deal: str) -> Contract:
        with self.core.env.store.transaction() as txn:
            data = xrefs.contract_json(txn, deal)
        if data is None:
            raise BusinessException("it", "NO_CONTRACT", f"deal {deal} has no canonical contract")
        return from_json(Contract, data)

    def _xref(self, kind: str, source: str, step: str) -> Any:
        """A cross-reference provisioning (or this flow) wrote before this step."""
        return _id(require_xref(self.core.env, kind, source, step))

    def _line(self, p: dict) -> tuple[Contract, ContractLine]:
        contract = self._contract(p["deal"])
        return contract, contract.version(p["version"]).line(p["line"])

    def done(self, what: str):
        def record(txn: Transaction, message: dict, result: Any, now_us: int) -> None:
            p = message["payload"]
            data = {"deal": p["deal"], "version": p["version"], **({"line": p["line"]} if "line" in p else {})}
            self.core.trace(f"core.amendment.{what}", {**data, "result": result}, corr=message["corr"],
                            cause=message["id"])
        return record

    # ------------------------------------------------------------ PSA: a task and milestones for an added line

    async def _psa_find(self, ctx: OpContext, path: str, project: str, ref: str) -> dict | None:
        r = check("psa", await ctx.call("GET", path, query={"project_id": project, "external_reference": ref}),
                  ok=(200,), doing=f"looking up {path[1:]}")
        rows = sorted(r.json["results"], key=lambda row: int(row["id"]) if str(row["id"]).isdigit() else row["id"])
        return rows[0] if rows else None

    async def create_line_task(self, ctx: OpContext, p: dict) -> dict:
        """A task for an added line, as quote-to-project makes the baseline's
        (looked up first: PSA creates are not idempotent)."""
        _, line = self._line(p)
        project = self._xref("deal.psa_project", p["deal"], "creating the task of an added line")
        found = await self._psa_find(ctx, "/tasks", project, line.line_id)
        if found is not None:
            return {"task": found["id"], "created": False}
        r = await ctx.call("POST", "/tasks", json={
            "project_id": project, "title": line.description, "billable": line.billing_model == "t_and_m",
            "line_ref": line.line_id, "external_reference": line.line_id})
        check("psa", r, ok=(201,), doing="creating the task of an added line")
        return {"task": r.json["id"], "created": True}

    def line_task_created(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        p = message["payload"]
        xrefs.put(txn, "line.psa_task", p["line"], result["task"])
        xrefs.put(txn, "line.deal", p["line"], p["deal"])
        if result["created"]:
            self._verify_later(txn, message)
        self.done("psa_task")(txn, message, result, now_us)

    async def create_line_milestones(self, ctx: OpContext, p: dict) -> dict:
        """The line's milestones in the PSA as this version has them: each
        looked up by ``<QuoteLine Id>:<name>`` and created if missing; one
        still open takes the version's amount and due date (a completed one's
        terms are fixed: traced, left as delivered)."""
        _, line = self._line(p)
        project = self._xref("deal.psa_project", p["deal"], "creating the milestones of a line")
        task = self._xref("line.psa_task", line.line_id, "creating the milestones of a line")
        made: dict[str, str] = {}
        created, fixed = False, []
        for m in sorted(line.milestones, key=lambda m: (m.due_date, m.name)):
            key = milestone_key(line.line_id, m.name)
            terms = {"amount": format(m.amount, "f"), "due_date": m.due_date.isoformat()}
            found = await self._psa_find(ctx, "/milestones", project, key)
            if found is None:
                r = await ctx.call("POST", "/milestones", json={
                    "project_id": project, "task_id": task, "title": m.name, **terms, "external_reference": key})
                found = check("psa", r, ok=(201,), doing="creating a milestone of a line").json
                created = True
            elif (Decimal(found["amount"]), found["due_date"]) != (m.amount, terms["due_date"]):
                if found["status"] == "open":
                    check("psa", await ctx.call("PATCH", f"/milestones/{found['id']}", json=terms), ok=(200,),
                          doing="amending a milestone")
                else:
                    fixed.append(found["id"])
            made[key] = found["id"]
        return {"milestones": made, "created": created, "terms_fixed": fixed}

    def line_milestones_created(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        p = message["payload"]
        for key, psa_id in sorted(result["milestones"].items()):
            line, _, name = key.partition(":")
            xrefs.put(txn, "milestone.psa_milestone", key, psa_id)
            xrefs.put(txn, "psa_milestone.milestone", psa_id, [p["deal"], line, name])
        if result["created"]:
            self._verify_later(txn, message)
        self.done("psa_milestones")(txn, message, result, now_us)

    def _verify_later(self, txn: Transaction, message: dict) -> None:
        """Copies the network delivered twice are renamed by quote-to-project's
        late look (`quote_psa.verify_setup`), on its own aggregate."""
        deal = message["payload"]["deal"]
        if "psa.verify_deal_setup" not in self.core.dispatcher.operations:
            return  # quote-to-project is not running in this core
        self.core.enqueue(txn, "psa.verify_deal_setup", {"deal": deal}, aggregate=f"psa-setup:{deal}",
                          corr=message["corr"], cause=message["id"], delay_us=VERIFY_DELAY_US)

    # ------------------------------------------------------------ billing: schedules

    async def create_line_schedule(self, ctx: OpContext, p: dict) -> dict:
        """A schedule for an added line, as quote-to-project makes the
        baseline's (`quote_contract.schedule_terms`; milestones named by their
        PSA ids): looked up by contract and line, else created under a key."""
        contract, line = self._line(p)
        deal, step = p["deal"], "creating the schedule of an added line"
        account = self._xref("deal.account", deal, step)
        customer = self._xref("account.billing_customer", account, step)
        refs = {milestone_key(line.line_id, m.name): self._xref("milestone.psa_milestone",
                                                                milestone_key(line.line_id, m.name), step)
                for m in line.milestones}
        body = {"customer": customer, "contract_ref": deal, "currency": contract.currency.lower(),
                "start_date": line.service_start.isoformat(), "end_date": line.service_end.isoformat(),
                "metadata": {"deal": deal, "line": line.line_id, "contract_version": str(p["version"])},
                **schedule_terms(line, refs)}

        async def find() -> dict | None:
            return await find_one(ctx, "/v1/billing_schedules", {"contract_ref": deal},
                                  lambda row: (row.get("metadata") or {}).get("line") == line.line_id,
                                  doing="looking up the schedule of an added line")

        schedule = await create_once(ctx, "/v1/billing_schedules", body, key_base=f"am:bs:{deal}:{line.line_id}",
                                     find=find, doing=step)
        return {"schedule": schedule["id"]}

    def line_schedule_created(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        p = message["payload"]
        xrefs.put(txn, "line.billing_schedule", p["line"], result["schedule"])
        self.done("billing_schedule")(txn, message, result, now_us)

    async def sync_schedule_terms(self, ctx: OpContext, p: dict) -> dict:
        """The schedule's updatable terms as the contract sets them -- read
        when the operation runs, so a late or repeated message writes the
        current truth and never an older one. Rate cards, milestone fees and
        the end date are the latest version's (time is priced by the time
        flow at the version in force on the work date, `Contract.rate_for`;
        a milestone is billed when accepted). A recurring fee is the one in
        force for the next period billing will charge, and the day another
        fee takes over is kept for the poller (`amendment_terms.recurring_fee`)."""
        contract = self._contract(p["deal"])
        version = contract.latest
        line = version.line(p["line"])
        step = "amending the schedule of a changed line"
        sid = self._xref("line.billing_schedule", p["line"], step)
        refs = {m.name: self._xref("milestone.psa_milestone", milestone_key(line.line_id, m.name), step)
                for m in line.milestones}
        r = check("billing", await ctx.call("GET", f"/v1/billing_schedules/{sid}"), ok=(200,),
                  doing="reading a schedule to amend")
        schedule = r.json
        wanted = schedule_updates(line, refs)
        carried, later, mischarged = _terms_since(contract, line.line_id), None, []
        if line.billing_model in RECURRING and schedule["model"] in ("retainer", "subscription"):
            interval = (schedule.get("recurring") or {}).get("interval") or "month"
            charged = frozenset(schedule.get("billed_periods") or ())
            due = recurring_fee(contract, line.line_id, start=date.fromisoformat(schedule["start_date"]),
                                end=date.fromisoformat(wanted["end_date"]), interval=interval, charged=charged,
                                today=ctx.env.now().date())
            fee = schedule_updates(due.version.line(line.line_id))["recurring"]["amount"]  # rounded as ever
            wanted["recurring"] = {"amount": fee, "interval": interval}
            carried, later = due.version, due.look_again_on
            mischarged = await self._mischarged(ctx, contract, line.line_id, sid, charged)
        out = {"schedule": sid, "version": carried.version, "line": line.line_id,
               "look_again_on": later and later.isoformat(), "mischarged": mischarged}
        changes = _schedule_changes(schedule, wanted)
        if not changes:
            return {**out, "unchanged": True}
        # "contract_version": the version whose terms the schedule took last
        # (as quote-to-project names it; no "version" key, which would claim
        # the schedule stands at the deal's latest version for ever after).
        changes["metadata"] = {**(schedule.get("metadata") or {}), "contract_version": str(carried.version),
                               "terms_effective_from": carried.effective_date.isoformat()}
        r = await ctx.call("POST", f"/v1/billing_schedules/{sid}", json=changes)
        if r.status == 400 and error_code("billing", r.json) == "milestone_already_billed":
            raise BusinessException("finance", "MILESTONE_ALREADY_BILLED", f"version {version.version} reprices a "
                                    f"milestone of line {line.line_id} that is already billed ({r.json}); bill the "
                                    "difference as an adjustment, then resolve", {"schedule": sid})
        check("billing", r, ok=(200,), doing="amending a billing schedule")
        return {**out, "changed": sorted(k for k in changes if k != "metadata")}

    async def _mischarged(self, ctx: OpContext, contract: Contract, line_id: str, sid: str,
                          charged: frozenset[str]) -> list[dict]:
        """Periods already charged at another fee than the one in force on
        their first day. Only a retroactive change can leave any -- one
        effective on or before a charged period -- so billing is asked only
        then."""
        changed_from = [v.effective_date.isoformat() for v in contract.versions[1:]]
        if not changed_from or not any(first >= min(changed_from) for first in charged):
            return []
        charges: dict[str, Decimal] = {}

        def note(row: dict) -> bool:  # collects every page; never "found"
            source = row.get("source") or {}
            if row.get("status") != "void" and source.get("id", "").startswith(f"{sid}:"):
                first = source["id"].split(":", 1)[1]
                charges[first] = charges.get(first, Decimal(0)) + Decimal(row["amount"])
            return False

        await find_one(ctx, "/v1/invoice_items", {"schedule": sid, "source_type": "recurring"}, note,
                       doing="reading the recurring charges of a schedule")
        return mischarged_periods(contract, line_id, charges)

    def schedule_terms_synced(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        p = message["payload"]
        key = f"{p['deal']}{SEP}{p['line']}"
        if result.get("look_again_on"):
            txn.put(FEE_CHANGES, key, {"deal": p["deal"], "line": p["line"], "on": result["look_again_on"]})
        else:
            txn.delete(FEE_CHANGES, key)
        for period in result.get("mischarged") or ():
            notice = f"{result['schedule']}{SEP}{period['period']}{SEP}{period['in_force']}"
            if txn.get(FEE_NOTICES, notice) is not None:
                continue  # finance was told already
            txn.put(FEE_NOTICES, notice, {"at_us": now_us})
            # Told, not blocked: the schedule is right from now on; what was
            # charged before the change arrived is finance's to adjust.
            self.core.open_exception(txn, "finance", "RECURRING_CHARGED_AT_SUPERSEDED_FEE",
                                     f"schedule {result['schedule']} (line {p['line']}, deal {p['deal']}) charged the "
                                     f"period from {period['period']} at {period['charged']}, but version "
                                     f"{period['version']} sets {period['in_force']} for it; bill the difference as an "
                                     "adjustment (or credit it), then resolve",
                                     {"deal": p["deal"], "line": p["line"], "schedule": result["schedule"], **period})
        self.done("schedule_terms")(txn, message, result, now_us)

    # ------------------------------------------------------------ revenue

    async def apply_revenue_version(self, ctx: OpContext, p: dict) -> dict:
        """Bring the revenue contract to version `p["version"]`, one version at
        a time from where it stands (so a version skipped by a person's
        decision is not lost), each with its treatment."""
        contract = self._contract(p["deal"])
        target = p["version"]
        steps = []
        for _ in range(target + 1):
            rc = await self._revenue_contract(ctx, p["deal"])
            current = rc["source_version"]
            if current >= target:
                return {"rc": rc["rc_id"], "version": current, "steps": steps}
            steps.append(await self._revenue_step(ctx, rc, contract, current + 1))
        raise RetryLater(f"revenue contract of {p['deal']} did not reach version {target}")

    async def _revenue_contract(self, ctx: OpContext, deal: str) -> dict:
        r = check("revenue", await ctx.call("GET", "/rc/contracts", query={"source_contract_id": deal}), ok=(200,),
                  doing="reading the revenue contract")
        mains = [c for c in r.json["contracts"] if c.get("parent_rc_id") is None]
        if not mains:
            raise BusinessException("finance", "RC_NOT_FOUND", f"no revenue contract for {deal}; book it first")
        return mains[0]

    async def _revenue_step(self, ctx: OpContext, rc: dict, contract: Contract, n: int) -> dict:
        t = revenue_treatment(contract.version(n - 1), contract.version(n))
        if t.treatment is None:
            body = {"source_contract_id": rc["source_contract_id"], "source_version": n,
                    "currency_code": rc["currency_code"], "transaction_price": rc["transaction_price"],
                    "pobs": [{k: pob[k] for k in _RC_TERMS} for pob in rc["pobs"]]}
            r = await ctx.call("POST", "/rc/contracts", json=body)
            if r.status == 409 and error_code("revenue", r.json) in ("STALE_VERSION", "VERSION_CONFLICT"):
                return {"version": n, "result": "already"}
            check("revenue", r, ok=(200, 201), doing=f"taking contract version {n}")
            return {"version": n, "result": r.json["result"], "why": t.reason}
        body = {"source_version": n, "treatment": t.treatment, "effective_date": t.effective_date.isoformat(),
                "added_consideration": format(t.added_consideration, "f"), "added_pobs": list(t.added_pobs)}
        r = await ctx.call("POST", f"/rc/contracts/{rc['rc_id']}/modifications", json=body)
        code = error_code("revenue", r.json)
        if r.status == 409 and code in ("STALE_VERSION", "VERSION_CONFLICT"):
            return {"version": n, "result": "already"}
        if r.status == 422:
            raise BusinessException("finance", code or "INVALID_MODIFICATION", f"revenue modification to version {n} "
                                    f"({t.treatment}: {t.reason}) refused: {r.json}", {"body": body})
        check("revenue", r, ok=(200, 201), doing=f"modifying the revenue contract to version {n}")
        mod = r.json["modification"]
        return {"version": n, "result": "modified", "treatment": t.treatment, "why": t.reason,
                "modification": mod["modification_id"], "new_rc": mod.get("new_rc_id")}

    # ------------------------------------------------------------ ERP

    async def update_erp_project(self, ctx: OpContext, p: dict) -> dict:
        contract = self._contract(p["deal"])
        self._xref("deal.erp_project", p["deal"], "extending the ERP project")
        end = max(ln.service_end for ln in contract.latest.lines).isoformat()
        pid = f"eid:{p['deal']}"  # the project's externalId is the opportunity (integration contract)
        r = check("erp", await ctx.call("GET", f"/erp/v1/projects/{pid}"), ok=(200,), doing="reading the project")
        if r.json.get("endDate") is not None and r.json["endDate"] >= end:
            return {"project": pid, "unchanged": True}
        check("erp", await ctx.call("PUT", f"/erp/v1/projects/{pid}", json={"endDate": end}), ok=(200,),
              doing="extending the project")
        return {"project": pid, "end": end}

    # ------------------------------------------------------------ CRM: fetching a missing version

    async def read_contract_versions(self, ctx: OpContext, p: dict) -> dict:
        r = check("crm", await ctx.call("GET", f"/services/v1/objects/Opportunity/{p['deal']}/ContractVersions"),
                  ok=(200,), doing="reading the contract's versions")
        rows = sorted(r.json["records"], key=lambda row: row["VersionNumber"])
        return {"versions": [{k: row.get(k) for k in _CRM_FIELDS} for row in rows]}

    def contract_versions_read(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        for fields in result["versions"]:
            if fields["VersionNumber"] >= 2:
                self._receive(txn, fields, f"crm-rest:{message['id']}")
        self._advance(txn, message["payload"]["deal"])


def _same_amount(a: Any, b: Any) -> bool:
    try:
        return Decimal(str(a)) == Decimal(str(b))
    except ArithmeticError:
        return False


def _schedule_changes(schedule: dict, wanted: dict) -> dict:
    """The terms of `wanted` the schedule does not carry yet (its model's only)."""
    changes: dict[str, Any] = {}
    if schedule.get("end_date") != wanted["end_date"]:
        changes["end_date"] = wanted["end_date"]
    if schedule["model"] == "time_and_materials" and "rate_card" in wanted:
        have = {e["code"]: e for e in schedule.get("rate_card") or ()}
        card = [{"code": e["code"], "unit_amount": e["unit_amount"],
                 "description": (have.get(e["code"]) or {}).get("description") or e["description"]}
                for e in wanted["rate_card"]]
        same = len(have) == len(card) and all(
            e["code"] in have and _same_amount(have[e["code"]]["unit_amount"], e["unit_amount"]) for e in card)
        if not same:
            changes["rate_card"] = card
    if schedule["model"] == "fixed_fee" and "milestones" in wanted:
        have = sorted((m["ref"], Decimal(m["amount"])) for m in schedule.get("milestones") or ())
        if have != sorted((m["ref"], Decimal(m["amount"])) for m in wanted["milestones"]):
            changes["milestones"] = wanted["milestones"]
    if schedule["model"] in ("retainer", "subscription") and "recurring" in wanted:
        rec = schedule.get("recurring") or {}
        if not _same_amount(rec.get("amount"), wanted["recurring"]["amount"]):
            changes["recurring"] = {"amount": wanted["recurring"]["amount"], "interval": rec.get("interval") or "month"}
    return changes


def _terms_since(contract: Contract, line_id: str):
    """The version from which the line has stood as the latest sets it: a
    run of messages merged into one (an outage, a burst) must still say the
    rate change of version 2 took effect on version 2's date, not on the
    date of version 4 that only extended another line."""
    latest = contract.latest.line(line_id)
    since = contract.latest
    for v in reversed(contract.versions[:-1]):
        try:
            if v.line(line_id) != latest:
                break
        except LookupError:
            break
        since = v
    return since
