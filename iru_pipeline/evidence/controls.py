"""The control tests T01-T15: what each checks, the evidence table it reads, the Intercom
resources and human inputs it needs, and its framework mappings.

`sql/control_tests.sql` computes the results from this catalogue (registered as the temp table
`control_test_catalog`); `checks.py` turns each into a Dagster asset check on its evidence table.

Every test reports one of six statuses (`STATUSES`), per workspace:

- `pass`: the rule holds on a non-empty population.
- `fail`: at least one item breaks the rule (`failing` counts them).
- `review`: nothing fails, but items need a person to look (`to_review` counts them: open
  findings, pending removals, unapproved privileged admins, gaps in the activity logs held...).
- `manual`: the control needs evidence the API cannot give (T07: MFA enforcement).
- `not_applicable`: the population is empty, so nothing was measured (no DSAR-tagged
  conversation, no leaver with an account in this workspace, no admin...).
- `not_collected`: a resource the test needs was not collected (missing permission, plan
  restriction, failure), a human input it needs is not configured, or the API does not give
  what the test judges by (T04 and T06 without admin roles).

A test is never `pass` on data that was not collected, on an empty population, or on coverage
that was only requested: T10 judges the activity-log events actually held.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("pass", "fail", "review", "manual", "not_applicable", "not_collected")


def status_with_counts(status: str, failing: int | None, to_review: int | None, population: int | None) -> str:
    """How a status is shown to a person: failing and to-review counted apart, e.g.
    `fail: 5 failing, 112 to review of 143`; other statuses as they are."""
    if status in ("fail", "review"):
        return f"{status}: {failing or 0} failing, {to_review or 0} to review of {population or 0}"
    return status


@dataclass(frozen=True)
class ControlTest:
    test_id: str
    check_name: str
    name: str
    evidence_table: str
    criteria: str
    soc2: tuple[str, ...]
    iso27001: tuple[str, ...]
    gdpr: tuple[str, ...]
    params: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    """Intercom resources that must have been collected."""
    inputs: tuple[str, ...] = ()
    """Human inputs (CSV) that must be configured."""


CONTROL_TESTS: tuple[ControlTest, ...] = (
    ControlTest(
        "T01", "t01_admins_identified", "Every admin is identified (HR match or approved exception)",
        "evidence_admin_access_review",
        "fail if an admin matches no HR roster entry and has no approved exception, or matches a terminated person",
        ("CC6.1", "CC6.2", "CC6.3"), ("5.15", "5.16", "5.18"), ("Art. 32",),
        params=("internal_domains",), streams=("admins",), inputs=("hr_roster",),
    ),
    ControlTest(
        "T02", "t02_offboarding_within_sla", "Offboarded staff removed within the SLA, no activity after termination",
        "evidence_offboarding_check",
        "fail if a terminated person acted after termination, still has access past the SLA, or was removed late; "
        "review while access is held within the SLA; a leaver without an account in the workspace is not_applicable "
        "there",
        ("CC6.2",), ("5.18", "6.5"), ("Art. 32",),
        params=("offboarding_sla_hours",), streams=("admins", "activity_logs"), inputs=("hr_roster",),
    ),
    ControlTest(
        "T03", "t03_no_stale_admins", "No stale admins",
        "evidence_admin_access_review",
        "fail if an admin has no activity for stale_admin_days (without an approved 'inactive' exception); "
        "review when the activity logs held are too short to tell",
        ("CC6.2", "CC6.3"), ("5.18",), ("Art. 5(1)(c)",),
        params=("stale_admin_days",), streams=("admins", "activity_logs"),
    ),
    ControlTest(
        "T04", "t04_privileged_admins_limited", "Privileged admins within the limit and approved",
        "evidence_admin_access_review",
        "fail if a workspace has more than max_privileged_admins admins with a privileged role; review if a "
        "privileged admin has no approved 'privileged' exception; not_collected if the API gives no roles",
        ("CC6.3",), ("5.15", "5.18", "8.2"), ("Art. 32",),
        params=("privileged_role_names", "max_privileged_admins"), streams=("admins",),
    ),
    ControlTest(
        "T05", "t05_no_shared_accounts", "No shared or generic accounts without an exception",
        "evidence_admin_access_review",
        "fail if an admin looks shared (generic e-mail local part, a display name made only of generic words, "
        "or logins from many IPs) without an approved 'shared' or 'service' exception",
        ("CC6.1", "CC6.2"), ("5.16",), ("Art. 32",),
        params=("generic_localparts", "generic_display_names", "shared_account_min_ips"),
        streams=("admins", "activity_logs"),
    ),
    ControlTest(
        "T06", "t06_access_changes_authorised", "Access changes made by authorised actors",
        "evidence_access_change_events",
        "fail if an access change was made by a person already terminated; review for provisioning or privilege "
        "changes by someone who is not an access manager and not reviewed; not_collected when access_managers is "
        "empty and the API gives no admin roles (nobody can tell who was allowed)",
        ("CC6.2", "CC6.3", "CC8.1"), ("5.18", "8.15", "8.32"), ("Art. 5(2)",),
        params=("access_managers", "privileged_role_names", "period_days"), streams=("activity_logs",),
    ),
    ControlTest(
        "T07", "t07_mfa_or_sso_enforced", "MFA or SSO enforced",
        "evidence_workspace_security_config",
        "pass if every login in the period used SSO; otherwise manual: the API does not expose MFA enforcement, "
        "attach a Settings > Security screenshot showing URL and date",
        ("CC6.1", "CC6.6"), ("5.17", "8.5"), ("Art. 32",),
        params=("period_days",),
    ),
    ControlTest(
        "T08", "t08_identity_verification_enabled", "Messenger identity verification enabled",
        "evidence_workspace_security_config",
        "fail if the workspace reports identity verification off",
        ("CC6.1", "CC8.1"), ("8.5", "8.9"), ("Art. 25", "Art. 32"),
        streams=("workspaces",),
    ),
    ControlTest(
        "T09", "t09_data_region_allowed", "Data region allowed and consistent with the API host",
        "evidence_workspace_security_config",
        "fail if the workspace's region is not allowed or disagrees with the configured region or the official "
        "API host; review if the data came from a host that is not an Intercom API host (a proxy, the bundled "
        "fake, loopback), which cannot confirm the region",
        ("CC9.2", "C1.1"), ("5.23", "5.34"), ("Art. 30(1)(e)", "Art. 44-49"),
        params=("allowed_regions",), streams=("workspaces",),
    ),
    ControlTest(
        "T10", "t10_activity_logs_complete", "Activity logs complete for the period",
        "evidence_collection_stream",
        "fail if the requested activity-log windows leave a gap or start after the period start; review for every "
        "stretch longer than activity_log_max_gap_hours without an activity-log event held (from the period start "
        "to the first event, between events, from the last event to the run) and if the newest requested window "
        "ends more than activity_log_max_lag_hours ago",
        ("CC7.2", "CC4.1"), ("8.15", "5.33"), ("Art. 5(2)",),
        params=("period_days", "activity_log_max_gap_hours", "activity_log_max_lag_hours"), streams=("activity_logs",),
    ),
    ControlTest(
        "T11", "t11_high_risk_reviewed", "High-risk findings reviewed on time",
        "evidence_high_risk_activity",
        "fail if a high or critical finding is unreviewed past its due date; review while findings are open",
        ("CC7.2", "CC7.3", "CC6.7"), ("8.15", "8.16", "8.12"), ("Art. 32", "Art. 33"),
        params=("review_due_days", "login_failure_burst", "business_hours", "period_days"),
        streams=("activity_logs",),
    ),
    ControlTest(
        "T12", "t12_retention_respected", "Conversations and contacts within retention",
        "evidence_data_retention",
        "fail if the share of records past their retention period exceeds retention_tolerance_pct",
        ("C1.2", "P4.2", "P4.3"), ("8.10",), ("Art. 5(1)(e)", "Art. 30(1)(f)"),
        params=("conversation_retention_days", "contact_retention_days", "lead_retention_days",
                "retention_tolerance_pct"),
        streams=("contacts", "conversations"),
    ),
    ControlTest(
        "T13", "t13_no_unapproved_sensitive_attributes", "No unapproved sensitive custom attributes",
        "evidence_personal_data_inventory",
        "fail if a custom attribute looks sensitive (health, ID numbers, payment cards, ...) and is not approved; "
        "review for other custom attributes not on the approved list",
        ("P3.1", "C1.1"), ("5.34", "5.12"), ("Art. 5(1)(c)", "Art. 9", "Art. 30(1)(c)"),
        params=("approved_attributes",), streams=("contacts", "data_attributes"),
    ),
    ControlTest(
        "T14", "t14_dsars_answered_in_time", "Data-subject requests answered within one month",
        "evidence_support_request_sla",
        "fail if a conversation tagged as a DSAR got its first admin reply after dsar_sla_days, or none while "
        "overdue; not_applicable when no conversation carries a DSAR tag",
        ("P5.1", "P8.1", "CC2.3"), ("5.34",), ("Art. 12(3)", "Art. 15-17"),
        params=("dsar_tags", "dsar_sla_days", "period_days"), streams=("conversations",),
    ),
    ControlTest(
        "T15", "t15_collection_complete", "Collection complete (every resource collected, no missing permission)",
        "evidence_collection_stream",
        "fail if the latest collection of any resource was skipped (permission, plan) or failed",
        ("CC7.2", "CC4.1"), ("8.15", "5.33"), ("Art. 5(2)",),
    ),
)

TESTS_BY_ID: dict[str, ControlTest] = {t.test_id: t for t in CONTROL_TESTS}
