"""Errors the Intercom client raises. Each is one line a user can act on.

Every error carries the region, the endpoint (method and path, never the query string or
headers), the HTTP status and Intercom's `request_id` when there is one. None carries the
token: it is never formatted into a message, and the httpx exception that caused an error is
dropped (`raise ... from None`) so tracebacks cannot show request headers.
"""

from __future__ import annotations


class IntercomError(Exception):
    """Base class. `str(err)` is the whole one-line message."""

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
        return f"[{self.region}] {self.message} ({', '.join(ctx)})"

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


class IntercomPermissionError(IntercomError):
    """403 / plan restriction: the token may not read this resource. Skippable per resource."""


class IntercomVersionError(IntercomError):
    """400 intercom_version_invalid: the endpoint needs a newer API version. Skippable."""


class IntercomRateLimitError(IntercomError):
    """429 kept coming after the bounded number of waits."""


class IntercomServerError(IntercomError):
    """5xx kept coming after the bounded number of retries."""


class IntercomConnectionError(IntercomError):
    """The host could not be reached, or kept dropping or truncating responses."""


class IntercomResponseError(IntercomError):
    """The body is not JSON, has the wrong shape, or pagination misbehaves (a repeating cursor)."""


class IntercomRequestError(IntercomError):
    """Any other 4xx: the request itself was refused."""


SKIPPABLE_ERRORS: tuple[type[IntercomError], ...] = (IntercomPermissionError, IntercomVersionError)
"""Errors that skip one resource and let the others load (DESIGN: Errors)."""
