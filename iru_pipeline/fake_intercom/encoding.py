"""JSON encoding and opaque pagination cursors.

Responses are compact UTF-8 JSON, as Intercom sends them. Records are encoded once and
spliced into page envelopes as bytes, so a page of 150 contacts costs a join, not a dump.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

try:  # optional speed-up; the standard library encoder gives identical JSON for our data
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None  # type: ignore[assignment]  # optional module: None when not installed


def encode(obj: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII characters are sent raw, not \\u-escaped)."""
    if _orjson is not None:
        # orjson's bytes keep their over-sized write buffer (about 4 KB at the least, measured),
        # so a kept 2 KB record would cost several times its size; a copy is exactly sized.
        return bytes(memoryview(_orjson.dumps(obj)))
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_ITEMS_PLACEHOLDER = "\u0000items\u0000"
_ITEMS_PLACEHOLDER_JSON = encode(_ITEMS_PLACEHOLDER)


def splice(envelope: dict[str, Any], key: str, items: list[bytes]) -> bytes:
    """Encode `envelope` with `envelope[key]` replaced by the JSON array of pre-encoded items."""
    env = dict(envelope)
    env[key] = _ITEMS_PLACEHOLDER
    head, tail = encode(env).split(_ITEMS_PLACEHOLDER_JSON, 1)
    return b"".join((head, b"[", b",".join(items), b"]", tail))


class InvalidCursor(ValueError):
    """A `starting_after` value this server did not issue (or issued for another listing)."""


class CursorCodec:
    """Opaque base64 `starting_after` cursors (docs/intercom-api.md#pagination-four-kinds: never construct or parse
    them).

    A cursor is base64 of a JSON array `[listing, *position, signature]`; the signature is a
    keyed hash, so a tampered or hand-made cursor is detected and answered with 400.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: list[Any]) -> str:
        raw = json.dumps(payload, separators=(",", ":")).encode()
        return hmac.new(self._secret, raw, hashlib.sha256).hexdigest()[:12]

    def encode(self, listing: str, position: list[Any]) -> str:
        payload = [listing, *position]
        token = json.dumps([*payload, self._sign(payload)], separators=(",", ":"))
        return base64.b64encode(token.encode()).decode()

    def decode(self, listing: str, cursor: str) -> list[Any]:
        """The position encoded in `cursor`, or InvalidCursor."""
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            data = json.loads(base64.b64decode(padded.encode(), validate=False))
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise InvalidCursor(cursor) from exc
        if not isinstance(data, list) or len(data) < 2 or not isinstance(data[-1], str):
            raise InvalidCursor(cursor)
        payload, signature = data[:-1], data[-1]
        if not hmac.compare_digest(signature, self._sign(payload)) or payload[0] != listing:
            raise InvalidCursor(cursor)
        return payload[1:]
