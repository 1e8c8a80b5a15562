"""The two PyPI peers, timed on the same fake: tap-intercom 2.2.5 and airbyte-source-intercom
0.8.3.

Neither has a base-URL option. `../shared/peers-howto-local.sh` (or $IRU_PEERS_SCRIPT)
installs each into a throw-away virtualenv under $PEERS_ROOT (default /tmp/peers), applies
its one-line base-URL patch there and runs a sync with record counts; this module only calls
that script, so no peer code ever enters this repository. Each stream (contacts,
conversations) is synced on its own, so one stream failing does not hide the other's time.
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path
from typing import Any

from iru_pipeline_tests.bench.fake import FakeProcess
from iru_pipeline_tests.bench.proc import REPO_ROOT, OtherLoad, log_tail, run_measured

PEERS = {
    "tap": {"label": "tap-intercom 2.2.5", "err": "tap-err.log", "out": "tap-out.jsonl"},
    "airbyte": {"label": "airbyte-source-intercom 0.8.3", "err": "ab-err.log", "out": "ab-out.jsonl"},
}
START_DATE = "2000-01-01T00:00:00Z"
"""Before every generated record, so a peer's first sync reads the whole workspace."""

# What a peer needs that the fake does not do, by a piece of the error it causes.
KNOWN_DEVIATIONS = {
    "is not supported for string field id": (
        "tap-intercom 2.2.5 pages conversations with POST /conversations/search on "
        "`id > <last id> OR id = <last id>` (the empty string on a first run), sorted by id. The fake "
        "follows the OpenAPI 2.16 text ('you cannot search with > for a given string value as it's "
        "only compatible for integer's and dates') and answers 400 parameter_invalid. The tap is "
        "written against live Intercom, which therefore appears to accept `>` on the string field `id`; "
        "the fake would need lexicographic `>`/`<` on conversation ids for this stream."
    ),
}


def script_path() -> Path | None:
    env = os.environ.get("IRU_PEERS_SCRIPT")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "peers-howto-local.sh"
    return path if path.is_file() else None


def peers_root() -> Path:
    return Path(os.environ.get("PEERS_ROOT") or "/tmp/peers")


def _env(fake: FakeProcess | None, stream: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PEERS_ROOT": str(peers_root()), "START_DATE": START_DATE, "PYTHON": "python3"})
    if fake is not None:
        env["INTERCOM_TOKEN"] = fake.token
    if stream:
        env["STREAMS"] = stream
    env.pop("USE_STATE", None)
    return env


def setup(log_path: Path, timeout: float = 1200.0) -> tuple[Path | None, str | None]:
    """Install both peers (idempotent). Returns (script, None) or (None, why not)."""
    script = script_path()
    if script is None:
        return None, ("peers skipped: no peers script (looked for ../shared/peers-howto-local.sh beside the "
                      "repo; set IRU_PEERS_SCRIPT to its path)")
    result = run_measured(["bash", str(script), "http://127.0.0.1:9", "setup"], env=_env(None),
                          log_path=log_path, timeout=timeout)
    if result["exit_code"] != 0:
        return None, f"peers skipped: installing them failed (exit {result['exit_code']}): {log_tail(log_path, 3)}"
    return script, None


def run_peer(script: Path, peer: str, stream: str, fake: FakeProcess, log_path: Path,
             timeout: float) -> dict[str, Any]:
    """Sync one stream with one peer against the fake; records, sync wall time, API calls."""
    info = PEERS[peer]
    out_dir = peers_root() / "out"
    start = log_path.stat().st_size if log_path.exists() else 0
    fake.reset_stats()
    cpu0 = fake.cpu_s()
    load = OtherLoad()
    measured = run_measured(["bash", str(script), fake.base_url, peer], env=_env(fake, stream),
                            log_path=log_path, timeout=timeout)
    cpu1 = fake.cpu_s()
    fake_cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
    other_cores = load.cores(measured.get("cpu_s"), fake_cpu)
    stats = fake.stats()
    text = log_path.read_text(errors="replace")[start:]
    sync_wall = _last_float(r"wall ([0-9.]+) s", text)
    records_line = re.findall(r"records: (\{.*\})", text)
    records: dict[str, int] = {}
    if records_line:
        try:
            records = ast.literal_eval(records_line[-1])
        except (ValueError, SyntaxError):
            records = {}
    if measured["timed_out"] or not records:
        records = {stream: _count_records(out_dir / info["out"], stream)}
    rows = int(records.get(stream, 0))
    wall = sync_wall if sync_wall and not measured["timed_out"] else measured["wall_s"]
    result: dict[str, Any] = {
        "peer": info["label"], "stream": stream, "records": rows, "sync_wall_s": wall,
        "script_wall_s": measured["wall_s"], "exit_code": measured["exit_code"],
        "timed_out": measured["timed_out"],
        "peak_rss_mb": measured["peak_tree_rss_mb"] or measured["peak_rss_mb"],
        "api_calls": stats.get("total_requests", 0), "api_calls_by_route": stats.get("by_route", {}),
        "by_status": stats.get("by_status", {}),
        "fake_cpu_s": round(fake_cpu, 2) if fake_cpu is not None else None, "other_cpu_cores": other_cores,
        "rows_per_s": round(rows / wall) if wall and rows else None,
    }
    if measured["timed_out"]:
        result["error"] = f"timed out after {timeout:.0f} s; rows/s from the {rows} records synced by then"
    elif measured["exit_code"] != 0:
        error = _peer_error(out_dir, peer)
        result["error"] = error
        for marker, why in KNOWN_DEVIATIONS.items():
            if marker in error:
                result["fake_deviation"] = why
        result["rows_per_s"] = None
    return result


def _last_float(pattern: str, text: str) -> float | None:
    found = re.findall(pattern, text)
    return float(found[-1]) if found else None


def _count_records(path: Path, stream: str) -> int:
    n = 0
    try:
        with open(path, "rb") as fh:
            for line in fh:
                if b'"RECORD"' in line[:120]:
                    n += 1
    except OSError:
        return 0
    return n


def _peer_error(out_dir: Path, peer: str) -> str:
    """The peer's own error message: an Airbyte TRACE error, else the last error line of stderr."""
    if peer == "airbyte":
        try:
            with open(out_dir / "ab-out.jsonl", "rb") as fh:
                for line in fh:
                    if b'"TRACE"' in line[:60]:
                        msg = json.loads(line)
                        err = (msg.get("trace") or {}).get("error") or {}
                        if err.get("message"):
                            return " ".join(str(err.get("internal_message") or err["message"]).split())[:600]
        except (OSError, ValueError):
            pass
    try:
        lines = (out_dir / PEERS[peer]["err"]).read_text(errors="replace").splitlines()
    except OSError:
        return "no error output"
    for line in reversed(lines):
        if re.search(r"(Error|Exception|error)[:\s]", line):
            return line.strip()[:600]
    return " | ".join(lines[-3:])[:600]
