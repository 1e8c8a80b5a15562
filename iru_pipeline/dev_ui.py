"""`make ui`: the Dagster UI against the bundled fake Intercom, offline.

Serves the fake for US, EU and AU on loopback in this process, then runs `dagster dev` with
the fake's tokens, a demo PII key and DAGSTER_HOME in the data folder (where the DuckDB
writer pool is limited to one step at a time).

Stopping: Ctrl-C or SIGTERM stops everything it started (webserver, daemon, code servers,
runs in progress, the fake) within seconds. `dagster dev` runs in a process group of its
own, so this process decides how it stops: first an interrupt to the whole group, as Ctrl-C
in a terminal would send to `dagster dev` (each Dagster process shuts down on it, a run in
progress is interrupted), then SIGKILL for whatever is still there after `STOP_GRACE_S`.
A second Ctrl-C or SIGTERM skips the wait."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from iru_pipeline.demo import DEMO_PII_KEY, write_demo_evidence_inputs
from iru_pipeline.regions import REGION_CODES, REGIONS

STOP_GRACE_S = 20.0
"""How long the Dagster processes get to shut down on their own before SIGKILL."""
UI_SETTINGS = {
    "telemetry": {"enabled": False},
    "nux": {"enabled": False},
    "python_logs": {"managed_python_loggers": ["iru_pipeline.progress"], "python_log_level": "INFO"},
    "run_coordinator": {"module": "dagster", "class": "QueuedRunCoordinator",
                        "config": {"dequeue_interval_seconds": 1}},
}
"""Instance settings the UI needs: no telemetry, no newsletter sign-up modal (`nux`), the
ingestion's progress lines in the run log, queued runs started within a second (as in
iru_pipeline/dagster.yaml)."""


class _Stop(Exception):
    """Raised in the main thread by SIGINT or SIGTERM."""


def ensure_ui_settings(config: Path) -> None:
    """Add `UI_SETTINGS` keys missing from an instance's dagster.yaml (an instance written
    by an earlier version), keeping the file's own text and comments."""
    text = config.read_text(encoding="utf-8") if config.exists() else ""
    present = yaml.safe_load(text) or {}
    missing = {key: value for key, value in UI_SETTINGS.items() if key not in present}
    if missing:
        block = yaml.safe_dump(missing, default_flow_style=False, sort_keys=False)
        config.write_text(text + ("" if not text or text.endswith("\n") else "\n") + block, encoding="utf-8")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m iru_pipeline.dev_ui", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address the webserver listens on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=3000, help="webserver port (default: 3000)")
    p.add_argument("--fake-port", type=int, default=int(os.environ.get("IRU_FAKE_PORT", "8710")),
                   help="the fake serves US, EU and AU on this port and the next two "
                        "(default: $IRU_FAKE_PORT or 8710)")
    return p


def ui_environment(fake: Any) -> dict[str, str]:
    """The environment of `dagster dev`: the fake's tokens and hosts, the demo PII key."""
    from iru_pipeline.config import DEFAULT_DUCKDB_PATH
    from iru_pipeline.env_names import DUCKDB_PATH_ENV, EVIDENCE_CONFIG_ENV, PII_KEY_ENV

    env = dict(os.environ)
    for region in REGION_CODES:
        env[REGIONS[region].token_env] = fake.token(region)
        env[REGIONS[region].base_url_env] = fake.base_url(region)
        print(f"fake Intercom {region.upper()}: {fake.base_url(region)}")
    env.setdefault(PII_KEY_ENV, DEMO_PII_KEY)
    env.setdefault(DUCKDB_PATH_ENV, str(DEFAULT_DUCKDB_PATH))
    if EVIDENCE_CONFIG_ENV not in env:
        folder = Path(env[DUCKDB_PATH_ENV]).parent / "demo-evidence"
        env[EVIDENCE_CONFIG_ENV] = str(write_demo_evidence_inputs(fake, folder))
    return env


def main(argv: list[str] | None = None) -> int:
    from iru_pipeline.config import ConfigError, load_settings
    from iru_pipeline.fake_intercom import FakeIntercom
    from iru_pipeline.runner import prepare_instance
    from iru_pipeline.storage import restrict_umask

    restrict_umask()  # inherited by `dagster dev` and its daemon, webserver and run processes
    args = build_parser().parse_args(argv)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    fake = FakeIntercom(seed=7, contacts=3000, conversations=2000)
    proc: subprocess.Popen[bytes] | None = None
    try:
        try:
            fake.start(ports={r: args.fake_port + i for i, r in enumerate(REGION_CODES)})
        except OSError as exc:
            print(f"error: the fake cannot listen on ports {args.fake_port}-{args.fake_port + 2} ({exc.strerror}): "
                  "pass --fake-port or set IRU_FAKE_PORT to free ones", file=sys.stderr)
            return 2
        env = ui_environment(fake)
        try:
            settings = load_settings(env=env)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        prepare_instance(settings)
        ensure_ui_settings(settings.dagster_home / "dagster.yaml")
        env["DAGSTER_HOME"] = str(settings.dagster_home.resolve())
        cmd = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml",
               "-h", args.host, "-p", str(args.port)]
        print("starting:", " ".join(cmd), flush=True)
        # Its own process group: Ctrl-C reaches only this process, which then stops the group.
        proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        return _exit_status(proc.wait())
    except _Stop:
        return 0
    finally:
        for sig in previous:
            signal.signal(sig, _note_again)  # a further signal only shortens the wait below
        if proc is not None:
            stop_group(proc)
        fake.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


_again: list[int] = []


def _note_again(signum: int, frame: FrameType | None) -> None:
    _again.append(signum)


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """Interrupt `dagster dev`'s process group, wait up to `grace_s` for it to empty (a
    second signal cuts the wait short), then kill what is left."""
    if proc.poll() is None or _group_alive(proc.pid):
        print("stopping Dagster (webserver, daemon, code servers, runs)...", flush=True)
        _signal_group(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    while _group_alive(proc.pid) and time.monotonic() < deadline and not _again:
        proc.poll()  # reap dagster dev itself, so it does not linger as a zombie of the group
        time.sleep(0.1)
    if _group_alive(proc.pid):
        print("Dagster did not stop in time: killing its processes", flush=True)
        _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()
    _again.clear()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies awaiting a wait do not count)."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
