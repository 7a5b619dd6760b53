"""Cross-references: which record in one system stands for which in another.

The flows share these through the store (table ``xref``), written by the
flow that creates a record and read by the flows that come after. One
function pair per relation, so a flow never spells a key by hand:

  deal (CRM Opportunity Id)      -> PSA project id, ERP project id,
                                     revenue contract id, billing schedules
  PSA project id                 -> deal
  contract line (CRM QuoteLine)  -> PSA task id, billing schedule id
  account (CRM Account Id)       -> ERP customer id, billing customer id
  milestone (<line>:<name>)      -> PSA milestone id
  PSA milestone id               -> (deal, line, name)
  employee (HRIS employeeId)     -> PSA resource id

The canonical contract of a deal (`sync_core.model.Contract`, through the
codec) lives in table ``contracts`` keyed by the deal.
"""

from __future__ import annotations

from typing import Any

from .ports import Transaction

__all__ = ["put", "get", "deal_of_psa_project", "contract_json", "put_contract_json", "KINDS"]

KINDS = {
    "deal.psa_project",
    "deal.erp_project",
    "deal.revenue_contract",
    "deal.account",
    "psa_project.deal",
    "line.psa_task",
    "line.billing_schedule",
    "line.deal",
    "account.erp_customer",
    "account.billing_customer",
    "milestone.psa_milestone",
    "psa_milestone.milestone",
    "employee.psa_resource",
    "psa_resource.employee",
}


def _key(kind: str, source_id: str) -> str:
    if kind not in KINDS:
        raise KeyError(f"unknown cross-reference kind {kind!r}; add it to sync_core.xrefs.KINDS")
    return f"{kind}:{source_id}"


def put(txn: Transaction, kind: str, source_id: str, value: Any) -> None:
    txn.put("xref", _key(kind, source_id), value)


def get(txn: Transaction, kind: str, source_id: str) -> Any | None:
    return txn.get("xref", _key(kind, source_id))


def deal_of_psa_project(txn: Transaction, psa_project_id: str) -> str | None:
    return get(txn, "psa_project.deal", psa_project_id)


def contract_json(txn: Transaction, deal: str) -> dict | None:
    return txn.get("contracts", deal)


def put_contract_json(txn: Transaction, deal: str, contract: dict) -> None:
    txn.put("contracts", deal, contract)
