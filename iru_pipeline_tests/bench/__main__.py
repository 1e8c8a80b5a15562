"""`make bench`: throughput, memory and API cost of the pipeline against the bundled fake.

    python -m iru_pipeline_tests.bench [--quick] [--contacts 100k,1M] [--conversations 100k]
        [--latency-ms 50] [--rate-limit 1000] [--workers 64] [--sweep 1,4,8,16,32 | --no-sweep]
        [--real-latency-ms 250] [--real-rate-limit 1666 | --no-real | --real-only]
        [--no-peers] [--no-product] [--no-profile] [--no-ui-path]
        [--workspaces 200 | --no-many-workspaces | --many-workspaces-only] [--out data/bench]

Prints progress, then one table row per scenario and the targets with PASS/MISS, and writes
the whole report as JSON to data/bench/bench-<UTC>.json and data/bench/latest.json. See
README.md in this folder for the scenarios and how to read the output. Benchmarks report
figures; nothing here fails on a missed target (exit status 0 unless the harness breaks).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iru_pipeline.intercom_source.settings import EXTRACT_WORKERS
from iru_pipeline_tests.bench import many_workspaces, peers, ui_path
from iru_pipeline_tests.bench.fake import FakeProcess
from iru_pipeline_tests.bench.probe import fake_throughput
from iru_pipeline_tests.bench.proc import REPO_ROOT, OtherLoad, log_tail, run_measured
from iru_pipeline_tests.bench.product import run_product
from iru_pipeline_tests.bench.report import ceiling_rows_per_s, format_table, format_targets, machine_info, write_json
from iru_pipeline_tests.bench.sampler import format_profile
from iru_pipeline_tests.bench.timeline import describe

LOCAL_ROWS_PER_S = 25_000
RSS_LIMIT_MB = 1024
CEILING_SHARE = 0.70
REAL_CEILING_SHARE = 0.85
"""At Intercom's own limit and answer times (the `--real-*` scenarios)."""
PEER_SPEEDUP = 4.0
NO_CHANGE_CALLS = 3
OTHER_LOAD_WARN = 0.25
"""Cores used by unrelated processes during a scenario above which its row says so."""
FAKE_BOUND_CPU_SHARE = 0.8
"""The fake is one Python process: busy for this share of the wall time, it is the bottleneck."""


def size(text: str) -> int:
    t = text.strip().lower().replace("_", "")
    mult = 1_000_000 if t.endswith("m") else 1_000 if t.endswith("k") else 1
    return int(float(t.rstrip("mk")) * mult)


def label(n: int) -> str:
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000 and n % 100 == 0:
        return f"{n / 1_000:g}k"
    return str(n)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m iru_pipeline_tests.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke variant: 5k and 20k contacts, 5k conversations; no peers, sweep or profile")
    p.add_argument("--contacts", default=None,
                   help="contact counts, one fake workspace each (default: 100k,1M)")
    p.add_argument("--conversations", default=None,
                   help="conversations in the first workspace (default: 100k)")
    p.add_argument("--latency-ms", type=float, default=50.0, help="latency of the rate-limited scenarios (default: 50)")
    p.add_argument("--rate-limit", type=int, default=1000,
                   help="fake's limit, requests per 10-second window, in the latency scenarios (default: 1000)")
    p.add_argument("--workers", type=int, default=EXTRACT_WORKERS,
                   help=f"extract workers (the product's default: {EXTRACT_WORKERS})")
    p.add_argument("--sweep", default="1,4,8,16,32",
                   help="other worker counts for contacts at the latency (default: 1,4,8,16,32; "
                        "16 is the fixed concurrency before it followed the limit and latency)")
    p.add_argument("--real-latency-ms", type=float, default=250.0,
                   help="latency of the scenarios at Intercom's real limit (default: 250)")
    p.add_argument("--real-rate-limit", type=int, default=1666,
                   help="Intercom's real limit: 10,000 calls a minute in 10-second windows (default: 1666)")
    p.add_argument("--no-real", action="store_true", help="skip the scenarios at Intercom's real limit")
    p.add_argument("--real-only", action="store_true",
                   help="only the scenarios at Intercom's real limit, on the first workspace (about 1 min at 100k)")
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--no-peers", action="store_true", help="skip tap-intercom and airbyte-source-intercom")
    p.add_argument("--peer-timeout", type=float, default=600.0, help="seconds per peer sync (default: 600)")
    p.add_argument("--no-product", action="store_true", help="skip the `iru-pipeline run` scenarios")
    p.add_argument("--no-profile", action="store_true", help="skip the sampled profile of contacts at 0 ms")
    p.add_argument("--no-ui-path", action="store_true",
                   help="skip the UI-path scenario (a refresh launched through the Dagster UI against the CLI)")
    p.add_argument("--workspaces", type=int, default=None, metavar="N",
                   help=f"workspaces of the many-workspaces scenario (default: {many_workspaces.DEFAULT_WORKSPACES}; "
                        f"--quick: {many_workspaces.QUICK_WORKSPACES})")
    p.add_argument("--no-many-workspaces", action="store_true",
                   help="skip the many-workspaces scenario (N small workspaces, first and quiet daily run)")
    p.add_argument("--many-workspaces-only", action="store_true",
                   help="only the many-workspaces scenario (about 15 min at 200 workspaces)")
    p.add_argument("--many-workspaces-latency-ms", type=float, default=0.0,
                   help="latency of the many-workspaces fake (default: 0; it has no rate limit)")
    p.add_argument("--many-workspaces-profile", action="store_true",
                   help="a third, quiet run of the many workspaces under the sampling profiler (printed)")
    p.add_argument("--out", default=str(REPO_ROOT / "data" / "bench"), help="folder of the JSON reports")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary DuckDB files and logs")
    return p


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.perf_counter()
        self.tmp = Path(tempfile.mkdtemp(prefix="iru-bench-"))
        self.log = self.tmp / "bench.log"
        self.rows: list[dict[str, Any]] = []
        self.targets: list[dict[str, Any]] = []
        self.fakes: list[dict[str, Any]] = []
        self.probes: list[dict[str, Any]] = []
        self.peer_runs: list[dict[str, Any]] = []
        self.product_runs: list[dict[str, Any]] = []
        self.profile: dict[str, Any] | None = None
        self.many_workspaces: dict[str, Any] | None = None
        self.notes: list[str] = []
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.machine_at_start = machine_info()

    def say(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.0f}s] {msg}", flush=True)

    # ------------------------------------------------------------------------------ scenarios

    def run(self, workspaces: list[tuple[int, int]]) -> None:
        for k, (contacts, conversations) in enumerate(workspaces):
            self.workspace(contacts, conversations, first=(k == 0))
        if not self.args.no_many_workspaces:
            many_workspaces.bench_scenario(self, self.args.workspaces, self.args.many_workspaces_latency_ms,
                                           profile=self.args.many_workspaces_profile)
        if not self.args.no_ui_path:
            ui_path.bench_scenario(self)

    def workspace(self, contacts: int, conversations: int, first: bool) -> None:
        a = self.args
        self.say(f"starting the fake: {contacts:,} contacts, {conversations:,} conversations (warming its cache)")
        fake = FakeProcess(contacts, conversations).start()
        try:
            self.fakes.append({"contacts": contacts, "conversations": conversations,
                               "startup_s": round(fake.startup_s, 1), "cache_mb": fake.cache_mb,
                               "rss_mb": fake.rss_mb(), "base_url": fake.base_url})
            self.say(f"fake up in {fake.startup_s:.0f} s at {fake.base_url}, RSS {fake.rss_mb():,.0f} MB")
            size_c = label(contacts)
            if a.real_only:
                self.real(fake, size_c, contacts, conversations)
                return
            self.probe(fake, "contacts", size_c)
            if first and conversations >= 1000:
                self.probe(fake, "conversations", label(conversations))

            self.dlt(fake, f"dlt contacts {size_c} 0ms", ["contacts"], 0, 0, contacts=contacts)
            if first and conversations:
                self.dlt(fake, f"dlt conversations {label(conversations)} 0ms", ["conversations"], 0, 0)
            if first and not a.no_profile:
                self.profiled(fake, size_c)
            lat = a.latency_ms
            self.dlt(fake, f"dlt contacts {size_c} {lat:g}ms", ["contacts"], lat, a.rate_limit, contacts=contacts)
            if first and conversations:
                self.dlt(fake, f"dlt conversations {label(conversations)} {lat:g}ms", ["conversations"], lat,
                         a.rate_limit)
            if first and not a.no_real:
                self.real(fake, size_c, contacts, conversations)
            if first and not a.no_sweep:
                for w in [int(x) for x in a.sweep.split(",") if x.strip()]:
                    if w != a.workers:
                        self.dlt(fake, f"dlt contacts {size_c} {lat:g}ms workers={w}", ["contacts"], lat,
                                 a.rate_limit, workers=w, sweep=True)
            if not a.no_product:
                self.product(fake, f"{size_c}", lat, a.rate_limit, contacts)
            if first and not a.no_peers:
                self.peers(fake, lat, a.rate_limit)
        finally:
            fake.stop()

    def real(self, fake: FakeProcess, size_c: str, contacts: int, conversations: int) -> None:
        real, limit = self.args.real_latency_ms, self.args.real_rate_limit
        self.dlt(fake, f"dlt contacts {size_c} {real:g}ms real limit", ["contacts"], real, limit,
                 contacts=contacts, share=REAL_CEILING_SHARE)
        if conversations:
            self.dlt(fake, f"dlt conversations {label(conversations)} {real:g}ms real limit",
                     ["conversations"], real, limit, share=REAL_CEILING_SHARE)

    def probe(self, fake: FakeProcess, resource: str, size_label: str) -> None:
        fake.configure(latency_ms=0, rate_limit=0)
        fake.reset_stats()
        cpu0 = fake.cpu_s()
        result = fake_throughput(fake.base_url, fake.token, resource, threads=self.args.workers, max_seconds=20)
        cpu1 = fake.cpu_s()
        result["fake_cpu_s"] = round(cpu1 - cpu0, 2) if cpu0 is not None and cpu1 is not None else None
        result["size"] = size_label
        self.probes.append(result)
        self.say(f"fake-only {resource} {size_label}: {result['rows_per_s']:,} rows/s, {result['req_per_s']:,} req/s "
                 f"({result['mb_per_s']} MB/s) with a trivial client on {result['threads']} connections")
        self.rows.append({
            "name": f"fake-only {resource} {size_label} 0ms", "kind": "fake_probe", "rows": result["rows"],
            "wall_s": result["seconds"], "rows_per_s": result["rows_per_s"], "api_calls": result["requests"],
            "note": "trivial client (no JSON decoding): the most the fake serves on this machine",
        })

    def _worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERCOM_", "IRU_"))}
        env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
        return env

    def _run_worker(self, fake: FakeProcess, resources: list[str], workers: int, *, rate_limited: bool,
                    runs: int = 1, profile: bool = False) -> tuple[dict[str, Any] | None, dict[str, Any], dict]:
        workdir = Path(tempfile.mkdtemp(prefix="dlt-", dir=self.tmp))
        spec = {"base_url": fake.base_url, "token": fake.token, "resources": resources, "workers": workers,
                "workdir": str(workdir), "runs": runs, "profile": profile,
                "align_window_s": 10 if rate_limited else 0}
        (workdir / "spec.json").write_text(json.dumps(spec))
        fake.reset_stats()
        cpu0 = fake.cpu_s()
        load = OtherLoad()
        measured = run_measured(
            [sys.executable, "-m", "iru_pipeline_tests.bench.worker", str(workdir / "spec.json"),
             str(workdir / "result.json")], env=self._worker_env(), log_path=self.log, timeout=3600)
        cpu1 = fake.cpu_s()
        stats = fake.stats()
        stats["fake_cpu_s"] = round(cpu1 - cpu0, 2) if cpu0 is not None and cpu1 is not None else None
        stats["other_cpu_cores"] = load.cores(measured.get("cpu_s"), stats["fake_cpu_s"])
        result = None
        if measured["exit_code"] == 0 and (workdir / "result.json").exists():
            result = json.loads((workdir / "result.json").read_text())
        else:
            measured["error"] = log_tail(self.log)
        if not self.args.keep_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
        return result, measured, stats

    def dlt(self, fake: FakeProcess, name: str, resources: list[str], latency: float, rate_limit: int,
            workers: int | None = None, contacts: int = 0, sweep: bool = False,
            share: float = CEILING_SHARE) -> dict[str, Any]:
        workers = workers or self.args.workers
        fake.configure(latency_ms=latency, rate_limit=rate_limit)
        self.say(f"{name}: running (workers={workers}, rate limit {rate_limit or 'off'}"
                 f"{' per 10 s, aligned to a fresh window' if rate_limit else ''})")
        result, measured, stats = self._run_worker(fake, resources, workers, rate_limited=bool(rate_limit))
        row: dict[str, Any] = {"name": name, "kind": "dlt", "resources": resources, "latency_ms": latency,
                               "rate_limit": rate_limit, "workers": workers, "contacts_in_workspace": contacts,
                               "sweep": sweep}
        if result is None:
            row.update(verdict="ERROR", note=f"worker failed: {measured.get('error', '')[:300]}")
            self.rows.append(row)
            self.say(f"{name}: FAILED {row['note']}")
            return row
        run = result["runs"][0]
        rows = sum(run["rows_loaded"].get(r, 0) for r in resources)
        ceiling = ceiling_rows_per_s(rate_limit)
        rps = rows / run["wall_s"] if run["wall_s"] else None
        fake_share = (stats["fake_cpu_s"] / run["wall_s"]) if stats.get("fake_cpu_s") and run["wall_s"] else None
        row.update({
            "rows": rows, "wall_s": run["wall_s"], "rows_per_s": round(rps) if rps else None,
            "extract_s": run["extract_s"], "normalize_s": run["normalize_s"], "load_s": run["load_s"],
            "api_calls": stats.get("total_requests"), "api_calls_client": run["api_calls"],
            "api_calls_by_route": stats.get("by_route"), "rate_limited_429": stats.get("rate_limited"),
            "limiter_waits": run["limiter_waits"], "limiter_waited_s": run["limiter_waited_s"],
            "peak_in_flight_fake": stats.get("peak_in_flight"),
            "peak_in_flight_client": run.get("limiter_peak_in_flight"),
            "target_in_flight_at_end": run.get("limiter_target_in_flight"),
            # The whole process tree: the table worker processes count too.
            "peak_rss_mb": measured["peak_tree_rss_mb"] or result["peak_rss_mb"],
            "peak_rss_mb_main": result["peak_rss_mb"], "peak_rss_mb_wait4": measured["peak_rss_mb"],
            "cpu_s": run["cpu_s"], "cpu_per_wall": round(run["cpu_s"] / run["wall_s"], 2) if run["wall_s"] else None,
            "import_s": result["import_s"], "fake_cpu_s": stats.get("fake_cpu_s"),
            "fake_cpu_share": round(fake_share, 2) if fake_share else None,
            "other_cpu_cores": stats.get("other_cpu_cores"),
            "ceiling_rows_per_s": ceiling, "ceiling_ratio": round(rps / ceiling, 3) if ceiling and rps else None,
            "trace_steps_s": run["trace_steps_s"], "peak_rss_mb_after_step": run.get("peak_rss_mb_after_step"),
            "timeline": run.get("timeline"),
        })
        notes = [f"CPU {row['cpu_per_wall']:.2f} cores", f"fake busy {row['fake_cpu_share'] or 0:.0%}",
                 f"in flight: peak {row['peak_in_flight_fake']} at the fake, "
                 f"{row['peak_in_flight_client']} at the client (bound {workers})"]
        steps = run.get("peak_rss_mb_after_step")
        if steps:
            notes.append("peak RSS after extract/normalise/load " + "/".join(f"{v:,.0f}" for v in steps.values())
                         + " MB")
        if row["fake_cpu_share"] and row["fake_cpu_share"] >= FAKE_BOUND_CPU_SHARE:
            notes.append("FAKE-BOUND")
        if rate_limit:
            windows = run["wall_s"] / 10
            notes.append(f"{stats.get('rate_limited', 0)} x 429, limiter waited {run['limiter_waited_s']:.1f} s, "
                         f"{windows:.1f} windows")
            if windows < 2:
                notes.append("run shorter than two windows: the first window's burst can exceed the ceiling")
            where = describe(run.get("timeline") or {}, run["normalize_s"] + run["load_s"], latency)
            if where:
                notes.append(where)
        row["note"] = "; ".join(notes)
        self._targets_for(row, resources, latency, rate_limit, contacts, sweep, share)
        self.add_row(row)
        self.say(f"{name}: {rows:,} rows in {run['wall_s']:.1f} s = {row['rows_per_s']:,} rows/s "
                 f"(extract {run['extract_s']:.1f} / normalise {run['normalize_s']:.1f} / load {run['load_s']:.1f} s), "
                 f"{row['api_calls']} API calls, peak RSS {row['peak_rss_mb']:,.0f} MB; {row['note']}")
        return row

    def add_row(self, row: dict[str, Any]) -> None:
        other = row.get("other_cpu_cores") or 0
        if other >= OTHER_LOAD_WARN:
            warn = f"OTHER PROCESSES used {other:.1f} cores meanwhile: figures may be low"
            row["note"] = f"{row['note']}; {warn}" if row.get("note") else warn
        self.rows.append(row)

    def _targets_for(self, row: dict[str, Any], resources: list[str], latency: float, rate_limit: int,
                     contacts: int, sweep: bool, share: float = CEILING_SHARE) -> None:
        verdicts = []
        targets = []
        if sweep:
            return
        if resources == ["contacts"] and latency == 0:
            ok = (row["rows_per_s"] or 0) >= LOCAL_ROWS_PER_S
            verdicts.append(ok)
            targets.append(f">={LOCAL_ROWS_PER_S // 1000}k rows/s")
            self._target(f"local processing, contacts {label(contacts)} at 0 ms", f">= {LOCAL_ROWS_PER_S:,} rows/s",
                         f"{row['rows_per_s']:,} rows/s", ok, row["name"])
        if resources == ["contacts"] and contacts >= 1_000_000:
            ok = row["peak_rss_mb"] < RSS_LIMIT_MB
            verdicts.append(ok)
            targets.append("RSS<1GB")
            self._target(f"peak RSS at {label(contacts)} contacts ({latency:g} ms)", f"< {RSS_LIMIT_MB} MB",
                         f"{row['peak_rss_mb']:,.0f} MB", ok, row["name"])
        if rate_limit and row.get("ceiling_ratio") is not None:
            ok = row["ceiling_ratio"] >= share
            verdicts.append(ok)
            targets.append(f">={share:.0%} ceiling")
            self._target(f"share of the rate-limit ceiling, {row['name'][4:]}",
                         f">= {share:.0%} of {row['ceiling_rows_per_s']:,.0f} rows/s",
                         f"{row['ceiling_ratio']:.0%} ({row['rows_per_s']:,} rows/s)", ok, row["name"])
        row["target"] = ", ".join(targets)
        row["verdict"] = ("PASS" if all(verdicts) else "MISS") if verdicts else None

    def _target(self, name: str, target: str, measured: str, ok: bool | None, scenario: str) -> None:
        self.targets.append({"name": name, "target": target, "measured": measured, "scenario": scenario,
                             "verdict": "n/a" if ok is None else ("PASS" if ok else "MISS")})

    def profiled(self, fake: FakeProcess, size_label: str) -> None:
        fake.configure(latency_ms=0, rate_limit=0)
        self.say(f"profile: contacts {size_label} at 0 ms under a sampling profiler (all threads; not in the table)")
        result, measured, _ = self._run_worker(fake, ["contacts"], self.args.workers, rate_limited=False, profile=True)
        if result is None or not result.get("profile"):
            self.say(f"profile failed: {measured.get('error', '')[:300]}")
            return
        run = result["runs"][0]
        self.profile = {"scenario": f"dlt contacts {size_label} 0ms (profiled)", "wall_s": run["wall_s"],
                        "extract_s": run["extract_s"], "normalize_s": run["normalize_s"], "load_s": run["load_s"],
                        **result["profile"]}

    def product(self, fake: FakeProcess, size_label: str, latency: float, rate_limit: int, contacts: int) -> None:
        fake.configure(latency_ms=latency, rate_limit=rate_limit)
        data_dir = Path(tempfile.mkdtemp(prefix="product-", dir=self.tmp))
        runs = {}
        for which in ("first", "no-change"):
            name = f"product run {size_label} {latency:g}ms {which}"
            self.say(f"{name}: iru-pipeline run --region us --no-reconcile (Dagster, all resources, evidence)")
            _align(10)
            r = run_product(fake, data_dir, self.log)
            runs[which] = r
            rows = sum(v or 0 for v in r["rows_loaded"].values()) if which == "first" else \
                sum(r["rows_loaded"].get(k) or 0 for k in ("contacts", "conversations"))
            ceiling = ceiling_rows_per_s(rate_limit)
            rps = rows / r["wall_s"] if r["wall_s"] and rows else None
            row = {"name": name, "kind": "product", "latency_ms": latency, "rate_limit": rate_limit, "rows": rows,
                   "wall_s": r["wall_s"], "rows_per_s": round(rps) if rps else None, "api_calls": r["api_calls"],
                   "peak_rss_mb": r["peak_rss_mb"], "exit_code": r["exit_code"],
                   "ceiling_ratio": round(rps / ceiling, 3) if (ceiling and rps and which == "first") else None,
                   "api_calls_by_resource": r["api_calls_by_resource"],
                   "api_calls_by_resource_fake": r["api_calls_by_resource_fake"],
                   "api_calls_by_route": r["api_calls_by_route"], "rows_loaded": r["rows_loaded"],
                   "statuses": r["statuses"], "fake_cpu_s": r["fake_cpu_s"],
                   "other_cpu_cores": r.get("other_cpu_cores")}
            if r["exit_code"] not in (0,):
                row["verdict"] = "ERROR"
                row["note"] = f"exit {r['exit_code']}: {r.get('error', '')[:300]}"
            elif which == "first":
                row["note"] = ("whole product path incl. interpreter start, Dagster, every resource and the "
                               "evidence assets; rows = all tables")
                if contacts >= 1_000_000:
                    ok = r["peak_rss_mb"] < RSS_LIMIT_MB
                    row["target"], row["verdict"] = "RSS<1GB", "PASS" if ok else "MISS"
                    self._target(f"peak RSS at {label(contacts)} contacts, product path", f"< {RSS_LIMIT_MB} MB",
                                 f"{r['peak_rss_mb']:,.0f} MB", ok, name)
            else:
                client = r["api_calls_by_resource"]
                via_fake = r["api_calls_by_resource_fake"]
                worst = max(list(client.values()) + list(via_fake.values()) or [0])
                ok = worst <= NO_CHANGE_CALLS and bool(client)
                row["target"] = f"<={NO_CHANGE_CALLS} calls/resource"
                row["verdict"] = "PASS" if ok else "MISS"
                row["rows"] = sum(r["rows_loaded"].get(k) or 0 for k in ("contacts", "conversations"))
                row["note"] = ("calls per resource (client): " + ", ".join(f"{k} {v}" for k, v in sorted(client.items()))
                               + "; per route (fake): " + ", ".join(f"{k} {v}" for k, v in r["api_calls_by_route"].items()))
                self._target(f"no-change incremental run, {size_label} workspace", f"<= {NO_CHANGE_CALLS} API calls "
                             "per resource and region", f"max {worst} ({r['api_calls']} calls, {r['wall_s']:.1f} s)",
                             ok, name)
            self.add_row(row)
            self.product_runs.append(row)
            self.say(f"{name}: exit {r['exit_code']}, {r['wall_s']:.1f} s, {r['api_calls']} API calls, "
                     f"peak RSS {r['peak_rss_mb'] or 0:,.0f} MB")
        if not self.args.keep_tmp:
            shutil.rmtree(data_dir, ignore_errors=True)

    def peers(self, fake: FakeProcess, latency: float, rate_limit: int) -> None:
        self.say("peers: installing tap-intercom 2.2.5 and airbyte-source-intercom 0.8.3 (throw-away venvs, "
                 f"{peers.peers_root()}) via the peers script")
        script, why = peers.setup(self.log)
        if script is None:
            self.say(why or "peers skipped")
            self.notes.append(why or "peers skipped")
            return
        fake.configure(latency_ms=latency, rate_limit=rate_limit)
        for stream in ("contacts", "conversations"):
            for peer in ("tap", "airbyte"):
                label_ = peers.PEERS[peer]["label"]
                self.say(f"peer {label_} {stream} at {latency:g} ms: syncing")
                r = peers.run_peer(script, peer, stream, fake, self.log, timeout=self.args.peer_timeout)
                r["latency_ms"], r["rate_limit"] = latency, rate_limit
                self.peer_runs.append(r)
                row = {"name": f"peer {peer} {stream} {latency:g}ms", "kind": "peer", "rows": r["records"],
                       "other_cpu_cores": r.get("other_cpu_cores"),
                       "wall_s": r["sync_wall_s"], "rows_per_s": r["rows_per_s"], "api_calls": r["api_calls"],
                       "peak_rss_mb": r["peak_rss_mb"], "peer": label_, "stream": stream}
                ceiling = ceiling_rows_per_s(rate_limit)
                if ceiling and r["rows_per_s"]:
                    row["ceiling_ratio"] = round(r["rows_per_s"] / ceiling, 3)
                if r.get("error"):
                    row["verdict"] = "FAILED" if not r["timed_out"] else "TIMEOUT"
                    row["note"] = f"{label_}: {r['error'][:240]}"
                    if r.get("fake_deviation"):
                        row["note"] += f" -- fake deviation: {r['fake_deviation']}"
                else:
                    row["note"] = f"{label_}; wall = the sync itself (discover excluded), output to JSON lines only"
                self.add_row(row)
                if r.get("error"):
                    self.say(f"peer {label_} {stream}: {row['verdict']} after {r['script_wall_s']:.1f} s: "
                             f"{r['error'][:300]}")
                else:
                    self.say(f"peer {label_} {stream}: {r['records']:,} records in {r['sync_wall_s']:.1f} s = "
                             f"{r['rows_per_s']:,} rows/s, {r['api_calls']} API calls")
        self._speedups(latency)

    def _speedups(self, latency: float) -> None:
        for stream in ("contacts", "conversations"):
            ours = next((r for r in self.rows if r.get("kind") == "dlt" and r.get("resources") == [stream]
                         and r.get("latency_ms") == latency and not r.get("sweep") and r.get("rows_per_s")), None)
            done = [p for p in self.peer_runs if p["stream"] == stream and p.get("rows_per_s") and not p.get("error")]
            if ours is None:
                continue
            if not done:
                self._target(f"speed-up over the faster peer, {stream} at {latency:g} ms", f">= {PEER_SPEEDUP:g}x",
                             "no peer completed this stream", None, ours["name"])
                continue
            best = max(done, key=lambda p: p["rows_per_s"])
            speedup = ours["rows_per_s"] / best["rows_per_s"]
            ok = speedup >= PEER_SPEEDUP
            ours["speedup_over_faster_peer"] = round(speedup, 2)
            ours["target"] = ", ".join(t for t in (ours.get("target"), f">={PEER_SPEEDUP:g}x peer") if t)
            ours["verdict"] = "PASS" if (ok and ours.get("verdict") != "MISS") else "MISS"
            self._target(f"speed-up over the faster peer, {stream} at {latency:g} ms", f">= {PEER_SPEEDUP:g}x",
                         f"{speedup:.1f}x ({ours['rows_per_s']:,} vs {best['peer']} {best['rows_per_s']:,} rows/s)",
                         ok, ours["name"])

    # ------------------------------------------------------------------------------ output

    def fake_verdict(self) -> str | None:
        """Is the fake the bottleneck anywhere? Compares with its trivial-client capacity."""
        dlt_rows = [r for r in self.rows if r.get("kind") == "dlt" and r.get("rows_per_s")]
        if not dlt_rows or not self.probes:
            return None
        capacity = min(p["rows_per_s"] for p in self.probes)
        busiest = max(dlt_rows, key=lambda r: r.get("fake_cpu_share") or 0)
        best = max(r["rows_per_s"] for r in dlt_rows)
        share = busiest.get("fake_cpu_share") or 0
        if share >= FAKE_BOUND_CPU_SHARE:
            return (f"the fake WAS the bottleneck in {busiest['name']} (busy {share:.0%} of the wall time); "
                    f"its trivial-client capacity is {capacity:,} rows/s")
        return (f"the fake was not the bottleneck: it serves >= {capacity:,} rows/s to a trivial client, the "
                f"pipeline's best was {best:,} rows/s, and the fake was busy at most {share:.0%} of any "
                f"pipeline scenario's wall time")

    def report(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at, "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": round(time.perf_counter() - self.started, 1),
            "machine": machine_info(), "config": vars(self.args),
            "git_commit_at_start": self.machine_at_start["git_commit"],
            "ceiling": {"rate_limit_per_10s": self.args.rate_limit, "rows_per_call": 150,
                        "rows_per_s": ceiling_rows_per_s(self.args.rate_limit)},
            "fakes": self.fakes, "fake_only_throughput": self.probes, "scenarios": self.rows,
            "targets": self.targets, "peers": self.peer_runs, "profile": self.profile, "notes": self.notes,
            "many_workspaces": self.many_workspaces,
            "fake_bottleneck": self.fake_verdict(),
        }

    def print_summary(self) -> None:
        a = self.args
        print()
        if a.real_only:
            print(f"iru-pipeline bench: only the scenarios at {a.real_latency_ms:g} ms and Intercom's real limit, "
                  f"{a.real_rate_limit} requests per 10 s (ceiling {ceiling_rows_per_s(a.real_rate_limit):,.0f} "
                  f"rows/s at 150 rows per call); workers={a.workers}")
        else:
            print(f"iru-pipeline bench: rate-limited scenarios at {a.latency_ms:g} ms latency and "
                  f"{a.rate_limit} requests per 10 s (ceiling {ceiling_rows_per_s(a.rate_limit):,.0f} rows/s at 150 "
                  f"rows per call); 0 ms scenarios without a limit (local processing); workers={a.workers}")
        print(format_table(self.rows))
        print()
        print(format_targets(self.targets))
        bottleneck = self.fake_verdict()
        if bottleneck:
            print(bottleneck)
        if self.profile:
            print()
            print(f"profile of {self.profile['scenario']}: wall {self.profile['wall_s']:.1f} s "
                  f"(extract {self.profile['extract_s']:.1f}, normalise {self.profile['normalize_s']:.1f}, "
                  f"load {self.profile['load_s']:.1f})")
            print(format_profile(self.profile, 12))
        many_profile = ((self.many_workspaces or {}).get("runs", {}).get("quiet (profiled)") or {}).get("profile")
        if many_profile:
            print()
            print(f"profile of the many-workspaces quiet run ({self.many_workspaces['workspaces']} workspaces, "
                  "the product process's threads):")
            print(format_profile(many_profile, 20))
        end_commit = machine_info()["git_commit"]
        if end_commit != self.machine_at_start["git_commit"]:
            self.notes.append(f"the repository moved from {self.machine_at_start['git_commit']} to {end_commit} "
                              "during the run: later scenarios ran newer product code")
        for note in self.notes:
            print(f"note: {note}")


def _align(seconds: float) -> None:
    time.sleep((seconds - time.time() % seconds) % seconds + 0.02)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.contacts = args.contacts or "5k,20k"
        args.conversations = args.conversations or "5k"
        args.no_peers = args.no_sweep = args.no_profile = True
        args.workspaces = args.workspaces or many_workspaces.QUICK_WORKSPACES
    args.workspaces = args.workspaces or many_workspaces.DEFAULT_WORKSPACES
    if args.real_only:
        args.contacts = (args.contacts or "100k").split(",")[0]
        args.no_peers = args.no_sweep = args.no_profile = args.no_product = args.no_ui_path = True
        args.no_many_workspaces = True
    contacts = [size(x) for x in (args.contacts or "100k,1M").split(",") if x.strip()]
    if args.many_workspaces_only:
        contacts, args.no_ui_path, args.no_many_workspaces = [], True, False
    conversations = size(args.conversations or "100k")
    workspaces = [(n, conversations if k == 0 else 1000) for k, n in enumerate(contacts)]
    bench = Bench(args)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM too stops what the bench started
    m = bench.machine_at_start
    bench.say(f"iru-pipeline bench on {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
              f"dlt {m['packages']['dlt']}, dagster {m['packages']['dagster']}"
              + ("; workspaces " + ", ".join(f"{label(c)} contacts/{label(v)} conversations" for c, v in workspaces)
                 if workspaces else "")
              + ("" if args.no_many_workspaces else f"; many-workspaces scenario: {args.workspaces} small workspaces")
              + f"; logs in {bench.log}")
    try:
        bench.run(workspaces)
    except KeyboardInterrupt:
        bench.notes.append("interrupted: partial results")
        bench.say("interrupted; writing what was measured")
    finally:
        bench.print_summary()
        path = write_json(bench.report(), Path(args.out))
        print(f"\nwrote {path} and {path.parent / 'latest.json'} ({time.perf_counter() - bench.started:.0f} s)")
        if not args.keep_tmp:
            keep_log = Path(args.out) / "latest.log"
            try:
                shutil.copyfile(bench.log, keep_log)
            except OSError:
                pass
            shutil.rmtree(bench.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
