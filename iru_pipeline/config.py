"""Settings from the environment, validated before any request is made.

Every variable the product reads is read here (their names are spelled in `env_names.py`;
the check of each value is in `setting_checks.py`), and every bad value becomes a
`ConfigError` whose message is one line naming the setting and how to fix it. Secrets are
wrapped in `Secret`, whose repr and str never show the value; what leaves the process
(Dagster's run config) is a `SecretRef`, naming where a secret lives, and `resolve_settings`
turns those references back into settings, checked again.

| variable                          | meaning                                                   |
|-----------------------------------|-----------------------------------------------------------|
| IRU_WORKSPACES_FILE               | TOML file of workspaces (default ./workspaces.toml, if     |
|                                   | present): name, region, token_env or token_file, base_url  |
| INTERCOM_ACCESS_TOKEN_US/_EU/_AU  | token of a workspace named after its region (us, eu, au)   |
| INTERCOM_BASE_URL_US/_EU/_AU      | override that workspace's API host (proxy, bundled fake)   |
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from iru_pipeline.env_names import (
    BASE_URL_ENV_PREFIX,
    DUCKDB_PATH_ENV,
    EVIDENCE_CONFIG_ENV,
    PII_KEY_ENV,
    SIGNING_KEY_FILE_ENV,
    TOKEN_ENV_PREFIX,
    WORKSPACES_FILE_ENV,
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
from iru_pipeline.workspaces_file import (
    DEFAULT_WORKSPACES_FILE,
    NAME_RULE,
    WorkspaceEntry,
    read_entries,
    valid_name,
    workspaces_file_path,
)

__all__ = [  # the checks and secret types are part of what callers import from here
    "DEFAULT_DUCKDB_PATH", "ConfigError", "Secret", "SecretRef", "Settings", "WorkspaceRef", "WorkspaceSettings",
    "configured_workspace_names", "duckdb_path_from_env", "load_dotenv_file", "load_settings", "pii_key_weakness",
    "how_to_add", "redact_url", "resolve_settings", "select_workspaces", "validate_base_url", "validate_duckdb_path",
    "workspace_from_reference", "workspaces_file_entries",
]

DEFAULT_DUCKDB_PATH = Path("data") / "iru.duckdb"
_TOKEN_ENV = re.compile(rf"^{TOKEN_ENV_PREFIX}(?P<code>[A-Za-z0-9]+)$")
_BASE_URL_ENV = re.compile(rf"^{BASE_URL_ENV_PREFIX}(?P<code>[A-Za-z0-9]+)$")


@dataclass(frozen=True)
class WorkspaceSettings:
    """One Intercom workspace to load: the name the user gave it (`us`, `eu`, `au` for the
    INTERCOM_ACCESS_TOKEN_* ones), its region, token and API base URL."""

    name: str
    region: Region
    token: Secret
    base_url: str
    token_ref: SecretRef | None = None
    """Where the token was read from (what crosses into Dagster's run config instead of it)."""
    base_url_setting: str | None = None
    """What a message tells the user to change to fix the base URL: the variable, or the
    workspaces file's entry. None: the region's variable (INTERCOM_BASE_URL_<R>)."""

    @property
    def region_code(self) -> str:
        return self.region.code

    @property
    def host(self) -> str:
        return redact_url(urlsplit(self.base_url).netloc)

    @property
    def token_setting(self) -> str:
        return self.token_ref.setting if self.token_ref is not None else self.region.token_env


@dataclass(frozen=True)
class Settings:
    workspaces: tuple[WorkspaceSettings, ...]
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

    def workspace(self, name: str) -> WorkspaceSettings:
        for ws in self.workspaces:
            if ws.name == name:
                return ws
        raise ConfigError(f"workspace {name} is not configured: {how_to_add(name)}")


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
    only_workspaces: Iterable[str] | None = None,
    only_regions: Iterable[str] | None = None,
    require_pii_key: bool = True,
    require_workspaces: bool = True,
    with_workspaces: bool = True,
) -> Settings:
    """Read and validate every setting. Raises ConfigError with a one-line message.

    Workspaces come from the workspaces file and the INTERCOM_ACCESS_TOKEN_* variables;
    `only_workspaces` (names) and `only_regions` (every workspace of a region) select some,
    and only the selected ones' tokens are read: a workspace whose token is missing fails
    itself, not a run of the others. `with_workspaces=False`: none at all (the settings a
    run of many needs around its workspaces: the DuckDB file, the PII key)."""
    env = os.environ if env is None else env
    _reject_unknown_region_vars(env)
    workspaces = configured_workspaces(env, only_workspaces, only_regions) if with_workspaces else ()
    if require_workspaces and with_workspaces and not workspaces:
        names = ", ".join(REGIONS[c].token_env for c in REGION_CODES)
        raise ConfigError(
            f"no Intercom workspace is configured: list them in {DEFAULT_WORKSPACES_FILE} (or the file "
            f"{WORKSPACES_FILE_ENV} names), or set one of {names} "
            "(or run `iru-pipeline demo` to try the pipeline on the bundled fake)"
        )
    duckdb_path = validate_duckdb_path(env.get(DUCKDB_PATH_ENV) or str(DEFAULT_DUCKDB_PATH))
    pii_key_ref = SecretRef(env=PII_KEY_ENV)
    pii_key = pii_key_from(pii_key_ref, env, required=require_pii_key and (bool(workspaces) or not with_workspaces))
    config_path, config = evidence_config_from(env.get(EVIDENCE_CONFIG_ENV))
    return Settings(
        workspaces=workspaces,
        duckdb_path=duckdb_path,
        pii_key=pii_key,
        evidence_config_path=config_path,
        evidence_config=config,
        signing_key_file=signing_key_file_from(env.get(SIGNING_KEY_FILE_ENV), duckdb_path.parent),
        pii_key_ref=pii_key_ref if pii_key is not None else None,
    )


@dataclass(frozen=True)
class WorkspaceRef:
    """A workspace as validated, its token by reference: what crosses a process boundary."""

    name: str
    region: str
    base_url: str
    token_ref: SecretRef
    base_url_setting: str | None = None


def resolve_settings(
    *,
    duckdb_path: str,
    workspaces: Iterable[WorkspaceRef],
    pii_key_ref: SecretRef | None,
    evidence_config_path: str | None = None,
    signing_key_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from the values `load_settings` validated (possibly in another process), with
    each secret given as a reference: the secrets are read now, from the environment or the
    files named, and every value passes the same checks again, so a setting that changed
    in between is still one line naming it."""
    enabled = tuple(workspace_from_reference(ref, env) for ref in workspaces)
    path = validate_duckdb_path(duckdb_path)
    config_path, config = evidence_config_from(evidence_config_path)
    return Settings(
        workspaces=enabled,
        duckdb_path=path,
        pii_key=pii_key_from(pii_key_ref, env, required=bool(enabled)),
        evidence_config_path=config_path,
        evidence_config=config,
        signing_key_file=signing_key_file_from(signing_key_file, path.parent),
        pii_key_ref=pii_key_ref,
    )


def workspace_from_reference(ref: WorkspaceRef, env: Mapping[str, str] | None = None) -> WorkspaceSettings:
    """One workspace's settings with its token read from where `ref.token_ref` says."""
    region = REGIONS.get(ref.region)
    if region is None:
        raise ConfigError(f"workspace {ref.name}: unknown region {ref.region!r}: use one of {', '.join(REGION_CODES)}")
    raw = ref.token_ref.read(env)
    if raw is None:
        raise ConfigError(f"{ref.token_ref.setting} is not set: set it to the access token of workspace {ref.name}")
    token = checked_token(ref.token_ref.setting, raw)
    return WorkspaceSettings(name=ref.name, region=region, token=token,
                             base_url=validate_base_url(region, ref.base_url, ref.base_url_setting),
                             token_ref=ref.token_ref, base_url_setting=ref.base_url_setting)


@dataclass(frozen=True)
class _Configured:
    """A configured workspace before its token is read."""

    name: str
    region_code: str
    build: Callable[[], WorkspaceSettings]


def configured_workspaces(env: Mapping[str, str], names: Iterable[str] | None = None,
                          regions: Iterable[str] | None = None) -> tuple[WorkspaceSettings, ...]:
    """The workspaces the environment configures (the workspaces file's, in file order, then
    those of the INTERCOM_ACCESS_TOKEN_* variables), selected by `names` and `regions`; the
    selected ones' tokens read and checked."""
    path = workspaces_file_path(env)
    entries = read_entries(path) if path is not None else []
    from_env = [ws for ws in (_env_workspace(REGIONS[c], env) for c in REGION_CODES) if ws is not None]
    for ws in from_env:
        if any(e.name == ws.name for e in entries):
            raise ConfigError(
                f"{path} [workspaces.{ws.name}]: the name {ws.name} is taken by {ws.region.token_env}; "
                f"rename the entry, or unset {ws.region.token_env} and keep the entry")
    configured = [_Configured(e.name, e.region, partial(_file_workspace, e, env)) for e in entries]
    configured += [_Configured(ws.name, ws.region_code, partial(lambda w: w, ws)) for ws in from_env]
    return tuple(c.build() for c in select_workspaces(configured, names, regions))


def workspaces_file_entries(env: Mapping[str, str] | None = None) -> list[WorkspaceEntry]:
    """The workspaces file's entries, checked for shape (no token read); [] without a file."""
    env = os.environ if env is None else env
    path = workspaces_file_path(env)
    return read_entries(path) if path is not None else []


def configured_workspace_names(env: Mapping[str, str] | None = None) -> list[str]:
    """The names of the configured workspaces, without reading any token (for the Dagster
    partitions, built when the definitions load). A workspaces file that cannot be read gives
    none of its names; the run that uses it reports why."""
    env = os.environ if env is None else env
    names: list[str] = []
    try:
        path = workspaces_file_path(env)
        if path is not None:
            names = [e.name for e in read_entries(path)]
    except ConfigError:
        pass
    names += [c for c in REGION_CODES if env.get(REGIONS[c].token_env) and c not in names]
    return names


class _Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def region_code(self) -> str: ...


_W = TypeVar("_W", bound=_Named)


def select_workspaces(workspaces: Sequence[_W], names: Iterable[str] | None,
                      regions: Iterable[str] | None) -> list[_W]:
    """The workspaces named, plus every workspace of the regions given; all when neither is."""
    wanted_names = _parse_names(names)
    wanted_regions = _parse_region_list(regions)
    if wanted_names is None and wanted_regions is None:
        return list(workspaces)
    configured = {ws.name for ws in workspaces}
    for name in wanted_names or []:
        if name not in configured:
            raise ConfigError(f"workspace {name} was asked for but is not configured: {how_to_add(name)}")
    for code in wanted_regions or []:
        if not any(ws.region_code == code for ws in workspaces):
            raise ConfigError(
                f"region {code} was asked for but no workspace of it is configured: set "
                f"{REGIONS[code].token_env}, or add a [workspaces.NAME] with region = \"{code}\" to "
                f"{DEFAULT_WORKSPACES_FILE}")
    return [ws for ws in workspaces if ws.name in (wanted_names or []) or ws.region_code in (wanted_regions or [])]


def how_to_add(name: str) -> str:
    if name in REGIONS:
        return f"set {REGIONS[name].token_env} to its access token"
    return (f"add [workspaces.{name}] to {DEFAULT_WORKSPACES_FILE} (or the file {WORKSPACES_FILE_ENV} names), "
            "or check the name with `iru-pipeline check`")


def _parse_names(names: Iterable[str] | None) -> list[str] | None:
    if names is None:
        return None
    out: list[str] = []
    for raw in names:
        for part in str(raw).split(","):
            name = part.strip()
            if not name:
                continue
            if not valid_name(name):
                raise ConfigError(f"--workspace {name!r} is not a valid workspace name; use {NAME_RULE}")
            if name not in out:
                out.append(name)
    return out or None


def _file_workspace(entry: WorkspaceEntry, env: Mapping[str, str]) -> WorkspaceSettings:
    region = REGIONS[entry.region]
    ref = SecretRef(env=entry.token_env) if entry.token_env is not None else SecretRef(file=entry.token_file)
    try:
        raw = ref.read(env)
    except ConfigError as exc:  # the token file's own problem, one line naming the file
        raise ConfigError(f"{entry.where}: {exc}") from None
    if raw is None:
        raise ConfigError(f"{entry.where}: {ref.setting} ({'token_env' if entry.token_env else 'token_file'}) is "
                          f"empty or not set: put the access token of workspace {entry.name} there")
    token = checked_token(f"{entry.where}: {ref.setting}", raw)
    setting = f"{entry.where}: base_url"
    base_url = validate_base_url(region, entry.base_url or region.default_base_url, setting)
    return WorkspaceSettings(name=entry.name, region=region, token=token, base_url=base_url, token_ref=ref,
                             base_url_setting=setting)


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


def _env_workspace(region: Region, env: Mapping[str, str]) -> WorkspaceSettings | None:
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
    return WorkspaceSettings(name=region.code, region=region, token=token, base_url=base_url,
                             token_ref=SecretRef(env=region.token_env))


