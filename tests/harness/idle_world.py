"""A business world with a core that does nothing: every fake seeded from
the firm and a month of people's work played out under chaos. Importable
from a subprocess for the determinism test."""

from __future__ import annotations

import sys

import trio

from fake_systems.firm_generator import FirmParams
from harness.world import BusinessWorld
from simulator import swarm_profile
from sync_core.ports import InboundResponse


class IdleCore:
    def __init__(self, env):
        self.env = env

    async def run(self):
        await trio.sleep_forever()

    async def handle_inbound(self, request):
        return InboundResponse(200)

    def idle(self):
        return True


def month_of_work(seed: int) -> BusinessWorld:
    chaos = swarm_profile(seed, 30 * 24 * 3_600_000_000, ["billing", "crm", "erp", "expenses", "hris", "psa", "revenue"])
    world = BusinessWorld(seed=seed, chaos=chaos, core_factory=IdleCore, header={"scenario": "idle-month"},
                          firm_params=FirmParams(consultants=25), keep_trace=True)

    async def script(d):
        for deal in d.deals_closing(0):
            d.close_deal(deal)
        d.play_month(0)
        d.submit_expenses(0)
        await d.to_month_end()
        d.run_billing()

    world.run(script)
    return world


if __name__ == "__main__":
    print(month_of_work(int(sys.argv[1])).sim.trace.fingerprint)
