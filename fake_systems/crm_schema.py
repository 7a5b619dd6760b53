"""The CRM's objects: their fields, picklists, value checks and wire shape.

Modelled on the Salesforce family without copying it: records are flat
dicts of CamelCase standard fields, custom fields end in ``__x``, ids are
15 characters (a 3-character key prefix per object, then a base-36
counter), money is a decimal string in the record's ``CurrencyIsoCode``.

Two API versions exist. ``v1`` is the original; ``v2`` ships with the
schema drift fault and renames ``Opportunity.Amount`` to
``TotalContractValue`` (reads, writes, queries and -- for every subscriber,
whatever version it reads with -- change events). Internally the field is
always ``Amount``; the rename happens only at the wire (`present`,
`parse_body`, `wire_name`).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import attrs

from .money import MINOR_UNITS
from .vendor import VendorError

__all__ = [
    "OBJECTS", "STAGES", "CLOSED_WON", "CLOSED_LOST", "BILLING_MODELS",
    "Field", "ObjectSpec", "spec_of", "parse_body", "present", "wire_name", "internal_name",
    "check_value", "money_value", "quantity_value", "format_id",
]

#: field renames per object on the drifted API version
RENAMED_IN_V2 = {"Opportunity": {"Amount": "TotalContractValue"}}

CLOSED_WON = "Closed Won"
CLOSED_LOST = "Closed Lost"
#: stage -> (probability %, is closed, is won), in sales order
STAGES = {
    "Prospecting": (10, False, False),
    "Qualification": (20, False, False),
    "Proposal": (50, False, False),
    "Negotiation": (75, False, False),
    CLOSED_WON: (100, True, True),
    CLOSED_LOST: (0, True, False),
}
BILLING_MODELS = ("t_and_m", "fixed_fee", "retainer", "managed_service")
INVOICE_STATUSES = ("Not Invoiced", "Partially Invoiced", "Invoiced")
PAYMENT_STATUSES = ("Unpaid", "Partially Paid", "Paid", "Overdue")
VERSION_KINDS = ("baseline", "rate_change", "scope_change", "term_extension", "other")

_DECIMAL = re.compile(r"-?\d{1,15}(?:\.\d{1,6})?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_COUNTRY = re.compile(r"[A-Z]{2}")
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@attrs.frozen
class Field:
    name: str
    kind: str  # text id stamp bool int country currency picklist money quantity date ref milestones ratecard lines
    required: bool = False  # on create
    writable: bool = True  # through the API at all
    updatable: bool = True  # after create
    choices: tuple[str, ...] = ()
    ref: str | None = None  # the object a ref points at
    external_id: bool = False  # usable for upsert
    max_length: int = 255


@attrs.frozen
class ObjectSpec:
    name: str
    prefix: str
    fields: tuple[Field, ...]
    cdc: bool = True  # change events enabled for this object
    etag: bool = False  # optimistic concurrency (ETag / If-Match)
    api_writable: bool = True

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


def _system(*fields: Field) -> tuple[Field, ...]:
    return (
        Field("Id", "id", writable=False),
        *fields,
        Field("IsDeleted", "bool", writable=False),
        Field("CreatedStamp", "stamp", writable=False),
        Field("LastModifiedStamp", "stamp", writable=False),
    )


_RO = {"writable": False}
OBJECTS: dict[str, ObjectSpec] = {
    "Account": ObjectSpec("Account", "0A1", _system(
        Field("Name", "text", required=True),
        Field("AccountNumber", "text", max_length=40),
        Field("BillingCountry", "country", required=True),
        Field("CurrencyIsoCode", "currency", required=True),
        Field("TaxRegistration", "text", max_length=40),
        Field("Core_Ref__x", "text", external_id=True, max_length=80),
        Field("MasterRecordId", "ref", ref="Account", **_RO),
    )),
    "Contact": ObjectSpec("Contact", "0C1", _system(
        Field("FirstName", "text", max_length=40),
        Field("LastName", "text", required=True, max_length=80),
        Field("Email", "text", max_length=80),
        Field("Title", "text", max_length=128),
        Field("AccountId", "ref", required=True, ref="Account"),
        Field("Core_Ref__x", "text", external_id=True, max_length=80),
    ), cdc=False),
    "Opportunity": ObjectSpec("Opportunity", "0P1", _system(
        Field("Name", "text", required=True, max_length=120),
        Field("AccountId", "ref", required=True, ref="Account"),
        Field("StageName", "picklist", required=True, choices=tuple(STAGES)),
        Field("CloseDate", "date", required=True),
        Field("Amount", "money"),
        Field("CurrencyIsoCode", "currency"),
        Field("Probability", "int", **_RO),
        Field("IsClosed", "bool", **_RO),
        Field("IsWon", "bool", **_RO),
        Field("Description", "text", max_length=4000),
        Field("Contract_Family__x", "text", max_length=40),
        Field("ContractVersion__x", "int", **_RO),
        Field("Project_Ref__x", "text", max_length=80),
        Field("Invoice_Status__x", "picklist", choices=INVOICE_STATUSES),
        Field("Payment_Status__x", "picklist", choices=PAYMENT_STATUSES),
        Field("Core_Ref__x", "text", external_id=True, max_length=80),
    ), etag=True),
    "QuoteLine": ObjectSpec("QuoteLine", "0Q1", _system(
        Field("OpportunityId", "ref", required=True, updatable=False, ref="Opportunity"),
        Field("Product", "text", required=True, max_length=120),
        Field("BillingModel", "picklist", required=True, choices=BILLING_MODELS),
        Field("Quantity", "quantity", required=True),
        Field("UnitPrice", "money"),
        Field("TotalPrice", "money"),
        Field("ServiceStart", "date", required=True),
        Field("ServiceEnd", "date", required=True),
        Field("Milestones", "milestones"),
        Field("RateCard", "ratecard"),
        Field("Line_Key__x", "text", max_length=40),
        Field("CurrencyIsoCode", "currency", **_RO),
    )),
    "ContractVersion": ObjectSpec("ContractVersion", "0V1", _system(
        Field("OpportunityId", "ref", ref="Opportunity", **_RO),
        Field("Contract_Family__x", "text", **_RO),
        Field("VersionNumber", "int", **_RO),
        Field("Kind", "picklist", choices=VERSION_KINDS, **_RO),
        Field("SignedDate", "date", **_RO),
        Field("EffectiveDate", "date", **_RO),
        Field("Description", "text", **_RO),
        Field("CurrencyIsoCode", "currency", **_RO),
        Field("PriceDelta", "money", **_RO),
        Field("ContractValue", "money", **_RO),
        Field("ChangedLines", "lines", **_RO),
        Field("Amendment_Ref__x", "text", **_RO),
    ), api_writable=False),
}


def format_id(prefix: str, n: int) -> str:
    """``0A1`` + twelve base-36 digits: sortable, readable, never a uuid."""
    digits = ""
    while n:
        n, r = divmod(n, 36)
        digits = _B36[r] + digits
    return prefix + digits.rjust(12, "0")


def spec_of(name: str) -> ObjectSpec:
    try:
        return OBJECTS[name]
    except KeyError:
        raise VendorError(
            404, "NOT_FOUND", f"the object type {name!r} does not exist; known types are {', '.join(OBJECTS)}"
        ) from None


def wire_name(obj: str, name: str, version: str) -> str:
    return RENAMED_IN_V2.get(obj, {}).get(name, name) if version == "v2" else name


def internal_name(obj: str, name: str, version: str) -> str | None:
    """The stored name of a wire field name; None if the version has no such field."""
    renames = RENAMED_IN_V2.get(obj, {})
    if version == "v2":
        if name in renames:
            return None
        for old, new in renames.items():
            if name == new:
                return old
        return name
    return None if name in renames.values() else name


def present(obj: str, record: dict, version: str) -> dict:
    """The record as the API shows it in `version` (hidden keys dropped)."""
    spec = OBJECTS[obj]
    out: dict[str, Any] = {"objectType": obj}
    for f in spec.fields:
        out[wire_name(obj, f.name, version)] = record.get(f.name)
    return out


# ------------------------------------------------------------------ values


def _bad(field: str, message: str, code: str = "INVALID_VALUE") -> VendorError:
    return VendorError(400, code, message, field)


def money_value(value: Any, currency: str, field: str) -> Decimal:
    """A decimal string with no more places than `currency` has minor units."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise _bad(field, f"{field} must be money as a decimal string like \"1234.50\", not {value!r}")
    places = MINOR_UNITS.get(currency, 2)
    amount = Decimal(value)
    cents = amount.quantize(Decimal(1).scaleb(-places))
    if cents != amount:
        raise _bad(field, f"{field} {value} is finer than the {places} decimal places {currency} allows")
    return cents


def quantity_value(value: Any, field: str) -> Decimal:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value) or Decimal(value) <= 0:
        raise _bad(field, f"{field} must be a positive number (a decimal string like \"7.50\" or an integer), not {value!r}")
    amount = Decimal(value).quantize(Decimal("0.01"))
    if amount != Decimal(value):
        raise _bad(field, f"{field} {value} is finer than 2 decimal places")
    return amount


def _date(value: Any, field: str) -> str:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise _bad(field, f"{field} must be a date like \"2026-01-31\", not {value!r}")


def _text(value: Any, f: Field, where: str) -> str | None:
    if not isinstance(value, str):
        raise _bad(where, f"{where} must be a string, not {value!r}")
    if len(value) > f.max_length:
        raise _bad(where, f"{where} is {len(value)} characters; at most {f.max_length} fit", "VALUE_TOO_LONG")
    return value or None  # the family stores an empty string as null


def _items(value: Any, where: str, keys: dict[str, str]) -> list[dict]:
    """A list of small objects with exactly `keys` (name -> kind, '?' suffix: optional)."""
    if not isinstance(value, list):
        raise _bad(where, f"{where} must be a list of objects with keys {', '.join(keys)}")
    out = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise _bad(where, f"{at} must be an object with keys {', '.join(keys)}")
        unknown = sorted(k for k in item if k not in keys)
        if unknown:
            raise _bad(where, f"{at} has unknown key {unknown[0]!r}; allowed keys are {', '.join(keys)}")
        clean = {}
        for key, kind in keys.items():
            v = item.get(key)
            if v in (None, ""):
                if not kind.endswith("?"):
                    raise _bad(where, f"{at}.{key} is required", "REQUIRED_FIELD_MISSING")
                clean[key] = None
            elif kind.startswith("date"):
                clean[key] = _date(v, f"{at}.{key}")
            elif kind.startswith("money"):
                if not isinstance(v, str) or not _DECIMAL.fullmatch(v):
                    raise _bad(where, f"{at}.{key} must be money as a decimal string like \"1234.50\", not {v!r}")
                clean[key] = v
            else:
                clean[key] = _text(v, Field(key, "text"), f"{at}.{key}")
        out.append(clean)
    return out


MILESTONE_KEYS = {"Name": "text", "Amount": "money", "DueDate": "date", "Key": "text?"}
RATE_KEYS = {"Role": "text", "Rate": "money"}


def check_value(f: Field, value: Any) -> Any:
    """A JSON value checked against the field's kind (money places are
    checked later, once the record's currency is known)."""
    if value is None or (value == "" and f.kind not in ("milestones", "ratecard")):
        return None
    kind, name = f.kind, f.name
    if kind in ("text", "ref"):
        return _text(value, f, name)
    if kind == "country":
        if isinstance(value, str) and _COUNTRY.fullmatch(value):
            return value
        raise _bad(name, f"{name} must be an ISO 3166 country code like \"GB\", not {value!r}")
    if kind == "currency":
        if isinstance(value, str) and value in MINOR_UNITS:
            return value
        raise _bad(name, f"{name} {value!r} is not a currency enabled in this org; use one of "
                   f"{', '.join(sorted(MINOR_UNITS))}", "BAD_PICKLIST_VALUE")
    if kind == "picklist":
        if value in f.choices:
            return value
        raise _bad(name, f"{name} {value!r} is not an allowed value; use one of {', '.join(f.choices)}",
                   "BAD_PICKLIST_VALUE")
    if kind == "money":
        if isinstance(value, str) and _DECIMAL.fullmatch(value):
            return value
        raise _bad(name, f"{name} must be money as a decimal string like \"1234.50\", not {value!r}")
    if kind == "quantity":
        return str(quantity_value(value, name))
    if kind == "date":
        return _date(value, name)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise _bad(name, f"{name} must be true or false, not {value!r}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _bad(name, f"{name} must be a whole number, not {value!r}")
    if kind == "milestones":
        return _items(value, name, MILESTONE_KEYS)
    if kind == "ratecard":
        return _items(value, name, RATE_KEYS)
    raise _bad(name, f"{name} cannot be written")


def parse_body(obj: str, body: Any, version: str, *, creating: bool) -> dict:
    """The checked field values of a create or update body, by stored name."""
    spec = OBJECTS[obj]
    if not isinstance(body, dict):
        raise VendorError(
            400, "MALFORMED_BODY",
            f"the request body must be a JSON object of {obj} field values, like {{\"Name\": \"Acme\"}}",
        )
    if not spec.api_writable:
        raise VendorError(400, "READ_ONLY_OBJECT", f"{obj} records are created in the CRM itself; the API can only read them")
    out: dict[str, Any] = {}
    for key in sorted(body):
        name = internal_name(obj, key, version) if isinstance(key, str) else None
        f = spec.field(name) if name else None
        if f is None:
            hint = ""
            for old, new in RENAMED_IN_V2.get(obj, {}).items():
                if key in (old, new):
                    hint = f"; in {version} it is called {wire_name(obj, old, version)}"
            raise VendorError(400, "INVALID_FIELD", f"no such field {key!r} on {obj} in {version}{hint}", str(key))
        if not f.writable:
            raise VendorError(400, "READ_ONLY_FIELD", f"{key} on {obj} is set by the CRM and cannot be written", key)
        if not creating and not f.updatable:
            raise VendorError(400, "READ_ONLY_FIELD", f"{key} on {obj} is fixed once the record exists", key)
        out[f.name] = check_value(f, body[key])
    return out
