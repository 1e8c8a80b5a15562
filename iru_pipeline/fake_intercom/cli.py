"""Command line for serving the fake: `python -m iru_pipeline.fake_intercom` (also wired into
the product CLI as `iru-pipeline fake-intercom`).

Regions are served on consecutive ports from --port (us, eu, au), and one line per region
is printed: region, base URL, token. With --workspaces-per-region N (N > 1) each region's host
serves N workspaces, told apart by token, and one line per workspace is printed: region, base
URL, token, name (`us-001`, `us-002`, ...). --workspaces-file PATH writes the product's
workspaces file for them (PATH, TOML) and their tokens (PATH.env, `export VAR=token` lines,
owner-only), then prints a last line naming both. The process serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .constants import ALL_REGIONS, DEFAULT_INTERNAL_DOMAIN, DEFAULT_RATE_LIMIT_PER_WINDOW
from .fake import ExtraWorkspace, FakeIntercom
from .workspaces_file import served_workspaces, write_workspaces_file

MIN_EXTRA_CACHE_BYTES = 1 << 20


def build_arg_parser() -> argparse.ArgumentParser:
    """Arguments of the fake-intercom command."""
    parser = argparse.ArgumentParser(
        prog="fake-intercom",
        description="Serve a fake Intercom REST API (version 2.16) for the US, EU and AU regions on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000,
                        help="port of the first region; the next regions use the following ports "
                             "(0: ephemeral ports; default: %(default)s)")
    parser.add_argument("--regions", default=",".join(ALL_REGIONS),
                        help="comma-separated regions to serve (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data (default: %(default)s)")
    parser.add_argument("--workspaces-per-region", type=int, default=1, metavar="N",
                        help="workspaces each region's host serves, each with its own token, workspace id and "
                             "data (seed, seed+1, ...); the sizes below apply to each (default: %(default)s)")
    parser.add_argument("--workspaces-file", metavar="PATH",
                        help="write a workspaces file (TOML, [workspaces.us-001] ...) for the served workspaces "
                             "to PATH and their tokens to PATH.env (export lines, mode 0600)")
    parser.add_argument("--contacts", type=int, default=3000, help="contacts per workspace (default: %(default)s)")
    parser.add_argument("--conversations", type=int, default=1500,
                        help="conversations per workspace (default: %(default)s)")
    parser.add_argument("--activity-logs", type=int, default=500,
                        help="generated activity-log entries per workspace (default: %(default)s)")
    parser.add_argument("--admins", type=int, default=15, help="admins per workspace (default: %(default)s)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request (default: 0)")
    parser.add_argument("--rate-limit", type=int, default=DEFAULT_RATE_LIMIT_PER_WINDOW,
                        help="requests per 10-second window per workspace, 0 = off (default: %(default)s)")
    parser.add_argument("--internal-domain", default=DEFAULT_INTERNAL_DOMAIN,
                        help="e-mail domain of the company's own staff (default: %(default)s)")
    parser.add_argument("--cache-mb", type=int, default=48,
                        help="memory per region and collection for pre-encoded records; a region's further "
                             "workspaces share it (at least 1 MB each) (default: %(default)s)")
    parser.add_argument("--warm", action="store_true",
                        help="pre-encode records into the cache at start (faster first pass, e.g. for benchmarks)")
    parser.add_argument("--activity-logs-next", choices=("url", "cursor"), default="url",
                        help="form of activity-log pages.next: a URL string (as observed) or the spec's cursor object")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """Start the fake described by `args`, print its regions, and block until interrupted."""
    regions = tuple(r.strip().lower() for r in args.regions.split(",") if r.strip())
    per_region = args.workspaces_per_region
    if per_region < 1:
        print("fake-intercom: --workspaces-per-region must be 1 or more", file=sys.stderr)
        return 2
    extra_cache_bytes = max(MIN_EXTRA_CACHE_BYTES, (args.cache_mb << 20) // per_region)
    extra = {region: [ExtraWorkspace(f"{region}-{number:03d}", seed=args.seed + number - 1,
                                     cache_bytes=extra_cache_bytes)
                      for number in range(2, per_region + 1)]
             for region in regions}
    try:
        fake = FakeIntercom(
            seed=args.seed, contacts=args.contacts, conversations=args.conversations, regions=regions,
            admins=args.admins, activity_logs=args.activity_logs, rate_limit_per_window=args.rate_limit,
            internal_domain=args.internal_domain, activity_logs_next_style=args.activity_logs_next,
            latency_ms=args.latency_ms, host=args.host, cache_bytes=args.cache_mb << 20,
            extra_workspaces=extra,
        )
        if args.warm:
            fake.warm()
        ports = {r: (args.port + k if args.port else 0) for k, r in enumerate(regions)}
        fake.start(ports)
    except (ValueError, OSError) as exc:
        print(f"fake-intercom: {exc}", file=sys.stderr)
        return 2
    if args.workspaces_file:
        path = Path(args.workspaces_file)
        try:
            env_path, written = write_workspaces_file(fake, path)
        except OSError as exc:
            fake.stop()
            print(f"fake-intercom: cannot write the workspaces file {path}: {exc.strerror or exc}; "
                  "give --workspaces-file a path in a writable folder", file=sys.stderr)
            return 2
    if per_region == 1:
        for region in regions:
            print(f"{region} {fake.base_url(region)} {fake.token(region)}", flush=True)
    else:
        for ws in served_workspaces(fake):
            print(f"{ws.region} {ws.base_url} {fake.token(ws.region, ws.key)} {ws.name}", flush=True)
    if args.workspaces_file:
        print(f"workspaces file {path} ({len(written)} workspaces); tokens: . {env_path}", flush=True)

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_from_args(build_arg_parser().parse_args(argv))


serve = main
