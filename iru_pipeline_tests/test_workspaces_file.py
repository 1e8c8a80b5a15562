"""The workspaces file: every good entry becomes a workspace, every bad one is one line naming
the file, the workspace and the fix, before any request; the INTERCOM_ACCESS_TOKEN_* variables
keep defining workspaces named us, eu, au; --workspace and --region select."""

from __future__ import annotations

from pathlib import Path

import pytest

from iru_pipeline.config import ConfigError, Secret, configured_workspace_names, load_settings
from iru_pipeline_tests.helpers import TEST_PII_KEY

GOOD = """
[workspaces.acme-us]
region = "us"
token_env = "TOKEN_ACME_US"

[workspaces.acme-brand2-us]
region = "us"
token_env = "TOKEN_BRAND2"
base_url = "http://127.0.0.1:8711/"

[workspaces.acme-eu]
region = "eu"
token_file = "acme-eu.token"
"""


def _env(tmp_path: Path, text: str, **extra: str) -> dict[str, str]:
    path = tmp_path / "workspaces.toml"
    path.write_text(text)
    token = tmp_path / "acme-eu.token"
    token.write_text("tok_eu_from_file\n")
    token.chmod(0o600)
    return {"IRU_WORKSPACES_FILE": str(path), "IRU_PII_KEY": TEST_PII_KEY,
            "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb"), "TOKEN_ACME_US": "tok_acme",
            "TOKEN_BRAND2": "tok_brand2", **extra}


def _error(env: dict[str, str], **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for secret in ("tok_acme", "tok_brand2", "tok_eu_from_file"):
        assert secret not in message
    return message


def test_every_entry_becomes_a_workspace_in_file_order_then_the_variables_ones(tmp_path: Path) -> None:
    env = _env(tmp_path, GOOD, INTERCOM_ACCESS_TOKEN_AU="tok_au")
    settings = load_settings(env=env)
    got = [(w.name, w.region_code, w.base_url, w.token_setting) for w in settings.workspaces]
    assert got == [
        ("acme-us", "us", "https://api.intercom.io", "TOKEN_ACME_US"),
        ("acme-brand2-us", "us", "http://127.0.0.1:8711", "TOKEN_BRAND2"),
        ("acme-eu", "eu", "https://api.eu.intercom.io", str(tmp_path / "acme-eu.token")),
        ("au", "au", "https://api.au.intercom.io", "INTERCOM_ACCESS_TOKEN_AU"),
    ]
    assert settings.workspace("acme-eu").token == Secret("tok_eu_from_file")
    assert configured_workspace_names(env) == ["acme-us", "acme-brand2-us", "acme-eu", "au"]


def test_workspace_and_region_flags_select(tmp_path: Path) -> None:
    env = _env(tmp_path, GOOD, INTERCOM_ACCESS_TOKEN_AU="tok_au")
    names = [w.name for w in load_settings(env=env, only_regions=["us"]).workspaces]
    assert names == ["acme-us", "acme-brand2-us"]
    names = [w.name for w in load_settings(env=env, only_workspaces=["au", "acme-eu"]).workspaces]
    assert names == ["acme-eu", "au"]
    names = [w.name for w in load_settings(env=env, only_workspaces=["acme-eu"], only_regions=["us"]).workspaces]
    assert names == ["acme-us", "acme-brand2-us", "acme-eu"]
    assert _error(env, only_workspaces=["acme-uk"]).startswith(
        "workspace acme-uk was asked for but is not configured: add [workspaces.acme-uk] to workspaces.toml")
    assert _error(env, only_workspaces=["Acme"]) == (
        "--workspace 'Acme' is not a valid workspace name; use 1-40 lower-case letters, digits and '-', "
        "starting with a letter or digit")
    env.pop("INTERCOM_ACCESS_TOKEN_AU")
    assert _error(env, only_regions=["au"]).startswith(
        "region au was asked for but no workspace of it is configured: set INTERCOM_ACCESS_TOKEN_AU, or add")


@pytest.mark.parametrize(("entry", "expected"), [
    ('[workspaces.Acme]\nregion = "us"\ntoken_env = "T"',
     "[workspaces.Acme]: 'Acme' is not a valid workspace name; use 1-40 lower-case letters"),
    ('[workspaces.acme]\nregion = "mars"\ntoken_env = "T"',
     "[workspaces.acme]: region 'mars' is unknown; set region to one of us, eu, au"),
    ('[workspaces.acme]\ntoken_env = "T"', "[workspaces.acme]: region is missing; set region to one of us, eu, au"),
    ('[workspaces.acme]\nregion = "us"', "[workspaces.acme]: set exactly one of token_env"),
    ('[workspaces.acme]\nregion = "us"\ntoken_env = "T"\ntoken_file = "f"', "[workspaces.acme]: set exactly one of"),
    ('[workspaces.acme]\nregion = "us"\ntoken = "tok_acme"',
     "[workspaces.acme]: 'token' is not read: a token never goes in this file"),
    ('[workspaces.acme]\nregion = "us"\ntoken_env = "tok_acme-123.x"',
     "[workspaces.acme]: token_env is not an environment variable name (letters, digits, '_'); name the "
     "variable that holds the token, never the token itself"),
    ('[workspaces.acme]\nregion = "us"\ntoken_env = "T"\nbase = "x"', "[workspaces.acme]: unknown key 'base'"),
    ('[workspaces.acme]\nregion = "us"\ntoken_env = "UNSET_VAR"',
     "[workspaces.acme]: UNSET_VAR (token_env) is empty or not set: put the access token of workspace acme there"),
    ('[workspaces.acme]\nregion = "us"\ntoken_env = "TOKEN_ACME_US"\nbase_url = "ftp://x"',
     "[workspaces.acme]: base_url='ftp://x' is not an http(s) URL: use e.g. https://api.intercom.io"),
    ('[workspaces.us]\nregion = "us"\ntoken_env = "TOKEN_ACME_US"',
     "[workspaces.us]: the name us is taken by INTERCOM_ACCESS_TOKEN_US"),
    ('[workspace.acme]\nregion = "us"', "unexpected 'workspace' at the top level"),
    ('[workspaces.acme\nregion = "us"', "is not valid TOML"),
])
def test_a_bad_entry_is_one_line_naming_the_file_and_the_workspace(tmp_path: Path, entry: str, expected: str) -> None:
    env = _env(tmp_path, entry, INTERCOM_ACCESS_TOKEN_US="tok_us")
    message = _error(env)
    assert message.startswith(str(tmp_path / "workspaces.toml")), message
    assert expected in message, message


def test_a_token_file_others_may_read_is_refused(tmp_path: Path) -> None:
    env = _env(tmp_path, GOOD)
    (tmp_path / "acme-eu.token").chmod(0o644)
    token = tmp_path / "acme-eu.token"
    assert _error(env) == (f"{tmp_path / 'workspaces.toml'} [workspaces.acme-eu]: {token} may be read by other "
                           f"users (mode 644): chmod 600 {token}")


def test_the_file_is_found_in_the_working_directory_and_a_named_file_must_exist(tmp_path: Path,
                                                                                monkeypatch) -> None:
    env = _env(tmp_path, GOOD)
    env.pop("IRU_WORKSPACES_FILE")
    monkeypatch.chdir(tmp_path)
    assert [w.name for w in load_settings(env=env).workspaces] == ["acme-us", "acme-brand2-us", "acme-eu"]
    missing = tmp_path / "nowhere.toml"
    assert _error({**env, "IRU_WORKSPACES_FILE": str(missing)}) == (
        f"IRU_WORKSPACES_FILE={missing}: no such file; fix the path or unset it")


def test_an_unreadable_file_leaves_only_the_variables_workspaces_as_partitions(tmp_path: Path) -> None:
    """The Dagster definitions must load while the file is wrong (the run says why)."""
    env = _env(tmp_path, "[workspaces.acme\n", INTERCOM_ACCESS_TOKEN_EU="tok_eu")
    assert configured_workspace_names(env) == ["eu"]


def test_the_readme_example_is_a_valid_workspaces_file(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    (example,) = [part.split("```", 1)[0] for part in readme.split("```toml\n")[1:] if "[workspaces." in part]
    env = _env(tmp_path, example, INTERCOM_TOKEN_ACME_US="tok_acme", INTERCOM_TOKEN_BRAND2="tok_brand2")
    got = [(w.name, w.region_code, w.base_url) for w in load_settings(env=env).workspaces]
    assert got == [("acme-us", "us", "https://api.intercom.io"), ("acme-brand2-us", "us", "https://api.intercom.io")]
