"""Proof of collection: what Intercom answered to each snapshot request, as a hash only.

For every response to a snapshot endpoint (the requests of the registry's snapshot resources:
`/me`, `/admins`, `/teams`, `/tags`, `/data_attributes`, `/conversations/attributes`,
`/ip_allowlist`) the client records when it was received,
the base URL asked, the HTTP status, Intercom's request id (the `X-Request-Id` header, else
the body's `request_id`, which Intercom puts on error bodies) and the SHA-256 of the body
exactly as received. The body itself is never kept, so no personal data is stored; an auditor
holding Intercom's own logs (or a replay of the same request) can match the hash and id.

Incremental endpoints (contacts, conversations, activity logs) are not recorded: thousands of
pages per run, and their completeness is shown by the cursors and counts instead.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import orjson

from iru_pipeline.intercom_records.registry import SNAPSHOT_RESOURCES
from iru_pipeline.regions import REGIONS

SNAPSHOT_PATHS: frozenset[str] = frozenset(f.path for spec in SNAPSHOT_RESOURCES for f in spec.fetch)
INTERCOM_API_HOSTS: frozenset[str] = frozenset(urlsplit(r.default_base_url).netloc for r in REGIONS.values())


def is_intercom_api_host(host_or_url: str | None) -> bool:
    """Whether a host (`api.eu.intercom.io`) or base URL (`https://api.eu.intercom.io`) is one
    of Intercom's public API hosts; a URL must also use https. A proxy, the bundled fake or
    any loopback address is not."""
    if not host_or_url:
        return False
    if "://" in host_or_url:
        parts = urlsplit(host_or_url)
        return parts.scheme == "https" and parts.netloc in INTERCOM_API_HOSTS
    return host_or_url in INTERCOM_API_HOSTS


@dataclass(frozen=True)
class CollectionProof:
    endpoint: str
    """`GET /admins`"""
    resource: str | None
    received_at: datetime
    api_base_url: str
    http_status: int
    request_id: str | None
    body_sha256: str
    body_bytes: int


class ProofLog:
    """The proofs one client gathered, in the order received (thread-safe)."""

    def __init__(self, paths: Iterable[str] = SNAPSHOT_PATHS) -> None:
        self._paths = frozenset(paths)
        self._proofs: list[CollectionProof] = []
        self._lock = threading.Lock()

    def record(self, method: str, path: str, resource: str | None, base_url: str, status: int,
               headers: Mapping[str, str], body: bytes) -> None:
        if path not in self._paths:
            return
        proof = CollectionProof(
            endpoint=f"{method} {path}", resource=resource, received_at=datetime.now(UTC), api_base_url=base_url,
            http_status=status, request_id=_request_id(headers, body),
            body_sha256=hashlib.sha256(body).hexdigest(), body_bytes=len(body),
        )
        with self._lock:
            self._proofs.append(proof)

    def proofs(self) -> list[CollectionProof]:
        with self._lock:
            return list(self._proofs)


def _request_id(headers: Mapping[str, str], body: bytes) -> str | None:
    header = headers.get("x-request-id")
    if header:
        return header[:64]
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = payload.get("request_id") if isinstance(payload, dict) else None
    return value[:64] if isinstance(value, str) else None
