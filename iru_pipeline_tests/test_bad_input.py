"""Bad input: each reported in one line naming the setting or the source, with a non-zero exit,
no traceback, and nothing written (no DuckDB file, no Dagster home, no dlt working dir).

Settings go through the real command line (`main([...])`, and a few through a real
`python -m iru_pipeline.cli run` process to prove no traceback reaches stderr). The settings
checks of `load_settings` alone are in test_config.py. Bad API answers go through real runs
against the fake: a region fails with a one-line error naming region and endpoint and
without moving its cursors, or, for unknown values and new fields, loads them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iru_pipeline.cli import main
from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline_tests.helpers import (
    FAST,
    TEST_PII_KEY,
    PipelineProcess,
    assert_matches_fake,
    assert_nothing_leaked,
    assert_values_match_fake,
    committed_cursors,
    data_dir_listing,
    hold_duckdb_open,
    pipeline_env,
    query,
    run_with_env,
    small_fake,
)

AS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def quiet_fake() -> Iterator[FakeIntercom]:
    """A fake that must never be asked anything by a run with a bad setting."""
    with small_fake() as fake:
        yield fake


def good_env(fake: FakeIntercom, data: Path) -> dict[str, str]:
    return pipeline_env(fake, data)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# Each case: (id, change to a good environment, extra CLI args, what the one line must name).
# A change maps a variable to a value, or to a callable(data_dir) giving the value (files).
SETTINGS_CASES: list[Any] = [
    pytest.param({"INTERCOM_ACCESS_TOKEN_EU": "", "INTERCOM_BASE_URL_EU": "http://127.0.0.1:9"}, [],
                 ["INTERCOM_ACCESS_TOKEN_EU is empty", "INTERCOM_BASE_URL_EU"],
                 id="empty-token-with-base-url"),
    pytest.param({"INTERCOM_ACCESS_TOKEN_US": " \t "}, [], ["INTERCOM_ACCESS_TOKEN_US is only whitespace"],
                 id="whitespace-token"),
    pytest.param({"INTERCOM_ACCESS_TOKEN_US": "tok_first_half\ntok_second_half"}, [],
                 ["INTERCOM_ACCESS_TOKEN_US", "line break"], id="token-with-newline"),
    pytest.param({}, ["--region", "mars"], ["unknown region 'mars'", "us, eu, au"], id="unknown-region-flag"),
    pytest.param({"INTERCOM_ACCESS_TOKEN_MARS": "tok"}, [], ["INTERCOM_ACCESS_TOKEN_MARS", "unknown region"],
                 id="unknown-region-variable"),
    pytest.param({"INTERCOM_BASE_URL_US": "api.intercom.io/v2"}, [], ["INTERCOM_BASE_URL_US", "http(s)"],
                 id="base-url-without-scheme"),
    pytest.param({"INTERCOM_BASE_URL_US": "ftp://api.intercom.io"}, [], ["INTERCOM_BASE_URL_US", "http(s)"],
                 id="base-url-not-http"),
    pytest.param({"INTERCOM_BASE_URL_US": "https://api.intercom.io:99999"}, [], ["INTERCOM_BASE_URL_US"],
                 id="base-url-bad-port"),
    pytest.param({"IRU_EVIDENCE_CONFIG": lambda d: str(d.parent / "missing.toml")}, [],
                 ["IRU_EVIDENCE_CONFIG", "cannot be read"], id="evidence-config-missing"),
    pytest.param({"IRU_EVIDENCE_CONFIG": lambda d: str(d.parent)}, [], ["IRU_EVIDENCE_CONFIG", "cannot be read"],
                 id="evidence-config-is-a-folder"),
    pytest.param({"IRU_EVIDENCE_CONFIG": lambda d: str(_write(d.parent / "bad.toml", "stale_admin_days = = 3\n"))},
                 [], ["IRU_EVIDENCE_CONFIG", "not valid TOML"], id="evidence-config-not-toml"),
    pytest.param({"IRU_EVIDENCE_CONFIG": lambda d: str(_write(d.parent / "e.toml", "stale_admin_days = -1\n"))},
                 [], ["stale_admin_days", "at least 1"], id="evidence-config-bad-value"),
    pytest.param({"IRU_EVIDENCE_CONFIG": lambda d: str(_write(d.parent / "e.toml", "stale_admin_dayz = 30\n"))},
                 [], ["stale_admin_dayz"], id="evidence-config-unknown-key"),
    pytest.param({"IRU_EVIDENCE_CONFIG": lambda d: _roster_config(d, "email,person_id,status\na@x.test,1,active\n"
                                                                      "b@x.test,2,fired\n")},
                 [], ["hr_roster", "line 3", "fired"], id="roster-csv-bad-status"),
    pytest.param({"IRU_EVIDENCE_CONFIG": lambda d: _roster_config(d, "email,status\na@x.test,active\n")},
                 [], ["hr_roster", "missing column person_id"], id="roster-csv-missing-column"),
    pytest.param({"IRU_EVIDENCE_CONFIG": lambda d: _roster_config(d, None)},
                 [], ["hr_roster", "cannot read"], id="roster-csv-missing-file"),
    pytest.param({"IRU_DUCKDB_PATH": lambda d: str(d / "no" / "such" / "iru.duckdb")}, [],
                 ["IRU_DUCKDB_PATH", "does not exist"], id="duckdb-in-missing-folder"),
    pytest.param({"IRU_DUCKDB_PATH": lambda d: str(_write(d / "iru.duckdb", "my notes, not a database\n" * 20))},
                 [], ["IRU_DUCKDB_PATH", "not a DuckDB database"], id="duckdb-file-not-a-database"),
    pytest.param({"IRU_DUCKDB_PATH": lambda d: _truncated_duckdb(d)}, [], ["IRU_DUCKDB_PATH"],
                 id="duckdb-file-truncated"),
    pytest.param({"IRU_DUCKDB_PATH": lambda d: _read_only_location(d)}, [], ["IRU_DUCKDB_PATH"],
                 id="duckdb-in-read-only-folder"),
    pytest.param({"IRU_PII_KEY": ""}, [], ["IRU_PII_KEY is not set"], id="pii-key-missing"),
]


def _roster_config(data: Path, roster: str | None) -> str:
    if roster is not None:
        _write(data.parent / "roster.csv", roster)
    return str(_write(data.parent / "evidence.toml", '[inputs]\nhr_roster = "roster.csv"\n'))


def _truncated_duckdb(data: Path) -> str:
    """A real DuckDB file cut short (a copy interrupted half-way): the header says DuckDB."""
    import duckdb

    source = data.parent / "whole.duckdb"
    con = duckdb.connect(str(source))
    con.execute("create table t as select range as i from range(100000)")
    con.close()
    cut = data / "iru.duckdb"
    cut.write_bytes(source.read_bytes()[:5000])
    source.unlink()
    return str(cut)


def _read_only_location(data: Path) -> str:
    if AS_ROOT:
        # Root writes into chmod-ed folders; /proc refuses new files even to root.
        return "/proc/iru-pipeline-test.duckdb"
    ro = data / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return str(ro / "iru.duckdb")


def bad_env(fake: FakeIntercom, data: Path, change: dict[str, Any]) -> dict[str, str]:
    env = good_env(fake, data)
    for key, value in change.items():
        env[key] = value(data) if callable(value) else value
    return env


def assert_one_line(err: str, names: list[str]) -> str:
    line = err.strip()
    assert line, "no error message"
    assert "\n" not in line, f"more than one line:\n{err}"
    assert line.startswith("iru-pipeline: "), line
    for name in names:
        assert name in line, (name, line)
    assert "Traceback" not in err
    return line


@pytest.mark.parametrize(("change", "args", "names"), SETTINGS_CASES)
def test_bad_setting_is_one_line_before_any_request_and_writes_nothing(
        change: dict[str, Any], args: list[str], names: list[str], quiet_fake: FakeIntercom,
        tmp_path: Path, monkeypatch, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = bad_env(quiet_fake, data, change)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = data_dir_listing(tmp_path)
    for region in quiet_fake.regions:
        quiet_fake.reset_stats(region)

    code = main(["run", *args])

    out, err = capsys.readouterr()
    assert code == 2, (code, out[-2000:], err[-2000:])
    line = assert_one_line(err, names)
    assert out == ""
    assert "tok_first_half" not in line and quiet_fake.token("us") not in line
    assert data_dir_listing(tmp_path) == before, "a bad setting must write nothing"
    assert quiet_fake.stats("us")["total_requests"] == 0, "no request may be made"


def test_duckdb_locked_by_another_process_says_so_and_what_to_do(quiet_fake: FakeIntercom, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    holder = hold_duckdb_open(data / "iru.duckdb")
    try:
        before = data_dir_listing(tmp_path)
        for region in quiet_fake.regions:
            quiet_fake.reset_stats(region)
        run = PipelineProcess(good_env(quiet_fake, data), "run", cwd=tmp_path)
        code = run.finish(timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2, run.terminal[-2000:]
    assert_one_line(run.stderr, ["IRU_DUCKDB_PATH", "locked by another process", f"process {holder.pid}", "close"])
    assert run.stdout == ""
    assert data_dir_listing(tmp_path) == before
    assert quiet_fake.stats("us")["total_requests"] == 0


@pytest.mark.parametrize("change", [
    pytest.param({"INTERCOM_ACCESS_TOKEN_US": "tok_first_half\ntok_second_half"}, id="token-with-newline"),
    pytest.param({"IRU_DUCKDB_PATH": lambda d: str(_write(d / "iru.duckdb", "not a database\n" * 40))},
                 id="duckdb-file-not-a-database"),
    pytest.param({"IRU_EVIDENCE_CONFIG": lambda d: str(_write(d.parent / "e.toml", "stale_admin_days = -1\n"))},
                 id="evidence-config-bad-value"),
])
def test_the_real_command_prints_one_line_and_no_traceback(change: dict[str, Any], quiet_fake: FakeIntercom,
                                                         tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = bad_env(quiet_fake, data, change)
    before = data_dir_listing(tmp_path)
    quiet_fake.reset_stats("us")
    run = PipelineProcess(env, "run", cwd=tmp_path)
    assert run.finish(timeout=120) == 2, run.terminal[-2000:]
    assert_one_line(run.stderr, [])
    assert run.stdout == ""
    assert data_dir_listing(tmp_path) == before
    assert quiet_fake.stats("us")["total_requests"] == 0


def test_a_base_url_on_a_closed_port_is_one_line_naming_the_setting_and_writes_nothing(
        tmp_path: Path, monkeypatch, capsys) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "data"
    data.mkdir()
    for key, value in {"INTERCOM_ACCESS_TOKEN_US": "tok_us", "INTERCOM_BASE_URL_US": f"http://127.0.0.1:{port}",
                       "IRU_PII_KEY": TEST_PII_KEY, "IRU_DUCKDB_PATH": str(data / "iru.duckdb")}.items():
        monkeypatch.setenv(key, value)
    code = main(["run"])
    out, err = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in err
    errors = [line for line in (out + err).splitlines() if "INTERCOM_BASE_URL_US" in line]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0], out + err
    assert data_dir_listing(data) == {}, "an unreachable host must not leave a database, Dagster home or exports"


def test_an_unreachable_proxy_is_named_instead_of_the_host(quiet_fake: FakeIntercom, tmp_path: Path,
                                                            monkeypatch, capsys) -> None:
    """httpx sends requests through HTTP(S)_PROXY: the start-up check tries the proxy the run
    would use, not the host behind it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "data"
    data.mkdir()
    for key, value in {**good_env(quiet_fake, data), "HTTP_PROXY": f"http://127.0.0.1:{port}", "NO_PROXY": ""}.items():
        monkeypatch.setenv(key, value)
    code = main(["run"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert_one_line(err, ["[us] unreachable host: ", f"cannot connect to the proxy 127.0.0.1:{port}", "HTTP_PROXY",
                          "INTERCOM_BASE_URL_US"])
    assert data_dir_listing(data) == {}
    assert quiet_fake.stats("us")["total_requests"] == 0


# --------------------------------------------------------------------------- bad answers from the API


API_FAULTS = [
    pytest.param({"malformed_paths": ("/contacts/search",), "malformed_kind": "not_json"},
                 ["[us] bad answer: ", "POST /contacts/search", "non-JSON"], ("POST /contacts/search", 7), "contacts",
                 id="non-json-200"),
    pytest.param({"malformed_paths": ("/admins$",), "malformed_kind": "wrong_shape"},
                 # Asked twice: by admins, and by the activity-log pseudonymiser (which then
                 # pseudonymises every e-mail in log text, admins' included).
                 ["[us] bad answer: ", "GET /admins", "no 'admins' list"], ("GET /admins", 2), "admins",
                 id="json-of-the-wrong-shape"),
    pytest.param({"repeat_cursor_paths": ("/contacts/search",)},
                 ["[us] bad answer: ", "POST /contacts/search", "already returned"], ("POST /contacts/search", 2),
                 "contacts", id="cursor-that-repeats"),
]


@pytest.mark.parametrize(("faults", "names", "calls", "resource"), API_FAULTS)
def test_a_bad_answer_fails_its_resource_in_one_line_and_moves_no_cursor_of_it(
        faults: dict[str, Any], names: list[str], calls: tuple[str, int], resource: str, tmp_path: Path,
        caplog) -> None:
    from iru_pipeline.intercom_source.helpers import EPOCH

    with small_fake(contacts=600) as fake:  # four pages of contacts
        fake.faults("us").update(**faults)
        env = pipeline_env(fake, tmp_path)
        settings, result = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert not result.failed and result.exit_code == 3, [o.error for o in result.outcomes]
        rows = {r["resource"]: r for r in result.sync_rows}
        assert {n for n, r in rows.items() if r["status"] != "ok"} == {resource}
        error = rows[resource]["reason"]
        assert "\n" not in error and all(n in error for n in names), error
        route, expected_calls = calls
        assert fake.stats("us")["by_route"][route] == expected_calls, "bounded: retried at most max_retries times"
        db = settings.duckdb_path
        cursors = committed_cursors(db, "us") or {}
        assert cursors.get(resource) in (None, EPOCH), "the failed resource's cursor was not moved"
        assert len(cursors) >= 3, f"the other resources committed their cursors: {cursors}"

        fake.clear_faults()
        _, again = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert again.exit_code == 0, [o.error for o in again.outcomes]
        assert_matches_fake(db, fake)
        assert_values_match_fake(db, fake)
        assert_nothing_leaked(tmp_path, fake, caplog.text)


REQUEST_BUDGET = 1500


@pytest.mark.parametrize(("offset", "contacts"), [
    pytest.param(+5000, 300, id="total_count-above-the-rows"),
    pytest.param(-250, 3500, id="total_count-below-the-rows"),
])
def test_a_total_count_that_disagrees_with_the_rows_loses_nothing(offset: int, contacts: int, tmp_path: Path) -> None:
    """`total_count` is advice (search counts lag and approximate): every row is still read,
    none twice, and the run ends."""
    with small_fake(contacts=contacts, conversations=200) as fake:
        # A circuit breaker: a quiet first run needs a few dozen requests; a run that keeps
        # splitting windows by the false count is stopped by a revoked token instead of hanging.
        fake.faults("us").update(total_count_offset=offset, revoke_token_after=REQUEST_BUDGET)
        settings, result = run_with_env(pipeline_env(fake, tmp_path), with_evidence=False, intercom_options=FAST)
        assert fake.stats("us")["total_requests"] <= REQUEST_BUDGET, "the run kept asking (window splitting by a false count)"
        assert result.exit_code == 0, [o.error for o in result.outcomes]
        assert_matches_fake(settings.duckdb_path, fake)
        assert_values_match_fake(settings.duckdb_path, fake)


def test_unknown_enum_values_new_fields_and_odd_id_types_are_kept_not_fatal(tmp_path: Path, monkeypatch) -> None:
    with small_fake() as fake:
        ws = fake.workspace("us")
        store = ws.conversation_store
        conv = next(iter(ws.conversations()))
        index = store.find(conv["id"])
        rec = store.editable_copy(index)
        rec.update(state="escalated_to_legal", priority="p0", sentiment={"score": -0.9, "label": "angry"},
                   admin_assignee_id=str(rec.get("admin_assignee_id") or 7310002), team_assignee_id=5017695.0,
                   brand_new_flag=True)
        rec["source"] = {**rec["source"], "type": "carrier_pigeon", "delivered_as": "by_wing"}
        rec["tags"] = {"type": "tag.list", "tags": [{"type": "tag", "id": 4100004, "name": "vip"}]}
        store.put(index, rec)
        contact = next(iter(ws.contacts()))
        cindex = ws.contact_store.find(contact["id"])
        crec = ws.contact_store.editable_copy(cindex)
        crec.update(role="visitor_v2", loyalty_tier="gold", owner_id=7310002.0)
        ws.contact_store.put(cindex, crec)
        admins = ws.admins
        monkeypatch.setattr(ws, "admins", lambda **kw: [
            {**a, "okta_user_id": f"okta-{a['id']}", "seat_type": "lite", "role": {"type": "role", "id": 1009,
                                                                                  "name": "Auditor"}}
            for a in admins(**kw)])

        settings, result = run_with_env(pipeline_env(fake, tmp_path), with_evidence=False, intercom_options=FAST)
        assert result.exit_code == 0, [o.error for o in result.outcomes]
        db = settings.duckdb_path
        assert_matches_fake(db, fake)
        row = query(db, "select state, priority, source_type, source_delivered_as, admin_assignee_id, "
                        "team_assignee_id, tag_ids from intercom.conversations where region = 'us' and id = ?",
                    [str(conv["id"])])
        assert row == [("escalated_to_legal", "p0", "carrier_pigeon", "by_wing", rec["admin_assignee_id"],
                        "5017695", '["4100004"]')], row
        assert query(db, "select role, owner_id from intercom.contacts where region = 'us' and id = ?",
                     [contact["id"]]) == [("visitor_v2", "7310002")]
        # Admins carry no customer personal data: fields Intercom adds later are kept.
        admin_cols = {r[0] for r in query(db, "select column_name from information_schema.columns "
                                              "where table_schema = 'intercom' and table_name = 'admins'")}
        assert {"okta_user_id", "seat_type"} <= admin_cols
        assert query(db, "select distinct role_name, role_id from intercom.admins where region = 'us'") \
            == [("Auditor", "1009")]
