"""The UI path against the CLI path: one region's refresh, launched as the Dagster UI and the
daily schedule launch it, against `iru-pipeline run` doing the same work.

- **CLI**: `iru-pipeline run --region us --no-reconcile` in a subprocess (interpreter start,
  ingestion and evidence), as `product.py` runs it.
- **UI**: `dagster dev` (webserver, daemon, code server) is started on the instance config
  `make ui` uses and left to load; then the `refresh_all` job is launched for partition `us`
  through the webserver's GraphQL `launchRun` mutation, as the launchpad does. The run is
  queued, dequeued by the daemon and started by the default run launcher in a new process,
  like a schedule tick's run. Its wall time runs from the launch request until the webserver
  reports the run finished (polled every 0.1 s); the start-up of `dagster dev` is not counted
  (the UI is already open when someone clicks).

Each path gets its own data folder against one fake, and runs twice: the first load, then a
run with no changes. The ratio UI/CLI is reported; the target is at most 1.5.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from iru_pipeline_tests.bench.fake import FakeProcess
from iru_pipeline_tests.bench.proc import REPO_ROOT, log_tail
from iru_pipeline_tests.bench.product import latest_sync_results, product_env, run_product
from iru_pipeline_tests.dagster_ui import DagsterUI, free_port

UI_RATIO_TARGET = 1.5
RUN_CONFIG = {"resources": {"intercom": {"config": {"reconcile": False}}}}
"""As `--no-reconcile` on the CLI side."""


def run_ui_path(contacts: int, conversations: int, log_path: Path, tmp: Path,
                say: Any = print, latency_ms: float = 0.0) -> dict[str, Any]:
    """Both paths, first and no-change runs: wall times and the ratios."""
    with FakeProcess(contacts, conversations) as fake:
        fake.configure(latency_ms=latency_ms, rate_limit=0)
        cli_dir = Path(tempfile.mkdtemp(prefix="cli-", dir=tmp))
        cli = {}
        for which in ("first", "no-change"):
            r = run_product(fake, cli_dir, log_path)
            cli[which] = {"wall_s": r["wall_s"], "exit_code": r["exit_code"], "rows": _rows(cli_dir),
                          "error": r.get("error")}
            say(f"ui-path: CLI {which}: exit {r['exit_code']}, {r['wall_s']:.1f} s")
        ui = _ui_runs(fake, Path(tempfile.mkdtemp(prefix="ui-", dir=tmp)), log_path, say)
    result: dict[str, Any] = {"contacts": contacts, "conversations": conversations, "latency_ms": latency_ms,
                              "cli": cli, "ui": ui}
    for which in ("first", "no-change"):
        c, u = cli[which], ui.get(which) or {}
        if c.get("exit_code") == 0 and u.get("status") == "SUCCESS" and c["wall_s"]:
            result[f"ratio_{which}"] = round(u["wall_s"] / c["wall_s"], 2)
    return result


def _ui_runs(fake: FakeProcess, data_dir: Path, log_path: Path, say: Any) -> dict[str, Any]:
    from iru_pipeline.config import load_settings
    from iru_pipeline.dev_ui import ensure_ui_settings, stop_group
    from iru_pipeline.runner import prepare_instance

    env = product_env(fake, data_dir)
    settings = load_settings(env=env)
    prepare_instance(settings)
    ensure_ui_settings(settings.dagster_home / "dagster.yaml")
    env["DAGSTER_HOME"] = str(settings.dagster_home)
    port = free_port()
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    runs: dict[str, Any] = {}
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        ui = DagsterUI(f"http://127.0.0.1:{port}")
        try:
            started = time.perf_counter()
            ui.wait_until_loaded(300, alive=lambda: proc.poll() is None)
            say(f"ui-path: dagster dev loaded in {time.perf_counter() - started:.1f} s (not counted)")
            for which in ("first", "no-change"):
                runs[which] = _one_ui_run(ui, settings.duckdb_path)
                say(f"ui-path: UI {which}: {runs[which]['status']}, {runs[which]['wall_s']:.1f} s "
                    f"(queued and starting {runs[which]['queued_s']:.1f} s, executing {runs[which]['executing_s']:.1f} s)")
        except (RuntimeError, TimeoutError) as exc:
            runs["error"] = f"{exc}: {log_tail(log_path)}"
            say(f"ui-path: UI failed: {runs['error'][:300]}")
        finally:
            ui.close()
            _stop(proc, stop_group)
    return runs


def _one_ui_run(ui: DagsterUI, duckdb_path: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    run_id = ui.launch("refresh_all", partition="us", run_config=RUN_CONFIG)
    run = ui.wait_for_run(run_id, timeout_s=1800)
    wall = time.perf_counter() - t0
    start, end, created = run.get("startTime"), run.get("endTime"), run.get("creationTime")
    return {"run_id": run_id, "status": run["status"], "wall_s": round(wall, 3),
            "queued_s": round(start - created, 2) if start and created else 0.0,
            "executing_s": round(end - start, 2) if start and end else 0.0,
            "rows": _rows(duckdb_path.parent)}


def _rows(data_dir: Path) -> int:
    return sum(r["rows_loaded"] or 0 for r in latest_sync_results(data_dir / "iru.duckdb"))


def _stop(proc: subprocess.Popen[bytes], stop_group: Any) -> None:
    try:
        stop_group(proc)
    except Exception:  # the bench must never leave the UI running
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def bench_scenario(bench: Any, contacts: int = 3000, conversations: int = 2000) -> None:
    """The `make bench` rows: UI and CLI wall times of each run, and the ratio against the target."""
    bench.say(f"ui-path: one region ({contacts:,} contacts, {conversations:,} conversations) by the CLI, "
              "then launched through the Dagster UI")
    result = run_ui_path(contacts, conversations, bench.log, bench.tmp, say=bench.say)
    for which in ("first", "no-change"):
        cli, ui = result["cli"][which], result["ui"].get(which) or {}
        ratio = result.get(f"ratio_{which}")
        row: dict[str, Any] = {
            "name": f"ui-path refresh {which}", "kind": "ui_path", "rows": ui.get("rows"),
            "wall_s": ui.get("wall_s"), "cli_wall_s": cli["wall_s"], "ui_cli_ratio": ratio,
            "ui_queued_s": ui.get("queued_s"), "ui_executing_s": ui.get("executing_s"),
            "target": f"<={UI_RATIO_TARGET:g}x CLI",
        }
        if ratio is None:
            row["verdict"] = "ERROR"
            row["note"] = (f"UI {ui.get('status') or result['ui'].get('error', 'not run')}; CLI exit "
                           f"{cli['exit_code']} {cli.get('error') or ''}")[:400]
        else:
            row["verdict"] = "PASS" if ratio <= UI_RATIO_TARGET else "MISS"
            row["note"] = (f"UI {ui['wall_s']:.1f} s (queued and starting {ui['queued_s']:.1f} s, executing "
                           f"{ui['executing_s']:.1f} s) vs CLI {cli['wall_s']:.1f} s: ratio {ratio:.2f}")
        bench.add_row(row)
        bench._target(f"UI/schedule path vs CLI, {which} run", f"<= {UI_RATIO_TARGET:g}x the CLI's wall time",
                      f"{ratio:.2f}x ({ui['wall_s']:.1f} s vs {cli['wall_s']:.1f} s)" if ratio is not None else "error",
                      None if ratio is None else ratio <= UI_RATIO_TARGET, row["name"])


def main() -> int:
    """`python -m iru_pipeline_tests.bench.ui_path [contacts] [conversations]`: this scenario alone."""
    import json

    contacts = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    conversations = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    tmp = Path(tempfile.mkdtemp(prefix="iru-ui-path-"))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the UI and the fake on SIGTERM too
    result = run_ui_path(contacts, conversations, tmp / "bench.log", tmp)
    print(json.dumps(result, indent=2))
    print(f"log: {tmp / 'bench.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
