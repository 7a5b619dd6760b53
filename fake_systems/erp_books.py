"""The ERP's books: accounting periods, exchange rates, tax, and the
arithmetic of a document (lines, tax, totals, what is still owed).

The rules, stated once:

* A period is one calendar month of one subsidiary, named like "Jan 2026".
  It is open, AR-locked (receivables documents -- invoices, credit memos,
  payments -- are refused; journals and project actuals still post) or
  closed (everything is refused). A period's record comes into being the
  first time anything touches its month, open.
* The posting period of a transaction is the month of its tranDate; a
  missing tranDate is today in the ERP's own calendar (its time zone, and
  its clock skew under chaos). A date in a closed period is refused, never
  moved silently to another period.
* Tax: the subsidiary's regime rate applies when the customer is in the
  subsidiary's country; a cross-border service is outside the scope of the
  seller's tax (reverse charge or export), rate zero. Tax is computed per
  line, rounded half-up to the currency's minor unit, and
  total = subtotal + tax exactly.
* Exchange rates: the rate effective on the tranDate, from the document's
  currency to the subsidiary's functional currency (`FxRates`: the direct
  pair, else its inverse to 10 places); base amounts round half-up.
"""

from __future__ import annotations

import calendar
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from .erp_fields import amount, decimal_text, flag, fmt, only, text
from .money import FxRateMissing, FxRates, Money, round_money
from .vendor import VendorError

if TYPE_CHECKING:
    from .erp import Erp

__all__ = [
    "CURRENCY_NAMES", "DEFAULT_ACCOUNTS", "DEFAULT_TAX_RULES", "LINE_FIELDS",
    "period_of", "require_postable", "fx_rate", "to_base", "tax_for", "price_lines", "apply_to_invoice",
]

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# The tax engine's country rules as shipped: (kind, services rate, B2B
# customers must carry a registration). Subsidiaries' regimes override.
DEFAULT_TAX_RULES = {
    "US": ("sales_tax", "0.00", False), "CA": ("gst", "0.05", False), "GB": ("vat", "0.20", True),
    "DE": ("vat", "0.19", True), "FR": ("vat", "0.20", True), "NL": ("vat", "0.21", True),
    "IE": ("vat", "0.23", True), "ES": ("vat", "0.21", True), "IT": ("vat", "0.22", True),
    "BE": ("vat", "0.21", True), "AT": ("vat", "0.20", True), "AU": ("gst", "0.10", True),
    "NZ": ("gst", "0.15", False), "SG": ("gst", "0.09", False),
}  # fmt: skip

# A small chart of accounts every new account ships with: (number, name, type).
DEFAULT_ACCOUNTS = (
    ("1000", "Operating Cash", "bank"),
    ("1100", "Accounts Receivable", "accounts_receivable"),
    ("1150", "Unbilled Receivables", "other_current_asset"),
    ("2100", "Sales Tax and VAT Payable", "other_current_liability"),
    ("2400", "Deferred Revenue", "deferred_revenue"),
    ("4000", "Professional Services Revenue", "income"),
    ("4100", "Managed Services Revenue", "income"),
    ("5000", "Cost of Services - Labour", "cost_of_sales"),
    ("5100", "Reimbursable Project Expenses", "cost_of_sales"),
    ("6000", "Operating Expenses", "expense"),
    ("7900", "Realised Exchange Gain or Loss", "other_expense"),
)

CURRENCY_NAMES = {
    "USD": "US Dollar", "EUR": "Euro", "GBP": "British Pound", "CAD": "Canadian Dollar",
    "AUD": "Australian Dollar", "SGD": "Singapore Dollar", "JPY": "Japanese Yen", "CHF": "Swiss Franc",
}  # fmt: skip

LINE_FIELDS = ("description", "quantity", "rate", "amount", "taxable")


# ------------------------------------------------------------------ periods


def period_of(erp: Erp, sub_id: int, on: date) -> dict:
    """The period record of `sub_id` holding `on` (created open if new)."""
    key = f"{sub_id}:{on.year:04d}-{on.month:02d}"
    periods = erp.table("accountingPeriods")
    rec = periods.get(key)
    if rec is None:
        last = calendar.monthrange(on.year, on.month)[1]
        rec = periods[key] = {
            "id": erp.store.next_id("period"),
            "subsidiary": sub_id,
            "periodName": f"{MONTHS[on.month - 1]} {on.year}",
            "startDate": date(on.year, on.month, 1).isoformat(),
            "endDate": date(on.year, on.month, last).isoformat(),
            "arLocked": False,
            "isClosed": False,
        }
    return rec


def require_postable(erp: Erp, sub: dict, on: date, *, receivables: bool, what: str) -> dict:
    """The period `on` falls in, if `what` may post there; else the vendor error naming it."""
    p = period_of(erp, sub["id"], on)
    where = f"subsidiary {sub['id']} ({sub['name']})"
    if p["isClosed"]:
        raise VendorError(
            400, "PERIOD_CLOSED",
            f"the posting period {p['periodName']} is closed for {where}: {what} dated {on.isoformat()} cannot post; "
            f"date it in an open period or ask finance to reopen {p['periodName']}", "tranDate",
        )
    if receivables and p["arLocked"]:
        raise VendorError(
            400, "PERIOD_AR_LOCKED",
            f"the posting period {p['periodName']} is locked for receivables in {where}: {what} dated "
            f"{on.isoformat()} cannot post; date it in an open period or ask finance to unlock {p['periodName']}",
            "tranDate",
        )
    return p


# ------------------------------------------------------------------ exchange rates


def _fx_table(erp: Erp) -> FxRates:
    version = erp.store.counters.get("fxVersion", 0)
    cache = erp.volatile.get("fx") if isinstance(erp.volatile, dict) else None
    if cache is not None and cache[0] == version:
        return cache[1]
    table = FxRates.of(
        (r["fromCurrency"], r["toCurrency"], date.fromisoformat(r["effectiveDate"]), Decimal(r["rate"]))
        for r in erp.table("exchangeRates").values()
    )
    if isinstance(erp.volatile, dict):
        erp.volatile["fx"] = (version, table)
    return table


def fx_rate(erp: Erp, frm: str, to: str, on: date) -> Decimal:
    try:
        return _fx_table(erp).rate(frm, to, on)
    except FxRateMissing as exc:
        raise VendorError(
            400, "EXCHANGE_RATE_MISSING", f"{exc}; finance must enter a {frm}->{to} rate before this can post",
            "currency",
        ) from None


def to_base(total: Decimal, base: str, rate: Decimal) -> Decimal:
    """`total` (already in whole minor units) in the functional currency, half-up."""
    return round_money(Money(total, base) * rate).amount


# ------------------------------------------------------------------ tax and lines


def tax_for(sub: dict, customer: dict) -> tuple[str, Decimal]:
    """(tax code, rate) of a document between `sub` and `customer`."""
    if customer["country"] != sub["country"]:
        return "outside_scope", Decimal("0.00")
    return "standard", Decimal(sub["taxRegime"]["serviceRate"])


def price_lines(raw: object, currency: str, tax_rate: Decimal, noun: str) -> tuple[list[dict], Decimal, Decimal]:
    """Validated lines with amounts and tax, and (subtotal, tax total)."""
    if not isinstance(raw, list) or not raw:
        raise VendorError(400, "REQUIRED_FIELD_MISSING",
                          f"lines must be a non-empty list of {noun} lines "
                          "({description, quantity and rate} or {description, amount})", "lines")
    if len(raw) > 500:
        raise VendorError(400, "INVALID_FIELD_VALUE", f"a {noun} holds at most 500 lines, not {len(raw)}", "lines")
    lines, subtotal, tax = [], Decimal(0), Decimal(0)
    for i, ln in enumerate(raw):
        where = f"lines[{i}]."
        only(ln, LINE_FIELDS, f"a {noun} line", where[:-1])
        description = text(ln, "description", required=True, where=where)
        qty = decimal_text(ln.get("quantity"), where + "quantity", 4)
        unit = decimal_text(ln.get("rate"), where + "rate", 6)
        amt = amount(ln.get("amount"), currency, where + "amount")
        if (qty is None) != (unit is None):
            raise VendorError(400, "REQUIRED_FIELD_MISSING", f"{where}quantity and {where}rate go together; give both "
                              "or neither", where + ("rate" if unit is None else "quantity"))
        if qty is not None:
            priced = round_money(Money(unit, currency) * qty).amount
            if amt is not None and amt != priced:
                raise VendorError(400, "INVALID_AMOUNT", f"{where}amount {fmt(amt, currency)} is not quantity x rate "
                                  f"= {fmt(priced, currency)}; send the product or leave amount out", where + "amount")
            amt = priced
        elif amt is None:
            raise VendorError(400, "REQUIRED_FIELD_MISSING",
                              f"{where}amount is missing; give amount, or quantity and rate", where + "amount")
        taxable = flag(ln, "taxable", True, where)
        line_tax = round_money(Money(amt, currency) * tax_rate).amount if taxable else Decimal(0)
        subtotal += amt
        tax += line_tax
        line = {"line": i + 1, "description": description}
        if qty is not None:
            line.update(quantity=format(qty, "f"), rate=format(unit, "f"))
        line.update(amount=fmt(amt, currency), taxable=taxable, taxAmount=fmt(line_tax, currency))
        lines.append(line)
    return lines, subtotal, tax


# ------------------------------------------------------------------ what is owed


def apply_to_invoice(invoice: dict, source: dict, kind: str, applied: Decimal) -> None:
    """Settle `applied` of `invoice` by `source` (a payment or credit memo)."""
    cur = invoice["currency"]
    remaining = Decimal(invoice["amountRemaining"]) - applied
    assert Decimal(0) <= remaining, "an application larger than what is owed"
    owed_field = "amountPaid" if kind == "payment" else "amountCredited"
    invoice[owed_field] = fmt(Decimal(invoice[owed_field]) + applied, cur)
    invoice["amountRemaining"] = fmt(remaining, cur)
    invoice["status"] = "paid" if remaining == 0 else "open"
    invoice["links"].append(
        {"type": kind, "id": source["id"], "tranId": source["tranId"], "tranDate": source["tranDate"],
         "amount": fmt(applied, cur)}
    )
