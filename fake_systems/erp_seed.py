"""Seeding the ERP from a generated firm (`firm_model`): what finance had
already set up before the integration went live.

Legal entities become subsidiaries (with their tax regime, and an office as
a location), the firm's currencies are enabled with a rate for every pair
(from the generator's fixed per-USD rates, effective three years before the
firm's start), cost centres become departments restricted to their entity,
practices become classes, and chosen clients become customers. Clients come
in as a long-ago data migration: they are not checked against today's tax
rules, so a client missing its registration stays that way until someone
edits it.

Every function is idempotent per firm id (loading twice adds nothing) and
records firm id -> ERP internal id in ``extra["firm_ids"]``.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from itertools import combinations
from typing import TYPE_CHECKING

from .erp_handlers import insert
from .erp_records import CUSTOMERS
from .firm_generator import FX_PER_USD
from .firm_model import Client, Firm

if TYPE_CHECKING:
    from .erp import Erp

__all__ = ["load_firm"]


def load_firm(erp: Erp, firm: Firm, clients: tuple[Client, ...], client_external_ids: bool) -> dict[str, str]:
    ids: dict[str, str] = erp.store.extra["firm_ids"]
    codes = sorted({*firm.params.currencies, *(e.functional_currency for e in firm.entities),
                    *(c.currency for c in clients)})
    for code in codes:
        erp.add_currency(code)
    effective = date(firm.params.start.year - 3, 1, 1)
    for a, b in combinations(codes, 2):
        if a in FX_PER_USD and b in FX_PER_USD and f"{a}:{b}:{effective.isoformat()}" not in erp.table("exchangeRates"):
            erp.set_fx_rate(a, b, effective, (FX_PER_USD[b] / FX_PER_USD[a]).quantize(Decimal("1E-10")))

    for e in firm.entities:
        if e.id in ids:
            continue
        regime = e.tax_regime
        sub = erp.create_subsidiary(e.name, e.country, e.functional_currency, tax_kind=regime.kind,
                                    service_rate=regime.services_rate, external_id=e.id,
                                    registration_required=regime.requires_client_tax_id)
        ids[e.id] = str(sub["id"])
        erp.create_dimension("location", f"{e.name} office", subsidiary=sub["id"], external_id=f"{e.id}-office")

    for practice in sorted({cc.practice for cc in firm.cost_centres}):
        if practice not in erp.eids("classes"):
            erp.create_dimension("class", practice, external_id=practice)
    for cc in firm.cost_centres:
        if cc.id not in ids:
            dept = erp.create_dimension("department", cc.name, subsidiary=int(ids[cc.entity_id]), external_id=cc.id)
            ids[cc.id] = str(dept["id"])

    for c in clients:
        if c.id in ids:
            continue
        erp.add_currency(c.currency)
        fields = {"companyName": c.name, "subsidiary": int(ids[c.bill_to_entity_id]), "currency": c.currency,
                  "country": c.country, "taxRegistration": c.tax_id, "email": None, "termsDays": 30,
                  "isInactive": False}
        customer = insert(erp, CUSTOMERS, fields, c.id if client_external_ids else None, None)
        ids[c.id] = str(customer["id"])
    return dict(ids)
