"""What an answer from Intercom means: retried, or which typed `IntercomError`, worded for the user.

The send step (send.py) asks two things of this module: whether a status is worth another
attempt, and, once it gives up or the answer is final, the one-line error to raise. The wording
of each class of failure lives here only (docs/intercom-api.md#errors), so `check` and `run`
read the same. Errors carry the region, the endpoint, the status, Intercom's `code` and
`request_id`; never the token, a query string or a redirect's query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from iru_pipeline.intercom_client.errors import (
    IntercomAuthError,
    IntercomConnectionError,
    IntercomError,
    IntercomPermissionError,
    IntercomRateLimitError,
    IntercomRequestError,
    IntercomResponseError,
    IntercomServerError,
    IntercomTransportError,
    IntercomVersionError,
)
from iru_pipeline.intercom_client.reach import unreachable_message

RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})
# 401 codes that mean "this token may not read this resource" rather than "bad token";
# Intercom answers some missing-scope cases with 401 token_unauthorized (docs/intercom-api.md#errors).
_SCOPE_401_CODES = frozenset({"token_unauthorized"})
_PLAN_CODES = frozenset({"api_plan_restricted"})
_ANY_PERMISSION = "the matching read permission"
_RETRY_LATER = "retry later (status.intercom.com shows incidents)"

NOT_JSON: Any = object()
"""What `loads` returns for a body that is not JSON at all."""


def is_retryable(status: int) -> bool:
    """A status worth another attempt (after a backoff): timeouts and server errors."""
    return status in RETRYABLE_STATUSES or status >= 500


def loads(content: bytes) -> Any:
    """The JSON of a body, or `NOT_JSON`."""
    try:
        # orjson: pages of 150 contacts are ~350 KB; the stdlib decoder took twice as long.
        return orjson.loads(content)
    except (orjson.JSONDecodeError, UnicodeDecodeError, ValueError):
        return NOT_JSON


def unusable_body(payload: Any) -> str | None:
    """Why a successful answer's payload cannot be used (a proxy page, a truncated body), or None."""
    if payload is NOT_JSON:
        return "a non-JSON body"
    if not isinstance(payload, dict):
        return f"JSON that is not an object ({type(payload).__name__})"
    return None


def request_id(payload: Any) -> str | None:
    if isinstance(payload, dict) and isinstance(payload.get("request_id"), str):
        return payload["request_id"][:64]
    return None


def _errors(payload: Any) -> list[dict[str, Any]]:
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
        return [e for e in payload["errors"] if isinstance(e, dict)]
    return []


def first_code(payload: Any) -> str | None:
    errs = _errors(payload)
    code = errs[0].get("code") if errs else None
    return str(code)[:80] if code is not None else None


def first_message(payload: Any) -> str | None:
    errs = _errors(payload)
    msg = errs[0].get("message") if errs else None
    return " ".join(str(msg).split())[:200] if msg else None


def transport_reason(exc: httpx.TransportError) -> str:
    """A few words for what went wrong on the wire (never the exception's text, which may hold a URL)."""
    if isinstance(exc, httpx.ProxyError):
        return "the proxy refused the connection"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "name or service" in text or "nodename" in text or "getaddrinfo" in text or "name resolution" in text:
            return "host name not found"
        return "connection refused or host unreachable"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection dropped or response truncated"
    return type(exc).__name__


def without_query(url: str) -> str:
    """A URL to show: scheme, host and path only (a query string may carry anything)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "a malformed URL"
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else parts.path
    return " ".join(shown.split())[:200] or "an empty URL"


@dataclass(frozen=True)
class Classifier:
    """Words the failures of one regional workspace's calls.

    `region` is what errors are prefixed with (the workspace's name), `region_code` where it is
    hosted; `token_env` and `base_url_env` are the settings a user changes to fix an auth error
    or a redirect; `permissions` names the Developer Hub permission each resource needs."""

    region: str
    host: str
    base_url: str
    api_version: str
    token_env: str
    base_url_env: str
    permissions: Mapping[str, str]
    region_code: str = ""
    """us | eu | au; empty: `region` is the code (a workspace named after its region)."""

    @property
    def hosted_in(self) -> str:
        return self.region_code or self.region

    def _where(self, endpoint: str, resource: str | None, status: int | None = None,
               payload: Any = None) -> dict[str, Any]:
        return dict(region=self.region, endpoint=endpoint, status=status, request_id=request_id(payload),
                    code=first_code(payload), resource=resource)

    def status_error(self, status: int, payload: Any, endpoint: str, resource: str | None) -> IntercomError:
        """The error a final 4xx answer becomes (docs/intercom-api.md#errors)."""
        code = first_code(payload)
        detail = first_message(payload)
        ctx = self._where(endpoint, resource, status, payload)
        what = resource or endpoint.split(" ", 1)[1]
        if status == 401 and code not in _SCOPE_401_CODES:
            return IntercomAuthError(
                f"Intercom rejected the access token at {self.host}: check that {self.token_env} "
                f"belongs to a workspace hosted in the {self.hosted_in.upper()} region "
                "(EU and AU workspaces need their own host and token)",
                **ctx,
            )
        if status == 402 or code in _PLAN_CODES:
            return IntercomPermissionError(
                f"{what} is not available on this workspace's Intercom plan ({detail or 'plan restricted'})",
                **ctx,
            )
        if status in (401, 403):
            permission = self.permissions.get(resource or "", _ANY_PERMISSION)
            return IntercomPermissionError(
                f"the token may not read {what}: grant the app the {permission!r} permission "
                "in the Intercom Developer Hub",
                **ctx,
            )
        if code == "intercom_version_invalid":
            return IntercomVersionError(
                f"{what} needs Intercom API version {self.api_version} or newer, which this workspace refused",
                **ctx,
            )
        return IntercomRequestError(f"Intercom refused the request: {detail or 'no detail given'}", **ctx)

    def redirect_error(self, status: int, location: str | None, endpoint: str,
                       resource: str | None) -> IntercomError:
        # Never followed: the Authorization header would go wherever the redirect points.
        target = without_query(location) if location else "nowhere (no Location header)"
        return IntercomResponseError(
            f"{self.host} redirected to {target}; the token is not sent to a redirect target: "
            f"set {self.base_url_env} to the URL that answers the API itself",
            region=self.region, endpoint=endpoint, status=status, resource=resource)

    def rate_limit_error(self, waits: int, payload: Any, endpoint: str, resource: str | None) -> IntercomError:
        return IntercomRateLimitError(
            f"still rate limited after {waits} waits; lower concurrency or retry later",
            **self._where(endpoint, resource, 429, payload))

    def server_error(self, status: int, attempts: int, payload: Any, endpoint: str,
                     resource: str | None) -> IntercomError:
        return IntercomServerError(
            f"Intercom kept answering {status} from {self.host} after {attempts} attempts; {_RETRY_LATER}",
            **self._where(endpoint, resource, status, payload))

    def transport_error(self, exc: httpx.TransportError, attempts: int, endpoint: str,
                        resource: str | None) -> IntercomError:
        reason = transport_reason(exc)
        where: dict[str, Any] = dict(region=self.region, endpoint=endpoint, resource=resource)
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError)):
            message = unreachable_message(self.hosted_in, self.base_url, reason, self.base_url_env)
            return IntercomConnectionError(f"{message} ({attempts} attempts)", **where)
        return IntercomTransportError(
            f"could not get a complete response from {self.host} after {attempts} attempts ({reason}); "
            f"{_RETRY_LATER}", **where)

    def body_error(self, why: str, status: int, headers: Mapping[str, str], endpoint: str,
                   resource: str | None) -> IntercomError:
        """A successful status whose body stayed unusable (`unusable_body`) through every retry."""
        return IntercomResponseError(
            f"Intercom returned {why} (content-type {headers.get('content-type', 'none')!r})",
            region=self.region, endpoint=endpoint, status=status,
            request_id=headers.get("x-request-id"), resource=resource)
