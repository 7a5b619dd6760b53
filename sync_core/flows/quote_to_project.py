"""Quote to project: a deal won in the CRM becomes a customer and a project in
the ERP, a project with its WBS and milestones in the PSA, a customer and
billing schedules in billing, and a revenue contract -- once, whatever the
network, the vendors and the core's own crashes do.

Trigger: a CRM change event for an Opportunity whose fields say ``IsWon``
true -- the CREATE of a deal won before go-live (the CRM's feed announces
the backlog at t=0) or the UPDATE that closes it won. The event may carry
only the changed fields, so the first step reads the deal back. In the feed
transaction the flow records the deal (table ``provisioning``, see
`quote_deal`) and queues the whole plan on the deal's aggregate
``deal:<Opportunity Id>``, so the steps run one at a time, in this order,
and whatever another flow queues for the deal later runs after them:

  step                         vendor call(s)                              safe to repeat by
  crm.read_won_deal            GET Opportunity, Account, ContractVersions  reads only
  erp.map_deal_entity          GET subsidiaries; the canonical Contract    reads only
                               (version 1, from the signed baseline) and
                               CustomerAccount are built and stored
  erp.upsert_customer          PUT /customers/eid:<Account Id>; for an     upsert by external id;
                               account's first deal, first GET Opportunity, adoption is a PUT of one
                               a CRM Account query and an ERP customer     field to a stated value
                               query: adopt finance's record, hold a
                               duplicate account (`quote_customer`)
  erp.upsert_deal_project      PUT /projects/eid:<Opportunity Id>          upsert by external id
  psa.create_deal_project      POST /projects                              look-up by external_reference
  psa.create_line_tasks        POST /tasks, one per line                   look-up; unique WBS code
  psa.create_line_milestones   POST /milestones, one per fixed-fee mstone  look-up by external_reference
  psa.activate_deal_project    duplicates renamed; POST .../activate       state checked first
  billing.upsert_deal_customer POST /v1/customers                          Idempotency-Key; look-up
  billing.create_line_schedules POST /v1/billing_schedules, one per line   Idempotency-Key; look-up
  revenue.book_deal_contract   POST /rc/contracts (source id, version 1)   the engine's upsert
  crm.write_project_ref        PATCH Opportunity Project_Ref__x            idempotent update

and, on its own aggregate so it holds nothing up, ``psa.verify_deal_setup``
ten minutes after activation (late network copies, see `quote_psa`). A CRM
account merge (the merged-away account's DELETE with MasterRecordId) sends
the deals waiting for either account's customer back to that step and
queues ``erp.follow_account_merge`` (`quote_customer`, rule 3).

A business refusal -- the ERP refusing a customer without the tax
registration its country requires, say -- goes to the exception queue of its
domain with the vendor's code (`sync_core.replies`), and because it heads
the deal's aggregate, nothing after it runs: no PSA project, no schedules,
no revenue contract, until a person fixes the data and retries it.

Cross-references written (read by the flows that come after; `sync_core.xrefs`):

  deal.account            Opportunity Id -> Account Id
  line.deal               QuoteLine Id -> Opportunity Id
  account.erp_customer    Account Id -> ERP customer internal id (string)
  deal.erp_project        Opportunity Id -> ERP project internal id (string)
  deal.psa_project        Opportunity Id -> PSA project id; psa_project.deal the reverse
  line.psa_task           QuoteLine Id -> PSA task id
  milestone.psa_milestone "<QuoteLine Id>:<milestone name>" -> PSA milestone id
  psa_milestone.milestone PSA milestone id -> [Opportunity Id, QuoteLine Id, milestone name]
  account.billing_customer Account Id -> billing customer id
  line.billing_schedule   QuoteLine Id -> billing schedule id
  deal.revenue_contract   Opportunity Id -> revenue contract id (rc_id)

and the deal's canonical `Contract` (`xrefs.put_contract_json`). Revenue
obligations are named by `quote_contract.pob_ref`; billing schedules name
fixed-fee milestones by their PSA milestone id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import xrefs
from ..codec import from_json, to_json
from ..dispatcher import OpContext, Operation
from ..model import Audit, CustomerAccount
from ..model_contracts import Contract
from ..outbox import Outbox, next_counter
from ..ports import Transaction
from ..replies import check, error_code
from ..retry import BusinessException, RetryLater
from . import quote_billing, quote_customer, quote_psa
from .quote_contract import (
    ACCOUNT_FIELDS, choose_subsidiary, contract_of, crm_snapshot, customer_of, entity_terms, revenue_pobs,
)
from .quote_deal import DEALS, call, deal_op, read, record_of, require_xref, update_record

if TYPE_CHECKING:
    from ..core import ReferenceCore

__all__ = ["build", "QuoteToProject", "PLAN", "CRM", "CLIENT_NAME"]

CRM = "/services/v1"
ERP = "/erp/v1"
CLIENT_NAME = "syncbed-core"  # the CRM marks our writes' change events "api:syncbed-core"

PLAN = (
    "crm.read_won_deal",
    "erp.map_deal_entity",
    "erp.upsert_customer",
    "erp.upsert_deal_project",
    "psa.create_deal_project",
    "psa.create_line_tasks",
    "psa.create_line_milestones",
    "psa.activate_deal_project",
    "billing.upsert_deal_customer",
    "billing.create_line_schedules",
    "revenue.book_deal_contract",
    "crm.write_project_ref",
)
VERIFY = "psa.verify_deal_setup"


def build(core: ReferenceCore) -> QuoteToProject:
    return QuoteToProject(core)


def _contract(txn: Transaction, deal: str) -> Contract:
    return from_json(Contract, xrefs.contract_json(txn, deal))


class QuoteToProject:
    name = "quote_to_project"

    def __init__(self, core: ReferenceCore) -> None:
        self.core = core
        core.feeds.on("crm", "Opportunity", self.on_opportunity)
        core.feeds.on("crm", "Account", self.on_account)

    def pollers(self) -> list:
        return []

    def webhooks(self) -> dict:
        return {}

    # ------------------------------------------------------------ trigger

    def on_opportunity(self, txn: Transaction, change: dict) -> None:
        header = change.get("header") or {}
        if header.get("changeType") == "DELETE" or (change.get("fields") or {}).get("IsWon") is not True:
            return
        cause = f"crm:{change['replayId']}"
        for deal in header.get("recordIds") or ():
            if record_of(txn, deal) is not None:
                continue  # already planned: a won deal is provisioned once
            corr = f"deal:{deal}"
            gid = Contract.gid_for(next_counter(txn, "gid.ctr"))
            update_record(txn, deal, state="planned", source_event=cause, planned_us=self.core.now_us(),
                          provisioned_us=None, contract_gid=gid)
            for op in PLAN:
                self.core.enqueue(txn, op, {"deal": deal}, aggregate=corr, corr=corr, cause=cause)
            self.core.trace("core.deal.won", {"deal": deal, "steps": len(PLAN)}, corr=corr, cause=cause)

    def on_account(self, txn: Transaction, change: dict) -> None:
        """Someone corrected an account in the CRM. Deals not yet provisioned
        see the correction (their snapshot is updated), and an ERP refusal of
        that account's customer parked in an exception queue is tried once
        more: the master data it was refused for has changed at its source.
        If the ERP refuses again, it goes back to the queue."""
        header = change.get("header") or {}
        if header.get("changeType") == "DELETE":
            quote_customer.on_account_merged(self.core, txn, change)
            return
        changed = {k: v for k, v in (change.get("fields") or {}).items() if k in ACCOUNT_FIELDS}
        if header.get("changeType") != "UPDATE" or not changed:
            return
        for acc in header.get("recordIds") or ():
            for deal, record in list(txn.scan(DEALS)):
                account = (record.get("snapshot") or {}).get("account") or {}
                if account.get("Id") != acc or record["state"] == "provisioned":
                    continue
                account.update(changed)
                txn.put(DEALS, deal, record)
                for key, item in list(txn.scan("exceptions")):
                    if item.get("aggregate") == f"deal:{deal}" and item.get("op") == "erp.upsert_customer":
                        Outbox.resolve_exception(txn, item["domain"], item["id"], retry=True, now_us=self.core.now_us())
                        self.core.dispatcher.wake()
                        self.core.trace("core.exception.retried", {"exception": key, "code": item.get("code"),
                                                                   "why": f"account {acc} changed: {sorted(changed)}"},
                                        corr=f"deal:{deal}", cause=f"crm:{change['replayId']}")

    # ------------------------------------------------------------ operations

    def operations(self) -> list[Operation]:
        multi = 600.0  # several calls, each with the client's own timeout; progress is kept as it goes
        return [
            deal_op("crm.read_won_deal", self.read_deal, self.record_read, states=("planned", "read")),
            deal_op("erp.map_deal_entity", self.map_entity, self.record_mapping, states=("read", "mapped")),
            deal_op("erp.upsert_customer", quote_customer.upsert_customer, quote_customer.record_customer),
            deal_op("erp.upsert_deal_project", self.upsert_erp_project, self.record_erp_project),
            deal_op("psa.create_deal_project", quote_psa.create_project, quote_psa.record_project),
            deal_op("psa.create_line_tasks", quote_psa.create_tasks, quote_psa.record_tasks, timeout=multi),
            deal_op("psa.create_line_milestones", quote_psa.create_milestones, quote_psa.record_milestones,
                    timeout=multi),
            deal_op("psa.activate_deal_project", quote_psa.activate_project, self.record_activation, timeout=multi),
            deal_op("billing.upsert_deal_customer", quote_billing.upsert_customer, quote_billing.record_customer),
            deal_op("billing.create_line_schedules", quote_billing.create_schedules, quote_billing.record_schedules,
                    timeout=multi),
            deal_op("revenue.book_deal_contract", self.book_revenue, self.record_revenue),
            deal_op("crm.write_project_ref", self.write_back, self.record_provisioned),
            deal_op(VERIFY, quote_psa.verify_setup, None, timeout=multi),
            quote_customer.merge_operation(self.core),
        ]

    # ---- CRM: read the deal

    async def read_deal(self, ctx: OpContext, deal: str, record: dict) -> dict:
        def get(path: str):
            return call(ctx, "GET", f"{CRM}/objects/{path}")

        opp = check("crm", await get(f"Opportunity/{deal}"), ok=(200,), doing=f"reading opportunity {deal}").json
        if not opp.get("IsWon"):
            return {"won": False, "stage": opp.get("StageName")}
        account = check("crm", await get(f"Account/{opp['AccountId']}"), ok=(200,),
                        doing=f"reading account {opp['AccountId']}").json
        versions = check("crm", await get(f"Opportunity/{deal}/ContractVersions"), ok=(200,),
                         doing=f"reading the contract versions of {deal}").json["records"]
        lines: list[dict] = []
        if not any(v.get("VersionNumber") == 1 and v.get("ChangedLines") for v in versions):
            lines = check("crm", await get(f"Opportunity/{deal}/QuoteLines"), ok=(200,),
                          doing=f"reading the quote lines of {deal}").json["records"]
        return {"won": True, "snapshot": crm_snapshot(opp, account, versions, lines)}

    def record_read(self, txn: Transaction, deal: str, result: dict, now_us: int) -> None:
        if not result["won"]:
            update_record(txn, deal, state="not_won")
            self.core.trace("core.deal.not_won", {"deal": deal, "stage": result["stage"]}, corr=f"deal:{deal}")
            return
        acc = result["snapshot"]["account"]["Id"]
        gid = txn.get("customer_gids", acc)
        if gid is None:
            gid = CustomerAccount.gid_for(next_counter(txn, "gid.cust"))
            txn.put("customer_gids", acc, gid)
        update_record(txn, deal, state="read", snapshot=result["snapshot"], customer_gid=gid)

    # ---- ERP: the legal entity, and the canonical records

    async def map_entity(self, ctx: OpContext, deal: str, record: dict) -> dict:
        snapshot = record["snapshot"]
        account = snapshot["account"]
        body = check("erp", await call(ctx, "GET", f"{ERP}/subsidiaries", query={"limit": "1000"}), ok=(200,),
                     doing="reading subsidiaries").json
        # By the account's own data, not the deal's: one customer, one subsidiary, whatever the deal.
        sub = choose_subsidiary(body["items"], account["BillingCountry"], account["CurrencyIsoCode"])
        if sub is None:
            raise BusinessException("finance", "NO_LEGAL_ENTITY", f"the ERP has no active subsidiary to book deal "
                                    f"{deal} of account {account['Id']} in; activate or create one", {"deal": deal})
        entity = entity_terms(sub, account["BillingCountry"])
        audit = Audit.at(ctx.env.now(), correlation_id=f"deal:{deal}", source_event=record["source_event"],
                         causation_id=ctx.message["id"])
        try:
            contract = contract_of(snapshot, gid=record["contract_gid"], customer_gid=record["customer_gid"],
                                   legal_entity=entity["code"], audit=audit)
            customer = customer_of(account, gid=record["customer_gid"], entity=entity, audit=audit)
        except ValueError as exc:
            raise BusinessException("it", "INVALID_CONTRACT", f"deal {deal} does not make a contract: {exc}",
                                    {"deal": deal}) from None
        return {"entity": entity, "contract": to_json(contract), "customer": to_json(customer)}

    def record_mapping(self, txn: Transaction, deal: str, result: dict, now_us: int) -> None:
        record = update_record(txn, deal, state="mapped", entity=result["entity"])
        acc = record["snapshot"]["account"]["Id"]
        if xrefs.contract_json(txn, deal) is None:  # never overwrite: later versions may be in it already
            xrefs.put_contract_json(txn, deal, result["contract"])
        txn.put("customers", acc, result["customer"])
        xrefs.put(txn, "deal.account", deal, acc)
        for line in result["contract"]["versions"][0]["lines"]:
            xrefs.put(txn, "line.deal", line["line_id"], deal)

    # ---- ERP: customer and project

    async def upsert_erp_project(self, ctx: OpContext, deal: str, record: dict) -> dict:
        acc = record["snapshot"]["account"]["Id"]
        require_xref(ctx.env, "account.erp_customer", acc, "upserting the ERP project")
        contract = read(ctx.env, lambda txn: _contract(txn, deal))
        lines = contract.version(1).lines
        body = {"name": record["snapshot"]["opportunity"]["Name"], "customer": f"eid:{acc}",
                "currency": contract.currency, "startDate": min(ln.service_start for ln in lines).isoformat(),
                "endDate": max(ln.service_end for ln in lines).isoformat()}
        response = await call(ctx, "PUT", f"{ERP}/projects/eid:{deal}", json=body)
        project = check("erp", response, ok=(200, 201), doing=f"upserting the project of deal {deal}").json
        return {"id": str(project["id"])}

    def record_erp_project(self, txn: Transaction, deal: str, result: dict, now_us: int) -> None:
        xrefs.put(txn, "deal.erp_project", deal, result["id"])

    # ---- PSA activation: then the late look for copies

    def record_activation(self, txn: Transaction, deal: str, result: dict, now_us: int) -> None:
        self.core.enqueue(txn, VERIFY, {"deal": deal}, aggregate=f"psa-setup:{deal}", corr=f"deal:{deal}",
                          cause=txn.get(DEALS, deal)["source_event"], delay_us=quote_psa.VERIFY_DELAY_US)

    # ---- revenue

    async def book_revenue(self, ctx: OpContext, deal: str, record: dict) -> dict:
        contract = read(ctx.env, lambda txn: _contract(txn, deal))
        version = contract.version(1)
        body = {"source_contract_id": deal, "source_version": version.version, "currency_code": contract.currency,
                "transaction_price": format(version.total, "f"), "pobs": revenue_pobs(version)}
        response = await call(ctx, "POST", "/rc/contracts", json=body, idempotent=True)  # upsert by source and version
        code = error_code("revenue", response.json)
        if response.status == 409 and code == "STALE_VERSION":
            return {"rc_id": response.json["rc_id"]}  # a later version is booked already: v1 was there before it
        if response.status == 409 and code == "RC_LOCKED":
            raise RetryLater(f"revenue contract of {deal} is locked by a running job")
        body = check("revenue", response, ok=(200, 201), doing=f"booking the contract of deal {deal}").json
        return {"rc_id": body["contract"]["rc_id"]}

    def record_revenue(self, txn: Transaction, deal: str, result: dict, now_us: int) -> None:
        xrefs.put(txn, "deal.revenue_contract", deal, result["rc_id"])

    # ---- CRM write-back

    async def write_back(self, ctx: OpContext, deal: str, record: dict) -> dict:
        project = require_xref(ctx.env, "deal.psa_project", deal, "writing the project back to the CRM")
        response = await call(ctx, "PATCH", f"{CRM}/objects/Opportunity/{deal}", json={"Project_Ref__x": project},
                                  headers={"x-client-name": CLIENT_NAME})
        check("crm", response, ok=(200, 204), doing=f"writing Project_Ref__x of {deal}")
        return {"project": project}

    def record_provisioned(self, txn: Transaction, deal: str, result: dict, now_us: int) -> None:
        record = update_record(txn, deal, state="provisioned", provisioned_us=now_us)
        self.core.trace("core.deal.provisioned", {"deal": deal, "psa_project": result["project"],
                                                  "setup_us": now_us - record["planned_us"]}, corr=f"deal:{deal}")
