"""429 pacing: a 429 waits for the reset that 429 itself announces (its Retry-After, else its
own X-RateLimit-Reset), bounded, and not for a later window's reset as well.

The fake answers every third request with a 429 whose Retry-After is 1 s while its
X-RateLimit-Reset names the end of a 10-second window. The client's computed waits (the
429 pauses and the limiter's own waits) are read back; no wall-clock time is asserted."""

from __future__ import annotations

import math

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_client import IntercomClient, RetryPolicy

RETRY = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_cap=0.05, max_rate_limit_waits=3)
RETRY_AFTER_S = 1
PER_PAGE = 50


def test_a_429_on_every_third_call_waits_only_what_each_429_announces() -> None:
    with FakeIntercom(seed=3, regions=("us",), contacts=500, conversations=20) as fake:
        fake.set_rate_limit("us", 10_000, window_seconds=10)
        fake.faults("us").update(rate_429_every=3, retry_after_seconds=RETRY_AFTER_S, fault_paths=["/contacts"])
        with IntercomClient("us", fake.base_url("us"), fake.token("us"), retry=RETRY) as client:
            pages = list(client.iter_cursor("/contacts", "data", per_page=PER_PAGE, resource="contacts"))
            limiter = client.limiter
            stats = client.stats()["GET /contacts"]
        # 500 contacts at 50 a page: 10 pages; every third request is a 429 (retried).
        want_pages = math.ceil(500 / PER_PAGE)
        assert len(pages) == want_pages
        requests = answered = want_429s = 0
        while answered < want_pages:
            requests += 1
            if requests % 3 == 0:
                want_429s += 1
            else:
                answered += 1
        rate_limited = fake.stats("us")["rate_limited"]
        assert rate_limited == stats["rate_limited"] == want_429s
        assert limiter.waited_seconds < 0.5 * rate_limited, (
            f"after the announced waits the limiter waited {limiter.waited_seconds:.1f}s more: "
            "a later window's reset was waited for too")
        assert limiter.paused_seconds == rate_limited * RETRY_AFTER_S
