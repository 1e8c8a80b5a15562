"""One measured scenario of the dlt layer, run in its own process (for a clean peak RSS).

    python -m iru_pipeline_tests.bench.worker SPEC.json RESULT.json

SPEC: {"base_url", "token", "resources": ["contacts"], "workers": 8, "workdir": DIR,
       "runs": 1 | 2, "profile": false, "align_window_s": 0 | 10}

It builds the product's dlt source with a real `IntercomClient`, a fresh pipeline and DuckDB
file under `workdir`, and times `extract`, `normalize` and `load` separately (the same
parquet loader and `apply_dlt_load_settings` as `iru_pipeline.assets.ingestion.make_pipeline`).
With runs=2 the same pipeline runs again against the same DuckDB: the no-change incremental
run. The result holds per-run timings, row counts, the client's API calls per resource, where
the extract's time went (`timeline.py`) and the process's peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

PII_KEY = "ae64ec22b8acb91f8db773ccfcd8b91933c6f1366b6471b9c551e25aa165a9ed"  # secrets.token_hex(32)


def _run_once(spec: dict[str, Any], run_no: int) -> dict[str, Any]:
    import dlt

    from iru_pipeline.intercom_client import IntercomClient
    from iru_pipeline.intercom_source import SyncReport, intercom_source
    from iru_pipeline.storage import apply_dlt_load_settings, duckdb_destination
    from iru_pipeline_tests.bench.timeline import RequestTimeline

    workdir = Path(spec["workdir"])
    apply_dlt_load_settings()
    # `workers` bounds the requests in flight, as `extract_workers` does in the product.
    client = IntercomClient("us", spec["base_url"], spec["token"], max_connections=int(spec.get("workers", 8)))
    timeline = RequestTimeline(client.limiter)
    report = SyncReport("us")
    source = intercom_source(region="us", client=client, pii_key=PII_KEY, reconcile=False, report=report,
                             workers=int(spec.get("workers", 8))).with_resources(*spec["resources"])
    pipeline = dlt.pipeline(
        pipeline_name="bench_us", pipelines_dir=str(workdir / "pipelines"),
        destination=duckdb_destination(workdir / "bench.duckdb"), dataset_name="intercom", progress=None,
    )
    cpu0 = _cpu()
    timeline.start()
    t0 = time.perf_counter()
    pipeline.extract(source, loader_file_format="parquet")
    t1 = time.perf_counter()
    rss = {"extract": _peak_mb()}
    normalize_info = pipeline.normalize()
    t2 = time.perf_counter()
    rss["normalize"] = _peak_mb()
    pipeline.load()
    t3 = time.perf_counter()
    rss["load"] = _peak_mb()
    cpu3 = _cpu()
    client.close()
    row_counts = {k: v for k, v in (normalize_info.row_counts or {}).items() if not k.startswith("_dlt")}
    steps = {}
    trace = pipeline.last_trace
    if trace is not None:
        for step in trace.steps:
            if step.started_at and step.finished_at:
                steps[step.step] = round((step.finished_at - step.started_at).total_seconds(), 3)
    return {
        "run": run_no,
        "wall_s": round(t3 - t0, 3),
        "cpu_s": round(cpu3 - cpu0, 3),
        "extract_s": round(t1 - t0, 3),
        "normalize_s": round(t2 - t1, 3),
        "load_s": round(t3 - t2, 3),
        "trace_steps_s": steps,
        "peak_rss_mb_after_step": rss,
        "rows_loaded": row_counts,
        "rows_extracted": {name: rr.rows for name, rr in report.resources.items()},
        "unchanged_skipped": {name: rr.unchanged_skipped for name, rr in report.resources.items()},
        "pages": {name: rr.pages for name, rr in report.resources.items()},
        "api_calls": client.total_calls(),
        "api_calls_by_resource": {k: v["calls"] for k, v in client.resource_stats().items()},
        "api_calls_by_endpoint": {k: v["calls"] for k, v in client.stats().items()},
        "api_429s": sum(v["rate_limited"] for v in client.stats().values()),
        "limiter_waits": client.limiter.waits,
        "limiter_waited_s": round(client.limiter.waited_seconds, 2),
        "limiter_peak_in_flight": client.limiter.peak_in_flight,
        "limiter_target_in_flight": client.limiter.in_flight_target(),
        "timeline": timeline.summary(t1 - t0),
        "status": {name: rr.status for name, rr in report.resources.items()},
    }


def _cpu() -> float:
    """CPU seconds of this process and of its ended children (the table worker processes)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _peak_mb() -> float:
    """Peak RSS of this process so far (it only grows: the step that raised it is the first
    step whose value is higher than the one before)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _align_to_window(seconds: float) -> None:
    """Start at the beginning of a rate-limit window (the fake's windows are aligned to the
    epoch, as Intercom's are to its clock), so every run meets a full window first."""
    now = time.time()
    time.sleep((seconds - now % seconds) % seconds + 0.02)


def main(argv: list[str]) -> int:
    spec_path, result_path = argv[1], argv[2]
    spec = json.loads(Path(spec_path).read_text())
    started = time.perf_counter()
    import dlt  # noqa: F401  (import cost is reported apart from the runs)

    import iru_pipeline.intercom_source  # noqa: F401

    imported = time.perf_counter()
    if spec.get("align_window_s"):
        _align_to_window(float(spec["align_window_s"]))
    runs = []
    profile = None
    sampler = None
    if spec.get("profile"):
        from iru_pipeline_tests.bench.sampler import Sampler

        sampler = Sampler().__enter__()
    try:
        for n in range(1, int(spec.get("runs", 1)) + 1):
            runs.append(_run_once(spec, n))
    finally:
        if sampler is not None:
            sampler.__exit__(None, None, None)
            profile = sampler.report(40)
    result = {
        "import_s": round(imported - started, 3),
        "runs": runs,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "profile": profile,
    }
    Path(result_path).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
