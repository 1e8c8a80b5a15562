"""The `iru-pipeline` command line.

    iru-pipeline check [--workspace NAME ...] [--region R ...]
    iru-pipeline run [--workspace NAME ...] [--region R ...] [--full-refresh] [--reconcile | --no-reconcile]
    iru-pipeline demo
    iru-pipeline export [--out DIR] [--run RUN_ID | --period START..END]
    iru-pipeline keygen [--out PATH]
    iru-pipeline verify FOLDER [--public-key FILE] [--previous FOLDER]
    iru-pipeline rekey --old-key-env VAR
    iru-pipeline rebind --workspace NAME
    iru-pipeline fake-intercom [--port P] ...

Every bad setting is reported in one line, before any request, with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from iru_pipeline import __version__
from iru_pipeline.cli_stored_data import add_rebind_parser, add_rekey_parser, cmd_rebind, cmd_rekey
from iru_pipeline.config import ConfigError, Settings, duckdb_path_from_env, load_dotenv_file, load_settings
from iru_pipeline.env_names import (
    BASE_URL_ENV_PREFIX,
    DUCKDB_PATH_ENV,
    EVIDENCE_CONFIG_ENV,
    PII_KEY_ENV,
    SIGNING_KEY_FILE_ENV,
    TOKEN_ENV_PREFIX,
    WORKSPACES_FILE_ENV,
)
from iru_pipeline.storage import restrict_umask

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
DEFAULT_KEY_PATH = Path("~/.config/iru-pipeline/signing-key.pem")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iru-pipeline",
        description="Intercom workspaces (each hosted in the US, EU or AU) as a compliance source: loaded "
        "incrementally into DuckDB with dlt, orchestrated by Dagster, turned into audit evidence.",
        epilog="Workspaces are listed in a TOML file, workspaces.toml in the working directory or the file "
        f"{WORKSPACES_FILE_ENV} names ([workspaces.NAME] with region, token_env or token_file, base_url); "
        f"{TOKEN_ENV_PREFIX}US/_EU/_AU (and {BASE_URL_ENV_PREFIX}*) define workspaces named us, eu, au. "
        f"Other settings are environment variables (a .env file is honoured): {DUCKDB_PATH_ENV}, {PII_KEY_ENV}, "
        f"{EVIDENCE_CONFIG_ENV}, {SIGNING_KEY_FILE_ENV}.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = sub.add_parser("check", help="test each workspace: host, token, data region, bound workspace, "
                           "permissions",
                           description="For every configured workspace: reach the host, validate the token, compare "
                           "/me's app.region with the configured region and its workspace id with the one the "
                           "name's stored data belongs to, and probe every resource with one small request. "
                           "Exits non-zero if any workspace fails or lacks a permission.")
    _add_selection(check)

    run = sub.add_parser("run", help="load every configured workspace, then derive the evidence",
                         description="Materialise the ingestion assets of the workspaces through Dagster (one run "
                         "loads them one after the other), then the evidence assets, with progress and a summary "
                         "table. Exit status: 0 complete, 1 failed (a workspace could not be loaded; the others "
                         "were), 2 bad setting (nothing requested), 3 partial (a resource was skipped, e.g. a "
                         "missing permission, or loaded records whose cursor value it could not read, or failed "
                         "alone while the others loaded).")
    _add_selection(run)
    run.add_argument("--full-refresh", action="store_true",
                     help="ignore stored cursors and re-read every record (history is kept)")
    rec = run.add_mutually_exclusive_group()
    rec.add_argument("--reconcile", dest="reconcile", action="store_const", const=True, default=None,
                     help="sweep all contact ids now and remove contacts Intercom no longer has "
                     "(by default this runs when the last sweep is 7+ days old)")
    rec.add_argument("--no-reconcile", dest="reconcile", action="store_const", const=False,
                     help="skip the contact deletion sweep even if it is due")

    sub.add_parser("demo", help="run the whole pipeline offline against the bundled fake Intercom",
                   description="Start the bundled fake Intercom on loopback for US, EU and AU, run the whole "
                   f"pipeline into the configured DuckDB file ({DUCKDB_PATH_ENV}, default data/iru.duckdb), print "
                   "what was loaded and example SQL. Needs no token and no network.")

    export = sub.add_parser("export", help="write the auditor export of the latest evidence run",
                            description="Write one CSV and JSON file per evidence table, params.json, summary.md, "
                            "report.html (the run as a page with charts that opens offline), "
                            "manifest.json (every file hashed, the hash chain, proofs of collection), manifest.sig "
                            "(when IRU_SIGNING_KEY_FILE names a key) and SHA256SUMS into a folder per run; with "
                            "--period, the latest run in the period plus period/control_test_history and "
                            "period/findings.")
    export.add_argument("--out", metavar="DIR", help="output folder (default: exports/ beside the DuckDB file)")
    export.add_argument("--run", metavar="RUN_ID", help="export this evidence run instead of the latest")
    export.add_argument("--period", metavar="START..END",
                        help="export an audit window, e.g. 2026-01-01..2026-12-31 (UTC days, both included): the "
                        "latest run in it, plus the control-test history and the findings over the period")
    _add_keygen_parser(sub)
    _add_verify_parser(sub)

    add_rekey_parser(sub)
    add_rebind_parser(sub)

    fake = sub.add_parser("fake-intercom", help="serve the bundled fake Intercom (demos, benchmarks)",
                          description="Serve the bundled fake Intercom API for US, EU and AU on consecutive "
                          "loopback ports, printing each region's base URL and token.")
    _add_fake_arguments(fake)
    return parser


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", action="append", metavar="NAME",
                        help="only this workspace (its name in the workspaces file, or us/eu/au); repeatable")
    parser.add_argument("--region", action="append", metavar="R",
                        help="every workspace of this region (us, eu, au); repeatable")


def _add_keygen_parser(sub: argparse._SubParsersAction) -> None:
    keygen = sub.add_parser("keygen", help="write an Ed25519 key pair for signing auditor exports",
                            description="Write a new Ed25519 private key (PEM, mode 0600; never overwrites a file) "
                            "and its public half beside it (PATH.pub), and print the public key's path and "
                            f"fingerprint. Point {SIGNING_KEY_FILE_ENV} at the private key, keep it outside the "
                            "data folder, and give the .pub file to auditors.")
    keygen.add_argument("--out", metavar="PATH", default=str(DEFAULT_KEY_PATH),
                        help=f"private key file to create (default: {DEFAULT_KEY_PATH})")


def _add_verify_parser(sub: argparse._SubParsersAction) -> None:
    verify = sub.add_parser("verify", help="check an auditor export: sums, manifest, chain, signature",
                            description="Check an export folder from the folder alone: SHA256SUMS, every file "
                            "against manifest.json, the hash chain recomputed from the table files, the Ed25519 "
                            "signature (with --public-key; its fingerprint must be the one the manifest names) "
                            "and, with --previous, that no run is missing between the two exports. Prints one "
                            "line per problem; exit status 0 only when everything holds, 1 otherwise, 2 for an "
                            "unusable argument.")
    verify.add_argument("folder", metavar="FOLDER", help="the export folder (holding manifest.json)")
    verify.add_argument("--public-key", metavar="FILE", help="the signer's public key (the .pub file from keygen)")
    verify.add_argument("--previous", metavar="FOLDER", help="the export of the run just before this one")
def _add_fake_arguments(parser: argparse.ArgumentParser) -> None:
    from iru_pipeline.fake_intercom.__main__ import build_arg_parser

    for action in build_arg_parser()._actions:
        if action.dest == "help":
            continue
        parser._add_action(action)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    load_dotenv_file()
    restrict_umask()
    try:
        if args.command == "check":
            return cmd_check(args)
        if args.command == "run":
            stop_on_signals()
            quiet_dlt_logs()
            return cmd_run(args)
        if args.command == "demo":
            from iru_pipeline.demo import run_demo

            stop_on_signals()
            quiet_dlt_logs()
            return run_demo()
        if args.command == "export":
            return cmd_export(args)
        if args.command == "keygen":
            return cmd_keygen(args)
        if args.command == "verify":
            return cmd_verify(args)
        if args.command == "rekey":
            return cmd_rekey(args)
        if args.command == "rebind":
            return cmd_rebind(args)
        if args.command == "fake-intercom":
            from iru_pipeline.fake_intercom.__main__ import run_from_args

            return run_from_args(args)
    except ConfigError as exc:
        print(f"iru-pipeline: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return stopped()
    except Exception as exc:
        if type(exc).__name__ == "RunStopped":  # runner.RunStopped, imported lazily with the runner
            return stopped()
        return storage_failed(exc)
    return EXIT_FAILED


def quiet_dlt_logs() -> None:
    """dlt logs its own warnings, with tracebacks, to the terminal (e.g. a trace it could not
    save on a full disk); the run's outcome is already one line and in Dagster's event log."""
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "CRITICAL")


def storage_failed(exc: Exception) -> int:
    """A full or read-only data folder, wherever it surfaced (DuckDB, dlt, Dagster's storage):
    one line naming the folder and the fix, exit 1. Any other error is raised again."""
    from iru_pipeline.storage import StorageError, storage_error, storage_problem

    if not isinstance(exc, StorageError):
        problem = storage_problem(exc)
        if problem is None:
            raise exc
        folder = duckdb_path_from_env().parent
        exc = storage_error(folder, problem)
    print(f"iru-pipeline: {exc}", file=sys.stderr, flush=True)
    return EXIT_FAILED


# --------------------------------------------------------------------------- stopping on signals

_received: list[int] = []
"""Signals received so far (SIGINT, SIGTERM), in order."""
_watching: list[bool] = []
_said_stopped: list[bool] = []


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM stop the process promptly and cleanly.

    Dagster replaces the Python-level SIGINT/SIGTERM handlers while it executes a run (it turns
    them into its own interruption error, and the run is then marked failed and its pool slot
    freed), so the signals are also watched below Python's handlers: `signal.set_wakeup_fd`
    receives every signal whatever handler is installed. A thread reading it asks the window
    threads to stop on the first signal (`STOP_REQUESTED`, which the runner also checks
    between Dagster runs), and ends the process at once on the second.

    SIGINT is blocked in every thread but that one, and so in every child process (the mask
    is inherited): Ctrl-C reaches the whole process group, and Dagster's log-mirroring
    helpers would each die printing a KeyboardInterrupt traceback. Children are ended by the
    run itself (Dagster's cleanup, table workers killed on abort)."""
    from iru_pipeline.intercom_source.parallel import STOP_REQUESTED

    if _watching or threading.current_thread() is not threading.main_thread():
        return
    _watching.append(True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGINT raises KeyboardInterrupt already

    def watch() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # the one thread that takes it
        while True:
            for signum in os.read(read_fd, 64):
                if signum not in (signal.SIGINT, signal.SIGTERM):
                    continue
                _received.append(signum)
                STOP_REQUESTED.set()
                if len(_received) > 1:
                    os._exit(stopped())

    threading.Thread(target=watch, name="iru-signal-watch", daemon=True).start()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stopped() -> int:
    """Print the one line of a stopped run; its exit status is 128 + the first signal."""
    signum = _received[0] if _received else signal.SIGINT
    if not _said_stopped:  # the main thread and a second signal's exit may both get here
        _said_stopped.append(True)
        print(f"iru-pipeline: stopped by {signal.Signals(signum).name}: nothing half-written was kept; "
              "run it again to resume where it stopped", file=sys.stderr, flush=True)
    return 128 + signum


def cmd_check(args: argparse.Namespace) -> int:
    from iru_pipeline.check import check_all, format_checks

    settings = load_settings(only_workspaces=args.workspace, only_regions=args.region, require_pii_key=False)
    results = check_all(settings)
    print(format_checks(results))
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    from iru_pipeline.pii_key import check_pii_key
    from iru_pipeline.runner import enable_progress, format_summary, run_pipeline
    from iru_pipeline.storage import ensure_hosts_reachable, ensure_writable_database, ensure_writable_folders

    settings = load_settings(only_workspaces=args.workspace, only_regions=args.region)
    validate_evidence_inputs(settings)
    ensure_hosts_reachable(settings)
    ensure_writable_database(settings.duckdb_path, log=lambda line: print(f"iru-pipeline: {line}", file=sys.stderr))
    ensure_writable_folders(settings)
    check_pii_key(settings)
    enable_progress()
    result = run_pipeline(settings, full_refresh=args.full_refresh, reconcile=args.reconcile)
    print(format_summary(result))
    return result.exit_code


def validate_evidence_inputs(settings: Settings) -> None:
    """Evidence parameters and human-input CSVs are read at the end of a run; check them now,
    so a typo costs nothing (ConfigError names the key, or the file, line and reason)."""
    from iru_pipeline.evidence.inputs import load_inputs
    from iru_pipeline.evidence.params import load_params

    params = load_params(settings.evidence_config, settings.evidence_config_path)
    load_inputs(params.inputs)


def cmd_export(args: argparse.Namespace) -> int:
    from iru_pipeline.export import export_cli

    settings = load_settings(require_workspaces=False, require_pii_key=False)
    return export_cli(settings, out=args.out, run_id=args.run, period_text=args.period)


def cmd_keygen(args: argparse.Namespace) -> int:
    from iru_pipeline.evidence.signing import KEY_SETTING, generate_key_pair

    path = Path(args.out).expanduser()
    data_dir = duckdb_path_from_env().parent.resolve()
    if path.resolve().is_relative_to(data_dir):
        raise ConfigError(f"--out {path} is inside the data folder {data_dir}: choose a path outside it")
    public_path, fp = generate_key_pair(path)
    print(f"private key: {path} (mode 0600): set {KEY_SETTING}={path}")
    print(f"public key:  {public_path}")
    print(f"fingerprint: {fp} (sha256 of the raw Ed25519 public key; manifest.json records it)")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from iru_pipeline.export_verify import verify_cli

    return verify_cli(args.folder, public_key=args.public_key, previous=args.previous)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
