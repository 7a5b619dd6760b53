"""Amendment after invoice: the contract changes once invoices are out.

On the first business day of January sales closes an ERP-rollout deal for a
client: a fixed-fee implementation paid by three milestones (January,
February, March) and a monthly advisory retainer. The first milestone is
signed off in January and the January billing run invoices it with the
retainer's first month; finance closes January early in February.

On 10 February -- invoices issued, a period closed -- the client signs two
change orders: more scope in the last milestone (its fee up a quarter, which
re-measures the fixed-fee obligation: cumulative catch-up), and a higher
retainer fee from 1 March (the remaining service repriced: prospective).
February's milestone is accepted, February is billed, and on 2 March the
March retainer is billed at the new fee.

Beyond the general invariants this scenario checks that every invoice issued
before the amendments still stands exactly as issued; that the revenue
engine took each amendment as a modification with a prospective or
cumulative catch-up treatment (never a restatement); that nothing
recognised in closed January moved; that billing charges the retainer at
the old fee up to the change and the new fee after it; and that the
milestone already invoiced kept its amount while the repriced one changed.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal

from harness.scenario_api import Scenario, check

from . import _truth as t
from ._firm import clean_clients, fixed_fee_line, recurring_line
from ._people import client_accepts, complete_milestone

FEE, NEW_FEE = "12000.00", "13200.00"
MILESTONES = (("Design sign-off", "60000.00", date(2026, 1, 23)), ("Build complete", "90000.00", date(2026, 2, 20)),
              ("Go-live", "50000.00", date(2026, 3, 27)))
REPRICED, NEW_AMOUNT = "Go-live", "62500.00"


async def script(d):
    client = clean_clients(d.firm)[0]
    await d.advance_to(date(2026, 1, 2), time(10))
    opp = d.sell(client.id, f"{client.name} - ERP rollout", [
        fixed_fee_line("ERP rollout (fixed fee)", date(2026, 1, 5), MILESTONES),
        recurring_line("Advisory retainer", "retainer", date(2026, 1, 1), 12, FEE),
    ])
    line = {ln["BillingModel"]: ln["Id"] for ln in d.quote_lines(opp)}
    d.note(amended_deal={"opp": opp, "fixed_fee": line["fixed_fee"], "retainer": line["retainer"]})
    await d.advance_to(date(2026, 1, 20), time(12))
    await complete_milestone(d, line["fixed_fee"], "Design sign-off")
    await d.advance_to(date(2026, 1, 22), time(15))
    await client_accepts(d, line["fixed_fee"], "Design sign-off")
    await d.to_month_end()
    await d.settle(days=2)
    d.run_billing()
    await d.advance_to(date(2026, 2, 3), time(17))
    await d.settle(days=1)
    d.close_period("2026-01")
    await d.advance_to(date(2026, 2, 10), time(11))
    issued = {i["id"]: {"total": i["total"], "status": i["status"]} for i in d.billing.records("invoices")
              if i["status"] in ("open", "paid")}
    january = _recognised(d.world, opp, "2026-01")
    v_scope = d.change_milestone_fee(opp, REPRICED, NEW_AMOUNT)
    await d.advance(minutes=30)
    v_fee = d.change_monthly_fee(opp, NEW_FEE, effective=date(2026, 3, 1))
    d.note(amendment={"at_us": d.sim.now_us, "issued": issued, "january": january, "versions": [v_scope, v_fee]})
    await d.advance_to(date(2026, 2, 18), time(12))
    await complete_milestone(d, line["fixed_fee"], "Build complete")
    await d.advance_to(date(2026, 2, 20), time(15))
    await client_accepts(d, line["fixed_fee"], "Build complete")
    await d.to_month_end()
    await d.settle(days=2)
    d.run_billing()
    await d.advance_to(date(2026, 3, 2), time(18))
    await d.settle(days=1)
    d.run_billing()
    await d.advance(days=1)


def _recognised(world, opp: str, period: str) -> str | None:
    rc = t.revenue_contract(world, opp)
    if rc is None:
        return None
    return str(sum((t.dec(ln["amount"]) for ln in t.revenue_lines(world, rc["rc_id"]) if ln["period"] == period),
                   Decimal(0)))


# ------------------------------------------------------------------ expectations


def issued_invoices_stand(world) -> dict:
    name = "amendment after invoice: invoices issued before the amendment stand as issued"
    noted = t.notes(world).get("amendment")
    if noted is None:
        return check(name, ["the script never reached the amendment"])
    invoices = world.billing.table("invoices")
    violations = [] if noted["issued"] else ["no invoice was issued before the amendment: the story did not happen"]
    for inv_id, was in sorted(noted["issued"].items()):
        now = invoices.get(inv_id)
        if now is None or now["status"] == "void" or now["total"] != was["total"]:
            violations.append(f"invoice {inv_id} (total {was['total']}) was {'voided' if now else 'removed'}"
                              f"{'' if not now or now['status'] == 'void' else ' or changed to ' + now['total']}; "
                              "a change after invoicing is billed as an adjustment, never by rewriting an invoice")
    return check(name, violations)


def treated_as_modification(world) -> dict:
    name = "amendment after invoice: the revenue engine took each change as a prospective or catch-up modification"
    deal = t.notes(world).get("amended_deal")
    rc = deal and t.revenue_contract(world, deal["opp"])
    if rc is None:
        return check(name, [f"deal {deal and deal['opp']}: no revenue contract"])
    latest = t.won_deals(world).get(deal["opp"], {}).get("ContractVersion__x") or 1
    mods = {m["source_version"]: m for m in world.revenue.records("rev_modifications") if m["rc_id"] == rc["rc_id"]}
    violations = []
    for version in range(2, latest + 1):
        m = mods.get(version)
        if m is None:
            restated = [h for h in rc["version_history"] if h["version"] == version]
            violations.append(f"{rc['rc_id']} version {version}: no modification ({restated or 'never applied'})")
        elif m["treatment"] not in ("prospective", "cumulative_catch_up"):
            violations.append(f"{rc['rc_id']} version {version}: treated as {m['treatment']}")
    if latest < 3:
        violations.append(f"deal {deal['opp']}: the CRM holds version {latest}; the two amendments were not signed")
    return check(name, violations)


def closed_january_untouched(world) -> dict:
    name = "amendment after invoice: revenue recognised in closed January did not move"
    noted, deal = t.notes(world).get("amendment"), t.notes(world).get("amended_deal")
    if noted is None or deal is None:
        return check(name, ["the script never reached the amendment"])
    now = _recognised(world, deal["opp"], "2026-01")
    if noted["january"] is None:
        return check(name, [f"deal {deal['opp']}: no revenue contract when the amendment was signed"])
    ok = now is not None and Decimal(now) == Decimal(noted["january"])
    return check(name, [] if ok else [f"deal {deal['opp']}: January revenue was {noted['january']} when January closed "
                                      f"and is {now} now"])


def billed_at_fee_in_force(world) -> dict:
    name = "amendment after invoice: the retainer is billed at the old fee until 1 March and the new fee after"
    deal = t.notes(world).get("amended_deal")
    if deal is None:
        return check(name, ["the script sold no deal"])
    items = [i for i in t.billing_items(world, "recurring") if i["service_date"]
             and any(s["id"] == i["schedule"] and (s.get("metadata") or {}).get("line") == deal["retainer"]
                     for s in world.billing.records("billing_schedules"))]
    violations = []
    by_month = {i["service_date"][:7]: i for i in items}
    for month, fee in (("2026-01", FEE), ("2026-02", FEE), ("2026-03", NEW_FEE)):
        item = by_month.get(month)
        if item is None:
            violations.append(f"retainer {deal['retainer']}: no charge for {month}")
        elif t.dec(item["amount"]) != Decimal(fee):
            violations.append(f"retainer {deal['retainer']}: {month} charged {item['amount']} (item {item['id']}), "
                              f"the fee in force is {fee}")
    return check(name, violations)


def milestone_fees(world) -> dict:
    name = "amendment after invoice: the invoiced milestone kept its fee, the repriced one bills at the new fee"
    deal = t.notes(world).get("amended_deal")
    if deal is None:
        return check(name, ["the script sold no deal"])
    schedules = [s for s in world.billing.records("billing_schedules")
                 if (s.get("metadata") or {}).get("line") == deal["fixed_fee"]]
    if len(schedules) != 1:
        return check(name, [f"line {deal['fixed_fee']}: {len(schedules)} billing schedules, expected 1"])
    psa_ids = {m["id"]: name for name, _, _ in MILESTONES for m in t.psa_milestone_for(world, deal["fixed_fee"], name)}
    refs = {psa_ids.get(m["ref"], m.get("description")): t.dec(m["amount"]) for m in schedules[0]["milestones"] or []}
    want = {n: Decimal(a) for n, a, _ in MILESTONES} | {REPRICED: Decimal(NEW_AMOUNT)}
    violations = [f"schedule {schedules[0]['id']}: milestone '{n}' at {refs.get(n)}, the contract says {a}"
                  for n, a in want.items() if refs.get(n) != a]
    return check(name, violations)


def expectations(world) -> list[dict]:
    return [issued_invoices_stand(world), treated_as_modification(world), closed_january_untouched(world),
            billed_at_fee_in_force(world), milestone_fees(world)]


SCENARIO = Scenario(
    name="amendment-after-invoice",
    summary="a contract is amended after invoices went out and January closed: catch-up and prospective treatment",
    script=script,
    firm={"consultants": 8, "clients": 6},
    default_chaos="default",
    expectations=expectations,
    horizon_days=62,
)
