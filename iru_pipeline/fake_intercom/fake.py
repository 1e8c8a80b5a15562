"""`FakeIntercom`: the regional hosts, the workspaces they serve, controlled from Python."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .api import RequestIds
from .constants import (
    ALL_REGIONS,
    DEFAULT_INTERNAL_DOMAIN,
    DEFAULT_RATE_LIMIT_PER_WINDOW,
    REGION_PROFILES,
)
from .faults import FaultConfig
from .hosted import HostedWorkspace
from .server import RegionServer
from .workspace import Workspace, WorkspaceSizes

PerRegion = int | Mapping[str, int]

_KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def _for_region(value: PerRegion, region: str, default: int) -> int:
    if isinstance(value, Mapping):
        return int(value.get(region, default))
    return int(value)


@dataclass(frozen=True)
class ExtraWorkspace:
    """A further workspace served by a region's host, next to the region's own (first) one.

    Only `key` is required: how the fake's accessors name it (`fake.token("us", key)`),
    lower-case letters, digits and '-'. Everything left `None` is derived: `workspace_id`
    (`app.id_code`) and `token` from the region and key, `name` from the region's workspace
    name, `seed` and `sizes` from the fake's (so by default its record ids equal those of the
    region's first workspace), `faults` and `rate_limit_per_window` from the fake's settings
    for the region. Its data, faults, rate-limit window and statistics are its own.
    """

    key: str
    workspace_id: str | None = None
    name: str | None = None
    token: str | None = None
    seed: int | None = None
    sizes: WorkspaceSizes | None = None
    faults: FaultConfig | None = None
    rate_limit_per_window: int | None = None
    cache_bytes: int = 2 << 20
    """Bound of each record and page cache; small, so hundreds of small workspaces stay cheap."""


def derived_workspace_id(region: str, key: str) -> str:
    """A stable 8-character `app.id_code` for another workspace of `region` named `key`."""
    digest = hashlib.sha256(f"fake-intercom-workspace:{region}:{key}".encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % len(alphabet)] for b in digest[:8])


def derived_token(region: str, key: str, workspace_id: str) -> str:
    """A stable token in the shape of the regions' default tokens."""
    return base64.b64encode(f"tok:{workspace_id}:fake-{region}-{key}-access-token".encode()).decode().rstrip("=")


class FakeIntercom:
    """A faithful fake of Intercom's REST API 2.16 for the US, EU and AU regions.

    Build it (data is generated lazily, so a million contacts cost nothing up front), then
    `start()` it to serve each region on its own loopback port, or use it as a context
    manager. Sizes may be one number for every region or a mapping per region.
    `link_base_urls` makes a region's `pages.next` URLs name another base URL (e.g. Intercom's
    public host, as seen behind a proxy) instead of the fake's own. `workspace_ids` gives a
    region's first workspace another workspace id (`app.id_code`).

    A region's host may serve several workspaces, as Intercom's does: `extra_workspaces` maps a
    region to further workspaces (`ExtraWorkspace`, or just a key). The request's Bearer token
    picks the workspace; a token of none of them gets Intercom's 401. Every accessor takes
    an optional workspace key (`fake.token("us", "brand-b")`); without one it means the
    region's first workspace, whose key is the region code (`workspace_keys()` lists them).

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
        extra_workspaces: Mapping[str, Sequence[ExtraWorkspace | str]] | None = None,
    ) -> None:
        unknown = [r for r in regions if r not in REGION_PROFILES]
        if unknown:
            raise ValueError(f"unknown region(s) {unknown}; use some of {', '.join(ALL_REGIONS)}")
        unserved = sorted(set(extra_workspaces or {}) - set(regions))
        if unserved:
            raise ValueError(f"extra_workspaces names region(s) {unserved} that this fake does not serve")
        if activity_logs_next_style not in ("url", "cursor"):
            raise ValueError("activity_logs_next_style must be 'url' or 'cursor'")
        self.seed = seed
        self.regions: tuple[str, ...] = tuple(regions)
        self._base_clock = now or time.time
        self._offset = 0.0
        self._clock_lock = threading.Lock()
        secret = hashlib.sha256(f"fake-intercom-cursor-{seed}".encode()).digest()
        self._servers: dict[str, RegionServer] = {}
        for region in self.regions:
            profile = REGION_PROFILES[region]
            sizes = WorkspaceSizes(
                contacts=_for_region(contacts, region, 3000),
                conversations=_for_region(conversations, region, 1500),
                admins=_for_region(admins, region, 15),
                teams=_for_region(teams, region, 6),
                tags=_for_region(tags, region, 25),
                activity_logs=_for_region(activity_logs, region, 500),
            )
            if isinstance(faults, FaultConfig):
                base_faults = faults
            elif isinstance(faults, Mapping) and region in faults:
                base_faults = faults[region]
            else:
                base_faults = FaultConfig()
            link = (link_base_urls or {}).get(region)
            # One request-id sequence per host: ids stay unique across its workspaces.
            request_ids = RequestIds(seed * 31 + profile.id_salt)
            # `pages.next` URLs name the region's host, or `link_base_url` (e.g. Intercom's
            # public host, as a server behind a proxy would).
            links = self._link_base_url(region, link)

            first = Workspace(region, seed=seed, sizes=sizes, clock=self.now, internal_domain=internal_domain,
                              cache_bytes=cache_bytes, workspace_id=(workspace_ids or {}).get(region))
            serve = functools.partial(self._host, request_ids=request_ids, base_url=links, latency_ms=latency_ms,
                                      activity_logs_next_style=activity_logs_next_style)
            hosted = [serve(region, first, (tokens or {}).get(region, profile.default_token), base_faults,
                            rate_limit_per_window, secret + region.encode(), 16 << 20)]
            for spec in (extra_workspaces or {}).get(region, ()):
                extra = ExtraWorkspace(spec) if isinstance(spec, str) else spec
                if not _KEY.fullmatch(extra.key):
                    raise ValueError(f"workspace key {extra.key!r}: use 1-40 lower-case letters, digits or '-'")
                if extra.key in {h.key for h in hosted}:
                    raise ValueError(f"region {region}: workspace key {extra.key!r} is taken (the region's first "
                                     f"workspace is {region!r}); give each workspace its own key")
                workspace_id = extra.workspace_id or derived_workspace_id(region, extra.key)
                ws = Workspace(region, seed=seed if extra.seed is None else extra.seed, sizes=extra.sizes or sizes,
                               clock=self.now, internal_domain=internal_domain, cache_bytes=extra.cache_bytes,
                               workspace_id=workspace_id,
                               app_name=extra.name or f"{profile.app_name} [{extra.key}]")
                hosted.append(serve(
                    extra.key, ws, extra.token or derived_token(region, extra.key, workspace_id),
                    extra.faults or base_faults,
                    rate_limit_per_window if extra.rate_limit_per_window is None else extra.rate_limit_per_window,
                    secret + f"{region}:{extra.key}".encode(), extra.cache_bytes))
            for what, values in (("workspace_id", [h.workspace.workspace_id for h in hosted]),
                                 ("token", [h.token for h in hosted])):
                if len(set(values)) != len(values):
                    raise ValueError(f"region {region}: two workspaces share one {what}; give each its own")
            self._servers[region] = RegionServer(hosted, region=region, clock=self.now,
                                                 advance_clock=self.advance_clock, host=host)
        self._started = False

    def _host(self, key: str, ws: Workspace, token: str, faults: FaultConfig, rate_limit: int, cursor_secret: bytes,
              page_cache_bytes: int, *, request_ids: RequestIds, base_url: Callable[[], str], latency_ms: float,
              activity_logs_next_style: str) -> HostedWorkspace:
        own = FaultConfig().update(**faults.to_dict())
        if latency_ms:
            own.latency_ms = latency_ms
        return HostedWorkspace(ws, key=key, token=token, faults=own, rate_limit=rate_limit, clock=self.now,
                               secret=cursor_secret, request_ids=request_ids, base_url=base_url,
                               activity_logs_next_style=activity_logs_next_style, page_cache_bytes=page_cache_bytes)

    def _link_base_url(self, region: str, link: str | None) -> Callable[[], str]:
        if link:
            fixed = link.rstrip("/")
            return lambda: fixed
        return lambda: self._servers[region].base_url()

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
        """Pre-encode generated records into each workspace's bounded cache (`cache_bytes` per
        collection), e.g. before a benchmark. With background=True it runs in a daemon thread."""
        def run() -> None:
            for server in self._servers.values():
                for hosted in server.hosted:
                    hosted.workspace.warm()
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

    def _hosted(self, region: str, key: str | None) -> HostedWorkspace:
        return self._server(region).hosted_by_key(key)

    def workspace_keys(self, region: str) -> tuple[str, ...]:
        """Keys of the workspaces the region's host serves, its first (the region code) first."""
        return tuple(h.key for h in self._server(region).hosted)

    def base_url(self, region: str) -> str:
        """`http://127.0.0.1:PORT` of the region (after `start()`); all its workspaces share it."""
        server = self._server(region)
        if not server.port:
            raise RuntimeError("the fake is not started; call start() first")
        return server.base_url()

    def token(self, region: str, key: str | None = None) -> str:
        """The access token of a workspace (default: the region's first)."""
        return self._hosted(region, key).token

    def workspace(self, region: str, key: str | None = None) -> Workspace:
        """A workspace's data and mutation API (default: the region's first)."""
        return self._hosted(region, key).workspace

    def faults(self, region: str, key: str | None = None) -> FaultConfig:
        """A workspace's live fault configuration: `fake.faults("us").update(rate_429_every=5)`."""
        return self._hosted(region, key).faults

    def set_faults(self, region: str, config: FaultConfig, key: str | None = None) -> None:
        """Replace a workspace's fault configuration (and restart its fault counters)."""
        hosted = self._hosted(region, key)
        hosted.faults.copy_from(config)
        hosted.fault_state.reset_counters()

    def clear_faults(self) -> None:
        """No faults in any workspace of any region."""
        for server in self._servers.values():
            for hosted in server.hosted:
                hosted.reset_faults()

    def set_rate_limit(self, region: str, per_window: int, window_seconds: int | None = None,
                       key: str | None = None) -> None:
        """Requests a workspace allows per window (0 switches rate limiting off). Intercom's
        windows last 10 seconds; `window_seconds` shortens them (tests)."""
        limiter = self._hosted(region, key).limiter
        limiter.limit = per_window
        if window_seconds is not None:
            limiter.window_seconds = max(1, int(window_seconds))

    def stats(self, region: str, key: str | None = None) -> dict[str, Any]:
        """A workspace's request counts: total, per route (`"GET /contacts"`), per status, 429s,
        5xx, faults. Requests with a token of none of the region's workspaces count on its first."""
        return self._hosted(region, key).stats_snapshot()

    def reset_stats(self, region: str | None = None, key: str | None = None) -> None:
        """Zero the counters of one workspace (with `key`), or of every workspace of a region
        (or of every region)."""
        for name in [region] if region else list(self._servers):
            server = self._server(name)
            for hosted in [server.hosted_by_key(key)] if key is not None else server.hosted:
                hosted.reset_stats()

    def env(self) -> dict[str, str]:
        """Environment variables pointing a pipeline at this fake (tokens and base URLs of each
        region's first workspace)."""
        out = {}
        for region in self.regions:
            out[f"INTERCOM_ACCESS_TOKEN_{region.upper()}"] = self.token(region)
            out[f"INTERCOM_BASE_URL_{region.upper()}"] = self.base_url(region)
        return out
