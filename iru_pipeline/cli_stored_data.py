"""The commands that rewrite stored data in place: `rekey` (pseudonyms to a new PII key) and
`rebind` (a region to the workspace its token now belongs to). Both hold the DuckDB turn so no
run writes meanwhile."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from iru_pipeline.config import ConfigError, load_settings
from iru_pipeline.env_names import PII_KEY_ENV

EXIT_OK, EXIT_FAILED = 0, 1  # as in cli.py


def add_rekey_parser(sub: Any) -> None:
    rekey = sub.add_parser(
        "rekey", help=f"move the stored contact pseudonyms to a new PII key ({PII_KEY_ENV})",
        description="Check the old PII key against the DuckDB file, read every stored workspace's contacts again "
        f"from Intercom, and rewrite every pseudonym of the loaded data under {PII_KEY_ENV} in one transaction "
        "(pseudonyms of contacts Intercom no longer has are cleared; dlt's staging copies are emptied), then copy "
        "the database into a fresh file that replaces it (freed blocks kept old values) and remove the dlt working "
        "dirs. Evidence already collected keeps the pseudonyms of its run, whose key fingerprint it records. The "
        "old key is read from an environment variable, never from the command line.")
    rekey.add_argument("--old-key-env", required=True, metavar="VAR",
                       help="name of the environment variable holding the old key (e.g. IRU_OLD_PII_KEY)")


def cmd_rekey(args: argparse.Namespace) -> int:
    from iru_pipeline.rekey import rekey
    from iru_pipeline.storage import database_turn, ensure_writable_database

    var = args.old_key_env
    if var == PII_KEY_ENV:
        raise ConfigError(f"--old-key-env names {PII_KEY_ENV}: put the old key in another variable, the new one "
                          f"in {PII_KEY_ENV}")
    old_key = os.environ.get(var, "")
    if not old_key:
        raise ConfigError(f"--old-key-env {var}: {var} is not set; set it to the old key (and {PII_KEY_ENV} to "
                          "the new one)")

    settings = load_settings()
    def log(line: str) -> None:
        print(f"iru-pipeline: {line}", file=sys.stderr)

    with database_turn(settings.duckdb_path, log=log):  # no run may write while pseudonyms move
        ensure_writable_database(settings.duckdb_path)  # nor any other process
        changed = rekey(settings, old_key, log=log)
    print(f"re-keyed {changed} stored pseudonyms of {settings.duckdb_path} to the key in {PII_KEY_ENV}")
    return EXIT_OK


def add_rebind_parser(sub: Any) -> None:
    rebind = sub.add_parser(
        "rebind", help="move a workspace name to the workspace its token now belongs to (the old rows are removed)",
        description="A workspace name's stored data belongs to one Intercom workspace; a run whose token "
        "belongs to another stops that name. When the new workspace is meant to replace the old one: read "
        "the token's workspace from Intercom (GET /me), remove the old workspace's stored rows (history "
        "included) and the name's cursors in one transaction, and bind the name to the new workspace, so the "
        "next run loads it in full. Evidence runs and exports already made are kept.")
    which = rebind.add_mutually_exclusive_group(required=True)
    which.add_argument("--workspace", metavar="NAME", help="the workspace name to move")
    which.add_argument("--region", metavar="R",
                       help="the workspace named after region R (us, eu, au: INTERCOM_ACCESS_TOKEN_<R>)")


def cmd_rebind(args: argparse.Namespace) -> int:
    from iru_pipeline.intercom_client import IntercomClient, IntercomError
    from iru_pipeline.storage import database_turn, ensure_writable_database
    from iru_pipeline.workspace_binding import Workspace, rebind

    name = args.workspace or str(args.region).strip().lower()
    settings = load_settings(only_workspaces=[name], require_pii_key=False)
    ws = settings.workspace(name)
    try:
        with IntercomClient(ws.region_code, ws.base_url, ws.token, workspace=ws.name,
                            token_setting=ws.token_setting, base_url_setting=ws.base_url_setting) as client:
            me = client.me()
    except IntercomError as exc:  # nothing changed: the new workspace could not be read
        print(f"iru-pipeline: {exc}", file=sys.stderr)
        return EXIT_FAILED
    path = settings.duckdb_path

    def log(line: str) -> None:
        print(f"iru-pipeline: {line}", file=sys.stderr)

    with database_turn(path, log=log):  # no run may load this workspace meanwhile
        ensure_writable_database(path, log=log)
        before, removed = rebind(path, settings.pipelines_dir, ws.name, ws.region_code, me)
    now = Workspace.from_me(me)
    if before is not None and before.workspace_id == now.workspace_id:
        print(f"workspace {ws.name} of {path} is bound to {now} already: nothing changed")
    else:
        old = f" ({removed} rows of workspace {before} removed)" if before is not None else ""
        print(f"workspace {ws.name} of {path} is now bound to {now}{old}: the next run loads it in full")
    return EXIT_OK
