"""Command line for serving the fake: `python -m iru_pipeline.fake_intercom` (also wired into
the product CLI as `iru-pipeline fake-intercom`).

Regions are served on consecutive ports from --port (us, eu, au), and one line per region
is printed: region, base URL, token. The process serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from .constants import ALL_REGIONS, DEFAULT_INTERNAL_DOMAIN, DEFAULT_RATE_LIMIT_PER_WINDOW
from .fake import FakeIntercom


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
    parser.add_argument("--contacts", type=int, default=3000, help="contacts per region (default: %(default)s)")
    parser.add_argument("--conversations", type=int, default=1500,
                        help="conversations per region (default: %(default)s)")
    parser.add_argument("--activity-logs", type=int, default=500,
                        help="generated activity-log entries per region (default: %(default)s)")
    parser.add_argument("--admins", type=int, default=15, help="admins per region (default: %(default)s)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request (default: 0)")
    parser.add_argument("--rate-limit", type=int, default=DEFAULT_RATE_LIMIT_PER_WINDOW,
                        help="requests per 10-second window per region, 0 = off (default: %(default)s)")
    parser.add_argument("--internal-domain", default=DEFAULT_INTERNAL_DOMAIN,
                        help="e-mail domain of the company's own staff (default: %(default)s)")
    parser.add_argument("--cache-mb", type=int, default=48,
                        help="memory per region and collection for pre-encoded records (default: %(default)s)")
    parser.add_argument("--warm", action="store_true",
                        help="pre-encode records into the cache at start (faster first pass, e.g. for benchmarks)")
    parser.add_argument("--activity-logs-next", choices=("url", "cursor"), default="url",
                        help="form of activity-log pages.next: a URL string (as observed) or the spec's cursor object")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """Start the fake described by `args`, print its regions, and block until interrupted."""
    regions = tuple(r.strip().lower() for r in args.regions.split(",") if r.strip())
    try:
        fake = FakeIntercom(
            seed=args.seed, contacts=args.contacts, conversations=args.conversations, regions=regions,
            admins=args.admins, activity_logs=args.activity_logs, rate_limit_per_window=args.rate_limit,
            internal_domain=args.internal_domain, activity_logs_next_style=args.activity_logs_next,
            latency_ms=args.latency_ms, host=args.host, cache_bytes=args.cache_mb << 20,
        )
        if args.warm:
            fake.warm()
        ports = {r: (args.port + k if args.port else 0) for k, r in enumerate(regions)}
        fake.start(ports)
    except (ValueError, OSError) as exc:
        print(f"fake-intercom: {exc}", file=sys.stderr)
        return 2
    for region in regions:
        print(f"{region} {fake.base_url(region)} {fake.token(region)}", flush=True)

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
