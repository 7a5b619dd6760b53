"""A careful sync core played by hand, for the invariants' tests.

`HandCore` does what the integration contract asks of a core
(docs/integration-contract.md), synchronously, through each fake's own
routes: requests carry the contract's correlation headers, records the
contract's references. `clean_world()` runs a month of a small firm with it
-- deals provisioned, an amendment applied, time approved, rejected and
corrected, a milestone accepted, expenses filed, a billing run -- and every
invariant must hold. Each test then breaks one thing (a subclass with one
method wrong, or a `tamper` step at the end of the script) and looks for the
violation.

It prices time with its own small reading of the CRM's contract versions,
independent of the harness's, so a bug in either shows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time
from decimal import ROUND_HALF_UP, Decimal

from fake_systems.firm_generator import FirmParams
from harness.world import BusinessWorld
from simulator import Request, load_profile
from simulator.actors import Delayed
from tests.harness.idle_world import IdleCore

RULES = {"t_and_m": "time_and_materials", "fixed_fee": "fixed_fee", "retainer": "retainer",
         "managed_service": "subscription"}
METHODS = {"t_and_m": "t_and_m", "retainer": "ratable", "managed_service": "ratable"}
PATHS = {"erp": "/erp/v1", "crm": "/services/v1", "billing": "/v1", "revenue": "/rc", "psa": ""}


class CallFailed(AssertionError):
    pass


class HandCore:
    tax_percent = "8.25"

    def __init__(self, world: BusinessWorld) -> None:
        self.world = world
        self.ids: dict[str, dict] = {}  # opp -> what was made for it
        self.billing_customers: dict[str, str] = {}
        self.posted: dict[str, set[int]] = {}  # time entry -> versions posted (not reversed)
        self.billed_milestones: set[str] = set()
        self.synced_expenses: set[str] = set()

    # ------------------------------------------------------------ the wire

    def call(self, system: str, method: str, path: str, json=None, *, query=None, corr=None, key=None, ok=True):
        headers = {"x-correlation-id": corr, "x-causation-id": "hand-core", "x-client-name": "hand-core"}
        if key:
            headers["idempotency-key"] = key
        fake = self.world.fakes[system]
        r = fake.handle(Request(method, PATHS[system] + path, query, {k: v for k, v in headers.items() if v}, json))
        r = r.response if isinstance(r, Delayed) else r
        if ok and not r.ok:
            raise CallFailed(f"{system} {method} {path} -> {r.status} {r.json}")
        return r

    # ------------------------------------------------------------ reading the CRM (own reading, not the harness's)

    def crm(self, table: str) -> dict[str, dict]:
        return self.world.crm.table(table)

    def lines(self, opp: str) -> list[dict]:
        return sorted((ln for ln in self.crm("QuoteLine").values() if ln["OpportunityId"] == opp), key=lambda r: r["Id"])

    def versions(self, opp: str) -> list[dict]:
        return sorted((v for v in self.crm("ContractVersion").values() if v["OpportunityId"] == opp),
                      key=lambda v: v["VersionNumber"])

    def bill_rate(self, opp: str, line: str, role: str, day: str) -> Decimal:
        versions = self.versions(opp)
        in_force = [v for v in versions if v["EffectiveDate"] <= day] or versions[:1]
        number = max(v["VersionNumber"] for v in in_force)
        card = None
        for v in versions:
            if v["VersionNumber"] <= number:
                for snap in v["ChangedLines"]:
                    if snap["LineId"] == line:
                        card = snap["RateCard"]
        return Decimal(next(e["Rate"] for e in card if e["Role"] == role))

    # ------------------------------------------------------------ provisioning

    def provision(self, opp: str) -> dict:
        world, o = self.world, self.crm("Opportunity")[opp]
        acc = self.crm("Account")[o["AccountId"]]
        client = next(c for c in world.firm.clients if c.id == acc["AccountNumber"])
        deal = next(d for d in world.firm.deals if d.id == o["Contract_Family__x"])
        corr, cur = f"deal:{opp}", o["CurrencyIsoCode"]
        made: dict = {"lines": {}, "milestones": {}, "schedules": {}}
        self.call("erp", "PUT", f"/customers/eid:{acc['Id']}", {
            "companyName": acc["Name"], "subsidiary": world.erp.erp_id(client.bill_to_entity_id), "currency": cur,
            "country": acc["BillingCountry"], "taxRegistration": acc["TaxRegistration"]}, corr=corr)
        made["erp_project"] = self.call("erp", "PUT", f"/projects/eid:{opp}", {
            "name": o["Name"], "customer": f"eid:{acc['Id']}"}, corr=corr).json["id"]
        lines = self.lines(opp)
        models = sorted({ln["BillingModel"] for ln in lines})
        pid = made["psa_project"] = self.create_psa_project(opp, {
            "title": o["Name"], "client_name": acc["Name"], "currency": cur,
            "billing_rule": RULES[models[0]] if len(models) == 1 else "mixed", "legal_entity_code": deal.entity_id,
            "external_reference": opp, "start_date": min(ln["ServiceStart"] for ln in lines),
            "due_date": max(ln["ServiceEnd"] for ln in lines)})
        self.call("psa", "POST", f"/projects/{pid}/activate", corr=corr)
        self.call("crm", "PATCH", f"/objects/Opportunity/{opp}", {"Project_Ref__x": pid}, corr=corr)
        if acc["Id"] not in self.billing_customers:
            self.billing_customers[acc["Id"]] = self.call("billing", "POST", "/customers", {
                "name": acc["Name"], "currency": cur.lower(), "external_ref": acc["Id"],
                "tax_percent": self.tax_percent}, corr=corr, key=f"cus:{acc['Id']}").json["id"]
        made["billing_customer"] = self.billing_customers[acc["Id"]]
        for ln in lines:
            self.provision_line(opp, ln, made, corr)
        version = self.versions(opp)[-1]["VersionNumber"]
        self.call("revenue", "POST", "/contracts", {
            "source_contract_id": opp, "source_version": version, "currency_code": cur,
            "transaction_price": o["Amount"], "pobs": [p for ln in lines for p in self.pobs(ln)]}, corr=corr)
        self.ids[opp] = made
        return made

    def create_psa_project(self, opp: str, body: dict) -> str:
        return self.call("psa", "POST", "/projects", body, corr=f"deal:{opp}").json["id"]

    def provision_line(self, opp: str, ln: dict, made: dict, corr: str) -> None:
        pid, lid = made["psa_project"], ln["Id"]
        task = self.call("psa", "POST", "/tasks", {
            "project_id": pid, "title": ln["Product"], "billable": ln["BillingModel"] == "t_and_m", "line_ref": lid,
            "external_reference": lid}, corr=corr).json["id"]
        made["lines"][lid] = task
        for m in ln["Milestones"] or []:
            made["milestones"][f"{lid}:{m['Name']}"] = self.call("psa", "POST", "/milestones", {
                "project_id": pid, "task_id": task, "title": m["Name"], "amount": m["Amount"], "due_date": m["DueDate"],
                "external_reference": f"{lid}:{m['Name']}"}, corr=corr).json["id"]
        version = self.versions(opp)[-1]["VersionNumber"]
        made["schedules"][lid] = self.call("billing", "POST", "/billing_schedules", {
            "customer": made["billing_customer"], "contract_ref": opp, "model": RULES[ln["BillingModel"]],
            "start_date": ln["ServiceStart"], "end_date": ln["ServiceEnd"], **self.schedule_terms(ln, made),
            "metadata": {"line": lid, "version": str(version)}}, corr=corr, key=f"bs:{lid}").json["id"]

    def schedule_terms(self, ln: dict, made: dict) -> dict:
        model = ln["BillingModel"]
        if model == "t_and_m":
            return {"rate_card": [{"code": e["Role"], "unit_amount": e["Rate"]} for e in ln["RateCard"]]}
        if model == "fixed_fee":
            return {"milestones": [{"ref": made["milestones"][f"{ln['Id']}:{m['Name']}"], "description": m["Name"],
                                    "amount": m["Amount"]} for m in ln["Milestones"]]}
        return {"recurring": {"amount": ln["UnitPrice"], "interval": "month"}}

    def pobs(self, ln: dict) -> list[dict]:
        if ln["BillingModel"] == "fixed_fee":
            return [{"pob_ref": f"{ln['Id']}:{m['Name']}", "pob_name": m["Name"], "rec_method": "point_in_time",
                     "ssp_amount": m["Amount"]} for m in ln["Milestones"]]
        return [{"pob_ref": ln["Id"], "pob_name": ln["Product"], "rec_method": METHODS[ln["BillingModel"]],
                 "ssp_amount": ln["TotalPrice"], "start_date": ln["ServiceStart"], "end_date": ln["ServiceEnd"]}]

    def apply_amendment(self, opp: str) -> None:
        """A rate change: the T&M schedules get the new card, the revenue contract the new version."""
        corr, made = f"deal:{opp}", self.ids[opp]
        version = self.versions(opp)[-1]
        for snap in version["ChangedLines"]:
            ln = self.crm("QuoteLine")[snap["LineId"]]
            self.call("billing", "POST", f"/billing_schedules/{made['schedules'][ln['Id']]}", {
                **self.schedule_terms(ln, made), "metadata": {"line": ln["Id"], "version": str(version["VersionNumber"])}},
                corr=corr, key=f"bs:{ln['Id']}:v{version['VersionNumber']}")
        o = self.crm("Opportunity")[opp]
        self.call("revenue", "POST", "/contracts", {
            "source_contract_id": opp, "source_version": version["VersionNumber"], "currency_code": o["CurrencyIsoCode"],
            "transaction_price": o["Amount"], "pobs": [p for ln in self.lines(opp) for p in self.pobs(ln)]}, corr=corr)

    # ------------------------------------------------------------ time

    def deal_of_project(self, project_id: str) -> str:
        return next(opp for opp, made in self.ids.items() if made["psa_project"] == project_id)

    def line_of_task(self, opp: str, task_id: str) -> dict:
        lid = next(lid for lid, t in self.ids[opp]["lines"].items() if t == task_id)
        return self.crm("QuoteLine")[lid]

    def role(self, entry: dict) -> str:
        psa = self.world.psa
        return psa.table("roles")[psa.table("resources")[entry["resource_id"]]["role_id"]]["external_reference"]

    def sync_time(self) -> None:
        """Post every approved entry's current version; reverse what a
        recall or correction replaced."""
        for entry in list(self.world.psa.table("time_entries").values()):
            posted = self.posted.setdefault(entry["id"], set())
            for v in sorted(posted):
                if v != entry["version"] or entry["status"] != "approved":
                    self.reverse_time(entry, v)
                    posted.discard(v)
            if entry["status"] == "approved" and entry["version"] not in posted:
                self.post_time(entry)
                posted.add(entry["version"])

    def priced(self, entry: dict, snapshot: dict) -> tuple[Decimal, Decimal, bool]:
        """(rate, amount, billable T&M) of one version of an entry."""
        opp = self.deal_of_project(entry["project_id"])
        ln = self.line_of_task(opp, entry["task_id"])
        if ln["BillingModel"] != "t_and_m" or not entry["billable"]:
            return Decimal(0), Decimal("0.00"), False
        rate = self.bill_rate(opp, ln["Id"], self.role(entry), snapshot["date"])
        hours = Decimal(snapshot["hours"])
        return rate, (hours * rate).quantize(Decimal("0.01"), ROUND_HALF_UP), True

    def post_time(self, entry: dict) -> None:
        self.send_time(entry, entry, f"{entry['id']}:v{entry['version']}", Decimal(1))

    def reverse_time(self, entry: dict, version: int) -> None:
        history = self.world.psa.table("time_entry_versions")[entry["id"]]["versions"]
        snapshot = next(v for v in history if v["version"] == version)
        self.send_time(entry, snapshot, f"{entry['id']}:v{version}:rev", Decimal(-1))

    def send_time(self, entry: dict, snapshot: dict, ref: str, sign: Decimal) -> None:
        opp = self.deal_of_project(entry["project_id"])
        ln = self.line_of_task(opp, entry["task_id"])
        rate, amount, billable = self.priced(entry, snapshot)
        hours, corr = Decimal(snapshot["hours"]), f"te:{entry['id']}"
        cost = Decimal(snapshot["cost_amount"] or "0")
        self.call("erp", "PUT", f"/projectActuals/eid:te:{ref}", {
            "project": f"eid:{opp}", "type": "time", "tranDate": snapshot["date"], "hours": str(sign * hours),
            "costAmount": str(sign * cost), "revenueAmount": str(sign * amount), "employee": entry["resource_id"]},
            corr=corr)
        if not billable:
            return
        kind = "time_entry" if sign > 0 else "adjustment"
        self.call("billing", "POST", "/invoice_items", {
            "customer": self.ids[opp]["billing_customer"], "schedule": self.ids[opp]["schedules"][ln["Id"]],
            "quantity": str(hours), "unit_amount": str(sign * rate), "description": f"time {ref}",
            "source": {"type": kind, "id": ref}, "service_date": snapshot["date"]}, corr=corr, key=f"ii:{ref}")
        self.call("revenue", "POST", "/events", {
            "event_ref": f"te:{ref}", "source_contract_id": opp, "pob_ref": ln["Id"], "event_type": "TIME_APPROVED",
            "event_date": snapshot["date"], "hours": str(sign * hours), "bill_rate": str(rate)}, corr=corr)

    # ------------------------------------------------------------ milestones and expenses

    def sync_milestones(self) -> None:
        for m in list(self.world.psa.table("milestones").values()):
            if m["accepted_on"] is None or m["id"] in self.billed_milestones:
                continue
            opp = self.deal_of_project(m["project_id"])
            lid = m["external_reference"].split(":", 1)[0]
            corr = f"deal:{opp}"
            self.call("billing", "POST", "/invoice_items", {
                "customer": self.ids[opp]["billing_customer"], "schedule": self.ids[opp]["schedules"][lid],
                "source": {"type": "milestone", "id": m["id"]}, "service_date": m["accepted_on"]},
                corr=corr, key=f"ii:ms:{m['id']}")
            self.call("revenue", "POST", "/events", {
                "event_ref": f"ms:{m['id']}", "source_contract_id": opp, "pob_ref": m["external_reference"],
                "event_type": "MILESTONE_ACCEPTED", "event_date": m["accepted_on"]}, corr=corr)
            self.billed_milestones.add(m["id"])

    def sync_expenses(self) -> None:
        world = self.world
        reports = world.expenses.table("reports")
        for x in list(world.expenses.table("entries").values()):
            if reports[x["ReportId"]]["Status"] not in ("APPROVED", "REIMBURSED") or x["EntryId"] in self.synced_expenses:
                continue
            opp, corr = x["ProjectRef"], f"ex:{x['EntryId']}"
            if opp not in self.ids:
                continue  # its deal was never provisioned
            self.call("erp", "PUT", f"/projectActuals/eid:ex:{x['EntryId']}", {
                "project": f"eid:{opp}", "type": "expense", "tranDate": x["TransactionDate"], "amount": x["Amount"],
                "billable": x["IsBillable"], "currency": x["Currency"]}, corr=corr)
            if x["IsBillable"]:
                self.call("billing", "POST", "/invoice_items", {
                    "customer": self.ids[opp]["billing_customer"], "amount": x["Amount"],
                    "description": f"{x['Category']} {x['Merchant']}", "source": {"type": "expense", "id": x["EntryId"]},
                    "service_date": x["TransactionDate"]}, corr=corr, key=f"ii:ex:{x['EntryId']}")
            self.synced_expenses.add(x["EntryId"])


# ---------------------------------------------------------------- the month


SEED = 5
FIRM = FirmParams(consultants=10, entities=1, currencies=("USD",))
#: (worker, firm project, firm line, work date, hours, story)
TIME = [
    ("W000001", "P00001", "L000003", date(2026, 1, 12), "7.50", "approved"),   # before the rate change
    ("W000001", "P00001", "L000003", date(2026, 1, 14), "8.00", "approved"),   # after it
    ("W000001", "P00001", "L000003", date(2026, 1, 15), "6.00", "rejected"),
    ("W000001", "P00001", "L000003", date(2026, 1, 16), "4.00", "corrected"),  # to 5.00
    ("W000001", "P00001", "L000002", date(2026, 1, 13), "2.00", "approved"),   # fixed fee: posted, not billed
    ("W000001", "P00002", "L000004", date(2026, 1, 12), "4.00", "approved"),
]


def clean_world(core: type[HandCore] = HandCore, tamper: Callable[[HandCore, object], None] | None = None,
                *, keep_trace: bool = False, skip: tuple[str, ...] = ()) -> tuple[BusinessWorld, dict, HandCore]:
    """Run the month with `core`; `tamper(core, driver)` runs last, before
    the world heals; firm deals in `skip` are left unprovisioned."""
    world = BusinessWorld(seed=SEED, chaos=load_profile("none"), core_factory=IdleCore,
                          header={"scenario": "hand-core"}, firm_params=FIRM, keep_trace=keep_trace)
    hand = core(world)
    psa, firm = world.psa, world.firm

    async def script(d):
        await d.advance_to(date(2026, 1, 2), time(9))
        for deal in d.deals_closing(0):
            d.close_deal(deal)
        await d.advance(hours=1)
        for deal in firm.deals:
            if deal.id not in skip:
                hand.provision(world.crm.crm_id(deal.id))
        await d.advance(hours=2)
        for p in firm.projects:
            opp = world.crm.crm_id(p.deal_id)
            if opp in hand.ids:
                psa.staff_project(firm, p.id, hand.ids[opp]["psa_project"])
        await d.advance_to(date(2026, 1, 5), time(10))
        for a in d.amendments(0):
            d.amend(a)
            if world.crm.crm_id(a.deal_id) in hand.ids:
                hand.apply_amendment(world.crm.crm_id(a.deal_id))
        made = []
        for worker, project, line, day, hours, story in TIME:
            opp = world.crm.crm_id(next(p.deal_id for p in firm.projects if p.id == project))
            if opp not in hand.ids:
                continue  # not provisioned: nobody can log time on it
            task = hand.ids[opp]["lines"][world.crm.crm_id(line)]
            entry = psa.log_time(psa.firm_id(worker), hand.ids[opp]["psa_project"], day, hours, task_id=task)
            made.append((entry["id"], story))
        await d.advance_to(date(2026, 1, 16), time(17, 30))
        for entry, _ in made:
            psa.submit_time_entry(entry)
        await d.advance_to(date(2026, 1, 19), time(10))
        for entry, story in made:
            if story == "rejected":
                psa.reject_time_entry(entry, "wrong task")
            else:
                psa.approve_time_entry(entry)
        await d.advance(hours=1)
        hand.sync_time()
        await d.advance_to(date(2026, 1, 21), time(9))
        for entry, story in made:
            if story == "corrected":
                psa.recall_time_entry(entry)
                psa.edit_time_entry(entry, hours="5.00")
                psa.submit_time_entry(entry)
        milestone = hand.ids[world.crm.crm_id("D00001")]["milestones"][f"{world.crm.crm_id('L000002')}:Build complete"]
        psa.complete_milestone(milestone, date(2026, 1, 20))
        await d.advance_to(date(2026, 1, 22), time(10))
        for entry, story in made:
            if story == "corrected":
                psa.approve_time_entry(entry)
        psa.record_client_acceptance(milestone, date(2026, 1, 22))
        d.submit_expenses(0)
        await d.advance(hours=1)
        hand.sync_time()
        hand.sync_milestones()
        hand.sync_expenses()
        await d.to_month_end()
        d.run_billing()
        await d.next_month()
        if tamper is not None:
            tamper(hand, d)
        await d.advance(hours=1)

    outcome = world.run(script)
    return world, outcome, hand
