"""Retry-After ignored."""

from __future__ import annotations

from sync_core.core import ReferenceCore
from sync_core.ports import Environment

from ._compose import Reply, wrap_clients

__all__ = ["retry_after_ignored"]

_WAIT_HEADERS = ("retry-after", "x-ratelimit-reset")


def _forget_wait(method, path, response):
    headers = response.headers or {}
    if not any(h in headers for h in _WAIT_HEADERS):
        return response
    return Reply.of(response, headers={k: v for k, v in headers.items() if k.lower() not in _WAIT_HEADERS})


def retry_after_ignored(env: Environment) -> ReferenceCore:
    """Throttled requests are retried on the core's own backoff, never the
    vendor's ``Retry-After``.

    The real-world bug: the retry decorator knows 429 means "try again" but
    not that the vendor said when; its exponential backoff starts at half
    a second, well inside the vendor's window, so the retries are throttled
    again, burn the account's allowance shared with other integrations, and
    can get the client blocked.

    Exposed by: ``rate-limit-month-end`` (tight limits on every vendor at
    month end).
    Caught by: "rate limits: no throttled request was sent again before its
    Retry-After".
    """
    return ReferenceCore(wrap_clients(env, incoming=_forget_wait))
