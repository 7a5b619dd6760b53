"""The org: the CRM's records and the rules every write passes through.

Whether a write comes from the API, a composite sub-request, a person in
the UI or a data load, it ends up here, inside the transaction the caller
opened (`Crm.atomic`). Each object has its rules (`_check_<Object>`), and
some writes have consequences, made in the same transaction:

  * a quote line changes -> its opportunity's Amount is rolled up again;
  * an opportunity becomes Closed Won -> the baseline ContractVersion (1)
    is signed with a snapshot of every line; from then on its lines and
    commercial fields are locked and change only by `amend` (version n+1,
    the changed and added lines, the price delta; the baseline is kept);
  * two accounts merge -> the loser's children move to the survivor, the
    survivor fills its blanks from the loser, the loser is deleted with
    MasterRecordId pointing at the survivor.

`system=True` marks writes the CRM makes itself (rollups, amendments,
merges): they pass the locks a person or an integration must respect.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from .money import MINOR_UNITS
from .crm_schema import CLOSED_WON, OBJECTS, STAGES, check_value, format_id, money_value, spec_of
from .vendor import VendorError

if TYPE_CHECKING:
    from .crm import Crm

__all__ = ["Org", "plain"]

LINE_TERMS = ("Product", "BillingModel", "Quantity", "UnitPrice", "TotalPrice", "ServiceStart", "ServiceEnd",
              "Milestones", "RateCard", "Line_Key__x")
#: on a Closed Won opportunity these change only through an amendment
LOCKED_WHEN_WON = ("StageName", "AccountId", "CurrencyIsoCode", "CloseDate", "Amount")
ACCOUNT_BLANKS_FILLED_BY_MERGE = ("AccountNumber", "TaxRegistration", "Core_Ref__x")


def plain(value: Any) -> Any:
    """What a person typed, as JSON data: dates to ISO text, Decimals to strings."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _rule(message: str, field: str | None = None) -> VendorError:
    return VendorError(400, "VALIDATION_RULE", message, field)


class Org:
    def __init__(self, crm: Crm) -> None:
        self.crm = crm

    def table(self, obj: str) -> dict[str, dict]:
        return self.crm.table(obj)

    def live(self, obj: str, rec_id: str) -> dict:
        spec_of(obj)
        rec = self.table(obj).get(rec_id)
        if rec is None:
            raise VendorError(404, "NOT_FOUND", f"no {obj} has id {rec_id!r}")
        if rec.get("IsDeleted"):
            raise VendorError(404, "ENTITY_IS_DELETED", f"{obj} {rec_id} was merged into {rec.get('MasterRecordId')}; "
                              "use that id")
        return rec

    def lines(self, opp_id: str) -> list[dict]:
        return [r for r in self.table("QuoteLine").values() if r["OpportunityId"] == opp_id and not r["IsDeleted"]]

    def _write(self, obj: str, rec_id: str, record: dict, change: str, fields: tuple[str, ...]) -> None:
        tx = self.crm._tx
        assert tx is not None, "CRM writes run inside Crm.atomic"
        tx.write(self.crm.durable.tables, obj, rec_id, record, change, fields)

    # ------------------------------------------------------------ insert / update

    def insert(self, obj: str, values: dict, system: bool = False) -> str:
        spec = OBJECTS[obj]
        rec_id = format_id(spec.prefix, self.crm.store.next_id(obj))
        now = self.crm.stamp()
        rec = {f.name: None for f in spec.fields}
        rec.update(values)
        rec.update(Id=rec_id, IsDeleted=False, CreatedStamp=now, LastModifiedStamp=now, _rev=1)
        rec = self._check(obj, rec, None, values, system)
        self._write(obj, rec_id, rec, "CREATE", tuple(f.name for f in spec.fields if rec[f.name] is not None))
        self._after(obj, rec, None)
        return rec_id

    def update(self, obj: str, rec_id: str, values: dict, system: bool = False) -> list[str]:
        old = self.live(obj, rec_id)
        rec = self._check(obj, {**old, **values}, old, values, system)
        changed = [f.name for f in OBJECTS[obj].fields if rec.get(f.name) != old.get(f.name)]
        if not changed:
            return []  # nothing to say: no write, no event, no effect
        rec.update(LastModifiedStamp=self.crm.stamp(), _rev=old["_rev"] + 1)
        self._write(obj, rec_id, rec, "UPDATE", (*changed, "LastModifiedStamp"))
        self._after(obj, rec, old)
        return changed

    def insert_opportunity(self, values: dict, line_values: list[dict], stage_values: dict) -> str:
        opp_id = self.insert("Opportunity", values)
        for line in line_values:
            self.insert("QuoteLine", {**line, "OpportunityId": opp_id})
        self.update("Opportunity", opp_id, stage_values)
        return opp_id

    def _check(self, obj: str, rec: dict, old: dict | None, values: dict, system: bool) -> dict:
        spec = OBJECTS[obj]
        for f in spec.fields:
            if f.required and rec.get(f.name) is None:
                raise VendorError(400, "REQUIRED_FIELD_MISSING", f"{obj} needs {f.name}", f.name)
            if f.kind == "ref" and rec.get(f.name) is not None and f.writable:
                self._ref(f.ref, rec[f.name], f.name)
        check = getattr(self, f"_check_{obj}", None)
        if check is not None:
            check(rec, old, values, system)
        return rec

    def _ref(self, obj: str, rec_id: Any, field: str) -> dict:
        rec = self.table(obj).get(rec_id)
        if rec is None or rec["IsDeleted"]:
            why = f"was merged into {rec['MasterRecordId']}" if rec else "does not exist"
            raise VendorError(400, "INVALID_REFERENCE", f"{field} {rec_id!r}: that {obj} {why}", field)
        return rec

    def _after(self, obj: str, rec: dict, old: dict | None) -> None:
        if obj == "QuoteLine":
            self._roll_up(rec["OpportunityId"])
        elif obj == "Opportunity" and rec["StageName"] == CLOSED_WON and (old is None or old["StageName"] != CLOSED_WON):
            self._sign_baseline(rec["Id"])

    # ------------------------------------------------------------ object rules

    def _check_Opportunity(self, rec: dict, old: dict | None, values: dict, system: bool) -> None:
        if rec["CurrencyIsoCode"] is None:
            rec["CurrencyIsoCode"] = self.table("Account")[rec["AccountId"]]["CurrencyIsoCode"]
        lines = self.lines(rec["Id"]) if old else []
        if lines and rec["CurrencyIsoCode"] != old["CurrencyIsoCode"]:
            raise _rule("the currency of an opportunity with quote lines cannot change", "CurrencyIsoCode")
        if lines and "Amount" in values and not system:
            raise _rule("Amount is the total of the quote lines; change the lines instead", "Amount")
        if rec["Amount"] is not None:
            rec["Amount"] = str(money_value(rec["Amount"], rec["CurrencyIsoCode"], "Amount"))
        was_won = old is not None and old["StageName"] == CLOSED_WON
        if was_won and not system:
            for f in LOCKED_WHEN_WON:
                if rec[f] != old[f]:
                    raise _rule(f"{f} is locked on a Closed Won opportunity; amend the contract instead", f)
        stage = rec["StageName"]
        if stage == CLOSED_WON and not was_won and not lines:
            raise _rule("add quote lines before closing an opportunity as Closed Won", "StageName")
        rec["Probability"], rec["IsClosed"], rec["IsWon"] = STAGES[stage]
        if rec["Contract_Family__x"] is None:
            rec["Contract_Family__x"] = f"CF{self.crm.store.next_id('contract_family'):07d}"

    def _check_QuoteLine(self, rec: dict, old: dict | None, values: dict, system: bool) -> None:
        opp = self.table("Opportunity")[rec["OpportunityId"]]
        if opp["StageName"] == CLOSED_WON and not system:
            raise _rule(f"the contract of {opp['Id']} is signed; change its lines with an amendment", "OpportunityId")
        currency = rec["CurrencyIsoCode"] = opp["CurrencyIsoCode"]
        cents = Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2))
        if values.get("UnitPrice") is not None and values.get("TotalPrice") is not None:
            raise _rule("give UnitPrice or TotalPrice, not both; the CRM derives the other", "TotalPrice")
        qty = Decimal(rec["Quantity"])
        if values.get("TotalPrice") is not None:
            total = money_value(rec["TotalPrice"], currency, "TotalPrice")
            unit = (total / qty).quantize(cents, ROUND_HALF_UP)
        elif rec["UnitPrice"] is not None and (old is None or "UnitPrice" in values or "Quantity" in values):
            unit = money_value(rec["UnitPrice"], currency, "UnitPrice")
            total = (unit * qty).quantize(cents, ROUND_HALF_UP)
        elif old is not None and rec["TotalPrice"] is not None and rec["UnitPrice"] is not None:
            total, unit = Decimal(rec["TotalPrice"]), Decimal(rec["UnitPrice"])
        else:
            raise VendorError(400, "REQUIRED_FIELD_MISSING", "a quote line needs UnitPrice or TotalPrice", "UnitPrice")
        if total < 0:
            raise _rule(f"TotalPrice {total} must not be negative", "TotalPrice")
        rec["UnitPrice"], rec["TotalPrice"] = str(unit), str(total)
        if rec["ServiceEnd"] < rec["ServiceStart"]:
            raise _rule(f"ServiceEnd {rec['ServiceEnd']} is before ServiceStart {rec['ServiceStart']}", "ServiceEnd")
        model = rec["BillingModel"]
        if model in ("retainer", "managed_service") and qty != qty.to_integral_value():
            raise _rule(f"Quantity is the term of a {model} line in whole months, not {rec['Quantity']}", "Quantity")
        milestones = rec["Milestones"] or None
        if model == "fixed_fee":
            if not milestones:
                raise _rule("a fixed_fee line needs Milestones that add up to its TotalPrice", "Milestones")
            amounts = [money_value(m["Amount"], currency, "Milestones.Amount") for m in milestones]
            if sum(amounts, Decimal(0)) != total:
                raise _rule(f"Milestones add up to {sum(amounts, Decimal(0))}, not the TotalPrice {total}", "Milestones")
            milestones = [{**m, "Amount": str(a)} for m, a in zip(milestones, amounts)]
        elif milestones:
            raise _rule(f"only fixed_fee lines have Milestones, this one is {model}", "Milestones")
        rec["Milestones"] = milestones
        card = rec["RateCard"] or None
        if card and model != "t_and_m":
            raise _rule(f"only t_and_m lines have a RateCard, this one is {model}", "RateCard")
        if card:
            card = [{**e, "Rate": str(money_value(e["Rate"], currency, "RateCard.Rate"))} for e in card]
        rec["RateCard"] = card

    # ------------------------------------------------------------ consequences

    def _roll_up(self, opp_id: str) -> None:
        total = sum((Decimal(ln["TotalPrice"]) for ln in self.lines(opp_id)), Decimal(0))
        opp = self.table("Opportunity")[opp_id]
        if opp["Amount"] is None or Decimal(opp["Amount"]) != total:
            self.update("Opportunity", opp_id, {"Amount": str(total)}, system=True)

    def _snapshot(self, change: str, line_id: str) -> dict:
        line = self.table("QuoteLine")[line_id]
        return {"LineId": line_id, "Change": change, **{k: line[k] for k in LINE_TERMS}}

    def _new_version(self, opp_id: str, number: int, terms: dict, changed: list[dict], delta: Decimal) -> str:
        opp = self.table("Opportunity")[opp_id]
        spec = OBJECTS["ContractVersion"]
        for name in ("Kind", "EffectiveDate", "SignedDate", "Description", "Amendment_Ref__x"):
            terms[name] = check_value(spec.field(name), terms.get(name))
            if terms[name] is None and name in ("Kind", "EffectiveDate", "SignedDate"):
                raise VendorError(400, "REQUIRED_FIELD_MISSING", f"an amendment needs {name}", name)
        vid = self.insert("ContractVersion", {
            **terms, "OpportunityId": opp_id, "Contract_Family__x": opp["Contract_Family__x"], "VersionNumber": number,
            "CurrencyIsoCode": opp["CurrencyIsoCode"], "PriceDelta": str(delta), "ContractValue": opp["Amount"],
            "ChangedLines": changed,
        }, system=True)
        self.update("Opportunity", opp_id, {"ContractVersion__x": number}, system=True)
        return vid

    def _sign_baseline(self, opp_id: str) -> None:
        opp = self.table("Opportunity")[opp_id]
        lines = self.lines(opp_id)
        terms = {"Kind": "baseline", "EffectiveDate": min(ln["ServiceStart"] for ln in lines),
                 "SignedDate": opp["CloseDate"], "Description": "as signed"}
        self._new_version(opp_id, 1, terms, [self._snapshot("added", ln["Id"]) for ln in lines], Decimal(opp["Amount"]))

    def amend(self, opp_id: str, terms: dict, changes: dict[str, dict], added: list[dict]) -> str:
        opp = self.live("Opportunity", opp_id)
        if opp["StageName"] != CLOSED_WON:
            raise _rule(f"only a Closed Won contract can be amended; {opp_id} is at {opp['StageName']}", "StageName")
        if not changes and not added:
            raise _rule("an amendment changes or adds at least one line")
        before = Decimal(opp["Amount"])
        changed = []
        for line_id, values in changes.items():
            line = self.live("QuoteLine", line_id)
            if line["OpportunityId"] != opp_id:
                raise VendorError(400, "INVALID_REFERENCE", f"quote line {line_id} belongs to {line['OpportunityId']}, "
                                  f"not {opp_id}", "LineId")
            self.update("QuoteLine", line_id, values, system=True)
            changed.append(self._snapshot("changed", line_id))
        for values in added:
            changed.append(self._snapshot("added", self.insert("QuoteLine", {**values, "OpportunityId": opp_id}, system=True)))
        opp = self.table("Opportunity")[opp_id]
        return self._new_version(opp_id, (opp["ContractVersion__x"] or 1) + 1, dict(terms), changed,
                                 Decimal(opp["Amount"]) - before)

    def merge(self, survivor_id: str, loser_id: str) -> None:
        if survivor_id == loser_id:
            raise _rule("an account cannot be merged into itself")
        survivor = self.live("Account", survivor_id)
        loser = self.live("Account", loser_id)
        fill = {f: loser[f] for f in ACCOUNT_BLANKS_FILLED_BY_MERGE if survivor[f] is None and loser[f] is not None}
        self.update("Account", survivor_id, fill, system=True)
        for child in ("Opportunity", "Contact"):
            for cid in [i for i, r in self.table(child).items() if r["AccountId"] == loser_id and not r["IsDeleted"]]:
                self.update(child, cid, {"AccountId": survivor_id}, system=True)
        gone = {**loser, "IsDeleted": True, "MasterRecordId": survivor_id, "LastModifiedStamp": self.crm.stamp(),
                "_rev": loser["_rev"] + 1}
        self._write("Account", loser_id, gone, "DELETE", ("IsDeleted", "MasterRecordId", "LastModifiedStamp"))
