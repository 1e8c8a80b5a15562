"""A workspaces file (the product's `[workspaces.NAME]` TOML) for the workspaces a fake serves.

Each served workspace gets a name `<region>-<nnn>` (`us-001` is the region's first workspace,
`us-002` the next, ...), its region, its host as `base_url`, and `token_env`: the name of the
environment variable that holds its token (`IRU_FAKE_TOKEN_US_001`). The tokens themselves go
to a separate env file of `export VAR=token` lines, owner-only, never into the TOML.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

TOKEN_ENV_PREFIX = "IRU_FAKE_TOKEN"


class _Served(Protocol):
    regions: tuple[str, ...]

    def workspace_keys(self, region: str) -> tuple[str, ...]: ...

    def token(self, region: str, key: str | None = None) -> str: ...

    def base_url(self, region: str) -> str: ...


@dataclass(frozen=True)
class ServedWorkspace:
    """One served workspace as the workspaces file names it."""

    name: str
    region: str
    key: str
    """The fake's key (`fake.token(region, key)`)."""
    token_env: str
    base_url: str


def served_workspaces(fake: _Served) -> list[ServedWorkspace]:
    """Every workspace the (started) fake serves, region by region, each region's first first."""
    out = []
    for region in fake.regions:
        for number, key in enumerate(fake.workspace_keys(region), start=1):
            name = f"{region}-{number:03d}"
            out.append(ServedWorkspace(name=name, region=region, key=key, base_url=fake.base_url(region),
                                       token_env=f"{TOKEN_ENV_PREFIX}_{region.upper()}_{number:03d}"))
    return out


def _toml_string(value: str) -> str:
    # A JSON string with ASCII escapes is a valid TOML basic string.
    return json.dumps(value, ensure_ascii=True)


def workspaces_toml(workspaces: list[ServedWorkspace]) -> str:
    """The TOML text of the workspaces file."""
    lines = ["# Workspaces served by the bundled fake Intercom; tokens are in the env file beside this one.", ""]
    for ws in workspaces:
        lines += [f"[workspaces.{ws.name}]", f"region = {_toml_string(ws.region)}",
                  f"token_env = {_toml_string(ws.token_env)}", f"base_url = {_toml_string(ws.base_url)}", ""]
    return "\n".join(lines)


def env_lines(fake: _Served, workspaces: list[ServedWorkspace]) -> list[str]:
    """`export VAR=token` for every workspace, quoted for a POSIX shell when a token needs it."""
    return [f"export {ws.token_env}={shlex.quote(fake.token(ws.region, ws.key))}" for ws in workspaces]


def write_workspaces_file(fake: _Served, path: Path) -> tuple[Path, list[ServedWorkspace]]:
    """Write `path` (the TOML) and `path.env` (the tokens, mode 0600); returns the env file's
    path and the workspaces written."""
    workspaces = served_workspaces(fake)
    path.write_text(workspaces_toml(workspaces), encoding="utf-8")
    env_path = path.with_name(path.name + ".env")
    fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(env_lines(fake, workspaces)) + "\n")
    os.chmod(env_path, 0o600)  # an existing file keeps its mode through O_CREAT
    return env_path, workspaces
