"""A minimal sync core: the seam and nothing else, for newcomers.

It reads the CRM's change feed and, for every opportunity won, creates a
project in the PSA (looking it up first, because PSA creates are not
idempotent). It has no outbox, no retries beyond the poll loop, and does
none of the other flows -- run it and watch which invariants it fails:

    .venv/bin/syncbed run quote-to-cash --core docs/minimal_core.py:make_core
"""

import trio

from sync_core.ports import InboundResponse, TransportError


class MinimalCore:
    def __init__(self, env):
        self.env = env  # clients, store, random, tracer, now, config
        self.crm = env.clients["crm"]
        self.psa = env.clients["psa"]

    async def run(self):
        while True:
            try:
                await self.poll()
            except TransportError:
                pass  # the network misbehaved: try again next round
            await trio.sleep(30)

    async def poll(self):
        with self.env.store.transaction() as txn:
            after = txn.get("cursor", "crm")
        query = {"after": after} if after else {}
        r = await self.crm.request("GET", "/services/v1/changes", query=query)
        if r.status != 200:
            return
        for event in r.json["events"]:
            if event["header"]["entity"] == "Opportunity" and event["fields"].get("IsWon"):
                await self.provision(event["header"]["recordIds"][0], event["fields"])
            with self.env.store.transaction() as txn:  # commit progress event by event
                txn.put("cursor", "crm", event["replayId"])

    async def provision(self, opp_id, fields):
        found = await self.psa.request("GET", "/projects", query={"external_reference": opp_id})
        if found.status == 200 and found.json["results"]:
            return
        await self.psa.request("POST", "/projects", json={
            "title": fields.get("Name", opp_id), "client_name": fields.get("AccountId", "?"),
            "currency": fields.get("CurrencyIsoCode", "USD"), "external_reference": opp_id,
        })
        self.env.tracer.event("core.minimal.provisioned", {"opportunity": opp_id}, corr=f"deal:{opp_id}")

    async def handle_inbound(self, request):
        return InboundResponse(200)

    def idle(self):
        return True


def make_core(env):
    return MinimalCore(env)
