"""Bad settings are reported before any request, in one line naming the setting and the fix."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import duckdb
import pytest

from iru_pipeline.config import ConfigError, Secret, load_settings
from iru_pipeline_tests.helpers import TEST_PII_KEY

GOOD = {"INTERCOM_ACCESS_TOKEN_US": "tok_us_123", "IRU_PII_KEY": TEST_PII_KEY}


def settings_error(env: dict[str, str], **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env, **kwargs)
    message = str(info.value)
    assert "\n" not in message, "config errors are one line"
    return message


def test_token_enables_region_with_default_host(tmp_path: Path) -> None:
    s = load_settings(env={**GOOD, "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb")})
    assert [(w.name, w.region_code) for w in s.workspaces] == [("us", "us")]
    assert s.workspaces[0].base_url == "https://api.intercom.io"
    assert s.pipelines_dir == tmp_path / ".dlt_pipelines"


def test_eu_and_au_use_their_own_hosts(tmp_path: Path) -> None:
    env = {"INTERCOM_ACCESS_TOKEN_EU": "a", "INTERCOM_ACCESS_TOKEN_AU": "b", "IRU_PII_KEY": TEST_PII_KEY,
           "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb")}
    hosts = {w.name: w.host for w in load_settings(env=env).workspaces}
    assert hosts == {"eu": "api.eu.intercom.io", "au": "api.au.intercom.io"}


def test_no_region_enabled_names_the_variables() -> None:
    msg = settings_error({"IRU_PII_KEY": TEST_PII_KEY})
    assert "INTERCOM_ACCESS_TOKEN_US" in msg and "demo" in msg


def test_empty_token_with_base_url_is_an_error() -> None:
    msg = settings_error({**GOOD, "INTERCOM_ACCESS_TOKEN_EU": "", "INTERCOM_BASE_URL_EU": "http://127.0.0.1:9"})
    assert "INTERCOM_ACCESS_TOKEN_EU is empty" in msg


def test_whitespace_token_is_an_error() -> None:
    assert "only whitespace" in settings_error({**GOOD, "INTERCOM_ACCESS_TOKEN_US": "   "})


def test_token_with_newline_is_reported_without_echoing_it() -> None:
    msg = settings_error({**GOOD, "INTERCOM_ACCESS_TOKEN_US": "secret-part\nsecond-line"})
    assert "line break" in msg and "secret-part" not in msg


def test_unknown_region_variable_is_an_error() -> None:
    assert "unknown region 'XX'" in settings_error({**GOOD, "INTERCOM_ACCESS_TOKEN_XX": "t"})


def test_unknown_region_flag_is_an_error() -> None:
    assert "unknown region 'mars'" in settings_error(GOOD, only_regions=["mars"])


def test_region_flag_for_disabled_region_says_which_variable() -> None:
    assert "INTERCOM_ACCESS_TOKEN_AU" in settings_error(GOOD, only_regions=["au"])


@pytest.mark.parametrize("url", ["ftp://example.com", "api.intercom.io", "http://", "https://h:99999",
                                 "https://user:pw@api.intercom.io", "https://api.intercom.io?x=1"])
def test_malformed_base_url_is_an_error(url: str) -> None:
    msg = settings_error({**GOOD, "INTERCOM_BASE_URL_US": url})
    assert "INTERCOM_BASE_URL_US" in msg


def test_missing_pii_key_explains_how_to_make_one() -> None:
    msg = settings_error({"INTERCOM_ACCESS_TOKEN_US": "t"})
    assert "IRU_PII_KEY is not set" in msg and "token_hex" in msg


@pytest.mark.parametrize(("key", "reason"), [
    ("short", "5 characters, at least 32 needed"),
    ("test-pii-key-6d2f0c4e9a8b7f1e", "29 characters, at least 32 needed"),  # accepted before: 16 were enough
    (" " + TEST_PII_KEY, "surrounding whitespace"),
    ("k" * 32, "only 1 distinct characters"),
    ("passwordpasswordpasswordpassword", "only 7 distinct characters"),
    ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabcdefghijk", "more than a third"),
    ("pii-key-0123456789abcdef0123456789abcdef", "a run of 8 repeated or consecutive characters"),
    ("zyxwvutsrq-my-workspace-secret-key", "a run of 8 repeated or consecutive characters"),
])
def test_a_weak_pii_key_is_refused_in_one_line_without_quoting_it(key: str, reason: str) -> None:
    msg = settings_error({**GOOD, "IRU_PII_KEY": key})
    assert msg.startswith("IRU_PII_KEY is too weak (") and reason in msg
    assert "secrets.token_hex(32)" in msg
    assert key.strip() not in msg


def test_keys_from_the_documented_generator_are_accepted() -> None:
    import secrets

    for _ in range(2000):
        key = secrets.token_hex(32)
        assert load_settings(env={**GOOD, "IRU_PII_KEY": key}).pii_key == Secret(key)


@pytest.mark.parametrize("var", ["INTERCOM_BASE_URL_US", "INTERCOM_BASE_URL_EU", "INTERCOM_BASE_URL_AU"])
@pytest.mark.parametrize("url", ["https://ops:Hunter2-pw@api.intercom.io", "http://ops:Hunter2-pw@127.0.0.1:99999/x",
                                 "ops:Hunter2-pw@api.intercom.io", "https://:Hunter2-pw@h?q=1"])
def test_a_password_in_a_base_url_is_refused_without_printing_it(var: str, url: str) -> None:
    region = var.rsplit("_", 1)[1]
    msg = settings_error({**GOOD, f"INTERCOM_ACCESS_TOKEN_{region}": "tok", var: url})
    assert var in msg and "Hunter2" not in msg and "ops:" not in msg


def test_redact_url_drops_user_info_only() -> None:
    from iru_pipeline.config import redact_url

    assert redact_url("https://u:p@h:8443/v1?x=1") == "https://***@h:8443/v1?x=1"
    assert redact_url("u:p@h/a") == "***@h/a"
    assert redact_url("http://h/a@b") == "http://h/a@b"  # an @ in the path is not user-info
    assert redact_url("https://api.intercom.io") == "https://api.intercom.io"


def test_duckdb_path_in_missing_folder(tmp_path: Path) -> None:
    msg = settings_error({**GOOD, "IRU_DUCKDB_PATH": str(tmp_path / "nope" / "x.duckdb")})
    assert "does not exist" in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_duckdb_path_in_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    assert "not writable" in settings_error({**GOOD, "IRU_DUCKDB_PATH": str(ro / "x.duckdb")})


def test_duckdb_file_that_is_not_a_database(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.duckdb"
    bogus.write_text("these are my notes, not a database\n" * 5)
    assert "not a DuckDB database" in settings_error({**GOOD, "IRU_DUCKDB_PATH": str(bogus)})


def test_existing_duckdb_file_is_accepted(tmp_path: Path) -> None:
    db = tmp_path / "real.duckdb"
    duckdb.connect(str(db)).close()
    assert load_settings(env={**GOOD, "IRU_DUCKDB_PATH": str(db)}).duckdb_path == db


def test_unreadable_evidence_config(tmp_path: Path) -> None:
    msg = settings_error({**GOOD, "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb"),
                          "IRU_EVIDENCE_CONFIG": str(tmp_path / "missing.toml")})
    assert "IRU_EVIDENCE_CONFIG" in msg and "cannot be read" in msg


def test_invalid_toml_evidence_config(tmp_path: Path) -> None:
    cfg = tmp_path / "e.toml"
    cfg.write_text("stale_admin_days = = 3\n")
    msg = settings_error({**GOOD, "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb"), "IRU_EVIDENCE_CONFIG": str(cfg)})
    assert "not valid TOML" in msg


def test_secret_never_shows_itself() -> None:
    s = Secret("hunter2-token")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(s)


# --------------------------------------------------------------------------- settings handed to Dagster


def _handed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]):
    """Settings validated from `env` (set in the process environment, as the CLI sees it) and
    the value Dagster's run config receives for them."""
    from iru_pipeline.resources import SettingsConfig

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    return settings, SettingsConfig.from_settings(settings)


def test_settings_cross_into_dagster_with_secrets_as_variable_names(tmp_path: Path, monkeypatch) -> None:
    import json

    evidence = tmp_path / "evidence.toml"
    evidence.write_text("stale_admin_days = 45\n")
    env = {"INTERCOM_ACCESS_TOKEN_EU": "tok_eu_secret_42", "INTERCOM_BASE_URL_EU": "http://127.0.0.1:8711/",
           "INTERCOM_ACCESS_TOKEN_US": "tok_us_secret_17", "IRU_PII_KEY": TEST_PII_KEY,
           "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb"), "IRU_EVIDENCE_CONFIG": str(evidence)}
    settings, value = _handed_over(tmp_path, monkeypatch, env)
    dumped = value.model_dump()
    assert dumped == {
        "duckdb_path": str(tmp_path / "x.duckdb"),
        "workspaces": [  # in REGION_CODES order; the base URL as validated (no trailing slash)
            {"name": "us", "region": "us", "base_url": "https://api.intercom.io",
             "token_env": "INTERCOM_ACCESS_TOKEN_US", "token_file": None, "base_url_setting": None},
            {"name": "eu", "region": "eu", "base_url": "http://127.0.0.1:8711",
             "token_env": "INTERCOM_ACCESS_TOKEN_EU", "token_file": None, "base_url_setting": None},
        ],
        "pii_key_env": "IRU_PII_KEY",
        "evidence_config_path": str(evidence),
        "signing_key_file": None,
    }
    text = json.dumps(dumped)
    assert "tok_eu_secret_42" not in text and "tok_us_secret_17" not in text and TEST_PII_KEY not in text
    # Resolved (as a run does), the value gives back the settings that were validated.
    assert value.resolve() == settings
    eu = value.resolve("eu")
    assert [w.name for w in eu.workspaces] == ["eu"] and eu.workspaces[0].token == Secret("tok_eu_secret_42")
    assert eu.evidence_config == {"stale_admin_days": 45} and eu.pii_key == Secret(TEST_PII_KEY)


def test_a_token_unset_after_validation_is_one_line_naming_its_variable(tmp_path: Path, monkeypatch) -> None:
    from iru_pipeline.resources import IntercomResource

    _settings, value = _handed_over(tmp_path, monkeypatch, {**GOOD, "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb")})
    monkeypatch.delenv("INTERCOM_ACCESS_TOKEN_US")
    with pytest.raises(ConfigError) as info:
        IntercomResource(validated_settings=value).settings("us")
    assert str(info.value) == "INTERCOM_ACCESS_TOKEN_US is not set: set it to the access token of workspace us"


def test_a_changed_setting_fails_the_same_checks_when_resolved(tmp_path: Path, monkeypatch) -> None:
    _settings, value = _handed_over(tmp_path, monkeypatch, {**GOOD, "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb")})
    monkeypatch.setenv("IRU_PII_KEY", "short")
    with pytest.raises(ConfigError, match=r"^IRU_PII_KEY is too weak \(5 characters"):
        value.resolve("us")
    monkeypatch.setenv("IRU_PII_KEY", TEST_PII_KEY)
    monkeypatch.setenv("INTERCOM_ACCESS_TOKEN_US", "tok\nsecond-line")
    with pytest.raises(ConfigError, match="^INTERCOM_ACCESS_TOKEN_US contains whitespace or a line break"):
        value.resolve("us")


def test_a_region_outside_the_handed_settings_names_its_variable(tmp_path: Path, monkeypatch) -> None:
    _settings, value = _handed_over(tmp_path, monkeypatch, {**GOOD, "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb")})
    with pytest.raises(ConfigError) as info:
        value.resolve("au")
    assert str(info.value) == ("workspace au was asked for but is not configured: set INTERCOM_ACCESS_TOKEN_AU "
                               "to its access token")


def test_a_token_file_reference_reads_an_owner_only_file(tmp_path: Path, monkeypatch) -> None:
    from iru_pipeline.resources import SettingsConfig, WorkspaceConfig

    token_file = tmp_path / "us-token"
    token_file.write_text("tok_from_file_9\n")
    token_file.chmod(0o600)
    monkeypatch.setenv("IRU_PII_KEY", TEST_PII_KEY)
    value = SettingsConfig(duckdb_path=str(tmp_path / "x.duckdb"), pii_key_env="IRU_PII_KEY",
                           workspaces=[WorkspaceConfig(name="us", region="us", base_url="https://api.intercom.io",
                                                       token_file=str(token_file))])
    assert value.resolve("us").workspaces[0].token == Secret("tok_from_file_9")  # the file's line break dropped
    token_file.chmod(0o640)
    with pytest.raises(ConfigError) as info:
        value.resolve("us")
    assert str(info.value) == f"{token_file} may be read by other users (mode 640): chmod 600 {token_file}"
