"""How an operation's failure is classified, and when it is tried again.

An operation (a call to a vendor) ends in one of four ways:

  * success;
  * `RetryLater` -- transient: a timeout, a 5xx, a rate limit, a
    concurrency cap, a conflict. Tried again after a backoff, or after the
    vendor's Retry-After when it gave one. A timeout is *ambiguous*: the
    vendor may have committed, so the operation must be safe to repeat (an
    idempotency key, an upsert by external id, or a look-up first). A
    *throttle* (a 429, a family's "over the limit" code) is back-pressure,
    not a failure: the vendor is up, did nothing, and asks us to slow down
    (mostly saying when to come back), so the message waits without
    spending its retry budget;
  * `BusinessException` -- the request was understood and refused for a
    business reason (a closed period, missing master data): retrying will
    not help; a person in finance, the PMO or IT must act. It goes to the
    exception queue of that domain with a reason code;
  * anything else exhausts its retries and lands in the dead-letter queue.

Backoff is exponential with full jitter (AWS Architecture Blog, "Exponential
Backoff and Jitter", 2015) drawn from the environment's seeded generator.
"""

from __future__ import annotations

import random

import attrs

__all__ = ["RetryLater", "BusinessException", "RetryPolicy", "DOMAINS"]

DOMAINS = ("finance", "pmo", "it")


class RetryLater(Exception):
    def __init__(self, reason: str, after: float | None = None, *, ambiguous: bool = False,
                 throttled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after  # seconds the vendor asked us to wait
        self.ambiguous = ambiguous  # the vendor may have acted
        self.throttled = throttled  # refused for a limit, nothing done: wait, do not count it


class BusinessException(Exception):
    def __init__(self, domain: str, code: str, message: str, details: dict | None = None) -> None:
        if domain not in DOMAINS:
            raise ValueError(f"exception domain must be one of {', '.join(DOMAINS)}, not {domain!r}")
        super().__init__(f"{domain}/{code}: {message}")
        self.domain = domain
        self.code = code
        self.message = message
        self.details = details or {}


@attrs.frozen
class RetryPolicy:
    base: float = 0.5  # seconds
    cap: float = 300.0
    max_attempts: int = 12
    # A vendor's Retry-After is honoured, never shortened; a little jitter on
    # top keeps a crowd of retries from arriving in the same instant.
    retry_after_jitter: float = 0.25

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        if retry_after is not None:
            return retry_after + rng.uniform(0, self.retry_after_jitter * max(1.0, retry_after))
        # The exponent is bounded: a message throttled a thousand times (which
        # costs it nothing) must not overflow the float on its next failure.
        ceiling = min(self.cap, self.base * (2 ** min(attempt - 1, 64)))
        return rng.uniform(0, ceiling)

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
