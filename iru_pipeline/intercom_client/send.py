"""Send one API call: pacing, the exchange itself, proof of collection, bounded retries.

What each answer means (retry, wait, or which error) is asked of classify.py; this module only
counts, waits and tries again (docs/intercom-api.md#errors, #rate-limits).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from iru_pipeline.intercom_client.classify import Classifier, is_retryable, loads, transport_reason, unusable_body
from iru_pipeline.intercom_client.counters import Counters, StatsBook
from iru_pipeline.intercom_client.page import SearchPage
from iru_pipeline.intercom_client.proofs import ProofLog
from iru_pipeline.intercom_client.rate_limit import RateLimiter, RetryPolicy, retry_after_seconds

log = logging.getLogger(__name__)

_AGAIN: Any = object()
"""An attempt that will be repeated (after its wait)."""


@dataclass
class _Reply:
    status: int
    headers: httpx.Headers
    raw: bytes


@dataclass
class _Call:
    """One API call across its attempts."""

    method: str
    path: str
    resource: str | None
    counters: Counters
    attempt: int = 0
    """Retries of server errors, transport errors and unusable bodies so far."""
    rate_waits: int = 0
    """429 answers waited out so far."""

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.path}"


class Sender:
    """Sends the calls of one regional workspace's client through its httpx client and limiter."""

    def __init__(self, http: httpx.Client, *, region: str, base_url: str, limiter: RateLimiter,
                 retry: RetryPolicy, proofs: ProofLog, classifier: Classifier, stats: StatsBook) -> None:
        self._http = http
        self.region, self.base_url = region, base_url
        self.limiter, self.retry, self.proofs = limiter, retry, proofs
        self.classifier = classifier
        self._stats = stats
        self._rng = random.Random()

    def send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
             body: Mapping[str, Any] | None = None, resource: str | None = None,
             decode: Callable[[bytes], Any] | None = None) -> Any:
        """One API call with pacing and bounded retries; returns the decoded JSON object, or what
        `decode` (which replaces the JSON decoding of a successful answer) made of it."""
        call = _Call(method, path, resource, self._stats.for_call(f"{method} {path}", resource))
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        while True:
            reply = self._exchange(call, params, content, headers)
            if reply is None:
                continue
            if reply.status == 429:
                self._wait_out_rate_limit(call, reply)
            elif is_retryable(reply.status):
                self._retry_server_error(call, reply)
            elif (payload := self._payload(call, reply, decode)) is not _AGAIN:
                return payload

    def _exchange(self, call: _Call, params: Mapping[str, Any] | None, content: bytes | None,
                  headers: dict[str, str] | None) -> _Reply | None:
        """One attempt on the wire; None when it failed in transport and will be retried."""
        self.limiter.acquire()
        try:
            call.counters.add("calls")
            # Streamed and joined here, so the Response never holds the body: httpx's
            # Response and its stream reference each other, and a body kept by that cycle
            # (330 KB a page) lived until the next cyclic GC pass, hundreds of MB later.
            with self._http.stream(call.method, call.path, params=params, content=content,
                                   headers=headers) as response:
                raw = b"".join(response.iter_bytes())
        except httpx.TransportError as exc:
            self.limiter.release(None)
            call.counters.add("transport_errors")
            if call.attempt >= self.retry.max_retries:
                raise self.classifier.transport_error(exc, call.attempt + 1, call.endpoint, call.resource) from None
            self._sleep_retry(call, f"{transport_reason(exc)} on {call.endpoint}")
            return None
        except BaseException:
            # Anything else (the client closed by a stop, an interrupt) gives the slot back
            # too: a slot kept by a failed request left the callers waiting for one blocked
            # for good, and a stopped run never exited.
            self.limiter.release(None)
            raise
        # A 429's own window headers are not kept: its wait is `limiter.pause` below.
        self.limiter.release(response.headers if response.status_code != 429 else None)
        self.proofs.record(call.method, call.path, call.resource, self.base_url, response.status_code,
                           response.headers, raw)
        remaining = response.headers.get("x-ratelimit-remaining")
        if remaining is not None and remaining.isdigit():
            call.counters.low_water(int(remaining))
        return _Reply(response.status_code, response.headers, raw)

    def _wait_out_rate_limit(self, call: _Call, reply: _Reply) -> None:
        call.counters.add("rate_limited")
        if call.rate_waits >= self.retry.max_rate_limit_waits:
            raise self.classifier.rate_limit_error(call.rate_waits, loads(reply.raw), call.endpoint, call.resource)
        wait = retry_after_seconds(reply.headers, time.time())
        if wait is None:
            wait = self.retry.backoff(call.rate_waits, self._rng)
        wait = min(max(wait, 0.05), self.retry.max_wait)
        call.rate_waits += 1
        call.counters.add("retries")
        log.warning("[%s] 429 on %s; waiting %.1fs (wait %d)", self.region, call.endpoint, wait, call.rate_waits)
        self.limiter.pause(wait)

    def _retry_server_error(self, call: _Call, reply: _Reply) -> None:
        call.counters.add("server_errors")
        if call.attempt >= self.retry.max_retries:
            raise self.classifier.server_error(reply.status, call.attempt + 1, loads(reply.raw), call.endpoint,
                                               call.resource)
        self._sleep_retry(call, f"{reply.status} on {call.endpoint}")

    def _payload(self, call: _Call, reply: _Reply, decode: Callable[[bytes], Any] | None) -> Any:
        """The decoded answer; raises for a redirect or a 4xx; `_AGAIN` for an unusable body
        (a proxy page or a truncated body), retried, bounded."""
        status = reply.status
        if 300 <= status < 400:
            raise self.classifier.redirect_error(status, reply.headers.get("location"), call.endpoint, call.resource)
        if status >= 400:
            raise self.classifier.status_error(status, loads(reply.raw), call.endpoint, call.resource)
        payload = decode(reply.raw) if decode is not None else loads(reply.raw)
        why = None if isinstance(payload, SearchPage) else unusable_body(payload)
        if why is None:
            return payload
        if call.attempt >= self.retry.max_retries:
            raise self.classifier.body_error(why, status, reply.headers, call.endpoint, call.resource)
        self._sleep_retry(call, f"{why} on {call.endpoint}")
        return _AGAIN

    def _sleep_retry(self, call: _Call, why: str) -> None:
        call.counters.add("retries")
        delay = self.retry.backoff(call.attempt, self._rng)
        log.warning("[%s] retrying after %s in %.2fs (retry %d of %d)", self.region, why, delay, call.attempt + 1,
                    self.retry.max_retries)
        time.sleep(delay)
        call.attempt += 1
