"""Customers matched by the integration's own external id only."""

from __future__ import annotations

from sync_core.core import ReferenceCore
from sync_core.flows.quote_deal import read, record_of
from sync_core.ports import Environment
from sync_core.replies import check

from ._compose import replace_operation

__all__ = ["customer_matched_by_external_id_only"]

OP = "erp.upsert_customer"


def customer_matched_by_external_id_only(env: Environment) -> ReferenceCore:
    """The ERP customer of a won deal's account is upserted by externalId =
    CRM Account Id, and nothing else is looked for.

    The real-world bug: "upsert by external id" is idempotent, so it feels
    safe -- but finance keyed the firm's biggest clients into the ERP by hand
    before the integration went live ("ACME CORP LTD (AP)", no external id),
    and the upsert creates a second customer beside each of them. Invoices
    and receivables split across two records of one client; dunning, credit
    limits and statements go wrong.

    Exposed by: ``duplicate-customers`` (two clients keyed in by hand before
    go-live).
    Caught by: "duplicate customers: one active ERP customer per business".
    """
    core = ReferenceCore(env)

    async def upsert_by_external_id(original, ctx, payload):
        deal = payload["deal"]
        record = read(ctx.env, lambda txn: record_of(txn, deal))
        if record is None or record.get("state") == "not_won" or not record.get("entity"):
            return await original(ctx, payload)  # not a state this shortcut handles: the reference's own path
        account, entity = record["snapshot"]["account"], record["entity"]
        body = {"companyName": account["Name"], "subsidiary": entity["id"], "currency": account["CurrencyIsoCode"],
                "country": account["BillingCountry"]}
        if account.get("TaxRegistration"):
            body["taxRegistration"] = account["TaxRegistration"]
        response = await ctx.call("PUT", f"/erp/v1/customers/eid:{account['Id']}", json=body)
        customer = check("erp", response, ok=(200, 201), doing=f"upserting customer {account['Id']}").json
        return {"account": account["Id"], "id": str(customer["id"])}

    replace_operation(core, OP, upsert_by_external_id)
    return core
