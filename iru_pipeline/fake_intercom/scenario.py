"""The compliance scenario planted in the generated data, for evidence tests to assert on.

Everything here lives in the US workspace (`SCENARIO_REGION`). Ids, names and day offsets do
not depend on the seed; timestamps are relative to the fake's "now" (its creation time), so
"140 days ago" stays 140 days ago whenever the fake is built. `Workspace.scenario` resolves
the concrete ids and timestamps for one built fake (see `ScenarioFacts`). The planted
conversations need a workspace of at least 8 conversations (smaller ones get none).

What is planted, and what an evidence layer should conclude:

1. Stale admin (`STALE_ADMIN`): last `admin_login_success` `STALE_ADMIN_LAST_LOGIN_DAYS_AGO`
   days before now (past a 120-day inactivity threshold); older logins before that.
2. Never-logged-in admin (`NEVER_LOGGED_IN_ADMIN`): has a seat, was invited
   `NEVER_LOGGED_IN_INVITED_DAYS_AGO` days ago, no login event at all.
3. Shared account (`SHARED_ADMIN`): `support@<internal domain>`, logging in from
   `SHARED_ADMIN_LOGIN_IPS` (several IPs) within the last 30 days.
4. Terminated admin (`TERMINATED_ADMIN`): still an Intercom admin; the HR roster (kept
   elsewhere) should list them as terminated `TERMINATED_ADMIN_TERMINATED_DAYS_AGO` days ago.
   They logged in `TERMINATED_ADMIN_LAST_LOGIN_DAYS_AGO` days ago, i.e. after termination.
5. Night export (`NIGHT_EXPORT`): one `app_data_export` at 03:00 workspace-local time,
   `NIGHT_EXPORT_DAYS_AGO` days ago. Generated entries of every export type
   (`EXPORT_ACTIVITY_TYPES`: the types the evidence rule R3 counts as data exports) happen
   only in office hours, Mon-Fri (`OFFICE_DAYS`) 09:00-17:59 (`NIGHT_EXPORT_OFFICE_HOURS`)
   workspace-local time, in every region. So this is the only export outside business hours
   (and the only high-severity R3 finding) for any business window that contains
   Mon-Fri 09-18, such as the evidence default "Mon-Fri 07-20".
6. Login-failure burst (`LOGIN_FAILURE_BURST`): `admin_login_failure` x6 within one hour for
   one admin, from one foreign IP, followed by a success from the same IP. Generated failures
   are otherwise rare and never for this admin.
7. Retention: the `RETENTION_CONVERSATION_COUNT` oldest conversations were created more than
   `RETENTION_MIN_AGE_DAYS` days ago (past a 730-day retention period). Other conversations
   older than 730 days exist too; these are the guaranteed ones.
8. DSAR (`DSAR_TAG`): one conversation tagged `dsar` whose `statistics.first_admin_reply_at`
   is exactly `DSAR_REPLY_DELAY_DAYS` days after `created_at` (past a 30-day deadline).
   No other conversation carries the `dsar` tag.
9. Security (`SECURITY_TAG`): one conversation tagged `security` (an incident report), created
   `SECURITY_CREATED_DAYS_AGO` days ago, whose `statistics.first_admin_reply_at` is exactly
   `SECURITY_REPLY_DELAY_SECONDS` (2 hours) after `created_at`: within a 24-hour security
   first-reply SLA, so the security evidence passes (the counterpart to the late DSAR).
10. Vendor admin (`VENDOR_ADMIN`): an admin whose e-mail is outside the internal domain.
11. Sensitive custom attribute (`SENSITIVE_ATTRIBUTE`): the US workspace defines a custom contact
   attribute `passport_number` (label "Passport number", data_type string, created by the
   vendor admin) in `GET /data_attributes?model=contact`, and up to
   `SENSITIVE_ATTRIBUTE_CONTACT_COUNT` contacts, spread evenly over the generated ones, carry a
   value in `custom_attributes` (`passport_number_value`: a letter and 8 digits, unlike any
   other generated text, so a leak is easy to find). A pipeline that keeps only attribute
   keys stores the name and never a value. The name matches the evidence layer's
   sensitive-name pattern (personal_data_inventory.sql), so T13 fails in the US as long as
   `passport_number` is not on the approved list. EU and AU define no such attribute: their
   custom attributes (plan, mrr, beta_tester, support_notes, trial_ends_at, signup_source)
   do not look sensitive, so T13 there is a warning while they are not approved (the demo's
   evidence inputs approve none) and a pass once they are.
12. Offboarding, done late: `Workspace.remove_admin(TERMINATED_ADMIN.id)` (a test's mutation,
   not planted data) removes the admin and logs an `admin_deletion` entry at the fake's "now",
   performed by the workspace owner, with `metadata.admin_id` (integer), `admin_name` and
   `admin_email` naming the removed admin (`removal_metadata`) and the e-mail in the
   description, as the evidence layer matches a removal event. Removal then happens
   `TERMINATED_ADMIN_TERMINATED_DAYS_AGO` days after termination: past a 24-hour offboarding
   SLA (and the admin logged in after termination), so offboarding still fails, now with the
   removal time and lag taken from that event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .constants import DEFAULT_INTERNAL_DOMAIN

SCENARIO_REGION = "us"


@dataclass(frozen=True)
class ScenarioAdmin:
    """An admin with a part in the scenario; ids are the same for every seed."""

    id: str
    name: str
    email_local: str
    external_domain: str | None = None
    """Set for admins whose e-mail is not on the internal domain."""

    def email_at(self, internal_domain: str = DEFAULT_INTERNAL_DOMAIN) -> str:
        return f"{self.email_local}@{self.external_domain or internal_domain}"

    @property
    def email(self) -> str:
        """The e-mail with the default internal domain."""
        return self.email_at()


WORKSPACE_OWNER = ScenarioAdmin("7310001", "Ciara Ní Bhriain", "ciara.nibhriain")
"""Owner of the app: the admin `GET /me` returns. Also an admin in the EU and AU workspaces."""

STALE_ADMIN = ScenarioAdmin("7310008", "Björn Lindqvist", "bjorn.lindqvist")
STALE_ADMIN_LAST_LOGIN_DAYS_AGO = 140
STALE_ADMIN_EARLIER_LOGINS_DAYS_AGO: tuple[int, ...] = (420, 300, 210)

NEVER_LOGGED_IN_ADMIN = ScenarioAdmin("7310009", "Priya Raman", "priya.raman")
NEVER_LOGGED_IN_INVITED_DAYS_AGO = 20

SHARED_ADMIN = ScenarioAdmin("7310010", "Support Team", "support")
SHARED_ADMIN_LOGIN_IPS: tuple[str, ...] = ("203.0.113.10", "198.51.100.23", "192.0.2.77", "2001:db8::42")

TERMINATED_ADMIN = ScenarioAdmin("7310011", "Dmitri Volkov", "dmitri.volkov")
TERMINATED_ADMIN_TERMINATED_DAYS_AGO = 45
TERMINATED_ADMIN_LAST_LOGIN_DAYS_AGO = 6

NIGHT_EXPORT_ADMIN = ScenarioAdmin("7310004", "李伟 (Li Wei)", "li.wei")
NIGHT_EXPORT_DAYS_AGO = 12
NIGHT_EXPORT_LOCAL_TIME = (3, 0, 0)
NIGHT_EXPORT_OFFICE_HOURS = (9, 18)
"""Generated exports happen in [9:00, 18:00) local time on `OFFICE_DAYS`; the planted one is outside."""
OFFICE_DAYS: tuple[int, ...] = (1, 2, 3, 4, 5)
"""ISO weekdays (Mon=1) on which generated exports happen."""
EXPORT_ACTIVITY_TYPES: tuple[str, ...] = ("app_data_export", "bulk_export", "conversation_pdf_export",
                                          "macro_usage_export")
"""Activity types the evidence rule R3 treats as data exports (high_risk_activity.sql); every
generated one is kept to office hours."""

LOGIN_FAILURE_ADMIN = ScenarioAdmin("7310012", "Aiyana Redcloud", "aiyana.redcloud")
LOGIN_FAILURE_COUNT = 6
LOGIN_FAILURE_DAYS_AGO = 9
LOGIN_FAILURE_LOCAL_START = (14, 5, 0)
LOGIN_FAILURE_INTERVAL_SECONDS = 8 * 60
LOGIN_FAILURE_IP = "185.220.101.47"

VENDOR_ADMIN = ScenarioAdmin("7310013", "Mateus Araújo", "mateus.araujo", external_domain="outsourcing-partner.com.br")

RETENTION_CONVERSATION_COUNT = 5
RETENTION_MIN_AGE_DAYS = 800
RETENTION_PERIOD_DAYS = 730

DSAR_TAG = "dsar"
DSAR_REPLY_DELAY_DAYS = 40
DSAR_CREATED_DAYS_AGO = 75

SECURITY_TAG = "security"
SECURITY_CREATED_DAYS_AGO = 33
SECURITY_REPLY_DELAY_SECONDS = 2 * 3600
"""First admin reply to the security conversation: inside a 24-hour security first-reply SLA."""

SENSITIVE_ATTRIBUTE = "passport_number"
SENSITIVE_ATTRIBUTE_LABEL = "Passport number"
SENSITIVE_ATTRIBUTE_ID = 18
"""`data_attribute.id`, after the generated custom contact attributes (11-17)."""
SENSITIVE_ATTRIBUTE_CREATED_DAYS_AGO = 60
SENSITIVE_ATTRIBUTE_CONTACT_COUNT = 12
"""Contacts carrying a value (fewer when the workspace has fewer contacts)."""


def sensitive_attribute_indices(contacts: int) -> tuple[int, ...]:
    """Indices of the generated contacts that carry a `passport_number`, spread evenly."""
    count = min(SENSITIVE_ATTRIBUTE_CONTACT_COUNT, max(0, contacts))
    return tuple(sorted({k * contacts // count + contacts // (2 * count) for k in range(count)})) if count else ()


def passport_number_value(index: int) -> str:
    """The planted value of contact `index`: "X" and 8 digits, distinct per index."""
    return f"X{(index * 7_919 + 40_013_117) % 100_000_000:08d}"


def removal_metadata(removed_id: str, removed_name: str, removed_email: str,
                     by_id: str, by_name: str) -> dict[str, object]:
    """`metadata` of the `admin_deletion` entry `Workspace.remove_admin` logs."""
    return {"admin_id": int(removed_id), "admin_name": removed_name, "admin_email": removed_email,
            "update_by": int(by_id), "update_by_name": by_name}

SCENARIO_ADMINS: tuple[ScenarioAdmin, ...] = (
    WORKSPACE_OWNER, STALE_ADMIN, NEVER_LOGGED_IN_ADMIN, SHARED_ADMIN, TERMINATED_ADMIN,
    NIGHT_EXPORT_ADMIN, LOGIN_FAILURE_ADMIN, VENDOR_ADMIN,
)


@dataclass(frozen=True)
class ScenarioFacts:
    """The scenario as resolved in one built workspace: concrete ids and Unix timestamps."""

    region: str
    now: int
    """The fake's creation time, which "N days ago" is relative to."""
    internal_domain: str
    stale_admin_id: str
    stale_admin_last_login_at: int
    never_logged_in_admin_id: str
    shared_admin_id: str
    shared_admin_email: str
    terminated_admin_id: str
    terminated_admin_email: str
    terminated_at: int
    terminated_admin_last_login_at: int
    night_export_admin_id: str
    night_export_at: int
    login_failure_admin_id: str
    login_failure_times: tuple[int, ...]
    vendor_admin_id: str
    retention_conversation_ids: tuple[str, ...]
    dsar_conversation_id: str
    dsar_created_at: int
    dsar_first_admin_reply_at: int
    security_conversation_id: str
    security_created_at: int = 0
    security_first_admin_reply_at: int = 0
    sensitive_attribute: str = SENSITIVE_ATTRIBUTE
    sensitive_attribute_contact_ids: tuple[str, ...] = ()
    """Contacts with a `passport_number` value, as generated (mutations may delete some)."""
    sensitive_attribute_values: tuple[str, ...] = ()
    """Their values, in the same order: these must never reach a pipeline's storage."""
    activity_log_ids: dict[str, str] = field(default_factory=dict)
    """Ids of the planted activity-log entries, by role (e.g. "night_export")."""
