"""HTTP client for Intercom's REST API (version 2.16), one instance per regional workspace."""

from iru_pipeline.intercom_client.client import (
    API_VERSION,
    MAX_PER_PAGE,
    PERMISSIONS,
    EndpointStats,
    IntercomClient,
    Page,
    SearchPage,
)
from iru_pipeline.intercom_client.errors import (
    SKIPPABLE_ERRORS,
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
from iru_pipeline.intercom_client.rate_limit import RateLimiter, RetryPolicy

__all__ = [
    "API_VERSION", "MAX_PER_PAGE", "PERMISSIONS", "SKIPPABLE_ERRORS", "EndpointStats", "IntercomAuthError",
    "IntercomClient", "IntercomConnectionError", "IntercomError", "IntercomPermissionError",
    "IntercomRateLimitError", "IntercomRequestError", "IntercomResponseError", "IntercomServerError",
    "IntercomTransportError", "IntercomVersionError", "Page", "RateLimiter", "RetryPolicy", "SearchPage",
]
