"""One failing resource never sinks the rest: each failure kind, injected into each resource in
turn, fails that resource only (one-line reason, cursor kept), while every other resource of
the region loads and commits its cursor; the run is partial (exit 3) and the next clean run
completes what the failed one missed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dlt
import pytest

from iru_pipeline_tests.helpers import (
    VALUE_TABLES,
    assert_matches_fake,
    assert_values_match_fake,
    pipeline_env,
    run_with_env,
    small_fake,
)

QUICK = {"max_retries": 2, "backoff_base_seconds": 0.01}

# The fake path behind each resource (`$`: that path only), and the resources that read it:
# teams and team_memberships share GET /teams; conversations reads the deleted list too, for
# its deletion markers.
RESOURCES: dict[str, tuple[str, set[str]]] = {
    "admins": ("/admins$", {"admins"}),
    "teams": ("/teams", {"teams", "team_memberships"}),
    "tags": ("/tags", {"tags"}),
    "data_attributes": ("/data_attributes", {"data_attributes"}),
    "contacts": ("/contacts", {"contacts"}),
    "conversations": ("/conversations/search", {"conversations"}),
    "deleted_conversations": ("/conversations/deleted", {"conversations", "deleted_conversations"}),
    "activity_logs": ("/admins/activity_logs", {"activity_logs"}),
}
PAGINATED = ("activity_logs",)
"""Resources whose second run gets a third page, where a repeating cursor shows (contacts'
and conversations' repeating cursors are in test_bad_input.py)."""
FAST_SET = {("5xx_past_the_bound", "tags"), ("5xx_past_the_bound", "contacts"),
            ("5xx_past_the_bound", "deleted_conversations"), ("timeout", "admins"), ("timeout", "conversations"),
            ("bad_page", "teams"), ("bad_page", "data_attributes"), ("repeating_cursor", "activity_logs")}
"""`make test` runs every resource and every kind at least once; `make soak` the whole matrix."""

# kind -> (fault settings for a path, words of the failed resource's reason, extra run options)
KINDS: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {
    "5xx_past_the_bound": ({"error_every": 1}, "kept answering", {}),
    "timeout": ({"slow_body_every": 1, "slow_body_delay_ms": 3000}, "timed out", {"read_timeout_seconds": 1.0}),
    "bad_page": ({"malformed_kind": "wrong_shape"}, "response has no", {}),
    "repeating_cursor": ({}, "already returned", {}),
}

INCREMENTAL = {"contacts": "updated_at", "conversations": "updated_at",
               "deleted_conversations": "deleted_at", "activity_logs": "created_at"}


def _faults(kind: str, path: str) -> dict[str, Any]:
    settings = dict(KINDS[kind][0])
    if kind == "bad_page":
        settings["malformed_paths"] = (path,)
    elif kind == "repeating_cursor":
        settings["repeat_cursor_paths"] = (path,)
    else:
        settings["fault_paths"] = (path,)
    return settings


def _cases() -> list[Any]:
    cases = []
    for kind in KINDS:
        for resource in RESOURCES:
            if kind == "repeating_cursor" and resource not in PAGINATED:
                continue
            marks = () if (kind, resource) in FAST_SET else (pytest.mark.slow,)
            cases.append(pytest.param(kind, resource, id=f"{kind}-{resource}", marks=marks))
    return cases


def _resource_states(data_dir: Path) -> dict[str, Any]:
    pipeline = dlt.attach(pipeline_name="intercom_us", pipelines_dir=str(data_dir / ".dlt_pipelines"))
    return dict(pipeline.state["sources"]["intercom"]["resources"])


def _cursor(states: dict[str, Any], resource: str) -> Any:
    return states[resource]["incremental"][INCREMENTAL[resource]]["last_value"]


def _change_everything(fake: Any) -> None:
    """New data for every incremental resource, more than one page of it where it pages."""
    ws = fake.workspace("us")
    ws.update_contacts(count=180)
    ws.update_conversations(count=170)
    ws.delete_conversations([str(c["id"]) for c in list(ws.conversations())[:5]])
    ws.add_activity_logs(160)
    ws.add_admin(name="New Admin", email="new.admin@example.com")
    time.sleep(1.1)  # the next run's upper bound (its start, in whole seconds) lies after them


@pytest.mark.parametrize(("kind", "resource"), _cases())
def test_one_failing_resource_leaves_the_others_loaded_with_their_cursors_moved(
        kind: str, resource: str, tmp_path: Path) -> None:
    path, failing = RESOURCES[resource]
    fault_settings, words, extra = KINDS[kind]
    with small_fake(contacts=250, conversations=150, activity_logs=200) as fake:
        env = pipeline_env(fake, tmp_path)
        settings, first = run_with_env(env, with_evidence=False, intercom_options=QUICK)
        assert first.exit_code == 0, [o.error for o in first.outcomes]
        db = settings.duckdb_path
        before = _resource_states(tmp_path)

        _change_everything(fake)
        fake.faults("us").update(**_faults(kind, path))
        _, second = run_with_env(env, with_evidence=False, intercom_options={**QUICK, **extra})
        assert not second.failed and second.exit_code == 3, [o.error for o in second.outcomes]
        rows = {r["resource"]: r for r in second.sync_rows}
        assert {n for n, r in rows.items() if r["status"] != "ok"} == failing, {
            n: (r["status"], r["reason"]) for n, r in rows.items()}
        for name in failing:
            reason = rows[name]["reason"]
            assert rows[name]["status"] == "failed" and reason.startswith("[us] ") and "\n" not in reason
            assert words in reason, reason
            assert rows[name]["cursor_after"] == rows[name]["cursor_before"]

        after = _resource_states(tmp_path)
        for name in failing:
            assert after.get(name) == before.get(name), f"{name}: the failed resource's state moved"
        for name in set(INCREMENTAL) - failing:
            assert _cursor(after, name) > _cursor(before, name), f"{name}: cursor did not move"
        others = tuple(t for t in VALUE_TABLES if t not in failing)
        assert_values_match_fake(db, fake, tables=others)

        fake.clear_faults()
        _, third = run_with_env(env, with_evidence=False, intercom_options=QUICK)
        assert third.exit_code == 0, [o.error for o in third.outcomes]
        assert_matches_fake(db, fake)
        assert_values_match_fake(db, fake)
