"""Requests in flight follow the rate limit and the response time (Little's law), within the
bound; the records stay exact.

The fake counts how many API requests it is answering at once (`peak_in_flight`), so the
concurrency is observed on the server side, over real HTTP."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_client import IntercomClient, RateLimiter, RetryPolicy
from iru_pipeline.intercom_client.rate_limit import IN_FLIGHT_HEADROOM, START_IN_FLIGHT, WINDOW_SECONDS
from iru_pipeline.intercom_source.windows import CONTACTS_SEARCH, CONVERSATIONS_SEARCH, SearchSpec, windowed_search

FAST = RetryPolicy(max_retries=4, backoff_base=0.01, backoff_cap=0.05)
LIMIT = 1000
"""Calls per 10 s window: 100 calls/s."""
BOUND = 24
"""The configured upper bound of requests in flight (`extract_workers`)."""


@pytest.fixture(scope="module")
def big_fake() -> Iterator[FakeIntercom]:
    with FakeIntercom(seed=3, contacts=3000, conversations=2000, regions=("us",), activity_logs=10) as fake:
        yield fake


def _sync(fake: FakeIntercom, spec: SearchSpec, latency_ms: float, limit: int = LIMIT,
          per_page: int = 10) -> tuple[list[str], int, RateLimiter]:
    fake.faults("us").update(latency_ms=latency_ms)
    fake.set_rate_limit("us", limit)
    fake.reset_stats("us")
    try:
        with IntercomClient("us", fake.base_url("us"), fake.token("us"), retry=FAST, max_connections=BOUND) as c:
            ids = [str(i["id"]) for page in windowed_search(
                c, spec, 0, int(fake.now()), tz=fake.workspace("us").timezone, workers=BOUND,
                split_above=40, per_page=per_page) for i in page.items]
            return ids, fake.stats("us")["peak_in_flight"], c.limiter
    finally:
        fake.faults("us").update(latency_ms=0)


def _expected_ids(fake: FakeIntercom, spec: SearchSpec) -> list[str]:
    ws = fake.workspace("us")
    records = ws.contacts() if spec is CONTACTS_SEARCH else ws.conversations()
    return sorted(str(r["id"]) for r in records)


@pytest.mark.parametrize("spec", [CONTACTS_SEARCH, CONVERSATIONS_SEARCH], ids=["contacts", "conversations"])
def test_slow_answers_raise_requests_in_flight_above_16_up_to_the_bound(big_fake: FakeIntercom,
                                                                          spec: SearchSpec) -> None:
    latency = 0.25
    # Little's law: 100 calls/s x 0.25 s = 25 in flight, 32 with headroom; the bound is 24.
    assert math.ceil(LIMIT / WINDOW_SECONDS * latency * IN_FLIGHT_HEADROOM) > BOUND > START_IN_FLIGHT
    ids, peak, limiter = _sync(big_fake, spec, latency * 1000)
    assert len(ids) == len(set(ids))
    assert sorted(ids) == _expected_ids(big_fake, spec)
    assert START_IN_FLIGHT < peak <= BOUND, f"the fake answered at most {peak} requests at once"
    assert limiter.peak_in_flight <= BOUND
    assert limiter.in_flight_target() == BOUND


def test_fast_answers_and_a_low_limit_keep_16_in_flight(big_fake: FakeIntercom) -> None:
    # 30 calls/s at loopback speed take a request or two in flight (more than 16 only if the
    # median answer took 0.43 s), so the limiter stays at its floor (the old fixed 16)
    # although the bound allows 24. The ~160 calls fit in one window: nothing waits.
    ids, peak, limiter = _sync(big_fake, CONTACTS_SEARCH, 0, limit=300, per_page=25)
    assert sorted(ids) == _expected_ids(big_fake, CONTACTS_SEARCH)
    assert peak <= START_IN_FLIGHT
    assert limiter.peak_in_flight <= START_IN_FLIGHT
    assert limiter.in_flight_target() == START_IN_FLIGHT


def test_without_rate_limit_headers_the_limiter_keeps_its_floor() -> None:
    limiter = RateLimiter(max_in_flight=BOUND)
    limiter.acquire()
    limiter.release({})  # an answer without X-RateLimit-* headers: no allowance to fill
    assert limiter.in_flight_target() == START_IN_FLIGHT
    limiter.acquire()
    time.sleep(0.01)  # a response time of at least 10 ms: 100,000 calls/s x 0.01 s = 1,000
    limiter.release({"x-ratelimit-limit": "1000000", "x-ratelimit-remaining": "999999", "x-ratelimit-reset": "0"})
    assert limiter.in_flight_target() == BOUND, "a huge allowance is still held to the bound"
