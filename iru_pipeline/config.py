"""Settings from the environment, validated before any request is made.

Every variable the product reads is read here, and every bad value becomes a `ConfigError`
whose message is one line naming the setting and how to fix it. Secrets are wrapped in
`Secret`, whose repr and str never show the value.

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

from iru_pipeline.regions import REGION_CODES, REGIONS, Region

DEFAULT_DUCKDB_PATH = Path("data") / "iru.duckdb"
MIN_PII_KEY_LENGTH = 32
MIN_PII_KEY_DISTINCT = 8
PII_KEY_MAX_RUN = 8
PII_KEY_GENERATOR = "python -c 'import secrets; print(secrets.token_hex(32))'"
# DuckDB database files carry this magic at byte offset 8 (storage header).
_DUCKDB_MAGIC = b"DUCK"
_TOKEN_ENV = re.compile(r"^INTERCOM_ACCESS_TOKEN_(?P<code>[A-Za-z0-9]+)$")
_BASE_URL_ENV = re.compile(r"^INTERCOM_BASE_URL_(?P<code>[A-Za-z0-9]+)$")


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
class RegionSettings:
    region: Region
    token: Secret
    base_url: str

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
    wanted = _parse_region_list(only_regions)
    regions = tuple(
        rs for rs in (_region_settings(REGIONS[c], env) for c in REGION_CODES) if rs is not None
    )
    if wanted is not None:
        enabled = {rs.code for rs in regions}
        for code in wanted:
            if code not in enabled:
                raise ConfigError(
                    f"region {code} was asked for but is not enabled: set {REGIONS[code].token_env}"
                )
        regions = tuple(rs for rs in regions if rs.code in wanted)
    if require_regions and not regions:
        names = ", ".join(REGIONS[c].token_env for c in REGION_CODES)
        raise ConfigError(
            f"no Intercom region is enabled: set at least one of {names} "
            "(or run `iru-pipeline demo` to try the pipeline on the bundled fake)"
        )
    duckdb_path = validate_duckdb_path(env.get("IRU_DUCKDB_PATH") or str(DEFAULT_DUCKDB_PATH))
    pii_key = _pii_key(env, required=require_pii_key and bool(regions))
    config_path, config = _evidence_config(env.get("IRU_EVIDENCE_CONFIG"))
    return Settings(
        regions=regions,
        duckdb_path=duckdb_path,
        pii_key=pii_key,
        evidence_config_path=config_path,
        evidence_config=config,
        signing_key_file=_signing_key_file(env.get("IRU_SIGNING_KEY_FILE"), duckdb_path.parent),
    )


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
    if not raw_token.strip():
        raise ConfigError(f"{region.token_env} is only whitespace: set it to the workspace's access token")
    if any(ch.isspace() or ord(ch) < 32 for ch in raw_token.strip()) or raw_token != raw_token.strip():
        # Never echo the token: say what is wrong with it.
        raise ConfigError(
            f"{region.token_env} contains whitespace or a line break: "
            "paste the access token alone, on one line"
        )
    base_url = validate_base_url(region, raw_url or region.default_base_url)
    return RegionSettings(region=region, token=Secret(raw_token), base_url=base_url)


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
        raise ConfigError(f"IRU_DUCKDB_PATH={raw} is a directory: point it at a .duckdb file")
    if not parent.is_dir():
        raise ConfigError(
            f"IRU_DUCKDB_PATH={raw}: folder {parent} does not exist; create it or choose another path"
        )
    if not os.access(parent, os.W_OK | os.X_OK) or not _can_create_file_in(parent):
        raise ConfigError(
            f"IRU_DUCKDB_PATH={raw}: folder {parent} is not writable; choose a writable location"
        )
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            header = fh.read(12)
        if header[8:12] != _DUCKDB_MAGIC:
            raise ConfigError(
                f"IRU_DUCKDB_PATH={raw} is not a DuckDB database file: move it away or choose another path"
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


def _pii_key(env: Mapping[str, str], required: bool) -> Secret | None:
    raw = env.get("IRU_PII_KEY")
    if raw is None or raw == "":
        if required:
            raise ConfigError(
                "IRU_PII_KEY is not set: set it to a random secret of 32+ characters kept outside "
                f"the data folder (e.g. `{PII_KEY_GENERATOR}`); contact pseudonyms depend on it"
            )
        return None
    problem = pii_key_weakness(raw)
    if problem:
        raise ConfigError(
            f"IRU_PII_KEY is too weak ({problem}): use {MIN_PII_KEY_LENGTH}+ random characters, e.g. "
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
        raise ConfigError(f"IRU_EVIDENCE_CONFIG={raw} cannot be read ({exc.strerror}): fix the path") from None
    except UnicodeDecodeError:
        raise ConfigError(f"IRU_EVIDENCE_CONFIG={raw} is not UTF-8 text: save it as UTF-8 TOML") from None
    try:
        return path, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"IRU_EVIDENCE_CONFIG={raw} is not valid TOML: {exc}") from None


def _signing_key_file(raw: str | None, data_dir: Path) -> Path | None:
    """IRU_SIGNING_KEY_FILE, checked now (exists, owner-only, outside the data folder, an
    Ed25519 PEM key) so a run never fails at its export step for a bad key."""
    if not raw:
        return None
    from iru_pipeline.evidence.signing import load_signer

    path = Path(raw).expanduser()
    load_signer(path, data_dir)
    return path
