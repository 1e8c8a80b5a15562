"""The one place that says what a region is: code, API host, env var names.

Intercom hosts each workspace in one data-residency region, and each region has its own
API host. A token only works on the host of its workspace's region (a US host may route,
but EU and AU workspaces must be addressed on their own hosts).
"""

from __future__ import annotations

from dataclasses import dataclass

from iru_pipeline.env_names import base_url_env, token_env


@dataclass(frozen=True)
class Region:
    code: str
    """Lower-case code used in partitions, table rows and CLI flags: `us`, `eu`, `au`."""
    default_base_url: str
    """Intercom's public API host for workspaces hosted in this region."""
    reported_name: str
    """What `GET /me` reports as `app.region` for a workspace hosted here."""

    @property
    def token_env(self) -> str:
        return token_env(self.code)

    @property
    def base_url_env(self) -> str:
        return base_url_env(self.code)


REGIONS: dict[str, Region] = {
    r.code: r
    for r in (
        Region("us", "https://api.intercom.io", "US"),
        Region("eu", "https://api.eu.intercom.io", "EU"),
        Region("au", "https://api.au.intercom.io", "AU"),
    )
}

REGION_CODES: tuple[str, ...] = tuple(REGIONS)


def get_region(code: str) -> Region:
    """The region for `code`, or a ValueError that lists the valid codes."""
    try:
        return REGIONS[code.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown region {code!r}: use one of {', '.join(REGION_CODES)}"
        ) from None
