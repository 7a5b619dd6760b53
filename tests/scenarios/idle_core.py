"""A core that does nothing: the fastest world in which a scenario's script
and expectations run end to end (and every business expectation should
fail -- nothing was synced)."""

import trio

from sync_core.ports import InboundResponse

SPEC = "tests.scenarios.idle_core:IdleCore"


class IdleCore:
    def __init__(self, env):
        self.env = env

    async def run(self):
        await trio.sleep_forever()

    async def handle_inbound(self, request):
        return InboundResponse(200)

    def idle(self):
        return True
