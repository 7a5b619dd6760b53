"""The kernel's built-in demo world: a toy payments ledger and a toy sync client.

Until the scenario library lands this is what ``syncbed run`` runs. It is
small but honest: a vendor that applies a POST every time it arrives unless
it carries an ``Idempotency-Key``, rate limits with Retry-After, 5xx before
commit, and a client that crashes and restarts under chaos. The client uses
idempotency keys, retries with seeded jitter, and keeps its progress in
durable state, so every transfer must land exactly once however the network
and the process misbehave. Its invariants are the kernel's end-to-end check.
"""

from __future__ import annotations

from decimal import Decimal

import trio

from simulator import (
    HOUR,
    MILLISECOND,
    MINUTE,
    SECOND,
    Actor,
    NetworkError,
    Request,
    Response,
    Simulation,
)

SCENARIO = "kernel-demo"
SYSTEMS = ["ledger"]
CORE = "client"
TRANSFERS = 300
ARRIVAL_GAP_US = 2 * MINUTE  # one transfer to ship every two virtual minutes


class Ledger(Actor):
    """A toy payments vendor: non-idempotent POST unless keyed."""

    def init_durable(self) -> dict:
        return {"transfers": {}, "keys": {}, "balance": Decimal("0.00"), "next": 0}

    def init_volatile(self) -> dict:
        return {"window_start": 0, "window_count": 0}

    def handle(self, request: Request) -> Response:
        faults = self.sim.chaos.system(self.name)
        healed = self.sim.healed
        if not healed and faults.rate_limit is not None:
            v = self.volatile
            if self.now_us - v["window_start"] >= faults.rate_limit_window:
                v["window_start"], v["window_count"] = self.now_us, 0
            v["window_count"] += 1
            if v["window_count"] > faults.rate_limit:
                retry = max(1, (v["window_start"] + faults.rate_limit_window - self.now_us) // SECOND + 1)
                self.record("fault.rate_limited", {"path": request.path})
                return Response(429, {"error": "rate_limited"}, {"retry-after": str(retry)})
        if not healed and faults.error_5xx and self.sim.streams.rng("ledger.5xx").random() < faults.rate("error_5xx"):
            self.record("fault.error_5xx", {"path": request.path})
            return Response(503, {"error": "unavailable"})
        if request.method == "POST" and request.path == "/transfers":
            return self._post_transfer(request)
        if request.method == "GET" and request.path == "/transfers":
            ref = request.query.get("ref")
            found = [t for t in self.durable["transfers"].values() if t["ref"] == ref]
            return Response(200, {"transfers": found})
        return super().handle(request)

    def _post_transfer(self, request: Request) -> Response:
        d = self.durable
        body = request.json if isinstance(request.json, dict) else {}
        key = request.header("idempotency-key")
        if key is not None and key in d["keys"]:
            return Response(*d["keys"][key])
        try:
            amount = Decimal(body["amount"])
            ref = str(body["ref"])
        except (KeyError, TypeError, ArithmeticError):
            return Response(400, {"error": "invalid_request", "message": "amount (decimal string) and ref are required"})
        d["next"] += 1
        tid = f"tr_{d['next']:06d}"
        d["transfers"][tid] = {"id": tid, "ref": ref, "amount": str(amount)}
        d["balance"] += amount
        result = (201, {"id": tid, "ref": ref})
        if key is not None:
            d["keys"][key] = result
        return Response(*result)


class Client(Actor):
    """A toy sync core: ships transfers exactly once, through any fault."""

    serves_in_task = False

    def __init__(self, name: str, amounts: list[Decimal]) -> None:
        self.amounts = amounts
        super().__init__(name)

    def init_durable(self) -> dict:
        # The committed cursor: a transfer is "done" only once the vendor's
        # answer is recorded here, so a crash re-sends (with the same key).
        return {"done": 0, "attempts": 0}

    async def run(self) -> None:
        rng = self.sim.streams.rng(f"{self.name}.jitter")
        d = self.durable
        while d["done"] < len(self.amounts):
            i = d["done"]
            # Transfer i becomes due at i x ARRIVAL_GAP: a steady business feed.
            due = i * ARRIVAL_GAP_US
            if self.now_us < due:
                await trio.sleep((due - self.now_us) / SECOND)
            request = Request(
                "POST",
                "/transfers",
                headers={"idempotency-key": f"demo-{i}", "x-correlation-id": f"transfer-{i}"},
                json={"ref": f"demo-{i}", "amount": str(self.amounts[i])},
            )
            backoff = 200 * MILLISECOND
            while True:
                d["attempts"] += 1
                try:
                    response = await self.request("ledger", request, timeout_us=5 * SECOND)
                except NetworkError:
                    response = None
                if response is not None and response.status == 201:
                    break
                wait = backoff
                if response is not None and response.status == 429:
                    wait = max(wait, int(response.header("retry-after", "1")) * SECOND)
                await trio.sleep((wait + rng.randint(0, backoff)) / SECOND)
                backoff = min(backoff * 2, 30 * SECOND)
            d["done"] = i + 1


def build(sim: Simulation) -> dict:
    rng = sim.streams.rng("demo.amounts")
    amounts = [Decimal(rng.randint(100, 500_000)) / 100 for _ in range(TRANSFERS)]
    ledger = sim.add(Ledger("ledger"))
    client = sim.add(Client(CORE, amounts))
    return {"ledger": ledger, "client": client, "amounts": amounts}


async def script(sim: Simulation, world: dict) -> None:
    sim.start_all()
    client = world["client"]
    total = len(world["amounts"])
    await sim.kernel.run_until_quiet(lambda: client.durable["done"] == total, limit_us=24 * HOUR)
    # Liveness phase: faults end, the world must finish what it started.
    sim.heal()
    await sim.kernel.run_until_quiet(lambda: client.durable["done"] == total, limit_us=sim.now_us + 12 * HOUR)


def check(world: dict) -> list[dict]:
    ledger, amounts = world["ledger"], world["amounts"]
    transfers = ledger.durable["transfers"]
    by_ref: dict[str, int] = {}
    for t in transfers.values():
        by_ref[t["ref"]] = by_ref.get(t["ref"], 0) + 1
    dupes = sorted(ref for ref, n in by_ref.items() if n > 1)
    missing = sorted(f"demo-{i}" for i in range(len(amounts)) if f"demo-{i}" not in by_ref)
    expected = sum(amounts, Decimal("0.00"))
    return [
        {
            "name": "exactly-once-transfers",
            "ok": not dupes,
            "violations": [f"transfer {ref} applied {by_ref[ref]} times (correlation transfer-{ref[5:]})" for ref in dupes],
        },
        {
            "name": "nothing-lost",
            "ok": not missing,
            "violations": [f"transfer {ref} never reached the ledger" for ref in missing],
        },
        {
            "name": "ledger-balance-ties",
            "ok": ledger.durable["balance"] == expected,
            "violations": []
            if ledger.durable["balance"] == expected
            else [f"ledger balance {ledger.durable['balance']} != sum of transfers {expected}"],
        },
    ]


def counts(world: dict) -> dict:
    return {"ledger": {"transfers": len(world["ledger"].durable["transfers"])}}
