"""A won deal as the CRM sold it, mapped into the canonical model and into
each target system's terms. Pure functions: no I/O, no store.

The CRM gives three things the quote-to-project flow reads once per deal
(`crm_snapshot` keeps only the fields used): the Opportunity, its Account, and
the baseline `ContractVersion` (number 1), whose ``ChangedLines`` are a
snapshot of every quote line as signed. The baseline is read from that
snapshot rather than from the live quote lines because an amendment signed
before the core reads the deal changes the live lines; version 1 must stay
the contract as signed, and the amendments flow adds version 2 and later.

The legal entity a deal is booked in is not a CRM field. It is decided the
way the firm's finance team sets clients up, from the ERP's subsidiaries
(`choose_subsidiary`): the subsidiary in the client's country, else the
first whose functional currency is the client's currency, else the first
(headquarters). Ids are compared in the ERP's creation order, so the choice
is deterministic.

Mappings into the targets' vocabularies live here too, so each vendor
module reads as calls, not as translation tables:

  billing model   PSA billing_rule         billing schedule model   revenue rec_method
  t_and_m         time_and_materials       time_and_materials       t_and_m (right-to-invoice)
  fixed_fee       fixed_fee                fixed_fee                point_in_time, one POB per milestone
  retainer        retainer                 retainer                 ratable over the service period
  managed_service subscription             subscription             ratable over the service period

(several models in one deal: PSA ``mixed``). Fixed-fee revenue is recognised
at a point in time, one performance obligation per milestone, because the
engine satisfies a point-in-time obligation once, on acceptance, and the
milestones flow posts one ``MILESTONE_ACCEPTED`` event per milestone; the
obligation's ``pob_ref`` is `pob_ref(line, name)` = ``"<QuoteLine Id>:<name>"``,
the same text as the PSA milestone's external reference. Standalone selling
prices are the lines' (milestones') prices: the CRM carries no separate SSP,
so the relative-SSP allocation gives each obligation exactly its price.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from ..model import Audit, CustomerAccount, SourceRef, TaxTreatment
from ..model_contracts import Contract, ContractLine, ContractVersion, MilestoneTerm, RateCardEntry

__all__ = [
    "ACCOUNT_FIELDS", "PSA_BILLING_RULES", "SCHEDULE_MODELS", "REVENUE_METHODS",
    "crm_snapshot", "choose_subsidiary", "entity_terms", "contract_of", "customer_of",
    "milestone_key", "pob_ref", "revenue_pobs", "schedule_terms", "psa_billing_rule", "money",
]

PSA_BILLING_RULES = {"t_and_m": "time_and_materials", "fixed_fee": "fixed_fee", "retainer": "retainer",
                     "managed_service": "subscription"}
SCHEDULE_MODELS = {"t_and_m": "time_and_materials", "fixed_fee": "fixed_fee", "retainer": "retainer",
                   "managed_service": "subscription"}
REVENUE_METHODS = {"t_and_m": "t_and_m", "fixed_fee": "point_in_time", "retainer": "ratable",
                   "managed_service": "ratable"}

_OPPORTUNITY = ("Id", "Name", "AccountId", "CurrencyIsoCode", "CloseDate", "Contract_Family__x", "IsWon",
                "Project_Ref__x")
ACCOUNT_FIELDS = ("Name", "AccountNumber", "BillingCountry", "CurrencyIsoCode", "TaxRegistration")
_ACCOUNT = ("Id", *ACCOUNT_FIELDS)
_LINE = ("LineId", "Product", "BillingModel", "Quantity", "UnitPrice", "TotalPrice", "ServiceStart", "ServiceEnd",
         "Milestones", "RateCard", "Line_Key__x")


def money(value: Decimal) -> str:
    """Decimal -> the wire's decimal string, never exponent notation."""
    return format(value, "f")


def milestone_key(line_id: str, name: str) -> str:
    """How the integration contract names a milestone: ``"<QuoteLine Id>:<name>"``."""
    return f"{line_id}:{name}"


def pob_ref(line_id: str, milestone_name: str | None = None) -> str:
    """The revenue engine's obligation for a line (or one fixed-fee milestone)."""
    return line_id if milestone_name is None else milestone_key(line_id, milestone_name)


# ------------------------------------------------------------------ the CRM's view


def crm_snapshot(opportunity: dict, account: dict, versions: list[dict], quote_lines: list[dict]) -> dict:
    """The part of the CRM's answers the flow keeps (JSON data).

    The baseline lines come from ContractVersion 1's snapshot; a CRM whose
    baseline is missing (never seen, but cheap to survive) falls back to the
    live quote lines."""
    baseline = next((v for v in versions if v.get("VersionNumber") == 1), None)
    if baseline is not None and baseline.get("ChangedLines"):
        lines = [{k: ln.get(k) for k in _LINE} for ln in baseline["ChangedLines"]]
        effective = baseline.get("EffectiveDate")
        version_id = baseline.get("Id")
    else:
        lines = [{**{k: ln.get(k) for k in _LINE}, "LineId": ln["Id"]} for ln in quote_lines]
        effective = None
        version_id = None
    lines.sort(key=lambda ln: ln["LineId"])
    return {
        "opportunity": {k: opportunity.get(k) for k in _OPPORTUNITY},
        "account": {k: account.get(k) for k in _ACCOUNT},
        "baseline": {"version_id": version_id, "effective_date": effective, "lines": lines},
    }


# ------------------------------------------------------------------ legal entity


def choose_subsidiary(subsidiaries: list[dict], country: str | None, currency: str | None) -> dict | None:
    """The subsidiary that bills a client in `country` paying in `currency`."""
    active = sorted((s for s in subsidiaries if not s.get("isInactive")), key=lambda s: int(s["id"]))
    for match in (lambda s: s.get("country") == country, lambda s: s.get("currency") == currency, lambda s: True):
        found = next((s for s in active if match(s)), None)
        if found is not None:
            return found
    return None


def entity_terms(subsidiary: dict, client_country: str) -> dict:
    """What the later steps need of the chosen subsidiary: its ERP id, its
    code (the legal entity code the PSA and the model use: the subsidiary's
    externalId), and the tax a document to this client carries -- the
    subsidiary's service rate at home, none across a border, as the ERP
    computes it."""
    domestic = subsidiary.get("country") == client_country
    regime = subsidiary.get("taxRegime") or {}
    rate = Decimal(str(regime.get("serviceRate") or "0")) if domestic else Decimal("0")
    return {
        "id": int(subsidiary["id"]),
        "code": subsidiary.get("externalId") or str(subsidiary["id"]),
        "country": subsidiary.get("country"),
        "currency": subsidiary.get("currency"),
        "tax_code": "standard" if domestic else "outside_scope",
        "tax_rate": money(rate.quantize(Decimal("0.0001"))),
    }


# ------------------------------------------------------------------ canonical records


def _day(text: str | None, what: str) -> date:
    if not isinstance(text, str):
        raise ValueError(f"{what} is {text!r}; the CRM should give a date like '2026-01-31'")
    return date.fromisoformat(text)


def _amount(text: Any, what: str) -> Decimal:
    if not isinstance(text, str):
        raise ValueError(f"{what} is {text!r}; the CRM should give a decimal string like '1250.00'")
    return Decimal(text)


def contract_line(ln: dict) -> ContractLine:
    where = f"quote line {ln['LineId']}"
    price = _amount(ln["TotalPrice"], f"{where} TotalPrice")
    return ContractLine(
        line_id=ln["LineId"],
        billing_model=ln["BillingModel"],
        description=ln["Product"],
        quantity=_amount(ln["Quantity"], f"{where} Quantity"),
        rate=_amount(ln["UnitPrice"], f"{where} UnitPrice"),
        price=price,
        standalone_selling_price=price,
        service_start=_day(ln["ServiceStart"], f"{where} ServiceStart"),
        service_end=_day(ln["ServiceEnd"], f"{where} ServiceEnd"),
        rate_card=tuple(RateCardEntry(e["Role"], _amount(e["Rate"], f"{where} rate of {e['Role']}"))
                        for e in ln.get("RateCard") or ()),
        milestones=tuple(MilestoneTerm(m.get("Key") or m["Name"], m["Name"],
                                       _amount(m["Amount"], f"{where} {m['Name']}"),
                                       _day(m["DueDate"], f"{where} {m['Name']} DueDate"))
                         for m in ln.get("Milestones") or ()),
    )


def contract_of(snapshot: dict, *, gid: str, customer_gid: str, legal_entity: str, audit: Audit) -> Contract:
    """Version 1 of the deal's contract. Raises ValueError (InvalidRecord
    among them) naming what in the CRM's data does not make a contract."""
    opp = snapshot["opportunity"]
    lines = tuple(contract_line(ln) for ln in snapshot["baseline"]["lines"])
    if not lines:
        raise ValueError(f"opportunity {opp['Id']} is won but has no quote lines in its baseline")
    effective = snapshot["baseline"]["effective_date"] or min(ln.service_start for ln in lines).isoformat()
    v1 = ContractVersion.of(1, _day(effective, "baseline EffectiveDate"), lines)
    return Contract(
        gid=gid, source_ids=(SourceRef("crm", opp["Id"]),), status="active", audit=audit,
        customer_gid=customer_gid, opportunity_id=opp["Id"], legal_entity=legal_entity,
        currency=opp["CurrencyIsoCode"] or snapshot["account"]["CurrencyIsoCode"], versions=(v1,),
    )


def customer_of(account: dict, *, gid: str, entity: dict, audit: Audit) -> CustomerAccount:
    name = account["Name"]
    return CustomerAccount(
        gid=gid, source_ids=(SourceRef("crm", account["Id"]),), status="active", audit=audit,
        name=name, country=account["BillingCountry"], currency=account["CurrencyIsoCode"],
        legal_entity=entity["code"], tax_registration=account.get("TaxRegistration"),
        tax=TaxTreatment(entity["tax_code"], Decimal(entity["tax_rate"]), False),
        bill_to=(name, account["BillingCountry"]),
    )


# ------------------------------------------------------------------ target terms


def psa_billing_rule(contract: Contract) -> str:
    models = sorted({ln.billing_model for ln in contract.version(1).lines})
    return PSA_BILLING_RULES[models[0]] if len(models) == 1 else "mixed"


def schedule_terms(line: ContractLine, milestone_refs: dict[str, str]) -> dict:
    """A billing schedule's model-specific terms for `line`; fixed-fee
    milestones are named by their PSA milestone id (`milestone_refs`: key ->
    PSA id), which is how the milestones flow bills them."""
    model = SCHEDULE_MODELS[line.billing_model]
    terms: dict[str, Any] = {"model": model}
    if model == "time_and_materials":
        terms["rate_card"] = [{"code": e.role, "unit_amount": money(e.rate), "description": e.role}
                              for e in line.rate_card]
    elif model == "fixed_fee":
        terms["milestones"] = [{"ref": milestone_refs[milestone_key(line.line_id, m.name)], "description": m.name,
                                "amount": money(m.amount)} for m in line.milestones]
    else:
        terms["recurring"] = {"amount": money(line.rate), "interval": "month"}
    return terms


def revenue_pobs(version: ContractVersion) -> list[dict]:
    """Performance obligations of a contract version (see the module docstring)."""
    pobs = []
    for ln in version.lines:
        start, end = ln.service_start.isoformat(), ln.service_end.isoformat()
        method = REVENUE_METHODS[ln.billing_model]
        if ln.billing_model == "fixed_fee":
            for m in sorted(ln.milestones, key=lambda m: (m.due_date, m.name)):
                pobs.append({"pob_ref": pob_ref(ln.line_id, m.name), "pob_name": f"{ln.description}: {m.name}",
                             "rec_method": method, "ssp_amount": money(m.amount), "start_date": start,
                             "end_date": max(m.due_date, ln.service_start).isoformat()})
        else:
            pobs.append({"pob_ref": pob_ref(ln.line_id), "pob_name": ln.description, "rec_method": method,
                         "ssp_amount": money(ln.standalone_selling_price), "start_date": start, "end_date": end})
    return pobs
