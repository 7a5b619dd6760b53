"""Rate limits at month end: everyone calls the vendors at once.

Month end is when every integration of the firm runs at full tilt, and the
vendors' limits are shared (the script sets them, over whatever weather the
run is under, so the story happens under any chaos profile): the ERP lets
the account have one request in service at a time and a handful a second,
the PSA, billing and revenue a few a second with Retry-After on every 429,
the CRM a small allowance a minute answered with 403 REQUEST_LIMIT_EXCEEDED
and no Retry-After at all.

The month piles its work onto the last afternoon: the core cannot reach the
ERP from noon (a network partition) while the last timesheets are
approved, sales closes the month's deals at 16:00 for the quarter's numbers,
the expense reports of the whole month are filed at once, and at 18:00 --
the ERP reachable again -- the billing run goes out. Everything must get
through the limits before the world is healed.

Beyond the general invariants this scenario checks that the limits did bite
(the story happened), that whenever a vendor answered 429 with Retry-After
the core did not send that request again before the time it was told, that
nothing was given up or sent to a person because of a limit, and that the
month-end burst was fully worked off before the faults ended: every deal
provisioned, every approved hour posted.
"""

from __future__ import annotations

import json
from datetime import time

from harness.scenario_api import Scenario, check

from . import _truth as t

LIMIT_WORDS = ("429", "RATE", "LIMIT", "CONCURRENCY", "THROTTL")


class WireWatch:
    """Watches what crosses the wire between the core and the vendors: each
    throttled answer with its Retry-After, and when each request was sent
    again after one. Kept in the run's notes for the expectations."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple] = {}  # message id -> (vendor, method, path, cause)
        self.throttled: dict[tuple, int] = {}  # (vendor, method, path, cause) -> earliest allowed resend (us)
        self.early: list[str] = []
        self.bites: dict[str, int] = {}

    def __call__(self, e: dict) -> None:
        kind = e["kind"]
        if kind == "net.response" and e["dst"] == "core" and "dropped" not in e["data"]:
            status = e["data"]["status"]
            # 429s and 403s, and the ERP family's 400 ACCT_CONCURRENCY_LIMIT_EXCEEDED
            if status in (429, 503, 403) or (status == 400 and "LIMIT_EXCEEDED" in json.dumps(e["data"].get("body"))):
                self.bites[e["src"]] = self.bites.get(e["src"], 0) + 1
            after = (e["data"].get("headers") or {}).get("retry-after")
            if e["data"]["status"] == 429 and after is not None:
                key = self._pending.pop(e["data"]["msg"], None)
                if key is not None:
                    self.throttled[key] = e["t"] + int(after) * 1_000_000
        elif kind == "net.request" and e["src"] == "core" and "copy" not in e["data"]:
            d = e["data"]
            key = (e["dst"], d["method"], d["path"], (d.get("headers") or {}).get("x-causation-id"))
            self._pending[d["msg"]] = key
            allowed = self.throttled.pop(key, None)
            if allowed is not None and d["sent"] < allowed:
                self.early.append(f"{d['method']} {e['dst']}{d['path']} (cause {key[3]}) sent again "
                                  f"{(allowed - d['sent']) / 1e6:.1f} s before its Retry-After ran out")


# (vendor, requests per window, window, requests in service at once)
LIMITS = (
    ("erp", 4, "1s", 1),  # the account's concurrency limit, shared with other integrations
    ("psa", 5, "1s", None),
    ("billing", 2, "1s", 1),
    ("crm", 30, "1m", None),  # the daily API allowance, scaled down: 403 with no Retry-After
    ("revenue", 5, "1s", None),
    ("hris", 2, "1s", None),
    ("expenses", 2, "1s", None),
)


async def script(d):
    watch = WireWatch()
    d.sim.subscribe(watch)
    d.note(wire=watch)
    for vendor, rate, window, concurrent in LIMITS:
        d.throttle(vendor, rate_limit=rate, window=window, concurrency_limit=concurrent)
    d.play_month(0)
    last = d.sim.calendar.last_business_day_of_month(d.today)
    await d.advance_to(last, time(12))
    d.partition("erp", hours=6)
    await d.advance_to(last, time(16))
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    d.submit_expenses(0)
    await d.advance_to(last, time(18))
    d.run_billing()
    await d.settle(days=4)
    d.note(backlog_when_healed=backlog(d.world))


def limits_bit(world) -> dict:
    watch = t.notes(world).get("wire")
    bites = watch.bites if watch else {}
    missing = [v for v in ("erp", "psa", "billing") if not bites.get(v)]
    return check("rate limits: the month-end burst met the vendors' limits",
                 [f"{v} never throttled the core: the story did not happen" for v in missing])


def retry_after_honoured(world) -> dict:
    watch = t.notes(world).get("wire")
    return check("rate limits: no throttled request was sent again before its Retry-After",
                 list(watch.early) if watch else ["the script watched no traffic"])


def nothing_given_up_on_a_limit(world) -> dict:
    violations = []
    for table in ("dlq", "exceptions"):
        for key, item in sorted(world.store.dump().get(table, {}).items()):
            text = " ".join(str(item.get(k, "")) for k in ("code", "reason", "error")).upper()
            if any(w in text for w in LIMIT_WORDS):
                violations.append(f"{table} {key}: {item.get('code')} {item.get('reason')}")
    return check("rate limits: nothing was given up or sent to a person because of a limit", violations)


def backlog(world) -> list[str]:
    """Work of the month not done yet: deals not provisioned, approved hours not posted."""
    violations = []
    for opp in t.won_deals(world):
        live = [p for p in t.psa_projects_for(world, opp) if p["status"] == "active"]
        if not live and not t.queued_for_people(world, opp):  # a business refusal is a person's, not a limit's
            violations.append(f"deal {opp}: no active PSA project and no exception says why (corr deal:{opp})")
    posts = t.erp_actuals_by_entry(world)
    for e in world.psa.records("time_entries"):
        if e["status"] == "approved" and not any(v == e["version"] and not rev for v, rev, _ in posts.get(e["id"], [])):
            violations.append(f"time entry {e['id']} v{e['version']} approved, not posted (corr te:{e['id']})")
    return violations


def burst_worked_off(world) -> dict:
    """Judged on the state when the script ended -- the limits still on."""
    left = t.notes(world).get("backlog_when_healed")
    return check("rate limits: the burst was worked off before the limits were lifted",
                 ["the script never reached the end of the month"] if left is None else left)


def expectations(world) -> list[dict]:
    return [limits_bit(world), retry_after_honoured(world), nothing_given_up_on_a_limit(world),
            burst_worked_off(world)]


SCENARIO = Scenario(
    name="rate-limit-month-end",
    summary="a month-end burst against rate limits and concurrency caps; Retry-After honoured, nothing dropped",
    script=script,
    firm={"consultants": 12},
    default_chaos="default",
    expectations=expectations,
)
