"""An operation's reads: a short "slow down" waited out, and a lost answer
asked again on the spot -- while the operation's deadline allows."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
import trio
import trio.testing

from sync_core.dispatcher import OpContext
from sync_core.flows.lookups import LOST, read
from sync_core.ports import Environment, TransportError
from sync_core.retry import RetryLater
from sync_core.stores import MemoryStore


class Answer:
    def __init__(self, status: int, json=None) -> None:
        self.status = status
        self.headers: dict = {}
        self.json = json


class LossyVendor:
    """Loses the answers to its first `lost` requests (each after
    `timeout` seconds, as a client's timeout would), then answers."""

    def __init__(self, lost: int, timeout: float = 30.0) -> None:
        self.lost = lost
        self.timeout = timeout
        self.calls: list[tuple[str, dict]] = []

    async def request(self, method, path, *, json=None, headers=None, query=None, timeout=None):
        self.calls.append((path, dict(headers or {})))
        if len(self.calls) <= self.lost:
            await trio.sleep(self.timeout)
            raise TransportError(f"no response from crm to {method} {path}")
        return Answer(200, {"Id": "0P1"})


class Events:
    def __init__(self) -> None:
        self.kinds: list[str] = []

    def event(self, kind, data=None, *, corr=None, cause=None) -> None:
        self.kinds.append(kind)


def context(crm: LossyVendor) -> tuple[OpContext, Events]:
    tracer = Events()
    env = Environment(clients={"erp": LossyVendor(0), "crm": crm}, store=MemoryStore(), random=random.Random(1),
                      tracer=tracer, now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    message = {"id": "ob00000001", "op": "erp.upsert_customer", "corr": "deal:0P1"}
    return OpContext(env, message, 1), tracer


def run(ctx: OpContext, deadline_s: float):
    async def main():
        with trio.fail_after(deadline_s):
            return await read(ctx, "crm", "/services/v1/objects/Opportunity/0P1")

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_read_of_another_vendor_whose_answer_was_lost_is_asked_again():
    crm = LossyVendor(lost=2)
    ctx, tracer = context(crm)
    assert run(ctx, deadline_s=120).json == {"Id": "0P1"}
    assert len(crm.calls) == 3
    assert tracer.kinds == ["core.call.repeated"] * 2
    # Every ask carries the operation's ids, so the trace ties it to the deal.
    assert {h["x-causation-id"] for _, h in crm.calls} == {"ob00000001"}
    assert {h["x-correlation-id"] for _, h in crm.calls} == {"deal:0P1"}


def test_a_read_gives_up_after_its_repeats_or_before_it_could_outrun_the_deadline():
    crm = LossyVendor(lost=LOST + 1, timeout=1.0)
    ctx, _ = context(crm)
    with pytest.raises(RetryLater, match="no answer from crm"):
        run(ctx, deadline_s=3600)
    assert len(crm.calls) == LOST + 1

    crm = LossyVendor(lost=3)
    ctx, _ = context(crm)
    with pytest.raises(RetryLater, match="no answer from crm"):
        run(ctx, deadline_s=80)  # 30 s per lost answer: at 60 s a third ask could outrun the deadline
    assert len(crm.calls) == 2
