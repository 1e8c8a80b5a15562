"""The checks each setting passes, one value at a time, and the types secrets travel in.

`config.py` reads the environment and assembles the settings from these; every failed check
is a `ConfigError` whose message is one line naming the setting and the fix, and never shows a
secret (a token or key is described, not quoted; a URL is shown without its user-info).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from iru_pipeline.env_names import DUCKDB_PATH_ENV, EVIDENCE_CONFIG_ENV, PII_KEY_ENV
from iru_pipeline.regions import Region

MIN_PII_KEY_LENGTH = 32
MIN_PII_KEY_DISTINCT = 8
PII_KEY_MAX_RUN = 8
PII_KEY_GENERATOR = "python -c 'import secrets; print(secrets.token_hex(32))'"
# DuckDB database files carry this magic at byte offset 8 (storage header).
_DUCKDB_MAGIC = b"DUCK"


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


def checked_token(setting: str, raw_token: str) -> Secret:
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


def validate_base_url(region: Region, url: str, setting: str | None = None) -> str:
    """`url` checked as an API base URL; messages name `setting` (default: the region's variable)."""
    setting = setting or region.base_url_env
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


def pii_key_from(ref: SecretRef | None, env: Mapping[str, str] | None, required: bool) -> Secret | None:
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


def evidence_config_from(raw: str | None) -> tuple[Path | None, Mapping[str, object]]:
    if not raw:
        return None, {}
    path = Path(raw).expanduser()
    return path, read_toml(path, f"{EVIDENCE_CONFIG_ENV}={raw}")


def read_toml(path: Path, shown: str) -> dict[str, Any]:
    """A TOML settings file, whole. Each way it can fail is one ConfigError line that starts
    with `shown` (the path, or the variable that named it) and says what to fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{shown} cannot be read ({exc.strerror}): fix the path or its permissions") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown} is not UTF-8 text: save it as UTF-8 TOML") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{shown} is not valid TOML ({exc}): fix the syntax") from None


def signing_key_file_from(raw: str | None, data_dir: Path) -> Path | None:
    """IRU_SIGNING_KEY_FILE, checked now (exists, owner-only, outside the data folder, an
    Ed25519 PEM key) so a run never fails at its export step for a bad key."""
    if not raw:
        return None
    from iru_pipeline.evidence.signing import load_signer

    path = Path(raw).expanduser()
    load_signer(path, data_dir)
    return path
