"""A generated firm (`firm_model`) as the CRM holds it.

    client   -> Account (AccountNumber = the client id; a FLAG_DUPLICATE_NAME
                client is a second account for the same business, as sales
                people make them; a FLAG_MISSING_TAX_ID client has no
                TaxRegistration)
    deal     -> Opportunity (Contract_Family__x = the deal id), Closed Won
                with its baseline ContractVersion -- or at Negotiation if the
                deal closes during the run (`MonthActivity.closed_deal_ids`:
                the scenario calls `Crm.close_won` when it does)
    line     -> QuoteLine (Line_Key__x = the line id):
                t_and_m          Quantity = estimated hours, TotalPrice = the estimate, RateCard
                fixed_fee        Quantity = 1, TotalPrice = price, Milestones (Key = milestone id)
                retainer,
                managed_service  Quantity = term months, UnitPrice = monthly fee
    amendment -> `Crm.amend_contract` arguments (`amendment_terms`)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .crm_org import plain
from .crm_schema import CLOSED_WON, parse_body
from .firm_model import FIXED_FEE, MANAGED_SERVICE, RATE_CHANGE, RETAINER, SCOPE_CHANGE, T_AND_M, TERM_EXTENSION

if TYPE_CHECKING:
    from .crm import Crm
    from .firm_model import Amendment, ContractLine, Firm

__all__ = ["load_firm", "line_fields", "amendment_terms"]


def line_fields(line: ContractLine) -> dict[str, Any]:
    """A firm contract line as QuoteLine fields (v1 names, JSON data)."""
    fields: dict[str, Any] = {
        "Product": line.description, "BillingModel": line.billing_model, "Line_Key__x": line.id,
        "ServiceStart": line.service_start, "ServiceEnd": line.service_end,
    }
    if line.billing_model == T_AND_M:
        fields.update(Quantity=line.estimated_hours or 1, TotalPrice=line.price,
                      RateCard=[{"Role": e.role_id, "Rate": e.bill_rate} for e in line.rate_card])
    elif line.billing_model == FIXED_FEE:
        fields.update(Quantity=1, TotalPrice=line.price, Milestones=[
            {"Name": m.name, "Amount": m.amount, "DueDate": m.due_date, "Key": m.id} for m in line.milestones
        ])
    elif line.billing_model in (RETAINER, MANAGED_SERVICE):
        fields.update(Quantity=line.term_months, UnitPrice=line.monthly_fee)
    else:
        raise ValueError(f"line {line.id} has billing model {line.billing_model!r}, which the CRM does not sell")
    return plain(fields)


def load_firm(crm: Crm, firm: Firm) -> dict[str, str]:
    """Load clients and deals; returns (and remembers) firm id -> CRM id."""
    org = crm.org
    ids: dict[str, str] = {}
    closing_in_run = {deal_id for month in firm.months for deal_id in month.closed_deal_ids}
    for client in firm.clients:
        values = parse_body("Account", {
            "Name": client.name, "AccountNumber": client.id, "BillingCountry": client.country,
            "CurrencyIsoCode": client.currency, "TaxRegistration": client.tax_id,
        }, "v1", creating=True)
        ids[client.id] = org.insert("Account", values)
    for deal in firm.deals:
        head = parse_body("Opportunity", plain({
            "Name": deal.name, "AccountId": ids[deal.client_id], "StageName": "Negotiation",
            "CloseDate": deal.close_date, "CurrencyIsoCode": deal.currency, "Contract_Family__x": deal.id,
        }), "v1", creating=True)
        lines = [parse_body("QuoteLine", line_fields(line), "v1", creating=True) for line in deal.lines]
        stage = {} if deal.id in closing_in_run else {"StageName": CLOSED_WON}
        ids[deal.id] = opp_id = org.insert_opportunity(head, lines, stage)
        for line, record in zip(deal.lines, org.lines(opp_id)):
            ids[line.id] = record["Id"]
    crm.durable.extra.setdefault("firm_ids", {}).update(ids)
    return ids


def amendment_terms(crm: Crm, a: Amendment) -> dict[str, Any]:
    """Keyword arguments of `Crm.amend_contract` for a firm amendment."""
    terms: dict[str, Any] = {
        "kind": a.kind, "effective_date": a.effective_date, "signed_date": a.signed_on,
        "amendment_ref": a.id, "description": f"{a.kind.replace('_', ' ')} ({a.id}, version {a.version})",
    }
    if a.kind == RATE_CHANGE:
        terms["line_changes"] = {crm.crm_id(a.line_id): {"RateCard": [{"Role": e.role_id, "Rate": e.bill_rate}
                                                                     for e in a.rate_card]}}
    elif a.kind == SCOPE_CHANGE:
        terms["added_lines"] = [line_fields(a.added_line)]
    elif a.kind == TERM_EXTENSION:
        terms["line_changes"] = {crm.crm_id(a.line_id): {"Quantity": a.new_term_months, "ServiceEnd": a.new_service_end}}
    else:
        raise ValueError(f"amendment {a.id} has kind {a.kind!r}; the CRM knows {RATE_CHANGE}, {SCOPE_CHANGE}, {TERM_EXTENSION}")
    return terms
