"""Choosing a scenario's subject from the generated firm.

A scenario must tell its story whatever the seed draws, so it picks its
subject -- the deal that changes, the client that is keyed in twice -- by a
rule, deterministically, from the firm. Script and expectations call the
same rule and agree. Clients the generator made awkward on purpose (no tax
id where one is required, a duplicate name) are left to the scenarios about
them: elsewhere their deals stop at the ERP's validation and the story would
not happen.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from fake_systems.firm_model import FLAG_DUPLICATE_NAME, FLAG_MISSING_TAX_ID

__all__ = ["clean_clients", "busiest_deals", "hours_worked", "fixed_fee_line", "recurring_line"]


def clean_clients(firm) -> list:
    """Clients with nothing awkward on file -- or, if the draw made none,
    the least awkward (a duplicate name is only awkward to its own scenario;
    a missing tax id stops every deal). Never empty."""
    clean = [c for c in firm.clients if FLAG_MISSING_TAX_ID not in c.flags and FLAG_DUPLICATE_NAME not in c.flags]
    return clean or [c for c in firm.clients if FLAG_MISSING_TAX_ID not in c.flags] or list(firm.clients)


def hours_worked(firm, month: int = 0) -> dict[str, int]:
    """Deal id -> time entries logged on it in `month`."""
    project_deal = {p.id: p.deal_id for p in firm.projects}
    out: dict[str, int] = {}
    for e in firm.months[month].time_entries:
        deal = project_deal[e.project_id]
        out[deal] = out.get(deal, 0) + 1
    return out


def busiest_deals(firm, *, model: str | None = None, month: int = 0) -> list:
    """Deals won before the run for clean clients (with a line of billing
    `model`, if given), the most worked on first (ties: lower deal id). If
    no clean client has one, clients whose only oddity is a duplicate name
    (awkward only to the duplicate-customers story) are considered too."""
    closing = {d for m in firm.months for d in m.closed_deal_ids}
    worked = hours_worked(firm, month)

    def among(clients) -> list:
        ids = {c.id for c in clients}
        deals = [d for d in firm.deals if d.id not in closing and d.client_id in ids
                 and (model is None or any(ln.billing_model == model for ln in d.lines))]
        return sorted(deals, key=lambda d: (-worked.get(d.id, 0), d.id))

    return among(clean_clients(firm)) or among(c for c in firm.clients if set(c.flags) <= {FLAG_DUPLICATE_NAME})


# ------------------------------------------------------------------ deals sold during a scenario (Driver.sell)


def fixed_fee_line(product: str, start, milestones) -> dict:
    """A fixed-fee quote line paid by `milestones` [(name, amount, due date)]."""
    total = sum((Decimal(a) for _, a, _ in milestones), Decimal(0))
    return {"Product": product, "BillingModel": "fixed_fee", "Quantity": 1, "TotalPrice": str(total),
            "ServiceStart": start, "ServiceEnd": max(due for _, _, due in milestones),
            "Milestones": [{"Name": n, "Amount": a, "DueDate": due} for n, a, due in milestones]}


def recurring_line(product: str, model: str, start, months: int, fee: str) -> dict:
    """A retainer or managed-service quote line: `months` at `fee` a month from `start`."""
    y, m = divmod(start.month - 1 + months, 12)
    end = date(start.year + y, m + 1, 1) - timedelta(days=1)
    return {"Product": product, "BillingModel": model, "Quantity": months, "UnitPrice": fee,
            "ServiceStart": start, "ServiceEnd": end}
