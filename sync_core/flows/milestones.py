"""Milestones: from the PSA's delivery to billing and revenue, once each.

A fixed-fee milestone is earned when the client accepts it, not when the
team finishes it. The PSA's change feed says both (snapshots of the
milestone: ``status`` completed, then ``accepted_on`` and one entry in
``acceptances`` per sign-off recorded -- people record the same sign-off
twice). What the core does:

  * **completed** -> billing learns the milestone is due but must not
    invoice it yet: a hold on the source ``milestone / <PSA milestone id>``
    (it covers items to come), then the invoice item, which is born held. A
    billing run before acceptance leaves it alone;
  * **accepted** -> the hold is released (the item becomes pending, the next
    billing run invoices it) -- or, when the core never saw the completion,
    the item is created unheld -- and the revenue engine gets the
    point-in-time event ``ms:<PSA milestone id>`` for the milestone's
    obligation ``<QuoteLine Id>:<milestone name>``;
  * **accepted again** -> nothing: the state kept per milestone says it was
    handled, the item is found by its source before any create, and the
    revenue event is idempotent by ``event_ref``. Three locks, one bill.

The feed has no order and repeats itself: a snapshot older than what the
core already knows (a completion after the acceptance) is dropped with a
trace. All work for a deal runs on the deal's aggregate (``deal:<Opportunity
Id>``): behind the deal's provisioning plan (queued when the deal was won:
its billing schedules and revenue contract come first), and the hold before
the release. A milestone whose PSA project the core does not know (yet)
waits in ``milestone_waiting``; a poller lets it through, and after two days
opens a PMO exception. Operations wait out vendor throttles call by call
(`milestone_calls`), so a tight rate limit slows them instead of failing them.

Store tables: ``milestone_state`` (PSA milestone id -> what the core decided
and did), ``milestone_waiting`` (PSA milestone id -> since when).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import xrefs
from ..dispatcher import OpContext, Operation
from ..replies import check, error_code
from ..retry import BusinessException, RetryLater
from .milestone_billing import create_once, find_one
from .milestone_calls import patient_operation
from .quote_deal import require_xref

if TYPE_CHECKING:
    from ..core import ReferenceCore
    from ..ports import Transaction

__all__ = ["build", "MilestoneFlow", "STATE", "WAITING"]

STATE = "milestone_state"
WAITING = "milestone_waiting"
RANK = {"completed": 1, "accepted": 2}
WAIT_ALARM_US = 2 * 24 * 3600 * 1_000_000  # a person looks after two days of waiting


def build(core: ReferenceCore) -> MilestoneFlow:
    return MilestoneFlow(core)


def _source(milestone: str) -> dict:
    return {"type": "milestone", "id": milestone}


def _id(value: Any) -> str | None:
    """A cross-reference's id, whether it is kept bare or as {"id": ...}."""
    return value.get("id") if isinstance(value, dict) else value


def _line_and_name(txn: Transaction, snapshot: dict) -> tuple[str, str] | None:
    """The contract line and milestone name: the cross-reference, else the
    PSA record's external reference ``<QuoteLine Id>:<name>``."""
    known = xrefs.get(txn, "psa_milestone.milestone", snapshot["id"])
    if isinstance(known, dict) and known.get("line") and known.get("name"):
        return known["line"], known["name"]
    if isinstance(known, (list, tuple)) and len(known) == 3:
        return known[1], known[2]
    ref = known if isinstance(known, str) else snapshot.get("external_reference")
    if isinstance(ref, str) and ":" in ref:
        line, name = ref.split(":", 1)
        return line, name
    return None


class MilestoneFlow:
    name = "milestones"

    def __init__(self, core: ReferenceCore) -> None:
        self.core = core
        core.feeds.on("psa", "milestone", self.on_change)

    def operations(self) -> list[Operation]:
        return [
            patient_operation("billing.hold_milestone", self.hold, self.held),
            patient_operation("billing.release_milestone", self.release, self.released),
            patient_operation("revenue.recognise_milestone", self.recognise, self.recognised),
        ]

    def pollers(self) -> list:
        interval = self.core.config.get("poll_interval", {}).get("milestones", 60.0)
        return [self.core.poller("milestones-waiting", self.let_through, interval)]

    def webhooks(self) -> dict:
        return {}

    # ------------------------------------------------------------ deciding (feed handler)

    def on_change(self, txn: Transaction, change: dict) -> None:
        snap = change.get("snapshot") or {}
        if snap.get("status") != "completed":
            return  # planned, or its terms edited: nothing to bill yet
        msid = snap["id"]
        stage = "accepted" if snap.get("accepted_on") else "completed"
        cause = f"psa:{change['id']}"
        if (snap.get("external_reference") or "").startswith("dup-of:"):
            # A copy the network made and provisioning renamed; its original is the milestone.
            self.core.trace("core.milestone.duplicate_ignored", {"milestone": msid, "stage": stage,
                                                                 "reference": snap["external_reference"]}, cause=cause)
            return
        state = txn.get(STATE, msid)
        if state is not None and RANK[state["stage"]] >= RANK[stage]:
            seen = len(snap.get("acceptances") or ())
            if stage == "accepted" and seen > state.get("acceptances", 0):
                kind = "core.milestone.accepted_again"  # recorded again: billed and recognised once all the same
                state["acceptances"] = seen
                txn.put(STATE, msid, state)
            else:
                kind = "core.milestone.stale" if RANK[state["stage"]] > RANK[stage] else "core.milestone.unchanged"
            self.core.trace(kind, {"milestone": msid, "stage": stage, "handled": state["stage"], "acceptances": seen},
                            corr=state.get("corr"), cause=cause)
            return
        state = dict(state or {"enqueued": [], "first_seen_us": self.core.now_us()})
        state.update(stage=stage, project=snap["project_id"], amount=snap["amount"], currency=snap["currency"],
                     title=snap.get("title"), completed_on=snap.get("completed_on"),
                     accepted_on=snap.get("accepted_on"), acceptances=len(snap.get("acceptances") or ()),
                     external_reference=snap.get("external_reference"), cause=cause)
        txn.put(STATE, msid, state)
        self.core.trace(f"core.milestone.{stage}", {"milestone": msid, "on": snap.get(f"{stage}_on")}, cause=cause)
        self._dispatch(txn, msid)

    def _context(self, txn: Transaction, msid: str, state: dict) -> dict | None:
        """The deal and contract line of a milestone, once the core knows them."""
        deal = xrefs.deal_of_psa_project(txn, state["project"])
        found = _line_and_name(txn, {"id": msid, "external_reference": state.get("external_reference")})
        if deal is None or found is None:
            return None
        line, name = found
        return {"deal": deal, "milestone": msid, "line": line, "name": name, "amount": state["amount"],
                "currency": state["currency"], "title": state.get("title") or name}

    def _dispatch(self, txn: Transaction, msid: str) -> bool:
        """Enqueue what the milestone's stage needs and was not enqueued yet;
        park it while its deal is unknown. True if it is through."""
        state = txn.get(STATE, msid)
        ctx = self._context(txn, msid, state)
        if ctx is None:
            if txn.get(WAITING, msid) is None:
                txn.put(WAITING, msid, {"since_us": self.core.now_us(), "alarmed": False})
                self.core.trace("core.milestone.waiting", {"milestone": msid, "for": "provisioning"})
            return False
        txn.delete(WAITING, msid)
        deal, corr, cause = ctx["deal"], f"deal:{ctx['deal']}", state.get("cause")
        state["corr"] = corr
        done = state["enqueued"]
        if state["stage"] == "completed" and "hold" not in done:
            self.core.enqueue(txn, "billing.hold_milestone", ctx, aggregate=corr, corr=corr, cause=cause)
            done.append("hold")
        if state["stage"] == "accepted" and "accept" not in done:
            payload = {**ctx, "accepted_on": state["accepted_on"], "held": "hold" in done}
            self.core.enqueue(txn, "billing.release_milestone", payload, aggregate=corr, corr=corr, cause=cause)
            self.core.enqueue(txn, "revenue.recognise_milestone", payload, aggregate=corr, corr=corr, cause=cause)
            done.append("accept")
        txn.put(STATE, msid, state)
        return True

    async def let_through(self) -> bool:
        """The waiting room: milestones whose deal is known now go on."""
        moved = False
        with self.core.env.store.transaction() as txn:
            for msid, waiting in list(txn.scan(WAITING)):
                if self._dispatch(txn, msid):
                    moved = True
                    self.core.trace("core.milestone.released_from_waiting", {"milestone": msid})
                elif not waiting["alarmed"] and self.core.now_us() - waiting["since_us"] > WAIT_ALARM_US:
                    waiting["alarmed"] = True
                    txn.put(WAITING, msid, waiting)
                    self.core.open_exception(txn, "pmo", "MILESTONE_NOT_PROVISIONED",
                                             f"milestone {msid} was delivered in a PSA project no deal provisioned; "
                                             "link the project to its deal", {"milestone": msid})
        return moved

    # ------------------------------------------------------------ billing

    async def _schedule(self, ctx: OpContext, p: dict) -> dict:
        """The line's billing schedule (it names the customer, and prices the
        milestone). Provisioning queued it on the deal's aggregate before this."""
        sid = _id(require_xref(ctx.env, "line.billing_schedule", p["line"], f"billing milestone {p['milestone']}"))
        r = check("billing", await ctx.call("GET", f"/v1/billing_schedules/{sid}"), ok=(200,),
                  doing="reading the line's billing schedule")
        return r.json

    async def _find_item(self, ctx: OpContext, customer: str, msid: str) -> dict | None:
        return await find_one(ctx, "/v1/invoice_items", {"customer": customer, "source_type": "milestone",
                                                         "source_id": msid},
                              lambda row: row["status"] != "void", doing="looking up a milestone item")

    async def _find_hold(self, ctx: OpContext, customer: str, msid: str, item: str | None = None) -> dict | None:
        """The active hold on the milestone (on its source, or on its item)."""
        def ours(row: dict) -> bool:
            return row["source"] == _source(msid) or (item is not None and row["invoice_item"] == item)
        return await find_one(ctx, "/v1/holds", {"customer": customer, "status": "active"}, ours,
                              doing="looking up a milestone hold")

    def _item_body(self, schedule: dict, p: dict) -> dict:
        """Priced by the schedule when it lists this milestone, else by the
        amount the contract (and the PSA) give it -- then on no schedule if the
        schedule lists other milestones, as it refuses a source it does not know."""
        body: dict[str, Any] = {"customer": schedule["customer"], "source": _source(p["milestone"]),
                                "description": f"Milestone: {p['title']}"}
        refs = [m["ref"] for m in schedule.get("milestones") or ()]
        if p["milestone"] in refs:
            body["schedule"] = schedule["id"]
        elif not refs:
            body.update(schedule=schedule["id"], amount=p["amount"])
        else:
            body["amount"] = p["amount"]
        return body

    async def _ensure_item(self, ctx: OpContext, schedule: dict, p: dict) -> dict:
        customer, msid = schedule["customer"], p["milestone"]
        return await create_once(ctx, "/v1/invoice_items", self._item_body(schedule, p), key_base=f"ms:item:{msid}",
                                 find=lambda: self._find_item(ctx, customer, msid), doing="billing a milestone")

    async def hold(self, ctx: OpContext, p: dict) -> dict:
        """Completed: a hold on the milestone's source (items to come are born
        held), then the item. An item already there (made by an earlier life
        of this operation after its hold vanished) is held itself."""
        schedule = await self._schedule(ctx, p)
        customer, msid = schedule["customer"], p["milestone"]
        item = await self._find_item(ctx, customer, msid)
        if item is not None and item["status"] != "pending":
            return {"hold": item.get("hold"), "item": item["id"], "item_status": item["status"]}
        reason = f"awaiting client acceptance of milestone {p['name']}"
        if item is None:
            body, key = {"customer": customer, "source": _source(msid), "reason": reason}, f"ms:hold:{msid}"
        else:
            body, key = {"invoice_item": item["id"], "reason": reason}, f"ms:hold-item:{item['id']}"
        already = lambda r: r.status == 400 and error_code("billing", r.json) == "already_held"  # noqa: E731
        hold = await create_once(ctx, "/v1/holds", body, key_base=key, ok_refusal=already, doing="holding a milestone",
                                 find=lambda: self._find_hold(ctx, customer, msid, item and item["id"]))
        if item is None:
            item = await self._ensure_item(ctx, schedule, p)
        return {"hold": hold["id"], "item": item["id"], "item_status": item["status"]}

    def held(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        self._record(txn, message, result)
        self.core.trace("core.milestone.held", {"milestone": message["payload"]["milestone"], **result},
                        corr=message["corr"], cause=message["id"])

    async def release(self, ctx: OpContext, p: dict) -> dict:
        """Accepted: release the hold (the item becomes pending), and make sure
        the item exists -- made now, unheld, if the completion was never seen.
        A release needs no key: releasing twice is refused (hold_not_active)."""
        schedule = await self._schedule(ctx, p)
        customer, msid = schedule["customer"], p["milestone"]
        item = await self._find_item(ctx, customer, msid)
        released = []
        for _ in range(3):  # this core's holds: on the source, and (after a lost life) on the item
            hold = await self._find_hold(ctx, customer, msid, item and item["id"])
            if hold is None or hold["id"] in released:
                break
            r = await ctx.call("POST", f"/v1/holds/{hold['id']}/release", json={})
            if not (r.status == 400 and error_code("billing", r.json) == "hold_not_active"):
                check("billing", r, ok=(200,), doing="releasing a milestone hold")
            released.append(hold["id"])
        item = await self._ensure_item(ctx, schedule, p)
        if item["status"] == "held":
            # Held by a hold this core did not place (a dispute the clerk
            # opened): the client's acceptance does not override it.
            raise BusinessException("finance", "MILESTONE_HELD", f"milestone {msid} was accepted but its invoice item "
                                    f"{item['id']} is still held by {item['hold']}; release or resolve that hold",
                                    {"item": item["id"], "hold": item["hold"]})
        return {"released": released, "item": item["id"], "item_status": item["status"], "amount": item["amount"]}

    def released(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        self._record(txn, message, result)
        self.core.trace("core.milestone.billed", {"milestone": message["payload"]["milestone"], **result},
                        corr=message["corr"], cause=message["id"])

    # ------------------------------------------------------------ revenue

    async def _pob(self, ctx: OpContext, p: dict) -> str:
        require_xref(ctx.env, "deal.revenue_contract", p["deal"], f"recognising milestone {p['milestone']}")
        return await self._pob_ref(ctx, p)

    async def _pob_ref(self, ctx: OpContext, p: dict) -> str:
        """The milestone's obligation in the revenue contract (it or a
        contract split off it): ``<line>:<name>``, or the line's own when the
        line is one point-in-time obligation."""
        r = check("revenue", await ctx.call("GET", "/rc/contracts", query={"source_contract_id": p["deal"]}),
                  ok=(200,), doing="reading the revenue contract")
        pobs = {pob["pob_ref"]: pob for c in r.json["contracts"] for pob in c["pobs"]}
        for ref in (f"{p['line']}:{p['name']}", p["line"]):
            pob = pobs.get(ref)
            if pob is not None and pob["rec_method"] == "point_in_time":
                return ref
        if not r.json["contracts"]:
            raise RetryLater(f"no revenue contract for {p['deal']} yet")
        raise BusinessException("finance", "NO_MILESTONE_OBLIGATION", f"revenue contract of {p['deal']} has no "
                                f"point-in-time obligation for milestone {p['line']}:{p['name']}; add it, then retry",
                                {"pobs": sorted(pobs)})

    async def recognise(self, ctx: OpContext, p: dict) -> dict:
        pob = await self._pob(ctx, p)
        body = {"event_ref": f"ms:{p['milestone']}", "source_contract_id": p["deal"], "pob_ref": pob,
                "event_type": "MILESTONE_ACCEPTED", "event_date": p["accepted_on"]}
        r = await ctx.call("POST", "/rc/events", json=body)
        if r.status == 409 and error_code("revenue", r.json) == "POB_ALREADY_SATISFIED":
            raise BusinessException("finance", "POB_ALREADY_SATISFIED",
                                    f"milestone {p['milestone']}: obligation {pob} was satisfied by another event; "
                                    "check for a duplicate milestone", {"event_ref": body["event_ref"]})
        check("revenue", r, ok=(200, 201), doing="posting a milestone acceptance")
        lines = r.json.get("lines") or []
        return {"event_ref": body["event_ref"], "pob": body["pob_ref"], "replayed": bool(r.json.get("replayed")),
                "recognised": [{"period": ln["period"], "amount": ln["amount"]} for ln in lines]}

    def recognised(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        self._record(txn, message, result)
        self.core.trace("core.milestone.recognised", {"milestone": message["payload"]["milestone"], **result},
                        corr=message["corr"], cause=message["id"])

    def _record(self, txn: Transaction, message: dict, result: dict) -> None:
        msid = message["payload"]["milestone"]
        state = txn.get(STATE, msid) or {}
        state.setdefault("results", {})[message["op"]] = result
        txn.put(STATE, msid, state)
