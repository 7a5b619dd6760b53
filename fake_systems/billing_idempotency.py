"""Idempotency keys, the way payment platforms keep them.

A POST may carry an ``Idempotency-Key`` header. The first request with a key
that starts executing has its status, body and headers saved -- durably, at
once, so a crash before the response leaves does not lose it -- and every
later request with the same key gets exactly that answer back, a 500
included, with ``idempotent-replayed: true``. The rules, as the payment
platform family documents them:

* only requests that started executing are saved: a request refused before
  execution (validation 400/404, rate limit, outage, lock contention) saves
  nothing, so the client may fix it and retry with the same key;
* the saved answer is compared with later requests by a fingerprint of the
  method, path, query and body: the same key with other parameters is a 400
  ``idempotency_error``;
* a request arriving while the first with its key is still in service is
  a 409 (the first one's answer has not left yet);
* keys are kept for 24 hours from their first use; after that the key is new
  again and the request runs afresh.

Requests without a key are not idempotent: a retried create makes a second
record.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from simulator import HOUR, Request, Response, canonical_json

from .vendor import copy_data

if TYPE_CHECKING:
    from .vendor import VendorStore

__all__ = ["IdempotencyKeys", "KEY_TTL_US", "MAX_KEY_LENGTH", "fingerprint"]

KEY_TTL_US = 24 * HOUR
MAX_KEY_LENGTH = 255


def fingerprint(request: Request) -> str:
    """What "the same parameters" means: method, path, query and body."""
    text = canonical_json([request.method, request.path, request.query, request.json])
    return hashlib.sha256(text.encode()).hexdigest()


class IdempotencyKeys:
    """Saved answers by key, in the vendor's durable store.

    Invariant: the dict's order is first-use order (an expired key is deleted
    before it is saved again), so expiry only ever looks at the front.
    """

    def __init__(self, store: VendorStore) -> None:
        self._store = store

    @property
    def _keys(self) -> dict[str, dict]:
        extra = self._store.extra
        if "idempotency_keys" not in extra:
            extra["idempotency_keys"] = {}
        return extra["idempotency_keys"]

    def _expire(self, now_us: int) -> None:
        keys = self._keys
        while keys:
            oldest = next(iter(keys))
            if keys[oldest]["first_used"] + KEY_TTL_US > now_us:
                return
            del keys[oldest]

    def lookup(self, key: str, now_us: int) -> dict | None:
        """The saved entry for `key` if it is still live."""
        self._expire(now_us)
        return self._keys.get(key)

    def save(self, key: str, request: Request, response: Response, now_us: int) -> None:
        self._expire(now_us)
        self._keys.pop(key, None)
        self._keys[key] = {
            "first_used": now_us,
            "fingerprint": fingerprint(request),
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "body": copy_data(response.json),
            "headers": dict(response.headers),
        }

    @staticmethod
    def replay(entry: dict) -> Response:
        headers = dict(entry["headers"])
        headers["idempotent-replayed"] = "true"
        return Response(entry["status"], entry["body"], headers)

    def live(self, now_us: int) -> list[str]:
        """Keys still remembered (inspection)."""
        self._expire(now_us)
        return list(self._keys)
