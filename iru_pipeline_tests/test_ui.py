"""`make ui`: it starts the Dagster UI against the bundled fake, the UI opens without the
newsletter modal and with telemetry off, and Ctrl-C or SIGTERM stops every process it started
(webserver, daemon, code servers, the fake) within a bound."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest

from iru_pipeline.dev_ui import STOP_GRACE_S, UI_SETTINGS, ensure_ui_settings
from iru_pipeline_tests.dagster_ui import DagsterUI, free_port, free_port_run, processes_with_env, wait_until_gone

ROOT = Path(__file__).resolve().parents[1]
MARKER = "IRU_UI_TEST_MARKER"
START_TIMEOUT_S = 180.0
STOP_BOUND_S = STOP_GRACE_S + 40.0
"""dev_ui's own grace period before SIGKILL, plus the time to kill and reap: 10 s sufficed on
a quiet machine, but once (load average 10 on 2 cores) make took longer than that to exit; what
the test proves is that it stops by itself and leaves nothing behind, not how fast."""


def _ui_command(ui_port: int, fake_port: int) -> list[str]:
    """`make ui` as a user types it; without make, the command its recipe runs."""
    ui_args = f"--port {ui_port} --fake-port {fake_port}"
    make = shutil.which("make")
    if make is None:
        return [sys.executable, "-m", "iru_pipeline.dev_ui", *ui_args.split()]
    # BIN/STAMP: this interpreter's venv, without the install step (the suite already runs in it).
    return [make, "--no-print-directory", "ui", f"BIN={Path(sys.executable).parent}", "STAMP=", f"UI_ARGS={ui_args}"]


def _signals_as_from_a_shell() -> None:
    """In the child, before exec: no signal blocked and SIGINT/SIGTERM at their defaults, as in
    a terminal. Blocked and ignored signals survive exec, and earlier in-process runs in this
    pytest process leave SIGINT blocked (cli.stop_on_signals), which make and everything it
    starts would inherit; the test is about `make ui` started by a person, not that state."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _ui_env(data_dir: Path, marker: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERCOM_", "IRU_", "DAGSTER_"))}
    env.update({"IRU_DUCKDB_PATH": str(data_dir / "iru.duckdb"), MARKER: marker})
    return env


@pytest.mark.parametrize("stop", ["SIGTERM to make", "Ctrl-C"])
def test_make_ui_stops_every_process_it_started(stop: str, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    ui_port, fake_port = free_port(), free_port_run(3)
    log = (tmp_path / "ui.log").open("wb")
    proc = subprocess.Popen(_ui_command(ui_port, fake_port), cwd=ROOT, env=_ui_env(tmp_path, marker),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_signals_as_from_a_shell)
    ui = DagsterUI(f"http://127.0.0.1:{ui_port}")
    try:
        ui.wait_until_loaded(START_TIMEOUT_S, alive=lambda: proc.poll() is None)
        assert ui.graphql("{ shouldShowNux }")["shouldShowNux"] is False
        running = " | ".join(processes_with_env(MARKER, marker).values())
        for part in ("dagster_webserver", "dagster._daemon", "code-server", "iru_pipeline.dev_ui"):
            assert part in running, f"{part} not among the processes of make ui: {running}"

        if stop == "Ctrl-C":
            os.killpg(proc.pid, signal.SIGINT)  # a terminal sends it to the foreground group
        else:
            proc.send_signal(signal.SIGTERM)  # `kill <pid of make>`: make passes it on to its recipe
        try:
            proc.wait(timeout=STOP_BOUND_S)
        except subprocess.TimeoutExpired:
            left = " | ".join(processes_with_env(MARKER, marker).values())
            tail = (tmp_path / "ui.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"make ui still running {STOP_BOUND_S:.0f} s after {stop}; processes: {left}; log: {tail}")
        left = wait_until_gone(MARKER, marker, timeout_s=5)
        assert not left, f"processes left after {stop}: {left}"
    finally:
        ui.close()
        for pid in processes_with_env(MARKER, marker):
            os.kill(pid, signal.SIGKILL)
        log.close()
    output = (tmp_path / "ui.log").read_text(errors="replace")
    assert "Traceback" not in output, output[-3000:]
    # The fake's ports are free again.
    for port in range(fake_port, fake_port + 3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_the_ui_instance_has_no_telemetry_and_no_newsletter_modal(tmp_path: Path) -> None:
    from iru_pipeline.runner import INSTANCE_TEMPLATE

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(INSTANCE_TEMPLATE, home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.telemetry_enabled is False and instance.nux_enabled is False
        assert instance.managed_python_loggers == ["iru_pipeline.progress"]
        assert instance.run_coordinator.dequeue_interval_seconds == 1


def test_an_earlier_instance_config_gains_the_ui_settings_and_keeps_its_own(tmp_path: Path) -> None:
    config = tmp_path / "dagster.yaml"
    earlier = "# written by an earlier version\ntelemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1"
    config.write_text(earlier, encoding="utf-8")
    ensure_ui_settings(config)
    text = config.read_text(encoding="utf-8")
    assert text.startswith(earlier + "\n")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.nux_enabled is False and instance.telemetry_enabled is False
        assert instance.managed_python_loggers == ["iru_pipeline.progress"]
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    ensure_ui_settings(config)
    assert config.read_text(encoding="utf-8") == text  # nothing added twice
    assert set(UI_SETTINGS) == {"telemetry", "nux", "python_logs", "run_coordinator"}
