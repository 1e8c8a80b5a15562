"""Errors the Intercom client raises. Each is one line a user can act on.

Every error carries the region, the endpoint (method and path, never the query string or
headers), the HTTP status and Intercom's `request_id` when there is one. None carries the
token: it is never formatted into a message, and the httpx exception that caused an error is
dropped (`raise ... from None`) so tracebacks cannot show request headers.
"""

from __future__ import annotations

from typing import ClassVar

KIND_WORDS: dict[str, str] = {
    "permission": "missing permission",
    "auth": "wrong region or token",
    "server": "server trouble",
    "bad_answer": "bad answer",
    "unreachable": "unreachable host",
}
"""The classes of failure `check` and `run` both name, each error's line starting with its words."""


class IntercomError(Exception):
    """Base class. `str(err)` is the whole one-line message: region, the class of failure
    (`KIND_WORDS`), what happened and what to do, then the context."""

    kind: ClassVar[str] = "bad_answer"

    def __init__(
        self,
        message: str,
        *,
        region: str,
        endpoint: str,
        status: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
        resource: str | None = None,
    ) -> None:
        self.region = region
        self.endpoint = endpoint
        self.status = status
        self.request_id = request_id
        self.code = code
        self.resource = resource
        self.message = message
        super().__init__(self._line())

    def _line(self) -> str:
        ctx = [self.endpoint]
        if self.status is not None:
            ctx.append(f"status {self.status}")
        if self.code:
            ctx.append(self.code)
        if self.request_id:
            ctx.append(f"request_id {self.request_id}")
        return f"[{self.region}] {KIND_WORDS[self.kind]}: {self.message} ({', '.join(ctx)})"

    def __reduce__(self):
        # Keep errors picklable (Dagster and multiprocessing pickle failures) with all context.
        return (
            _rebuild,
            (type(self), self.message, self.region, self.endpoint, self.status,
             self.request_id, self.code, self.resource),
        )


def _rebuild(cls, message, region, endpoint, status, request_id, code, resource):
    return cls(message, region=region, endpoint=endpoint, status=status,
               request_id=request_id, code=code, resource=resource)


class IntercomAuthError(IntercomError):
    """401: the token is invalid, revoked, or belongs to a workspace in another region."""

    kind = "auth"


class IntercomPermissionError(IntercomError):
    """403 / plan restriction: the token may not read this resource. Skippable per resource."""

    kind = "permission"


class IntercomVersionError(IntercomError):
    """400 intercom_version_invalid: the endpoint needs a newer API version. Skippable."""

    kind = "permission"


class IntercomRateLimitError(IntercomError):
    """429 kept coming after the bounded number of waits."""

    kind = "server"


class IntercomServerError(IntercomError):
    """5xx kept coming after the bounded number of retries."""

    kind = "server"


class IntercomConnectionError(IntercomError):
    """The host (or the proxy in front of it) could not be reached: DNS, refused, proxy."""

    kind = "unreachable"


class IntercomTransportError(IntercomServerError):
    """Responses kept timing out, or connections kept dropping or truncating them."""


class IntercomResponseError(IntercomError):
    """The body is not JSON, has the wrong shape or an unusable `/me`, the answer is a
    redirect, or pagination misbehaves (a repeating cursor, a next URL on another host)."""

    kind = "bad_answer"


class IntercomRequestError(IntercomError):
    """Any other 4xx: the request itself was refused."""

    kind = "bad_answer"


SKIPPABLE_ERRORS: tuple[type[IntercomError], ...] = (IntercomPermissionError, IntercomVersionError)
"""Errors that skip one resource and let the others load."""
