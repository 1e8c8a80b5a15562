"""Pseudonymisation of contact identifiers (docs/evidence.md#personal-data).

Email, phone and external id are stored only as keyed HMAC-SHA256 values. The key of each
workspace is derived from the master key (`IRU_PII_KEY`) and the workspace id, so pseudonyms
cannot be linked across workspaces. The key itself is never recorded: the DuckDB file holds
a salted scrypt fingerprint of it (`pii_key.bind_pii_key`), so a run with another key stops. Flags that need the
clear value (internal domain, test-looking address) are
computed here, before the clear value is dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Any

HMAC_HEX_CHARS = 32
TEST_LOOKING = re.compile(r"(?i)^(test|qa|demo|dummy)|\+test")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_NON_DIGITS = re.compile(r"\D")
# E.164-ish numbers and common national formats: a + or digit, then 7+ digits with separators.
PHONE_RE = re.compile(r"(?<![\w@])\+?\d[\d\s().\-]{6,}\d(?![\w@])")


class Pseudonymizer:
    """Keyed pseudonyms for one workspace. Holds the derived key only, never prints it."""

    __slots__ = ("_key", "internal_domains", "known_clear_emails")

    def __init__(
        self,
        master_key: str | bytes,
        workspace_id: str,
        internal_domains: Iterable[str] = (),
        known_clear_emails: Iterable[str] = (),
    ) -> None:
        master = master_key.encode() if isinstance(master_key, str) else master_key
        self._key = hmac.new(master, f"workspace:{workspace_id}".encode(), hashlib.sha256).digest()
        self.internal_domains = frozenset(d.lower().lstrip("@") for d in internal_domains)
        self.known_clear_emails = frozenset(e.strip().lower() for e in known_clear_emails)

    def __repr__(self) -> str:
        return "Pseudonymizer(<key not shown>)"

    def __reduce__(self):
        raise TypeError("Pseudonymizer holds key material and cannot be pickled")

    def digest(self, kind: str, value: str) -> str:
        return hmac.digest(self._key, f"{kind}:{value}".encode(), "sha256").hex()[:HMAC_HEX_CHARS]

    def digests(self, kind: str, values: Iterable[str | None]) -> list[str | None]:
        """`digest` of many normalised values (None stays None): the tight loop of a page.

        HMAC-SHA256 spelled out (RFC 2104) from the key's two padded blocks, hashed once per
        page: `hmac.digest` sets the key up again for every value, which doubles the cost of
        the three pseudonyms of a contact. A test pins it to `hmac.digest`."""
        block = self._key.ljust(64, b"\0")  # the derived key is 32 bytes, under SHA-256's block
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + f"{kind}:".encode())
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        out: list[str | None] = []
        for v in values:
            if not v:
                out.append(None)
                continue
            i = inner.copy()
            i.update(v.encode())
            o = outer.copy()
            o.update(i.digest())
            out.append(o.hexdigest()[:HMAC_HEX_CHARS])
        return out

    def email(self, value: Any) -> str | None:
        norm = normalize_email(value)
        return self.digest("email", norm) if norm else None

    def phone(self, value: Any) -> str | None:
        norm = normalize_phone(value)
        return self.digest("phone", norm) if norm else None

    def external_id(self, value: Any) -> str | None:
        norm = normalize_external_id(value)
        return self.digest("external_id", norm) if norm else None

    def is_internal(self, domain: str | None) -> bool:
        return bool(domain) and (domain or "").lower() in self.internal_domains

    def scrub_text(self, text: str) -> str:
        """Replace contact emails and phone numbers in free text by pseudonyms.

        Emails of internal domains and known admin emails stay in clear: admins are
        identified on purpose (access reviews).
        """
        def email_sub(m: re.Match[str]) -> str:
            addr = m.group(0)
            domain = addr.rsplit("@", 1)[1].lower()
            if addr.lower() in self.known_clear_emails or domain in self.internal_domains:
                return addr
            return f"<email:{self.digest('email', addr.lower())[:8]}@{domain}>"

        def phone_sub(m: re.Match[str]) -> str:
            digits = normalize_phone(m.group(0))
            if not digits or len(digits.lstrip("+")) < 7:
                return m.group(0)
            return f"<phone:{self.digest('phone', digits)[:8]}>"

        return PHONE_RE.sub(phone_sub, EMAIL_RE.sub(email_sub, text))

    MAX_DEPTH = 64

    def scrub(self, value: Any, depth: int = 0) -> Any:
        """`scrub_text` applied to every string inside a JSON-like value. Nesting deeper than
        MAX_DEPTH (no real metadata comes close) is cut off rather than recursed into."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if depth >= self.MAX_DEPTH and isinstance(value, (dict, list)):
            return "<nested too deep: not kept>"
        if isinstance(value, dict):
            return {str(k): self.scrub(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub(v, depth + 1) for v in value]
        return value


def normalize_email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    norm = value.strip().lower()
    return norm or None


def normalize_external_id(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def normalize_phone(value: Any) -> str | None:
    if value is None:
        return None
    raw = str(value).strip()
    digits = _NON_DIGITS.sub("", raw)
    if not digits:
        return None
    return ("+" if raw.startswith("+") else "") + digits
