"""A scenario file for the sweep tests: the demo world with a ledger that
ignores idempotency keys, so lost responses turn retries into duplicates.
If SYNCBED_TEST_KILL_AT is set, the run for that seed kills the sweep that
started it (and itself), as a person pressing ^C -9 would."""

import os
import signal

from harness import demo_world as demo
from simulator import Request

SCENARIO = "keyless-demo"
SYSTEMS = demo.SYSTEMS
CORE = demo.CORE
script = demo.script
check = demo.check
counts = demo.counts


class KeylessLedger(demo.Ledger):
    def _post_transfer(self, request):
        headers = {k: v for k, v in request.headers.items() if k != "idempotency-key"}
        return super()._post_transfer(Request(request.method, request.path, request.query, headers, request.json))


def build(sim):
    kill_at = os.environ.get("SYNCBED_TEST_KILL_AT")
    if kill_at is not None and sim.seed == int(kill_at):
        os.kill(os.getppid(), signal.SIGKILL)
        os._exit(1)
    rng = sim.streams.rng("demo.amounts")
    from decimal import Decimal

    amounts = [Decimal(rng.randint(100, 500_000)) / 100 for _ in range(60)]
    ledger = sim.add(KeylessLedger("ledger"))
    client = sim.add(demo.Client(CORE, amounts))
    return {"ledger": ledger, "client": client, "amounts": amounts}
