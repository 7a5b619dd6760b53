"""A sync core whose operations fail once each: one dead letter, one exception.

The reference core's outbox and dispatcher, two operations, each a real
request to the ERP. ``erp.ping`` raises on its first run, which the
dispatcher dead-letters at once; ``erp.post`` is refused for a business
reason (a closed period) and parked in the finance exception queue. After a
person replays or retries them, both succeed. The TUI's tests act on both
from the queues panel.
"""


from sync_core.dispatcher import Dispatcher, Operation, now_us
from sync_core.outbox import Outbox
from sync_core.ports import InboundResponse
from sync_core.retry import BusinessException


class FlakyOnceCore:
    def __init__(self, env):
        self.env = env
        operations = [Operation("erp.ping", self._ping), Operation("erp.post", self._post)]
        self.dispatcher = Dispatcher(env, operations, limits={"erp": 1})
        with env.store.transaction() as txn:
            if txn.get("flaky", "enqueued") is None:
                txn.put("flaky", "enqueued", True)
                Outbox.enqueue(txn, "erp.ping", {}, aggregate="ping:1", now_us=self.now_us(), corr="ping:1")
                Outbox.enqueue(txn, "erp.post", {}, aggregate="post:1", now_us=self.now_us(), corr="post:1")

    def now_us(self) -> int:
        return now_us(self.env)

    async def _ping(self, ctx, payload):
        await ctx.call("GET", "/erp/v1/subsidiaries")
        with ctx.env.store.transaction() as txn:
            failed_before = txn.get("flaky", "failed")
            txn.put("flaky", "failed", True)
        if not failed_before:
            raise ValueError("the ERP said something nobody expected")
        return {"pong": True}

    async def _post(self, ctx, payload):
        await ctx.call("GET", "/erp/v1/subsidiaries")
        with ctx.env.store.transaction() as txn:
            refused_before = txn.get("flaky", "refused")
            txn.put("flaky", "refused", True)
        if not refused_before:
            raise BusinessException("finance", "PERIOD_CLOSED", "the ERP period is closed")
        return {"posted": True}

    async def run(self):
        await self.dispatcher.run()

    async def handle_inbound(self, request):
        return InboundResponse(404, {"error": "no webhooks here"})

    def idle(self):
        return self.dispatcher.idle()


def build(env):
    return FlakyOnceCore(env)


