"""Small, fixed collections of a workspace: admins, teams, tags, roles, data attributes.

These do not depend on the seed (the scenario needs stable admins), only on the region and
the configured internal e-mail domain. Ids are numeric strings (spec: `admin.id`, `team.id`,
`tag.id` are strings) while membership arrays carry integers (`admin.team_ids`,
`team.admin_ids`), as in docs/intercom-api.md#ids-timestamps-and-free-text. Some admins belong to several workspaces
and keep their id
there, as Intercom teammates do, so ids collide across regions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import scenario as sc


@dataclass
class AdminSpec:
    """One admin as stored by the fake (serialised per request by `admin_json`)."""

    id: str
    name: str
    email: str
    job_title: str = ""
    role: tuple[str, str] | None = None
    """(role id, role name); admins without a role have no `role` key
    (docs/intercom-api.md#record-shapes-worth-knowing)."""
    away_mode_enabled: bool = False
    away_mode_reassign: bool = False
    away_status_reason_id: int | None = None
    has_inbox_seat: bool = True
    team_ids: list[int] = field(default_factory=list)
    avatar: str | None = None


ROLES = {"owner": ("1001", "Owner"), "admin": ("1002", "Admin"), "support": ("1003", "Support agent")}

# (id, name, e-mail local part or full address, job title, role key, away mode, inbox seat)
_US_ADMINS: tuple[tuple[str, str, str, str, str | None, bool, bool], ...] = (
    (sc.WORKSPACE_OWNER.id, sc.WORKSPACE_OWNER.name, sc.WORKSPACE_OWNER.email_local, "Head of Support", "owner",
        False, True),
    ("7310002", "Tomás Ortega", "tomas.ortega", "Support Engineer", "support", False, True),
    ("7310003", "Zoë Müller-Lüdenscheidt", "zoe.mueller", "Support Engineer", None, False, True),
    (sc.NIGHT_EXPORT_ADMIN.id, sc.NIGHT_EXPORT_ADMIN.name, sc.NIGHT_EXPORT_ADMIN.email_local, "Data Analyst",
        "admin", False, False),
    ("7310005", "Amara Okafor", "amara.okafor", "Team Lead", "support", False, True),
    ("7310006", "Søren Kierkegaard-Nielsen", "soren.kn", "", None, False, True),
    ("7310007", "فاطمة الزهراء", "fatima.alzahra", "Support Engineer", None, False, True),
    (sc.STALE_ADMIN.id, sc.STALE_ADMIN.name, sc.STALE_ADMIN.email_local, "Sales Engineer", None, False, True),
    (sc.NEVER_LOGGED_IN_ADMIN.id, sc.NEVER_LOGGED_IN_ADMIN.name, sc.NEVER_LOGGED_IN_ADMIN.email_local,
        "Support Engineer", "support", False, True),
    (sc.SHARED_ADMIN.id, sc.SHARED_ADMIN.name, sc.SHARED_ADMIN.email_local, "", "admin", False, True),
    (sc.TERMINATED_ADMIN.id, sc.TERMINATED_ADMIN.name, sc.TERMINATED_ADMIN.email_local, "Billing Specialist", None,
        False, True),
    (sc.LOGIN_FAILURE_ADMIN.id, sc.LOGIN_FAILURE_ADMIN.name, sc.LOGIN_FAILURE_ADMIN.email_local, "Security Lead",
        "admin", False, True),
    (sc.VENDOR_ADMIN.id, sc.VENDOR_ADMIN.name, sc.VENDOR_ADMIN.email_at(), "Contractor", None, False, True),
    ("7310014", "Chloé Dubois 🌸", "chloe.dubois", "Success Manager", None, True, True),
    ("7310015", "渡辺 健二 (Kenji Watanabe)", "kenji.watanabe", "Engineer", None, False, False),
)
_EU_ADMINS: tuple[tuple[str, str, str, str, str | None, bool, bool], ...] = (
    (sc.WORKSPACE_OWNER.id, sc.WORKSPACE_OWNER.name, sc.WORKSPACE_OWNER.email_local, "Head of Support", "owner",
        False, True),
    ("7310002", "Tomás Ortega", "tomas.ortega", "Support Engineer", "support", False, True),
    ("7320003", "Siobhán Ó Súilleabháin", "siobhan.osullivan", "Team Lead", "support", False, True),
    ("7320004", "Jürgen Schäfer", "juergen.schaefer", "Datenschutzbeauftragter", "admin", False, False),
    ("7320005", "Élodie Lefèvre", "elodie.lefevre", "Support Engineer", None, False, True),
    ("7320006", "Łukasz Nowak", "lukasz.nowak", "Support Engineer", None, True, True),
    ("7320007", "Ingrid Øverland", "ingrid.overland", "", None, False, True),
    ("7320008", "Paulo da Silva", "paulo.dasilva", "Billing Specialist", None, False, True),
    ("7320009", "Zeynep Yılmaz", "zeynep.yilmaz", "Support Engineer", "support", False, True),
    ("7320010", "Sofía Hernández", "sofia.hernandez", "Success Manager", None, False, True),
    ("7320011", "Hannah Cohen", "hannah.cohen", "Engineer", None, False, False),
    ("7320012", "Liam Murphy", "liam.murphy", "Support Engineer", None, False, True),
)
_AU_ADMINS: tuple[tuple[str, str, str, str, str | None, bool, bool], ...] = (
    (sc.WORKSPACE_OWNER.id, sc.WORKSPACE_OWNER.name, sc.WORKSPACE_OWNER.email_local, "Head of Support", "owner",
        False, True),
    ("7330002", "Tāne Ngata", "tane.ngata", "Team Lead", "support", False, True),
    ("7330003", "Grace Kim", "grace.kim", "Support Engineer", None, False, True),
    ("7330004", "Oluwaseun Adeyemi", "seun.adeyemi", "Support Engineer", None, False, True),
    ("7330005", "Mia Rossi", "mia.rossi", "Billing Specialist", "admin", False, True),
    ("7330006", "Kwame Mensah", "kwame.mensah", "", None, True, True),
    ("7330007", "Aarav Sharma", "aarav.sharma", "Engineer", None, False, False),
    ("7330008", "Ngọc Trần", "ngoc.tran", "Support Engineer", None, False, True),
    ("7330009", "Isla Thompson", "isla.thompson", "Success Manager", None, False, True),
    ("7330010", "Lachlan Smith", "lachlan.smith", "Support Engineer", "support", False, True),
)
_ADMIN_TABLES = {"us": _US_ADMINS, "eu": _EU_ADMINS, "au": _AU_ADMINS}
_ADMIN_ID_BASE = {"us": 7_310_000, "eu": 7_320_000, "au": 7_330_000}
_EXTRA_ADMIN_NAMES = ("Noa Levi", "Anaïs Martin", "Ренат Ибрагимов", "Kwabena Owusu", "Astrid Jónsdóttir",
                      "Mehmet Öztürk", "Yuki Tanaka 田中", "نور الهدى", "Ola Nordmann", "Jean-Luc Picard")

_TEAM_NAMES = {
    "us": ("Support Tier 1", "Escalations", "Billing & Payments 💳", "Security / Sécurité", "Sales — Americas",
        "VIP Care"),
    "eu": ("Support EMEA", "Datenschutz-Team", "Billing & Payments 💳", "Escalations", "Ventes — Europe", "VIP Care"),
    "au": ("Support APAC", "Escalations", "Billing & Payments 💳", "Night Shift 🌙", "Sales — ANZ", "VIP Care"),
}
_TEAM_ID_BASE = 5_017_690
_TEAM_ID_STRIDE = {"us": 1, "eu": 2, "au": 7}

TAG_NAMES: tuple[str, ...] = (
    sc.DSAR_TAG, sc.SECURITY_TAG, "billing", "VIP 🌟", "Überprüfung", "مهم", "緊急対応", "churn-risk", "beta",
    "bug", "feature-request", "gdpr", "refund", "onboarding", "enterprise", "partner", "spam",
    "needs-translation", "Ωmega", "escalated", "legal-hold", "duplicate", "🔥 hot lead", "naïve café", "test",
    "אבטחה", "renewal-q3", "do-not-contact", "churned", "candidate",
)
_TAG_ID_BASE = 4_100_000
_TAG_ID_STRIDE = {"us": 1, "eu": 2, "au": 11}


def build_admins(region: str, count: int, internal_domain: str) -> list[AdminSpec]:
    """The workspace's admins; scenario admins are always kept in the scenario region."""
    table = _ADMIN_TABLES[region]
    rows = list(table[:count])
    if region == sc.SCENARIO_REGION:
        scenario_ids = {a.id for a in sc.SCENARIO_ADMINS}
        rows += [r for r in table[count:] if r[0] in scenario_ids]
    admins: list[AdminSpec] = []
    for position, (admin_id, name, email, title, role, away, seat) in enumerate(rows):
        address = email if "@" in email else f"{email}@{internal_domain}"
        admins.append(AdminSpec(
            id=admin_id, name=name, email=address, job_title=title,
            role=ROLES[role] if role else None, away_mode_enabled=away,
            away_mode_reassign=away and position % 2 == 0,
            away_status_reason_id=(3 if away else None), has_inbox_seat=seat,
            avatar=(None if position % 4 == 3 else
                    f"https://static.intercomassets.com/avatars/{admin_id}/square_128/avatar.png"),
        ))
    for extra in range(max(0, count - len(table))):
        admin_id = str(_ADMIN_ID_BASE[region] + 100 + extra)
        name = _EXTRA_ADMIN_NAMES[extra % len(_EXTRA_ADMIN_NAMES)]
        suffix = "" if extra < len(_EXTRA_ADMIN_NAMES) else str(extra)
        local = f"teammate{extra + 1}{suffix}"
        admins.append(AdminSpec(id=admin_id, name=name, email=f"{local}@{internal_domain}",
                                job_title="Support Engineer"))
    return admins


@dataclass
class TeamSpec:
    id: str
    name: str
    admin_ids: list[int]
    primary_admin_ids: list[int]
    assignment_limit: int | None
    distribution_method: str | None


def build_teams(region: str, count: int, admins: list[AdminSpec]) -> list[TeamSpec]:
    """Teams with members drawn from `admins`; also fills each admin's `team_ids`."""
    names = list(_TEAM_NAMES[region])
    while len(names) < count:
        names.append(f"Team {len(names) + 1} — Équipe")
    teams: list[TeamSpec] = []
    for k, name in enumerate(names[:count]):
        team_id = str(_TEAM_ID_BASE + _TEAM_ID_STRIDE[region] * (k + 1))
        members = [int(a.id) for p, a in enumerate(admins) if p == 0 or (p + k) % 3 == 0]
        teams.append(TeamSpec(
            id=team_id, name=name, admin_ids=members, primary_admin_ids=members[:2],
            assignment_limit=(10 + k if k % 2 == 0 else None),
            distribution_method=("round_robin" if k % 3 == 0 else "balanced" if k % 3 == 1 else None),
        ))
    sync_team_ids(admins, teams)
    return teams


def sync_team_ids(admins: list[AdminSpec], teams: list[TeamSpec]) -> None:
    """Make each admin's `team_ids` agree with the teams' `admin_ids`."""
    for admin in admins:
        admin.team_ids = [int(t.id) for t in teams if int(admin.id) in t.admin_ids]


@dataclass(frozen=True)
class TagSpec:
    id: str
    name: str


def build_tags(region: str, count: int) -> list[TagSpec]:
    """Tags; `dsar` and `security` always exist (the scenario uses them)."""
    count = max(count, 2)
    names = list(TAG_NAMES)
    while len(names) < count:
        names.append(f"tag-{len(names) + 1}-ß")
    return [TagSpec(str(_TAG_ID_BASE + _TAG_ID_STRIDE[region] * (k + 1)), name)
            for k, name in enumerate(names[:count])]


def admin_json(admin: AdminSpec, *, with_avatar: bool, with_role: bool = True) -> dict[str, Any]:
    """`admin` schema (docs/intercom-api.md#record-shapes-worth-knowing): avatar only on request, role only when the
    admin has one."""
    out: dict[str, Any] = {
        "type": "admin",
        "id": admin.id,
        "name": admin.name,
        "email": admin.email,
        "job_title": admin.job_title,
        "away_mode_enabled": admin.away_mode_enabled,
        "away_mode_reassign": admin.away_mode_reassign,
        "away_status_reason_id": admin.away_status_reason_id,
        "has_inbox_seat": admin.has_inbox_seat,
        "team_ids": list(admin.team_ids),
        "team_priority_level": {
            "primary_team_ids": admin.team_ids[:1] or None,
            "secondary_team_ids": admin.team_ids[1:] or None,
        },
    }
    if with_avatar:
        out["avatar"] = admin.avatar
    if with_role and admin.role is not None:
        out["role"] = {"type": "role", "id": admin.role[0], "name": admin.role[1]}
    return out


def team_json(team: TeamSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "team",
        "id": team.id,
        "name": team.name,
        "admin_ids": list(team.admin_ids),
        "admin_priority_level": {
            "primary_admin_ids": list(team.primary_admin_ids) or None,
            "secondary_admin_ids": [a for a in team.admin_ids if a not in team.primary_admin_ids] or None,
        },
    }
    # assignment_limit and distribution_method only exist on load-balanced teams
    # (docs/intercom-api.md#record-shapes-worth-knowing).
    if team.assignment_limit is not None:
        out["assignment_limit"] = team.assignment_limit
    if team.distribution_method is not None:
        out["distribution_method"] = team.distribution_method
    return out


def tag_json(tag: TagSpec) -> dict[str, Any]:
    return {"type": "tag", "id": tag.id, "name": tag.name}


# Contact custom attributes (keys used in generated contacts) and company attributes.
CONTACT_CUSTOM_ATTRIBUTES: tuple[tuple[int, str, str, str, bool], ...] = (
    # id, name, data_type, label, archived
    (11, "plan", "string", "Plan", False),
    (12, "mrr", "integer", "MRR (¢)", False),
    (13, "beta_tester", "boolean", "Beta tester", False),
    (14, "support_notes", "string", "Support notes ✍️", False),
    (15, "trial_ends_at", "date", "Trial ends", False),
    (16, "signup_source", "string", "Signup source", False),
    (17, "legacy_segment", "string", "Legacy segment (old)", True),
)
_CONTACT_STANDARD_ATTRIBUTES: tuple[tuple[str, str, str, str], ...] = (
    ("name", "name", "string", "Name"),
    ("email", "email", "string", "Email"),
    ("phone", "phone", "string", "Phone"),
    ("external_id", "external_id", "string", "User ID"),
    ("created_at", "created_at", "date", "Signed up"),
    ("last_seen_at", "last_seen_at", "date", "Last seen"),
    ("country", "location.country", "string", "Country"),
    ("city", "location.city", "string", "City"),
    ("unsubscribed_from_emails", "unsubscribed_from_emails", "boolean", "Unsubscribed from emails"),
)
_COMPANY_STANDARD_ATTRIBUTES: tuple[tuple[str, str, str, str], ...] = (
    ("name", "name", "string", "Company name"),
    ("company_id", "company_id", "string", "Company ID"),
    ("name", "plan.name", "string", "Plan"),
    ("monthly_spend", "monthly_spend", "float", "Monthly Spend"),
    ("user_count", "user_count", "integer", "People"),
)


def data_attributes_json(model: str, include_archived: bool, created_at: int, owner_id: str,
                         *, scenario_now: int | None = None) -> list[dict[str, Any]]:
    """`GET /data_attributes?model=...` items (docs/intercom-api.md#record-shapes-worth-knowing): standard ones have
    no id.

    scenario_now: the fake's "now", given in the scenario region only: its contacts also define
    the planted sensitive attribute (scenario.py, item 11), created
    `SENSITIVE_ATTRIBUTE_CREATED_DAYS_AGO` days before it."""
    standard = _CONTACT_STANDARD_ATTRIBUTES if model == "contact" else _COMPANY_STANDARD_ATTRIBUTES
    out: list[dict[str, Any]] = [{
        "type": "data_attribute", "name": name, "full_name": full, "label": label,
        "description": f"{label} ({model})", "data_type": dtype, "api_writable": full != "created_at",
        "ui_writable": False, "messenger_writable": True, "custom": False, "archived": False, "model": model,
    } for name, full, dtype, label in standard]
    if model == "contact":
        for attr_id, name, dtype, label, archived in CONTACT_CUSTOM_ATTRIBUTES:
            if archived and not include_archived:
                continue
            item: dict[str, Any] = {
                "type": "data_attribute", "id": attr_id, "model": "contact", "name": name,
                "full_name": f"custom_attributes.{name}", "label": label, "description": "",
                "data_type": dtype, "api_writable": True, "ui_writable": True, "messenger_writable": False,
                "custom": True, "archived": archived, "created_at": created_at + attr_id * 86_400,
                "updated_at": created_at + attr_id * 90_000, "admin_id": owner_id,
            }
            if name == "plan":
                item["options"] = ["free", "starter", "pro", "enterprise", "prö-legacy"]
            out.append(item)
        if scenario_now is not None:
            planted = scenario_now - sc.SENSITIVE_ATTRIBUTE_CREATED_DAYS_AGO * 86_400
            out.append({
                "type": "data_attribute", "id": sc.SENSITIVE_ATTRIBUTE_ID, "model": "contact",
                "name": sc.SENSITIVE_ATTRIBUTE, "full_name": f"custom_attributes.{sc.SENSITIVE_ATTRIBUTE}",
                "label": sc.SENSITIVE_ATTRIBUTE_LABEL, "description": "ID check for refunds over $500",
                "data_type": "string", "api_writable": True, "ui_writable": True, "messenger_writable": False,
                "custom": True, "archived": False, "created_at": planted, "updated_at": planted,
                "admin_id": sc.VENDOR_ADMIN.id,
            })
    else:
        out.append({
            "type": "data_attribute", "id": 31, "model": "company", "name": "industry_segment",
            "full_name": "custom_attributes.industry_segment", "label": "Industry", "description": "",
            "data_type": "string", "api_writable": True, "ui_writable": True, "messenger_writable": False,
            "custom": True, "archived": False, "created_at": created_at + 86_400, "updated_at": created_at + 86_400,
            "admin_id": owner_id,
        })
    return out


CONVERSATION_ATTRIBUTE_NAMES = ("Issue type", "CX Score rating", "CX Score explanation", "Escalation notes")


def conversation_attributes_json(include_archived: bool, created_at: int, owner_id: str) -> list[dict[str, Any]]:
    """`GET /conversations/attributes` items (2.16): one shape per data_type."""
    base = {"type": "conversation_attribute", "description": "", "required": False,
            "visible_to_team_ids": [], "archived": False, "admin_id": owner_id}
    items: list[dict[str, Any]] = [
        {**base, "id": 1, "name": "Issue type", "data_type": "list", "created_at": created_at,
         "updated_at": created_at + 3600,
         "options": [{"id": f"0e1a{n:04d}-5f6a-4b7c-8d9e-0f1a2b3c4d5e", "label": label, "archived": False}
                     for n, label in enumerate(("Billing", "Bug", "Account access", "Datenschutz", "Other"))]},
        {**base, "id": 2, "name": "CX Score rating", "data_type": "integer", "created_at": created_at,
         "updated_at": created_at},
        {**base, "id": 3, "name": "CX Score explanation", "data_type": "string", "multiline": True,
         "created_at": created_at, "updated_at": created_at},
        {**base, "id": 4, "name": "Escalation notes", "data_type": "string", "multiline": False,
         "created_at": created_at + 86_400, "updated_at": created_at + 86_400},
        {**base, "id": 5, "name": "Refund approved", "data_type": "boolean", "created_at": created_at + 86_400,
         "updated_at": created_at + 86_400},
        {**base, "id": 6, "name": "Follow-up date", "data_type": "datetime", "created_at": created_at + 86_400,
         "updated_at": created_at + 86_400},
        {**base, "id": 7, "name": "Old triage field", "data_type": "string", "multiline": False, "archived": True,
         "created_at": created_at, "updated_at": created_at + 7 * 86_400},
    ]
    return [i for i in items if include_archived or not i["archived"]]
