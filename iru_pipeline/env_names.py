"""The names of the environment variables the product reads, spelled here once.

What each one means is in README.md (Configuration); `config.py` reads and validates them.
Every other module that names one imports it from here, so a rename is one edit.
"""

from __future__ import annotations

TOKEN_ENV_PREFIX = "INTERCOM_ACCESS_TOKEN_"
"""`INTERCOM_ACCESS_TOKEN_<REGION>`: the token of that region's workspace."""
BASE_URL_ENV_PREFIX = "INTERCOM_BASE_URL_"
"""`INTERCOM_BASE_URL_<REGION>`: overrides the region's API host (a proxy, the bundled fake)."""
WORKSPACES_FILE_ENV = "IRU_WORKSPACES_FILE"
"""The workspaces file (workspaces_file.py); default `workspaces.toml` in the working directory."""
DUCKDB_PATH_ENV = "IRU_DUCKDB_PATH"
PII_KEY_ENV = "IRU_PII_KEY"
EVIDENCE_CONFIG_ENV = "IRU_EVIDENCE_CONFIG"
SIGNING_KEY_FILE_ENV = "IRU_SIGNING_KEY_FILE"


def token_env(region: str) -> str:
    """The variable holding the access token of `region`'s workspace."""
    return f"{TOKEN_ENV_PREFIX}{region.upper()}"


def base_url_env(region: str) -> str:
    """The variable overriding `region`'s API host."""
    return f"{BASE_URL_ENV_PREFIX}{region.upper()}"
