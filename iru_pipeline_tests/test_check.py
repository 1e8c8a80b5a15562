"""`iru-pipeline check` on good, wrong-region and missing-scope set-ups."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from iru_pipeline.cli import main
from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_client import RetryPolicy
from iru_pipeline.intercom_records.registry import RESOURCES
from iru_pipeline_tests.helpers import TEST_PII_KEY


def set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_check_passes_for_every_region(fake: FakeIntercom, monkeypatch, capsys, tmp_path) -> None:
    set_env(monkeypatch, {**fake.env(), "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb")})
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    for region in ("US", "EU", "AU"):
        assert f"{region}  127.0.0.1" in out
    assert fake.workspace("eu").workspace_id in out
    assert "matches the configured EU" in out
    assert "MISSING" not in out
    assert out.count("readable") == 3 * len(RESOURCES)


def test_check_explains_a_token_from_another_region(fake: FakeIntercom, monkeypatch, capsys, tmp_path) -> None:
    # The EU workspace's token and host configured as the US region.
    set_env(monkeypatch, {"INTERCOM_ACCESS_TOKEN_US": fake.token("eu"), "INTERCOM_BASE_URL_US": fake.base_url("eu"),
                          "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb")})
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "DOES NOT match" in out
    assert "hosted in EU" in out and "INTERCOM_ACCESS_TOKEN_EU" in out


def test_check_explains_a_token_on_the_wrong_host(fake: FakeIntercom, monkeypatch, capsys, tmp_path) -> None:
    # An EU token sent to the US host: Intercom answers 401.
    set_env(monkeypatch, {"INTERCOM_ACCESS_TOKEN_US": fake.token("eu"), "INTERCOM_BASE_URL_US": fake.base_url("us"),
                          "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb")})
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "rejected the access token" in out and "hosted in the US region" in out
    assert fake.token("eu") not in out


def test_check_names_missing_permissions(fresh_fake: FakeIntercom, monkeypatch, capsys, tmp_path) -> None:
    fresh_fake.faults("au").update(forbidden_paths=("/admins/activity_logs", "/tags"), forbidden_kind="scope")
    set_env(monkeypatch, {"INTERCOM_ACCESS_TOKEN_AU": fresh_fake.token("au"),
                          "INTERCOM_BASE_URL_AU": fresh_fake.base_url("au"),
                          "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb")})
    assert main(["check", "--region", "au"]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "MISSING" in line]
    assert any("activity_logs" in line and "Read admin activity logs" in line for line in lines)
    assert any(line.split()[0] == "tags" and "Read tags" in line for line in lines)
    assert len(lines) == 2


def test_check_reports_a_closed_port(monkeypatch, capsys, tmp_path) -> None:
    set_env(monkeypatch, {"INTERCOM_ACCESS_TOKEN_US": "tok", "INTERCOM_BASE_URL_US": "http://127.0.0.1:9",
                          "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb")})
    assert main(["check"]) == 1
    assert "connection refused" in capsys.readouterr().out


def test_bad_setting_is_one_line_exit_2(monkeypatch, capsys) -> None:
    monkeypatch.setenv("INTERCOM_ACCESS_TOKEN_US", "  ")
    assert main(["check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "INTERCOM_ACCESS_TOKEN_US" in err


@pytest.mark.parametrize("command", ["check", "run", "demo", "export", "fake-intercom"])
def test_every_command_has_help(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: iru-pipeline" in capsys.readouterr().out


# --------------------------------------------------------------------------- check and run agree


class _OddMe(BaseHTTPRequestHandler):
    """A host whose `/me` is `server.answer`: (status, headers, body)."""

    def do_GET(self) -> None:  # noqa: N802
        status, headers, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        for key, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _odd_me(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OddMe)
    server.daemon_threads = True
    server.answer = (status, headers or {}, json.dumps(body).encode())  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _setup(kind: str, fake: FakeIntercom) -> Iterator[tuple[dict[str, str], list[str]]]:
    """Environment (US only) for one class of failure, and words its line must hold in both
    commands after `[us] <class words>: `."""
    env = {"INTERCOM_ACCESS_TOKEN_US": fake.token("us"), "INTERCOM_BASE_URL_US": fake.base_url("us")}
    if kind == "permission":
        fake.faults("us").update(forbidden_paths=("/me",), forbidden_kind="scope")
        yield env, ["'Read admins'", "GET /me"]
    elif kind == "auth":
        yield {**env, "INTERCOM_ACCESS_TOKEN_US": fake.token("eu")}, ["INTERCOM_ACCESS_TOKEN_US", "GET /me"]
    elif kind == "server":
        fake.faults("us").update(error_every=1, fault_paths=("/me",))
        yield env, ["Intercom kept answering", "GET /me"]
    elif kind == "bad_answer_app_null":
        with _odd_me(200, {"type": "admin", "id": "1", "app": None}) as url:
            yield {**env, "INTERCOM_BASE_URL_US": url}, ["GET /me has no app (null)"]
    elif kind == "bad_answer_redirect":
        with _odd_me(307, {}, {"Location": "https://elsewhere.example/v2/me?token=x"}) as url:
            yield {**env, "INTERCOM_BASE_URL_US": url}, ["redirected to https://elsewhere.example/v2/me;",
                                                         "INTERCOM_BASE_URL_US", "status 307"]
    else:  # unreachable
        yield {**env, "INTERCOM_BASE_URL_US": f"http://127.0.0.1:{_closed_port()}"}, [
            "connection refused", "INTERCOM_BASE_URL_US"]


CLASSES = [
    pytest.param("permission", "missing permission", id="403-missing-permission"),
    pytest.param("auth", "wrong region or token", id="401-wrong-token"),
    pytest.param("server", "server trouble", id="5xx-server-trouble"),
    pytest.param("bad_answer_app_null", "bad answer", id="app-null-bad-answer"),
    pytest.param("bad_answer_redirect", "bad answer", id="307-bad-answer"),
    pytest.param("unreachable", "unreachable host", id="closed-port-unreachable"),
]


def _head(line: str) -> str:
    """The message without its numbers of attempts and request ids (which differ by run)."""
    return re.sub(r"after \d+ attempts|\(\d+ attempts\)|answering \d{3}|\(GET /me.*$", "", line).strip()


@pytest.mark.parametrize(("kind", "words"), CLASSES)
def test_check_and_run_word_each_class_of_failure_the_same(kind: str, words: str, fresh_fake: FakeIntercom,
                                                           monkeypatch, capsys, tmp_path) -> None:
    # Both commands still make every attempt their retry bounds allow; only the waits between
    # them are shortened (`run` would otherwise sit out about 20 s of backoff on the 5xx case).
    # The waits themselves are test_client's subject; here only the words of the line are.
    monkeypatch.setattr(RetryPolicy, "backoff", lambda self, attempt, rng=None: 0.01)
    with _setup(kind, fresh_fake) as (env, details):
        set_env(monkeypatch, {**env, "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb"), "IRU_PII_KEY": TEST_PII_KEY})
        assert main(["check"]) == 1
        check_out = capsys.readouterr().out
        run_code = main(["run"])
        run_out, run_err = capsys.readouterr()
    prefix = f"[us] {words}: "
    check_lines = [line.split("error", 1)[1].strip() for line in check_out.splitlines() if "error  " in line]
    # The whole line (the summary table shortens reasons; the run's outcome line does not).
    run_lines = sorted((line[line.index(prefix):] for line in (run_out + run_err).splitlines() if prefix in line),
                       key=len, reverse=True)
    assert len(check_lines) == 1 and check_lines[0].startswith(prefix), check_out
    assert run_lines and run_code == (2 if kind == "unreachable" else 1), run_out + run_err
    assert _head(check_lines[0]) == _head(run_lines[0]), (check_lines[0], run_lines[0])
    assert all(d in check_lines[0] and d in run_lines[0] for d in details), (check_lines[0], run_lines[0])
    assert "Traceback" not in run_err and fresh_fake.token("us") not in check_out + run_out + run_err
    if kind in ("server", "bad_answer_app_null", "bad_answer_redirect", "permission"):
        assert "INTERCOM_ACCESS_TOKEN_US" not in check_lines[0] + run_lines[0], "no setting is the cause"


def test_the_region_hint_never_builds_a_variable_from_the_servers_string(monkeypatch, capsys, tmp_path) -> None:
    body = {"type": "admin", "id": "1", "app": {"id_code": "abc123", "name": "Acme", "region": "Mars\nINJECTED"}}
    with _odd_me(200, body) as url:
        set_env(monkeypatch, {"INTERCOM_ACCESS_TOKEN_US": "tok", "INTERCOM_BASE_URL_US": url,
                              "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb")})
        assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "INTERCOM_ACCESS_TOKEN_MARS" not in out and "INTERCOM_ACCESS_TOKEN_" not in out.replace(
        "INTERCOM_ACCESS_TOKEN_US", "")
    assert "Mars INJECTED" in out and "a data region this tool does not know" in out
    assert "\nINJECTED" not in out


def test_without_network_check_and_run_say_the_same_and_run_blames_no_unset_variable(monkeypatch, capsys,
                                                                                     tmp_path) -> None:
    """No base URL set: the default host does not resolve (no network here); neither command
    may name INTERCOM_BASE_URL_US, which the user never set."""
    set_env(monkeypatch, {"INTERCOM_ACCESS_TOKEN_US": "tok", "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb"),
                          "IRU_PII_KEY": TEST_PII_KEY, "HTTPS_PROXY": f"http://127.0.0.1:{_closed_port()}",
                          "NO_PROXY": ""})
    assert main(["check"]) == 1
    check_out = capsys.readouterr().out
    assert main(["run"]) == 2
    run_err = capsys.readouterr().err
    check_line = [line.split("error", 1)[1].strip() for line in check_out.splitlines() if "error  " in line][0]
    assert run_err.strip() == f"iru-pipeline: {check_line}"
    assert check_line.startswith("[us] unreachable host: cannot connect to the proxy 127.0.0.1:")
    assert "HTTPS_PROXY" in check_line and "INTERCOM_BASE_URL_US" not in check_line
