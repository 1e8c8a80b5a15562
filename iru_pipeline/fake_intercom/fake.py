"""`FakeIntercom`: the regional workspaces and their servers, controlled from Python."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .constants import (
    ALL_REGIONS,
    DEFAULT_INTERNAL_DOMAIN,
    DEFAULT_RATE_LIMIT_PER_WINDOW,
    REGION_PROFILES,
)
from .faults import FaultConfig
from .server import RegionServer
from .workspace import Workspace, WorkspaceSizes

PerRegion = int | Mapping[str, int]


def _for_region(value: PerRegion, region: str, default: int) -> int:
    if isinstance(value, Mapping):
        return int(value.get(region, default))
    return int(value)


class FakeIntercom:
    """A faithful fake of Intercom's REST API 2.16 for the US, EU and AU regions.

    Build it (data is generated lazily, so a million contacts cost nothing up front), then
    `start()` it to serve each region on its own loopback port, or use it as a context
    manager. Sizes may be one number for every region or a mapping per region.
    `link_base_urls` makes a region's `pages.next` URLs name another base URL (e.g. Intercom's
    public host, as seen behind a proxy) instead of the fake's own. `workspace_ids` gives a
    region another workspace id (`app.id_code`): another workspace hosted in the same region.

    >>> with FakeIntercom(seed=7, contacts=200) as fake:   # doctest: +SKIP
    ...     httpx.get(fake.base_url("us") + "/me", headers={"Authorization": f"Bearer {fake.token('us')}"})
    """

    def __init__(
        self,
        seed: int = 7,
        contacts: PerRegion = 3000,
        conversations: PerRegion = 1500,
        *,
        regions: Sequence[str] = ALL_REGIONS,
        admins: PerRegion = 15,
        teams: PerRegion = 6,
        tags: PerRegion = 25,
        activity_logs: PerRegion = 500,
        rate_limit_per_window: int = DEFAULT_RATE_LIMIT_PER_WINDOW,
        now: Callable[[], float] | None = None,
        tokens: Mapping[str, str] | None = None,
        internal_domain: str = DEFAULT_INTERNAL_DOMAIN,
        activity_logs_next_style: str = "url",
        faults: FaultConfig | Mapping[str, FaultConfig] | None = None,
        latency_ms: float = 0.0,
        host: str = "127.0.0.1",
        cache_bytes: int = 48 << 20,
        link_base_urls: Mapping[str, str] | None = None,
        workspace_ids: Mapping[str, str] | None = None,
    ) -> None:
        unknown = [r for r in regions if r not in REGION_PROFILES]
        if unknown:
            raise ValueError(f"unknown region(s) {unknown}; use some of {', '.join(ALL_REGIONS)}")
        if activity_logs_next_style not in ("url", "cursor"):
            raise ValueError("activity_logs_next_style must be 'url' or 'cursor'")
        self.seed = seed
        self.regions: tuple[str, ...] = tuple(regions)
        self._base_clock = now or time.time
        self._offset = 0.0
        self._clock_lock = threading.Lock()
        secret = hashlib.sha256(f"fake-intercom-cursor-{seed}".encode()).digest()
        self._workspaces: dict[str, Workspace] = {}
        self._servers: dict[str, RegionServer] = {}
        for region in self.regions:
            sizes = WorkspaceSizes(
                contacts=_for_region(contacts, region, 3000),
                conversations=_for_region(conversations, region, 1500),
                admins=_for_region(admins, region, 15),
                teams=_for_region(teams, region, 6),
                tags=_for_region(tags, region, 25),
                activity_logs=_for_region(activity_logs, region, 500),
            )
            ws = Workspace(region, seed=seed, sizes=sizes, clock=self.now, internal_domain=internal_domain,
                           cache_bytes=cache_bytes, workspace_id=(workspace_ids or {}).get(region))
            if isinstance(faults, FaultConfig):
                config = FaultConfig().update(**faults.to_dict())
            elif isinstance(faults, Mapping) and region in faults:
                config = FaultConfig().update(**faults[region].to_dict())
            else:
                config = FaultConfig()
            if latency_ms:
                config.latency_ms = latency_ms
            token = (tokens or {}).get(region, REGION_PROFILES[region].default_token)
            self._workspaces[region] = ws
            self._servers[region] = RegionServer(
                ws, token=token, faults=config, rate_limit=rate_limit_per_window, clock=self.now,
                secret=secret + region.encode(), activity_logs_next_style=activity_logs_next_style,
                advance_clock=self.advance_clock, host=host, link_base_url=(link_base_urls or {}).get(region))
        self._started = False

    # clock ------------------------------------------------------------------------------------
    def now(self) -> float:
        """The fake's current time: the injected clock plus any `advance_clock` offset."""
        return self._base_clock() + self._offset

    def advance_clock(self, seconds: float) -> None:
        """Move the fake's clock forward (rate-limit windows, mutation timestamps, index lag)."""
        with self._clock_lock:
            self._offset += seconds

    # lifecycle --------------------------------------------------------------------------------
    def start(self, ports: Mapping[str, int] | None = None) -> FakeIntercom:
        """Serve every region on 127.0.0.1 (ephemeral ports unless `ports` names them)."""
        if self._started:
            return self
        try:
            for region, server in self._servers.items():
                server.start((ports or {}).get(region, 0))
        except OSError:
            self.stop()
            raise
        self._started = True
        return self

    def warm(self, background: bool = False) -> threading.Thread | None:
        """Pre-encode generated records into each region's bounded cache (`cache_bytes` per
        collection), e.g. before a benchmark. With background=True it runs in a daemon thread."""
        def run() -> None:
            for ws in self._workspaces.values():
                ws.warm()
        if not background:
            run()
            return None
        thread = threading.Thread(target=run, name="fake-intercom-warm", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop every region's server (idempotent)."""
        for server in self._servers.values():
            server.stop()
        self._started = False

    def __enter__(self) -> FakeIntercom:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # access -----------------------------------------------------------------------------------
    def _server(self, region: str) -> RegionServer:
        try:
            return self._servers[region]
        except KeyError:
            served = ", ".join(self.regions)
            raise KeyError(f"region {region!r} is not served by this fake; it serves {served}") from None

    def base_url(self, region: str) -> str:
        """`http://127.0.0.1:PORT` of the region (after `start()`)."""
        server = self._server(region)
        if not server.port:
            raise RuntimeError("the fake is not started; call start() first")
        return server.base_url()

    def token(self, region: str) -> str:
        """The one access token the region accepts."""
        return self._server(region).token

    def workspace(self, region: str) -> Workspace:
        """The region's data and mutation API."""
        self._server(region)
        return self._workspaces[region]

    def faults(self, region: str) -> FaultConfig:
        """The region's live fault configuration: `fake.faults("us").update(rate_429_every=5)`."""
        return self._server(region).faults

    def set_faults(self, region: str, config: FaultConfig) -> None:
        """Replace the region's fault configuration (and restart its fault counters)."""
        server = self._server(region)
        server.faults.copy_from(config)
        server.fault_state.reset_counters()

    def clear_faults(self) -> None:
        """No faults in any region."""
        for server in self._servers.values():
            server.faults.reset()
            server.fault_state.reset_counters()

    def set_rate_limit(self, region: str, per_window: int, window_seconds: int | None = None) -> None:
        """Requests allowed per window (0 switches rate limiting off). Intercom's windows last
        10 seconds; `window_seconds` shortens them (tests)."""
        limiter = self._server(region).limiter
        limiter.limit = per_window
        if window_seconds is not None:
            limiter.window_seconds = max(1, int(window_seconds))

    def stats(self, region: str) -> dict[str, Any]:
        """Request counts: total, per route (`"GET /contacts"`), per status, 429s, 5xx, faults."""
        return self._server(region).stats_snapshot()

    def reset_stats(self, region: str | None = None) -> None:
        for name in [region] if region else list(self._servers):
            self._server(name).reset_stats()

    def env(self) -> dict[str, str]:
        """Environment variables pointing a pipeline at this fake (tokens and base URLs)."""
        out = {}
        for region in self.regions:
            out[f"INTERCOM_ACCESS_TOKEN_{region.upper()}"] = self.token(region)
            out[f"INTERCOM_BASE_URL_{region.upper()}"] = self.base_url(region)
        return out
