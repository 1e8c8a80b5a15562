"""`iru-pipeline check` on good, wrong-region and missing-scope set-ups."""

from __future__ import annotations


import pytest

from iru_pipeline.cli import main
from iru_pipeline.fake_intercom import FakeIntercom


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
    assert out.count("readable") == 3 * 10


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
