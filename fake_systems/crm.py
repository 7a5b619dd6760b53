"""A fake CRM of the Salesforce family: the system of record for accounts,
opportunities, quote (SOW) lines and contract versions -- commercial intent.

The API, under ``/services/v1`` (and ``/services/v2`` once the schema drift
fault ships it, see `crm_schema`):

    GET   /objects/{Object}/{id}                   a record (Opportunity: ETag)
    PATCH /objects/{Object}/{id}                   update -> 204 (If-Match on Opportunity; stale -> 412)
    POST  /objects/{Object}                        create -> 201 {"id", "success", "created"}
    GET   /objects/{Object}/by/{Field}/{value}     by external id: 0 -> 404, 1 -> 200, many -> 300
    PATCH /objects/{Object}/by/{Field}/{value}     upsert: 0 -> 201 create, 1 -> 200 update,
                                                   many -> 300 with the matching ids, nothing changes
    GET   /objects/{Object}/{id}/{Relation}        children (Opportunity: QuoteLines, ContractVersions;
                                                   Account: Opportunities, Contacts)
    GET   /query?q=...&offset=&pageSize=           the tiny query language (`crm_query`)
    POST  /composite                               {"allOrNone", "requests": [<= 25 sub-requests]}
    GET   /changes?after=<replayId>&limit=         change events (72 h, commit order)

Composite sub-requests are ``{"ref"?, "method", "path", "body"?, "headers"?}``;
a later one may use ``@{ref.field}`` of an earlier result (``@{acc.id}``).
An all-or-none composite is one transaction: any sub-result >= 300 rolls
back all, and the others answer 400 ``PROCESSING_HALTED``.

A change event is ``{"replayId", "transactionKey", "commitTimestamp" (virtual
us), "header": {entity, changeType CREATE|UPDATE|DELETE, recordIds,
changedFields, commitStamp (the CRM's clock), transactionKey,
sequenceInTransaction, origin, schema}, "fields": {changed values}}``; origin
is ``ui`` for people, ``api`` or ``api:<x-client-name header>`` for
integrations (so a core can recognise its own echoes). A merge publishes
the loser as a DELETE carrying MasterRecordId.

Errors are a JSON list of ``{"code", "message", "fields"}``. Over the API
allowance (or the concurrency cap): 403 ``REQUEST_LIMIT_EXCEEDED`` with no
Retry-After; a row lock (the conflict fault) is a retryable 400
``RECORD_LOCKED``. Closed Won contracts are locked: their lines change only
through an amendment, which adds a new `ContractVersion` and keeps the
baseline. Writes run in transactions (`crm_transactions`); record rules
live in `crm_org`.
"""

from __future__ import annotations

import functools
from datetime import UTC
from typing import Any

from simulator import Request, Response

from . import crm_seed
from .crm_composite import parse_composite, sub_request
from .crm_query import parse_query, run_query
from .crm_org import Org, plain
from .crm_schema import CLOSED_LOST, CLOSED_WON, OBJECTS, STAGES, internal_name, parse_body, present, spec_of
from .crm_transactions import ChangeStream, Transaction
from .vendor import Route, VendorError, VendorSystem

__all__ = ["Crm", "UiActionRefused"]

_RELATIONS = {
    ("Opportunity", "QuoteLines"): ("QuoteLine", "OpportunityId"),
    ("Opportunity", "ContractVersions"): ("ContractVersion", "OpportunityId"),
    ("Account", "Opportunities"): ("Opportunity", "AccountId"),
    ("Account", "Contacts"): ("Contact", "AccountId"),
}


class UiActionRefused(ValueError):
    """A person's action the CRM refused, as the UI would (validation rule, missing record)."""


def people_action(method):
    """One thing a person does in the UI: one transaction, refusals as UiActionRefused."""

    @functools.wraps(method)
    def act(self: Crm, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.atomic(None, method.__name__, functools.partial(method, self, *args, **kwargs))
        except VendorError as e:
            raise UiActionRefused(f"{method.__name__}: {e.message}") from None

    return act


class Crm(VendorSystem):
    family = "Salesforce-like"

    def __init__(self, name: str = "crm") -> None:
        super().__init__(name)
        self.changes = ChangeStream(self)
        self.org = Org(self)
        self._tx: Transaction | None = None

    def routes(self) -> list[Route]:
        v = "/services/{version}"
        return [
            Route("GET", v + "/objects/{obj}/{record_id}", self._get),
            Route("PATCH", v + "/objects/{obj}/{record_id}", self._patch, writes=True),
            Route("POST", v + "/objects/{obj}", self._create, writes=True),
            Route("GET", v + "/objects/{obj}/by/{field}/{value}", self._get_by_external),
            Route("PATCH", v + "/objects/{obj}/by/{field}/{value}", self._upsert, writes=True),
            Route("GET", v + "/objects/{obj}/{record_id}/{relation}", self._related),
            Route("GET", v + "/query", self._query),
            Route("POST", v + "/composite", self._composite, writes=True),
            Route("GET", v + "/changes", self._changes),
        ]

    # ------------------------------------------------------------ the vendor's shapes

    def error(self, status: int, code: str, message: str, field: str | None = None, headers: dict | None = None) -> Response:
        return Response(status, [{"code": code, "message": message, "fields": [field] if field else []}], headers)

    def rate_limited(self, retry_after_s: int) -> Response:
        # The family answers 403 and says nothing about when to come back.
        return self.error(403, "REQUEST_LIMIT_EXCEEDED", "the org's API request allowance is used up; "
                          "requests are refused until it recovers")

    def over_concurrency(self) -> Response:
        return self.error(403, "REQUEST_LIMIT_EXCEEDED", "too many concurrent API requests for this org; retry later")

    def unavailable(self) -> Response:
        return self.error(503, "SERVER_UNAVAILABLE", "the org is down for maintenance")

    def server_error(self) -> Response:
        ref = self.sim.streams.rng(f"{self.name}.error_ref").randrange(10**8)
        return self.error(500, "UNKNOWN_EXCEPTION", f"an unexpected error occurred; quote error id {ref:08d} to support")

    def conflict(self) -> Response:
        return self.error(400, "RECORD_LOCKED", "unable to get exclusive access to this record or a related one; "
                          "retry the request")

    # ------------------------------------------------------------ time, versions, transactions

    @property
    def drifted(self) -> bool:
        """The v2 API (and v2-shaped change events) are live."""
        at = self.faults.schema_drift_at
        return self.faults_active and at is not None and self.now_us >= at

    def stamp(self) -> str:
        """Now on the CRM's own clock (skew included), as ISO text in UTC."""
        dt = self.sim.calendar.datetime_at(self.now_us, self.name).astimezone(UTC)
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"

    def local_date(self):
        return self.sim.calendar.date_at(self.now_us, self.name)

    def _version(self, version: str) -> str:
        if version == "v1" or (version == "v2" and self.drifted):
            return version
        raise VendorError(404, "NOT_FOUND", f"API version {version!r} does not exist; use v1")

    def atomic(self, request: Request | None, action: str | None, fn, *args: Any, quiet: bool = False) -> Any:
        """Run ``fn(*args)`` in the open transaction (behind a savepoint) or in a new one."""
        tx = self._tx
        if tx is not None:
            saved = (tx.request, tx.action, tx.savepoint())
            tx.request, tx.action = request, action
            try:
                return fn(*args)
            except BaseException:
                tx.rollback(self.durable.tables, saved[2])
                raise
            finally:
                tx.request, tx.action = saved[0], saved[1]
        tx = self._tx = Transaction(self._origin(request), request, action, quiet)
        try:
            result = fn(*args)
        except BaseException:
            tx.rollback(self.durable.tables)
            raise
        finally:
            self._tx = None
        self._commit(tx)
        return result

    def _origin(self, request: Request | None) -> str:
        if request is None:
            return "ui"
        client = request.header("x-client-name")
        return f"api:{client}" if client else "api"

    def _commit(self, tx: Transaction) -> None:
        if tx.quiet or not tx.changes:
            return
        key = f"{self.store.next_id('transaction'):08x}-{self.name}"
        self.changes.publish(tx, key, self.stamp(), "v2" if self.drifted else "v1")
        for kind, table, rec_id, request, action, fields in tx.effects:
            detail: dict[str, Any] = {"fields": sorted(fields), "transaction": key}
            if action:
                detail["action"] = action
            self.record_effect(kind, table, rec_id, request, **detail)

    # ------------------------------------------------------------ reading

    def _get(self, request: Request, version: str, obj: str, record_id: str) -> Response:
        version = self._version(version)
        rec = self.org.live(obj, record_id)
        return Response(200, present(obj, rec, version), self._etag(obj, rec))

    def _etag(self, obj: str, rec: dict) -> dict:
        return {"etag": f'"{rec["Id"]}.{rec["_rev"]}"'} if OBJECTS[obj].etag else {}

    def _external_field(self, obj: str, field: str, version: str) -> str:
        spec = spec_of(obj)
        name = internal_name(obj, field, version)
        f = spec.field(name) if name else None
        if f is None or not f.external_id:
            ext = [x.name for x in spec.fields if x.external_id]
            raise VendorError(400, "INVALID_FIELD", f"{field} is not an external id field of {obj}; "
                              f"use {' or '.join(ext) or 'the record id'}", field)
        return f.name

    def _matches(self, obj: str, field: str, value: str) -> list[str]:
        return [i for i, r in self.table(obj).items() if not r.get("IsDeleted") and r.get(field) == value]

    def _multiple(self, obj: str, field: str, value: str, ids: list[str]) -> Response:
        return Response(300, [{
            "code": "MULTIPLE_RECORDS_MATCH",
            "message": f"{len(ids)} {obj} records have {field} = {value!r}; nothing was changed. "
                       "Merge the duplicates or address one record by its id",
            "fields": [field],
            "matchingIds": ids,
        }])

    def _get_by_external(self, request: Request, version: str, obj: str, field: str, value: str) -> Response:
        version = self._version(version)
        name = self._external_field(obj, field, version)
        ids = self._matches(obj, name, value)
        if len(ids) > 1:
            return self._multiple(obj, field, value, ids)
        if not ids:
            raise VendorError(404, "NOT_FOUND", f"no {obj} has {field} = {value!r}")
        rec = self.table(obj)[ids[0]]
        return Response(200, present(obj, rec, version), self._etag(obj, rec))

    def _related(self, request: Request, version: str, obj: str, record_id: str, relation: str) -> Response:
        version = self._version(version)
        self.org.live(obj, record_id)
        child = _RELATIONS.get((obj, relation))
        if child is None:
            names = [r for o, r in sorted(_RELATIONS) if o == obj]
            raise VendorError(404, "NOT_FOUND", f"{obj} has no relation {relation!r}; "
                              f"{'use ' + ' or '.join(names) if names else 'it has none'}")
        kind, parent_field = child
        rows = [present(kind, r, version) for r in self.table(kind).values()
                if r.get(parent_field) == record_id and not r.get("IsDeleted")]
        return Response(200, {"total": len(rows), "records": rows})

    def _int_param(self, request: Request, name: str, default: int, lo: int, hi: int) -> int:
        raw = request.query.get(name)
        if raw is None:
            return default
        if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and lo <= int(raw) <= hi):
            raise VendorError(400, "INVALID_VALUE", f"{name} must be a whole number from {lo} to {hi}, not {raw!r}", name)
        return int(raw)

    def _query(self, request: Request, version: str) -> Response:
        version = self._version(version)
        q = parse_query(request.query.get("q"), version)
        size = self._int_param(request, "pageSize", 200, 1, 2000)
        offset = self._int_param(request, "offset", 0, 0, 10**9)
        rows = run_query(q, list(self.table(q.obj).values()))
        page = rows[offset: offset + size]
        more = offset + size < len(rows)
        return Response(200, {
            "total": len(rows), "done": not more, "nextOffset": offset + size if more else None,
            "records": [present(q.obj, r, version) for r in page],
        })

    def _changes(self, request: Request, version: str) -> Response:
        self._version(version)
        after = request.query.get("after")
        if after is not None and not isinstance(after, str):
            raise VendorError(400, "INVALID_REPLAY_ID", f"after must be a replay id string, not {after!r}", "after")
        limit = self._int_param(request, "limit", 100, 1, 1000)
        events, last = self.changes.read(after, limit)
        return Response(200, {"events": events, "lastReplayId": last})

    # ------------------------------------------------------------ writing

    def _create(self, request: Request, version: str, obj: str) -> Response:
        version = self._version(version)
        spec_of(obj)
        values = parse_body(obj, request.json, version, creating=True)
        rec_id = self.atomic(request, None, self.org.insert, obj, values)
        return Response(201, {"id": rec_id, "success": True, "created": True}, self._etag(obj, self.table(obj)[rec_id]))

    def _check_if_match(self, request: Request, obj: str, rec: dict) -> None:
        wanted = request.header("if-match")
        if wanted is None or not OBJECTS[obj].etag or wanted == "*":
            return  # optimistic concurrency exists on some objects only
        current = self._etag(obj, rec)["etag"]
        if wanted != current:
            raise VendorError(412, "PRECONDITION_FAILED", f"{obj} {rec['Id']} changed since you read it "
                              f"(If-Match {wanted}, now {current}); GET it again and reapply your change")

    def _patch(self, request: Request, version: str, obj: str, record_id: str) -> Response:
        version = self._version(version)
        rec = self.org.live(obj, record_id)
        self._check_if_match(request, obj, rec)
        values = parse_body(obj, request.json, version, creating=False)
        self.atomic(request, None, self.org.update, obj, record_id, values)
        return Response(204, None, self._etag(obj, self.table(obj)[record_id]))

    def _upsert(self, request: Request, version: str, obj: str, field: str, value: str) -> Response:
        version = self._version(version)
        name = self._external_field(obj, field, version)
        ids = self._matches(obj, name, value)
        if len(ids) > 1:
            return self._multiple(obj, field, value, ids)
        values = parse_body(obj, request.json, version, creating=not ids)
        if values.get(name, value) != value:
            raise VendorError(400, "INVALID_FIELD", f"the body sets {field} to {values[name]!r} but the URL "
                              f"upserts by {field} = {value!r}; leave it out of the body", field)
        values[name] = value
        if not ids:
            rec_id = self.atomic(request, None, self.org.insert, obj, values)
            return Response(201, {"id": rec_id, "success": True, "created": True}, self._etag(obj, self.table(obj)[rec_id]))
        self._check_if_match(request, obj, self.table(obj)[ids[0]])
        self.atomic(request, None, self.org.update, obj, ids[0], values)
        return Response(200, {"id": ids[0], "success": True, "created": False}, self._etag(obj, self.table(obj)[ids[0]]))

    # ------------------------------------------------------------ composite

    def _composite(self, request: Request, version: str) -> Response:
        self._version(version)
        subs, all_or_none = parse_composite(request.json)
        results: list[dict] = []
        bodies: dict[str, Any] = {}
        if not all_or_none:
            for sub in subs:
                results.append(self._run_sub(request, sub, bodies))
            return Response(200, {"results": results})
        tx = self._tx = Transaction(self._origin(request), request, None)
        failed = None
        try:
            for n, sub in enumerate(subs):
                results.append(self._run_sub(request, sub, bodies))
                if results[-1]["status"] >= 300:
                    failed = n
                    break
        except BaseException:
            tx.rollback(self.durable.tables)
            raise
        finally:
            self._tx = None
        if failed is None:
            self._commit(tx)
            return Response(200, {"results": results})
        tx.rollback(self.durable.tables)
        halted = [{"code": "PROCESSING_HALTED", "fields": [], "message":
                   f"the transaction was rolled back because sub-request {failed} failed"}]
        out = [results[n] if n == failed else {"ref": sub.get("ref"), "status": 400, "headers": {}, "body": halted}
               for n, sub in enumerate(subs)]
        return Response(200, {"results": out})

    def _run_sub(self, outer: Request, sub: dict, bodies: dict[str, Any]) -> dict:
        ref = sub.get("ref")
        try:
            req = sub_request(outer, sub, bodies)
            route, params, known = self.match(req)
            if route is not None and route.handler == self._composite:
                raise VendorError(400, "INVALID_VALUE", "composite requests cannot be nested")
            if route is None:
                response = (self.error(405, "METHOD_NOT_ALLOWED", f"{req.method} is not allowed on {req.path}") if known
                            else self.error(404, "NOT_FOUND", f"no such resource: {req.path}"))
            else:
                response = route.handler(req, **params)
        except VendorError as e:
            response = self.error(e.status, e.code, e.message, e.field, e.headers)
        if ref is not None and response.ok:
            bodies[ref] = response.json
        return {"ref": ref, "status": response.status, "headers": dict(response.headers), "body": response.json}

    # ---- what people do in the UI
    # Each runs as one transaction, like a save in the UI: its change events
    # carry origin "ui", its effects the action's name and no request. A
    # refusal (a validation rule, a missing record) raises UiActionRefused.

    @people_action
    def create_account(self, name: str, country: str, currency: str, *, tax_registration: str | None = None,
                       account_number: str | None = None) -> str:
        return self.org.insert("Account", parse_body("Account", plain({
            "Name": name, "BillingCountry": country, "CurrencyIsoCode": currency,
            "TaxRegistration": tax_registration, "AccountNumber": account_number}), "v1", creating=True))

    @people_action
    def add_contact(self, account_id: str, last_name: str, **fields: Any) -> str:
        """`fields`: FirstName, Email, Title."""
        values = {**fields, "AccountId": account_id, "LastName": last_name}
        return self.org.insert("Contact", parse_body("Contact", plain(values), "v1", creating=True))

    @people_action
    def create_opportunity(self, account_id: str, name: str, *, close_date, stage: str = "Prospecting",
                           lines: tuple[dict, ...] | list[dict] = (), **fields: Any) -> str:
        """An opportunity with its quote lines (dicts of QuoteLine fields, v1
        names; dates and Decimals welcome). `fields`: other Opportunity
        fields (Contract_Family__x, CurrencyIsoCode, Description...)."""
        head = {**fields, "AccountId": account_id, "Name": name, "CloseDate": close_date, "StageName": "Prospecting"}
        return self.org.insert_opportunity(
            parse_body("Opportunity", plain(head), "v1", creating=True),
            [parse_body("QuoteLine", plain(line), "v1", creating=True) for line in lines],
            parse_body("Opportunity", {"StageName": stage}, "v1", creating=False),
        )

    @people_action
    def advance_stage(self, opp_id: str, stage: str | None = None) -> str:
        """Move to `stage`, or to the next open stage; returns the new stage."""
        current = self.org.live("Opportunity", opp_id)["StageName"]
        if stage is None:
            order = [s for s in STAGES if s not in (CLOSED_WON, CLOSED_LOST)]
            if current not in order or current == order[-1]:
                raise UiActionRefused(f"advance_stage: {opp_id} is at {current!r}; there is no next open stage")
            stage = order[order.index(current) + 1]
        self.org.update("Opportunity", opp_id, parse_body("Opportunity", {"StageName": stage}, "v1", creating=False))
        return stage

    @people_action
    def close_won(self, opp_id: str) -> None:
        """Stage Closed Won, closed today on the CRM's clock; the baseline contract version is signed."""
        self.org.update("Opportunity", opp_id, {"StageName": CLOSED_WON, "CloseDate": self.local_date().isoformat()})

    @people_action
    def close_lost(self, opp_id: str) -> None:
        self.org.update("Opportunity", opp_id, {"StageName": CLOSED_LOST, "CloseDate": self.local_date().isoformat()})

    @people_action
    def correct_account(self, account_id: str, **fields: Any) -> None:
        """Someone fixes an account's details (Name, TaxRegistration, BillingCountry...)."""
        self.org.update("Account", account_id, parse_body("Account", plain(fields), "v1", creating=False))

    @people_action
    def amend_contract(self, opp_id: str, *, kind: str, effective_date, line_changes: dict | None = None,
                       added_lines: tuple[dict, ...] | list[dict] = (), description: str | None = None,
                       signed_date=None, amendment_ref: str | None = None) -> str:
        """A change order signed: lines changed ({line id: QuoteLine fields})
        and added, as contract version n+1; returns the ContractVersion id."""
        changes = {lid: parse_body("QuoteLine", plain(v), "v1", creating=False) for lid, v in (line_changes or {}).items()}
        added = [parse_body("QuoteLine", plain(v), "v1", creating=True) for v in added_lines]
        terms = plain({"Kind": kind, "EffectiveDate": effective_date, "Description": description,
                       "SignedDate": signed_date or self.local_date(), "Amendment_Ref__x": amendment_ref})
        return self.org.amend(opp_id, terms, changes, added)

    @people_action
    def merge_accounts(self, survivor_id: str, loser_id: str) -> None:
        """Duplicates merged: the survivor keeps its id, the loser points to it (MasterRecordId)."""
        self.org.merge(survivor_id, loser_id)

    # ------------------------------------------------------------ seeding from a generated firm

    def load_firm(self, firm, *, emit_events: bool = False) -> dict[str, str]:
        """Clients -> accounts, deals -> opportunities with lines (closed won
        with a baseline version, unless they close during the run). Quiet by
        default: history loaded before the integration went live."""
        try:
            return self.atomic(None, "load_firm", crm_seed.load_firm, self, firm, quiet=not emit_events)
        except VendorError as e:
            raise ValueError(f"load_firm: the firm does not fit the CRM: {e.message}") from None

    def apply_amendment(self, amendment) -> str:
        """A firm_model.Amendment, signed in the CRM now; returns the ContractVersion id."""
        vid = self.amend_contract(self.crm_id(amendment.deal_id), **crm_seed.amendment_terms(self, amendment))
        if amendment.added_line is not None:
            added = [c["LineId"] for c in self.table("ContractVersion")[vid]["ChangedLines"] if c["Change"] == "added"]
            self.durable.extra["firm_ids"][amendment.added_line.id] = added[0]
        return vid

    def crm_id(self, firm_id: str) -> str:
        """The CRM id of a loaded firm record (client, deal or line id)."""
        try:
            return self.durable.extra["firm_ids"][firm_id]
        except KeyError:
            raise KeyError(f"{firm_id!r} was not loaded into {self.name}; call load_firm first") from None
