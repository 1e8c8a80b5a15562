"""Settings from the environment, validated before any request is made.

Every variable the product reads is read here (their names are spelled in `env_names.py`;
the check of each value is in `setting_checks.py`), and every bad value becomes a
`ConfigError` whose message is one line naming the setting and how to fix it. Secrets are
wrapped in `Secret`, whose repr and str never show the value; what leaves the process
(Dagster's run config) is a `SecretRef`, naming where a secret lives, and `resolve_settings`
turns those references back into settings, checked again.

| variable                          | meaning                                                   |
|-----------------------------------|-----------------------------------------------------------|
| INTERCOM_ACCESS_TOKEN_US/_EU/_AU  | token of that region's workspace; set = region enabled     |
| INTERCOM_BASE_URL_US/_EU/_AU      | override the regional API host (proxy, bundled fake)       |
| IRU_DUCKDB_PATH                   | DuckDB file (default data/iru.duckdb); its folder also     |
|                                   | holds the dlt pipelines dir, Dagster home and exports      |
| IRU_PII_KEY                       | master secret for contact pseudonyms (HMAC-SHA256)         |
| IRU_EVIDENCE_CONFIG               | TOML file of evidence parameters                           |
| IRU_SIGNING_KEY_FILE              | Ed25519 private key (PEM, mode 0600, outside the data      |
|                                   | folder) that signs auditor exports; unset: unsigned        |
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from iru_pipeline.env_names import (
    BASE_URL_ENV_PREFIX,
    DUCKDB_PATH_ENV,
    EVIDENCE_CONFIG_ENV,
    PII_KEY_ENV,
    SIGNING_KEY_FILE_ENV,
    TOKEN_ENV_PREFIX,
)
from iru_pipeline.regions import REGION_CODES, REGIONS, Region
from iru_pipeline.setting_checks import (
    ConfigError,
    Secret,
    SecretRef,
    checked_token,
    evidence_config_from,
    pii_key_from,
    pii_key_weakness,
    redact_url,
    signing_key_file_from,
    validate_base_url,
    validate_duckdb_path,
)

__all__ = [  # the checks and secret types are part of what callers import from here
    "DEFAULT_DUCKDB_PATH", "ConfigError", "RegionSettings", "Secret", "SecretRef", "Settings", "duckdb_path_from_env",
    "load_dotenv_file", "load_settings", "pii_key_weakness", "redact_url", "region_from_reference",
    "resolve_settings", "validate_base_url", "validate_duckdb_path",
]

DEFAULT_DUCKDB_PATH = Path("data") / "iru.duckdb"
_TOKEN_ENV = re.compile(rf"^{TOKEN_ENV_PREFIX}(?P<code>[A-Za-z0-9]+)$")
_BASE_URL_ENV = re.compile(rf"^{BASE_URL_ENV_PREFIX}(?P<code>[A-Za-z0-9]+)$")


@dataclass(frozen=True)
class RegionSettings:
    region: Region
    token: Secret
    base_url: str
    token_ref: SecretRef | None = None
    """Where the token was read from (what crosses into Dagster's run config instead of it)."""

    @property
    def code(self) -> str:
        return self.region.code

    @property
    def host(self) -> str:
        return redact_url(urlsplit(self.base_url).netloc)


@dataclass(frozen=True)
class Settings:
    regions: tuple[RegionSettings, ...]
    duckdb_path: Path
    pii_key: Secret | None
    evidence_config_path: Path | None = None
    evidence_config: Mapping[str, object] = field(default_factory=dict)
    signing_key_file: Path | None = None
    """Only the path: the key is read when an export is signed (evidence/signing.py)."""
    pii_key_ref: SecretRef | None = None
    """Where the PII key was read from (what crosses into Dagster's run config instead of it)."""

    @property
    def data_dir(self) -> Path:
        return self.duckdb_path.parent

    @property
    def pipelines_dir(self) -> Path:
        return self.data_dir / ".dlt_pipelines"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster_home"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    def region(self, code: str) -> RegionSettings:
        for rs in self.regions:
            if rs.code == code:
                return rs
        raise ConfigError(
            f"region {code} is not enabled: set {REGIONS[code].token_env} to its workspace's access token"
        )


def duckdb_path_from_env(env: Mapping[str, str] | None = None) -> Path:
    """The DuckDB file the environment names, without validating anything (for building
    definitions at import, and for messages about the data folder)."""
    env = os.environ if env is None else env
    return Path(env.get(DUCKDB_PATH_ENV) or DEFAULT_DUCKDB_PATH)


def load_dotenv_file(path: Path | str = ".env") -> None:
    """Honour a `.env` file in the working directory (real env vars win), as `dagster dev` does."""
    from dotenv import load_dotenv

    load_dotenv(Path(path), override=False)


def load_settings(
    env: Mapping[str, str] | None = None,
    only_regions: Iterable[str] | None = None,
    require_pii_key: bool = True,
    require_regions: bool = True,
) -> Settings:
    """Read and validate every setting. Raises ConfigError with a one-line message."""
    env = os.environ if env is None else env
    _reject_unknown_region_vars(env)
    regions = _enabled_regions(env, _parse_region_list(only_regions))
    if require_regions and not regions:
        names = ", ".join(REGIONS[c].token_env for c in REGION_CODES)
        raise ConfigError(
            f"no Intercom region is enabled: set at least one of {names} "
            "(or run `iru-pipeline demo` to try the pipeline on the bundled fake)"
        )
    duckdb_path = validate_duckdb_path(env.get(DUCKDB_PATH_ENV) or str(DEFAULT_DUCKDB_PATH))
    pii_key_ref = SecretRef(env=PII_KEY_ENV)
    pii_key = pii_key_from(pii_key_ref, env, required=require_pii_key and bool(regions))
    config_path, config = evidence_config_from(env.get(EVIDENCE_CONFIG_ENV))
    return Settings(
        regions=regions,
        duckdb_path=duckdb_path,
        pii_key=pii_key,
        evidence_config_path=config_path,
        evidence_config=config,
        signing_key_file=signing_key_file_from(env.get(SIGNING_KEY_FILE_ENV), duckdb_path.parent),
        pii_key_ref=pii_key_ref if pii_key is not None else None,
    )


def resolve_settings(
    *,
    duckdb_path: str,
    regions: Iterable[tuple[str, str, SecretRef]],
    pii_key_ref: SecretRef | None,
    evidence_config_path: str | None = None,
    signing_key_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from the values `load_settings` validated (possibly in another process), with
    each secret given as a reference: the secrets are read now, from the environment or the
    files named, and every value passes the same checks again, so a setting that changed
    in between is still one line naming it. `regions` are (code, base URL, token reference)."""
    enabled = tuple(region_from_reference(code, base_url, ref, env) for code, base_url, ref in regions)
    path = validate_duckdb_path(duckdb_path)
    config_path, config = evidence_config_from(evidence_config_path)
    return Settings(
        regions=enabled,
        duckdb_path=path,
        pii_key=pii_key_from(pii_key_ref, env, required=bool(enabled)),
        evidence_config_path=config_path,
        evidence_config=config,
        signing_key_file=signing_key_file_from(signing_key_file, path.parent),
        pii_key_ref=pii_key_ref,
    )


def region_from_reference(code: str, base_url: str, token_ref: SecretRef,
                          env: Mapping[str, str] | None = None) -> RegionSettings:
    """One region's settings with its token read from where `token_ref` says."""
    region = REGIONS.get(code)
    if region is None:
        raise ConfigError(f"unknown region {code!r}: use one of {', '.join(REGION_CODES)}")
    raw = token_ref.read(env)
    if raw is None:
        raise ConfigError(f"{token_ref.setting} is not set: set it to the access token of the {code} workspace")
    token = checked_token(token_ref.setting, raw)
    return RegionSettings(region=region, token=token, base_url=validate_base_url(region, base_url),
                          token_ref=token_ref)


def _enabled_regions(env: Mapping[str, str], wanted: list[str] | None) -> tuple[RegionSettings, ...]:
    """The regions whose token is set, restricted to `wanted` (each of which must be enabled)."""
    regions = tuple(
        rs for rs in (_region_settings(REGIONS[c], env) for c in REGION_CODES) if rs is not None
    )
    if wanted is None:
        return regions
    enabled = {rs.code for rs in regions}
    for code in wanted:
        if code not in enabled:
            raise ConfigError(
                f"region {code} was asked for but is not enabled: set {REGIONS[code].token_env}"
            )
    return tuple(rs for rs in regions if rs.code in wanted)


def _parse_region_list(codes: Iterable[str] | None) -> list[str] | None:
    if codes is None:
        return None
    out: list[str] = []
    for raw in codes:
        for part in str(raw).split(","):
            code = part.strip().lower()
            if not code:
                continue
            if code not in REGIONS:
                raise ConfigError(f"unknown region {part.strip()!r}: use one of {', '.join(REGION_CODES)}")
            if code not in out:
                out.append(code)
    return out or None


def _reject_unknown_region_vars(env: Mapping[str, str]) -> None:
    for name in env:
        m = _TOKEN_ENV.match(name) or _BASE_URL_ENV.match(name)
        if m and m.group("code").lower() not in REGIONS:
            raise ConfigError(
                f"{name} names an unknown region {m.group('code')!r}: "
                f"use one of {', '.join(c.upper() for c in REGION_CODES)}"
            )


def _region_settings(region: Region, env: Mapping[str, str]) -> RegionSettings | None:
    raw_token = env.get(region.token_env)
    raw_url = env.get(region.base_url_env)
    if raw_token is None or raw_token == "":
        if raw_url:
            raise ConfigError(
                f"{region.token_env} is empty but {region.base_url_env} is set: "
                f"set the token of the {region.code} workspace, or unset {region.base_url_env}"
            )
        return None
    token = checked_token(region.token_env, raw_token)
    base_url = validate_base_url(region, raw_url or region.default_base_url)
    return RegionSettings(region=region, token=token, base_url=base_url, token_ref=SecretRef(env=region.token_env))


