"""Can a region's host be reached, and if not, one line saying so.

`check`, `run`'s start-up probe and the client's own connection errors all word an unreachable
host with `unreachable_line`, so the same failure reads the same in every command, and a
setting is named only when the user set it (an overridden base URL, a proxy variable).
"""

from __future__ import annotations

import socket
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from iru_pipeline.intercom_client.errors import KIND_WORDS
from iru_pipeline.regions import REGIONS


@dataclass(frozen=True)
class ConnectTarget:
    """Where a TCP connection for `base_url` goes: the host itself, or the proxy httpx uses."""

    host: str
    port: int
    proxy: bool


def connect_target(base_url: str) -> ConnectTarget:
    """The host and port httpx connects to for `base_url`, following HTTPS_PROXY, NO_PROXY..."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(f"{host}:{port}"):
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.hostname:
            return ConnectTarget(p.hostname, p.port or (443 if p.scheme == "https" else 80), True)
    return ConnectTarget(host, port, False)


def unreachable_message(region: str, base_url: str, reason: str, base_url_setting: str | None = None) -> str:
    """What failed and what to check, naming the base URL's setting (`base_url_setting`, by
    default `INTERCOM_BASE_URL_<R>`) only when it overrides Intercom's host, and the proxy
    variables only when a proxy is in the way."""
    target = connect_target(base_url)
    where = f"the proxy {target.host}:{target.port}" if target.proxy else f"{target.host}:{target.port}"
    fixes = ["the network"]
    if target.proxy:
        fixes.append("the proxy setting (HTTPS_PROXY / HTTP_PROXY / NO_PROXY)")
    known = REGIONS.get(region)
    if known is not None and base_url.rstrip("/") != known.default_base_url:
        fixes.append(f"{base_url_setting or known.base_url_env} (Intercom's host for {region.upper()}: "
                     f"{known.default_base_url})")
    fix = fixes[0] if len(fixes) == 1 else f"{', '.join(fixes[:-1])} and {fixes[-1]}"
    return f"cannot connect to {where} ({reason}); check {fix}"


def unreachable_line(workspace: str, region: str, base_url: str, reason: str,
                     base_url_setting: str | None = None) -> str:
    """The whole one-line error, as an `IntercomConnectionError` would print it."""
    message = unreachable_message(region, base_url, reason, base_url_setting)
    return f"[{workspace}] {KIND_WORDS['unreachable']}: {message}"


def probe(workspace: str, region: str, base_url: str, timeout_s: float = 5.0,
          base_url_setting: str | None = None) -> str | None:
    """Open (and close) a TCP connection where httpx would, sending nothing; None when it
    opens, else the one-line error."""
    target = connect_target(base_url)
    try:
        socket.create_connection((target.host, target.port), timeout=timeout_s).close()
    except OSError as exc:
        return unreachable_line(workspace, region, base_url, _reason(exc), base_url_setting)
    return None


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return exc.strerror or type(exc).__name__
