"""Evidence parameters (IRU_EVIDENCE_CONFIG) and the optional human inputs (CSV)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from iru_pipeline.config import ConfigError, load_settings
from iru_pipeline.evidence.inputs import INPUTS, load_inputs, parse_csv
from iru_pipeline.evidence.params import EvidenceParams, load_params


def params_from(tmp_path: Path, toml: str) -> EvidenceParams:
    config = tmp_path / "evidence.toml"
    config.write_text(toml, encoding="utf-8")
    settings = load_settings({"IRU_EVIDENCE_CONFIG": str(config)}, require_workspaces=False, require_pii_key=False)
    return load_params(settings.evidence_config, settings.evidence_config_path)


def test_defaults_apply_without_a_config_file() -> None:
    params = load_params({})
    assert (params.stale_admin_days, params.offboarding_sla_hours, params.conversation_retention_days) == (90, 24, 730)
    assert (params.dsar_tags, params.dsar_sla_days, params.security_tags) == (("dsar",), 30, ("security",))
    assert (params.business_days, params.business_hour_start, params.business_hour_end) == ([1, 2, 3, 4, 5], 7, 20)
    assert params.sha256 == EvidenceParams().sha256 and len(params.sha256) == 64


def test_config_values_are_normalised_and_change_the_hash(tmp_path: Path) -> None:
    params = params_from(tmp_path, 'internal_domains = ["@Example-Corp.com"]\nallowed_regions = ["eu"]\n'
                                   'stale_admin_days = 120\nbusiness_hours = "Mon-Sun 00-24"\n')
    assert params.internal_domains == ("example-corp.com",) and params.allowed_regions == ("EU",)
    assert params.business_days == [1, 2, 3, 4, 5, 6, 7] and params.business_hour_end == 24
    assert params.sha256 != EvidenceParams().sha256
    assert '"stale_admin_days":120' in params.canonical_json()


def test_input_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    params = params_from(tmp_path, '[inputs]\nhr_roster = "hr/roster.csv"\n')
    assert params.inputs == {"hr_roster": str(tmp_path / "hr" / "roster.csv")}
    assert "inputs" not in params.as_dict(), "input files are recorded by content hash, not path"


@pytest.mark.parametrize(("toml", "message"), [
    ("stale_admin_day = 30", "unknown key 'stale_admin_day': did you mean 'stale_admin_days'?"),
    ('stale_admin_days = "90"', "stale_admin_days must be a whole number of at least 1 (got '90')"),
    ("offboarding_sla_hours = 0", "offboarding_sla_hours must be a whole number of at least 1 (got 0)"),
    ("retention_tolerance_pct = 150", "retention_tolerance_pct must be a percentage between 0 and 100 (got 150)"),
    ('internal_domains = "acme.com"', "internal_domains must be a list of non-empty strings"),
    ('business_hours = "weekdays 9-5"', "business_hours 'weekdays 9-5' is not understood"),
    ('[inputs]\npayroll = "p.csv"', "unknown input 'payroll' in [inputs]"),
])
def test_bad_config_is_one_line_naming_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        params_from(tmp_path, toml)
    text = str(err.value)
    assert message in text and "IRU_EVIDENCE_CONFIG=" in text and "\n" not in text


def test_roster_reads_only_the_named_columns() -> None:
    rows = parse_csv(INPUTS["hr_roster"], (
        "\ufeffEmail,Person_ID,Status,Termination_At,Salary\n"
        "Ann@Acme.test,1,Active,,100000\n"
        "bob@acme.test,2,terminated,2024-05-31,90000\n"
        ",,,,\n"
        "cat@acme.test,3,terminated,2024-06-01T17:30:00+02:00,1\n").encode(), "roster.csv")
    assert [(r[0], r[2], r[3].isoformat() if r[3] else None) for r in rows] == [
        ("ann@acme.test", "active", None),
        ("bob@acme.test", "terminated", "2024-05-31T00:00:00+00:00"),
        ("cat@acme.test", "terminated", "2024-06-01T15:30:00+00:00"),
    ]
    assert all("100000" not in map(str, r) for r in rows), "columns outside the spec are never kept"


@pytest.mark.parametrize(("name", "text", "message"), [
    ("hr_roster", "email,person_id,status\na@x.test,1,active\nb@x.test,2,fired\n",
     "hr_roster file {f}, line 3: status 'fired' is not one of active, leave, terminated"),
    ("hr_roster", "email,person_id,status,termination_at\na@x.test,1,terminated,\n",
     "hr_roster file {f}, line 2: status is terminated but termination_at is empty"),
    ("hr_roster", "email,person_id,status,termination_at\na@x.test,1,terminated,last friday\n",
     "hr_roster file {f}, line 2: termination_at 'last friday' is not a date or date-time"),
    ("hr_roster", "email,person_id,status\na@x.test,1,active\nA@x.test,2,active\n",
     "hr_roster file {f}, line 3: email 'a@x.test' already given on line 2"),
    ("hr_roster", "email,status\na@x.test,active\n",
     "hr_roster file {f}, line 1: missing column person_id"),
    ("hr_roster", "email,person_id,status\nnot-an-address,1,active\n",
     "hr_roster file {f}, line 2: email 'not-an-address' is not an e-mail address"),
    ("access_exceptions", "admin_id,email,kind,reason,approved_by\n,,shared,team inbox,ciso@x.test\n",
     "access_exceptions file {f}, line 2: give admin_id or email (or both)"),
    ("access_exceptions", "admin_id,kind,reason,approved_by\n7,shared,,ciso@x.test\n",
     "access_exceptions file {f}, line 2: reason is empty"),
    ("evidence_reviews", "finding_id,decision,reviewed_by,reviewed_at\nabc,approved,me,2024-01-01\n",
     "evidence_reviews file {f}, line 2: decision 'approved' is not one of accepted, remediated, false_positive, escalated"),
    ("evidence_reviews", 'finding_id,decision,reviewed_by,reviewed_at\n"abc,accepted,me,2024-01-01\n',
     "evidence_reviews file {f}, line "),
])
def test_malformed_row_names_file_line_and_reason(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_inputs({name: str(path)})
    assert message.format(f=path) in str(err.value)


def test_missing_input_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"inputs.hr_roster: cannot read .*nope.csv"):
        load_inputs({"hr_roster": str(tmp_path / "nope.csv")})


def test_inputs_are_recorded_by_name_rows_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    data = b"email,person_id,status\na@x.test,1,active\n"
    path.write_bytes(data)
    inputs = load_inputs({"hr_roster": str(path)})
    assert inputs.as_records() == [{"name": "hr_roster", "file_name": "roster.csv", "rows": 1,
                                    "sha256": hashlib.sha256(data).hexdigest()}]
    assert inputs.provided("hr_roster") and not inputs.provided("evidence_reviews")


def test_the_readme_example_config_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [part.split("```", 1)[0] for part in readme.split("```toml\n")[1:]]
    (example,) = [b for b in blocks if "[workspaces." not in b]  # the other one is the workspaces file
    params = params_from(tmp_path, example)
    assert params.allowed_regions == ("EU",) and params.dsar_tags == ("dsar", "gdpr-request")
    assert set(params.inputs) == {"hr_roster", "access_exceptions", "evidence_reviews"}
