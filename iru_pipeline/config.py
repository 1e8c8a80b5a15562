"""Settings from the environment, validated before any request is made.

Every variable the product reads is read here (their names are spelled in `env_names.py`),
and every bad value becomes a `ConfigError` whose message is one line naming the setting and
how to fix it. Secrets are wrapped in `Secret`, whose repr and str never show the value; what
leaves the process (Dagster's run config) is a `SecretRef`, naming where a secret lives, and
`resolve_settings` turns those references back into settings, checked again.

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
import tomllib
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

DEFAULT_DUCKDB_PATH = Path("data") / "iru.duckdb"
MIN_PII_KEY_LENGTH = 32
MIN_PII_KEY_DISTINCT = 8
PII_KEY_MAX_RUN = 8
PII_KEY_GENERATOR = "python -c 'import secrets; print(secrets.token_hex(32))'"
# DuckDB database files carry this magic at byte offset 8 (storage header).
_DUCKDB_MAGIC = b"DUCK"
_TOKEN_ENV = re.compile(rf"^{TOKEN_ENV_PREFIX}(?P<code>[A-Za-z0-9]+)$")
_BASE_URL_ENV = re.compile(rf"^{BASE_URL_ENV_PREFIX}(?P<code>[A-Za-z0-9]+)$")


class ConfigError(Exception):
    """A setting is missing or wrong. The message names the setting and the fix."""


class Secret:
    """A string that never shows itself in repr, str, f-strings, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # never pickled into dlt traces or Dagster storage
        raise TypeError("Secret values cannot be pickled")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives, never the secret itself: an environment variable's name, or the
    path of a file only its owner may read. References are what settings carry across a
    process boundary (Dagster's run config, docs/dagster.md); the value is read when needed."""

    env: str | None = None
    file: Path | None = None

    def __post_init__(self) -> None:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret reference names either an environment variable or a file")

    @property
    def setting(self) -> str:
        """What a message names: the variable, or the file."""
        return self.env if self.env is not None else str(self.file)

    def read(self, env: Mapping[str, str] | None = None) -> str | None:
        """The secret's text; None when the variable is unset or empty, or the file is empty."""
        if self.env is not None:
            return (os.environ if env is None else env).get(self.env) or None
        assert self.file is not None
        return _read_secret_file(self.file) or None


def _read_secret_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror}): fix the path or its permissions") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: write the secret alone, on one line") from None
    if mode & 0o077:
        raise ConfigError(f"{path} may be read by other users (mode {mode & 0o777:o}): chmod 600 {path}")
    return text.rstrip("\r\n")  # the file's final line break is not part of the secret


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
    pii_key = _pii_key(pii_key_ref, env, required=require_pii_key and bool(regions))
    config_path, config = _evidence_config(env.get(EVIDENCE_CONFIG_ENV))
    return Settings(
        regions=regions,
        duckdb_path=duckdb_path,
        pii_key=pii_key,
        evidence_config_path=config_path,
        evidence_config=config,
        signing_key_file=_signing_key_file(env.get(SIGNING_KEY_FILE_ENV), duckdb_path.parent),
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
    config_path, config = _evidence_config(evidence_config_path)
    return Settings(
        regions=enabled,
        duckdb_path=path,
        pii_key=_pii_key(pii_key_ref, env, required=bool(enabled)),
        evidence_config_path=config_path,
        evidence_config=config,
        signing_key_file=_signing_key_file(signing_key_file, path.parent),
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
    token = _checked_token(token_ref.setting, raw)
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
    token = _checked_token(region.token_env, raw_token)
    base_url = validate_base_url(region, raw_url or region.default_base_url)
    return RegionSettings(region=region, token=token, base_url=base_url, token_ref=SecretRef(env=region.token_env))


def _checked_token(setting: str, raw_token: str) -> Secret:
    if not raw_token.strip():
        raise ConfigError(f"{setting} is only whitespace: set it to the workspace's access token")
    if any(ch.isspace() or ord(ch) < 32 for ch in raw_token.strip()) or raw_token != raw_token.strip():
        # Never echo the token: say what is wrong with it.
        raise ConfigError(
            f"{setting} contains whitespace or a line break: "
            "paste the access token alone, on one line"
        )
    return Secret(raw_token)


def redact_url(url: str) -> str:
    """`url` without its user-info (`user:password@`), for messages and logs. Works on
    malformed input too (no scheme, bad port): everything before the last `@` of the
    authority part becomes `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:authority_end]
    if "@" in authority:
        rest = "***@" + authority.rsplit("@", 1)[1] + rest[authority_end:]
    return f"{scheme}{sep}{rest}"


def validate_base_url(region: Region, url: str) -> str:
    setting = region.base_url_env
    parts = urlsplit(url.strip())
    shown = repr(redact_url(url))  # never echo a password given in the URL
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{setting}={shown} is not an http(s) URL: use e.g. {region.default_base_url}")
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if not parts.hostname or not port_ok:
        raise ConfigError(f"{setting}={shown} has no valid host: use e.g. {region.default_base_url}")
    if "@" in parts.netloc:
        raise ConfigError(
            f"{setting}={shown} carries user-info (user:password@): Intercom takes the access token only; "
            "remove it (a proxy's credentials belong in HTTPS_PROXY)"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{setting}={shown} must be a plain base URL without query or fragment")
    return url.strip().rstrip("/")


def validate_duckdb_path(raw: str) -> Path:
    path = Path(raw).expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() and path.is_dir():
        raise ConfigError(f"{DUCKDB_PATH_ENV}={raw} is a directory: point it at a .duckdb file")
    if not parent.is_dir():
        raise ConfigError(
            f"{DUCKDB_PATH_ENV}={raw}: folder {parent} does not exist; create it or choose another path"
        )
    if not os.access(parent, os.W_OK | os.X_OK) or not _can_create_file_in(parent):
        raise ConfigError(
            f"{DUCKDB_PATH_ENV}={raw}: folder {parent} is not writable; choose a writable location"
        )
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            header = fh.read(12)
        if header[8:12] != _DUCKDB_MAGIC:
            raise ConfigError(
                f"{DUCKDB_PATH_ENV}={raw} is not a DuckDB database file: move it away or choose another path"
            )
    return path


def _can_create_file_in(folder: Path) -> bool:
    """os.access says yes to root everywhere; only creating a file tells (e.g. read-only mounts)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _pii_key(ref: SecretRef | None, env: Mapping[str, str] | None, required: bool) -> Secret | None:
    setting = ref.setting if ref is not None else PII_KEY_ENV
    raw = ref.read(env) if ref is not None else None
    if raw is None:
        if required:
            raise ConfigError(
                f"{setting} is not set: set it to a random secret of 32+ characters kept outside "
                f"the data folder (e.g. `{PII_KEY_GENERATOR}`); contact pseudonyms depend on it"
            )
        return None
    problem = pii_key_weakness(raw)
    if problem:
        raise ConfigError(
            f"{setting} is too weak ({problem}): use {MIN_PII_KEY_LENGTH}+ random characters, e.g. "
            f"`{PII_KEY_GENERATOR}`"
        )
    return Secret(raw)


def pii_key_weakness(key: str) -> str | None:
    """Why `key` is too weak to be the PII key, or None when it passes.

    The rule (README, The PII key): at least 32 characters without surrounding whitespace,
    at least 8 distinct characters, no character making up more than a third of the key,
    and no run of 8 characters that repeat or count up or down (`aaaaaaaa`, `12345678`).
    A key from `secrets.token_hex(32)` (64 hex characters) passes with near certainty; words,
    keyboard walks and padded short secrets do not. The reason never quotes the key."""
    if key != key.strip():
        return "surrounding whitespace"
    if len(key) < MIN_PII_KEY_LENGTH:
        return f"{len(key)} characters, at least {MIN_PII_KEY_LENGTH} needed"
    if len(set(key)) < MIN_PII_KEY_DISTINCT:
        return f"only {len(set(key))} distinct characters, at least {MIN_PII_KEY_DISTINCT} needed"
    if max(key.count(ch) for ch in set(key)) * 3 > len(key):
        return "one character makes up more than a third of it"
    steps = [ord(b) - ord(a) for a, b in zip(key, key[1:], strict=False)]
    for i in range(len(steps) - PII_KEY_MAX_RUN + 2):
        window = steps[i:i + PII_KEY_MAX_RUN - 1]
        if len(set(window)) == 1 and window[0] in (-1, 0, 1):
            return f"a run of {PII_KEY_MAX_RUN} repeated or consecutive characters"
    return None


def _evidence_config(raw: str | None) -> tuple[Path | None, Mapping[str, object]]:
    if not raw:
        return None, {}
    path = Path(raw).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{EVIDENCE_CONFIG_ENV}={raw} cannot be read ({exc.strerror}): fix the path") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{EVIDENCE_CONFIG_ENV}={raw} is not UTF-8 text: save it as UTF-8 TOML") from None
    try:
        return path, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{EVIDENCE_CONFIG_ENV}={raw} is not valid TOML: {exc}") from None


def _signing_key_file(raw: str | None, data_dir: Path) -> Path | None:
    """IRU_SIGNING_KEY_FILE, checked now (exists, owner-only, outside the data folder, an
    Ed25519 PEM key) so a run never fails at its export step for a bad key."""
    if not raw:
        return None
    from iru_pipeline.evidence.signing import load_signer

    path = Path(raw).expanduser()
    load_signer(path, data_dir)
    return path
