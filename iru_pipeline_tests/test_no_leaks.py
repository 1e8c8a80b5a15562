"""No token, no PII key, no message body and no clear contact e-mail anywhere the pipeline
writes: DuckDB, the dlt pipelines dir, Dagster storage and logs, and the terminal."""

from __future__ import annotations

from pathlib import Path

from iru_pipeline.cli import main
from iru_pipeline.fake_intercom import MESSAGE_BODY_MARKER, FakeIntercom
from iru_pipeline_tests.helpers import (
    TEST_PII_KEY,
    files_containing,
    pipeline_env,
    tables_containing,
)


def needles_for(fake: FakeIntercom) -> dict[str, str]:
    needles = {f"token_{r}": fake.token(r) for r in fake.regions}
    needles["pii_key"] = TEST_PII_KEY
    needles["message_body"] = MESSAGE_BODY_MARKER
    for region in fake.regions:
        contacts = [c for c in fake.workspace(region).contacts() if c.get("email")]
        for i, c in enumerate(contacts[:40]):
            needles[f"contact_email_{region}_{i}"] = c["email"]
        phones = [c for c in fake.workspace(region).contacts() if c.get("phone")]
        for i, c in enumerate(phones[:10]):
            needles[f"contact_phone_{region}_{i}"] = c["phone"]
    return needles


def test_nothing_secret_or_personal_is_written(fresh_fake: FakeIntercom, tmp_path: Path, monkeypatch, capsys) -> None:
    for key, value in pipeline_env(fresh_fake, tmp_path).items():
        monkeypatch.setenv(key, value)
    assert main(["run", "--reconcile"]) == 0
    # The loaded rows live in DuckDB only: a loaded dlt package keeps no job file (a copy of
    # its rows) in the working dirs.
    jobs = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / ".dlt_pipelines").rglob("*_jobs/*"))
    assert jobs == []
    # Error paths leak most: a revoked token mid-run in one region, 5xx and drops in another.
    fresh_fake.workspace("us").update_contacts(count=50)
    fresh_fake.faults("eu").update(revoke_token_after=3)
    fresh_fake.faults("us").update(error_every=4, drop_every=7)
    assert main(["run"]) == 1
    captured = capsys.readouterr()
    terminal = captured.out + captured.err
    assert "[eu]" in terminal and "rejected the access token" in terminal

    needles = needles_for(fresh_fake)
    assert files_containing(tmp_path, needles) == []
    assert tables_containing(tmp_path / "iru.duckdb", needles) == []
    assert [name for name, value in needles.items() if value in terminal] == []


PASSWORD = "Pw-in-url-7Qz9"


def test_a_password_in_any_url_setting_is_never_printed_or_written(tmp_path: Path) -> None:
    """user:password@ in every base URL setting and in the proxy settings: `check` and `run`
    succeed or fail in one line, and the password is in no output and no file written
    (DuckDB, dlt dir, Dagster home, exports)."""
    from iru_pipeline_tests.helpers import PipelineProcess, small_fake

    outputs: list[str] = []
    data = tmp_path / "data"
    data.mkdir()

    def cli(env: dict[str, str], *args: str) -> int:
        run = PipelineProcess(env, *args, cwd=tmp_path)
        code = run.finish()
        outputs.append(run.terminal)
        assert "Traceback" not in run.terminal, run.terminal[-3000:]
        return code

    with small_fake() as fake:
        base = pipeline_env(fake, data)
        for region in ("US", "EU", "AU"):
            env = {**base, f"INTERCOM_ACCESS_TOKEN_{region}": base.get(f"INTERCOM_ACCESS_TOKEN_{region}", "tok"),
                   f"INTERCOM_BASE_URL_{region}": fake.base_url("us").replace("://", f"://ops:{PASSWORD}@")}
            for command in ("check", "run"):
                assert cli(env, command) == 2
                assert f"INTERCOM_BASE_URL_{region}" in outputs[-1] and "user-info" in outputs[-1]
        proxy = f"http://proxyuser:{PASSWORD}@127.0.0.1:9"  # nothing listens on port 9
        proxies = {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "ALL_PROXY": proxy,
                   "http_proxy": proxy, "https_proxy": proxy}
        assert cli({**base, **proxies}, "run") == 2
        assert "the proxy 127.0.0.1:9" in outputs[-1]
        assert cli({**base, **proxies}, "check") != 0
        bypass = {**base, **proxies, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        assert cli(bypass, "check") == 0
        assert cli(bypass, "run") == 0
        assert cli(bypass, "export") == 0

    needles = {"password": PASSWORD}
    assert [n for n, v in needles.items() if any(v in out for out in outputs)] == []
    assert files_containing(data, needles) == []
    assert tables_containing(data / "iru.duckdb", needles) == []
