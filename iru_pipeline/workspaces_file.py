"""The workspaces file: which Intercom workspaces to load, by a name the user chooses.

```toml
[workspaces.acme-us]                     # the name: lower-case letters, digits, '-'; 1-40 chars
region = "us"                            # us | eu | au
token_env = "INTERCOM_TOKEN_ACME_US"     # or: token_file = "/run/secrets/acme-us" (owner-only)
base_url = "https://api.intercom.io"     # optional: a proxy or the bundled fake
```

The file names where each token lives, never the token. It is read from `IRU_WORKSPACES_FILE`,
else from `workspaces.toml` in the working directory when that exists. Parsing is in two steps:
`read_entries` checks the file's shape (names, keys, regions) without reading any secret, which
is all the Dagster definitions need for their partitions; `config.load_settings` then reads each
token and checks it. Every problem is one line naming the file, the workspace and the fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from iru_pipeline.env_names import WORKSPACES_FILE_ENV
from iru_pipeline.regions import REGION_CODES
from iru_pipeline.setting_checks import ConfigError, read_toml

DEFAULT_WORKSPACES_FILE = Path("workspaces.toml")
NAME_RULE = "1-40 lower-case letters, digits and '-', starting with a letter or digit"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYS = ("region", "token_env", "token_file", "base_url")
_TOKEN_KEYS = ("token", "access_token", "intercom_token", "secret")


@dataclass(frozen=True)
class WorkspaceEntry:
    """One `[workspaces.NAME]` table, checked for shape; its token not read yet."""

    name: str
    region: str
    token_env: str | None
    token_file: Path | None
    base_url: str | None
    source: Path
    """The file it came from (messages name it)."""

    @property
    def where(self) -> str:
        return f"{self.source} [workspaces.{self.name}]"


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def workspaces_file_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The file `IRU_WORKSPACES_FILE` names (it must exist), else `./workspaces.toml` when it
    exists, else None (only the INTERCOM_ACCESS_TOKEN_* variables define workspaces)."""
    env = os.environ if env is None else env
    named = env.get(WORKSPACES_FILE_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"{WORKSPACES_FILE_ENV}={named}: no such file; fix the path or unset it")
        return path
    return DEFAULT_WORKSPACES_FILE if DEFAULT_WORKSPACES_FILE.is_file() else None


def read_entries(path: Path) -> list[WorkspaceEntry]:
    """The file's workspaces in file order, each checked for shape (ConfigError otherwise)."""
    data = read_toml(path, str(path))
    extra = sorted(set(data) - {"workspaces"})
    if extra:
        raise ConfigError(f"{path}: unexpected {extra[0]!r} at the top level; the file holds only "
                          "[workspaces.NAME] tables")
    tables = data.get("workspaces", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: 'workspaces' must be tables, one [workspaces.NAME] per workspace")
    return [_entry(path, name, table) for name, table in tables.items()]


def _entry(path: Path, name: str, table: object) -> WorkspaceEntry:
    where = f"{path} [workspaces.{name}]"
    if not valid_name(name):
        raise ConfigError(f"{where}: {name!r} is not a valid workspace name; use {NAME_RULE}")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table with region and token_env or token_file")
    secret_keys = [k for k in table if k.lower() in _TOKEN_KEYS]
    if secret_keys:
        raise ConfigError(f"{where}: {secret_keys[0]!r} is not read: a token never goes in this file; "
                          "put it in an environment variable named by token_env, or an owner-only file "
                          "named by token_file")
    unknown = [k for k in table if k not in _KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(_KEYS)}")
    for key in _KEYS:
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    region = str(table.get("region", "")).strip().lower()
    if region not in REGION_CODES:
        shown = f"region {table['region']!r} is unknown" if "region" in table else "region is missing"
        raise ConfigError(f"{where}: {shown}; set region to one of {', '.join(REGION_CODES)}")
    token_env, token_file = table.get("token_env"), table.get("token_file")
    if (token_env is None) == (token_file is None):
        raise ConfigError(f"{where}: set exactly one of token_env (an environment variable's name) or "
                          "token_file (an owner-only file holding the token)")
    if token_env is not None and not _ENV_NAME.match(token_env):
        # Not echoed: a token pasted here by mistake must not reach a terminal or a log.
        raise ConfigError(f"{where}: token_env is not an environment variable name (letters, digits, '_'); "
                          "name the variable that holds the token, never the token itself")
    file = None
    if token_file is not None:  # a relative path is read from the workspaces file's folder
        file = Path(token_file).expanduser()
        file = file if file.is_absolute() else path.parent / file
    return WorkspaceEntry(name=name, region=region, token_env=token_env, token_file=file,
                          base_url=table.get("base_url"), source=path)
