"""Admin activity logs (docs/intercom-api.md#record-shapes-worth-knowing): a lazily generated history plus planted
scenario events.

Generated entries obey the scenario's invariants (scenario.py): no generated entry is by the
stale, never-logged-in or burst admin; generated exports (every type in
`scenario.EXPORT_ACTIVITY_TYPES`) only happen in office hours, Mon-Fri 09:00-17:59 local time;
login failures are rare. Planted entries (`scenario_events`) then carry the findings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from . import scenario as sc
from .constants import SECONDS_PER_DAY, RegionProfile
from .directory import AdminSpec, TeamSpec
from .gen_contacts import ContactFactory
from .hashing import Draw, stream_key
from .pools import AWAY_STATUS_REASONS
from .timeline import Timeline, build_timeline, local_date, local_time

DAY = SECONDS_PER_DAY

ACTIVITY_MIX: tuple[tuple[str, int], ...] = (
    ("admin_login_success", 380), ("admin_logout", 90), ("admin_login_failure", 12),
    ("admin_away_mode_change", 60), ("admin_permission_change", 30), ("app_data_export", 12),
    ("bulk_export", 15), ("admin_deletion", 6), ("seat_change", 20), ("app_team_membership_modification", 30),
    ("admin_two_factor_auth_change", 18), ("app_authentication_method_change", 5),
    ("app_identity_verification_change", 5), ("admin_invite_creation", 15), ("role_change", 12),
    ("conversation_pdf_export", 15), ("message_state_change", 20), ("app_name_change", 3),
    ("security_settings_change", 8), ("admin_impersonation_start", 6), ("admin_impersonation_end", 6),
    ("admin_impersonation_consent_approved", 4), ("admin_occupancy_state_change", 15),
    ("app_webhook_creation", 4), ("macro_creation", 12), ("csv_import_creation", 6),
    ("message_deletion", 8), ("admin_password_reset_success", 8), ("app_timezone_change", 2),
    ("macro_usage_export", 4),
)
SIGN_IN_METHODS = ("email_password", "google_sso", "saml_sso", "two_factor_email_password")
_EXPORT_TYPES = (*sc.EXPORT_ACTIVITY_TYPES, "message_deletion")  # descriptions that mention contacts


def _iso(ts: int) -> str:
    """A date-time as the spec's examples write it: ISO 8601, UTC, with a Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def in_office_hours(ts: int, tz: ZoneInfo) -> bool:
    """Whether `ts` falls in the scenario's office hours (Mon-Fri 09:00-17:59 local time)."""
    local = datetime.fromtimestamp(ts, tz)
    start, stop = sc.NIGHT_EXPORT_OFFICE_HOURS
    return local.isoweekday() in sc.OFFICE_DAYS and start <= local.hour < stop


class ActivityFactory:
    """Generated activity-log entries, newest at the highest index."""

    def __init__(
        self,
        *,
        seed: int,
        profile: RegionProfile,
        size: int,
        now: int,
        tz: ZoneInfo,
        admins: list[AdminSpec],
        teams: list[TeamSpec],
        contacts: ContactFactory,
    ) -> None:
        self.profile = profile
        self.size = size
        self.now = now
        self.tz = tz
        self._key = stream_key(seed, profile.id_salt, "activity")
        self._contacts = contacts
        self._teams = teams
        excluded = {sc.STALE_ADMIN.id, sc.NEVER_LOGGED_IN_ADMIN.id, sc.LOGIN_FAILURE_ADMIN.id}
        self._actors = [a for a in admins if a.id not in excluded] or list(admins)
        self._all_admins = admins
        self.timeline: Timeline = build_timeline(
            size, start=now - 2 * 365 * DAY, end=now - 300, tz=tz,
            jitter_key=stream_key(seed, profile.id_salt, "activity.time"),
        )

    def admin_ip(self, admin: AdminSpec, d: Draw) -> str:
        n = int(admin.id) % 200
        if admin.id == sc.SHARED_ADMIN.id:
            return d.pick(sc.SHARED_ADMIN_LOGIN_IPS)
        return f"198.51.100.{n + 1}" if d.chance(85) else f"2001:db8:{n:x}::{d.between(1, 0xFFFF):x}"

    def record(self, index: int) -> dict[str, Any]:
        d = Draw(self._key, index)
        created = self.timeline.at(index)
        actor = d.pick(self._actors)
        activity_type = d.weighted(ACTIVITY_MIX)
        if activity_type in sc.EXPORT_ACTIVITY_TYPES and not in_office_hours(created, self.tz):
            # Exports outside office hours are the scenario's finding; keep generated ones in hours.
            activity_type = "admin_login_success"
        return self.entry(d, d.uuid(), created, activity_type, actor)

    def entry(self, d: Draw, entry_id: str, created: int, activity_type: str, actor: AdminSpec,
              *, ip: str | None = None, metadata: dict[str, Any] | None = None,
              description: str | None = None) -> dict[str, Any]:
        meta, text = self._details(d, activity_type, actor, created)
        return {
            "id": entry_id,
            "performed_by": {"type": "admin", "id": actor.id, "email": actor.email,
                "ip": ip or self.admin_ip(actor, d)},
            "metadata": meta if metadata is None else metadata,
            "created_at": created,
            "activity_type": activity_type,
            "activity_description": text if description is None else description,
        }

    def _contact_mention(self, d: Draw) -> str:
        """A contact's e-mail and phone, as export descriptions carry them (a PII leak to mask)."""
        ident = self._contacts.identity(d.below(max(1, self._contacts.size)))
        email = ident.email or f"lead{d.below(10_000)}@gmail.com"
        phone = ident.phone or f"+1 415 555 {d.below(10_000):04d}"
        return f"{email} ({phone})"

    def _details(self, d: Draw, activity_type: str, actor: AdminSpec, created: int) -> tuple[dict[str, Any], str]:
        name = actor.name
        other = d.pick(self._all_admins)
        if activity_type in ("admin_login_success", "admin_login_failure"):
            verb = "logged in" if activity_type == "admin_login_success" else "failed to log in"
            return {"sign_in_method": d.pick(SIGN_IN_METHODS)}, f"{name} {verb}."
        if activity_type == "admin_logout":
            return {}, f"{name} logged out."
        if activity_type == "admin_away_mode_change":
            away = d.chance(50)
            return ({"away_mode": away, "away_status_reason": d.pick(AWAY_STATUS_REASONS) if away else None,
                     "reassign_conversations": d.chance(50), "source": "admin", "auto_changed": "false"},
                    f"{name} changed their away mode to {'Away' if away else 'Active'}.")
        if activity_type == "admin_permission_change":
            return ({"before": "Restricted access", "after": "Full access"},
                    f"{name} changed permissions for {other.name} ({other.email}).")
        if activity_type in _EXPORT_TYPES:
            label = {"app_data_export": "exported workspace data", "bulk_export": "exported a list of contacts",
                     "conversation_pdf_export": "exported a conversation as PDF",
                     "macro_usage_export": "exported macro usage",
                     "message_deletion": "deleted a message sent to"}[activity_type]
            mention = self._contact_mention(d) if d.chance(60) else f"{d.between(10, 5000)} contacts"
            return {}, f"{name} {label} including {mention}."
        if activity_type == "admin_deletion":
            return ({"update_by": int(actor.id), "update_by_name": name},
                    f"{name} removed a teammate (former.employee{d.below(100)}@{actor.email.split('@')[1]}).")
        if activity_type == "seat_change":
            return ({"changes": {"seat": {"before": "lite", "after": "full"}}},
                    f"{name} changed the seat of {other.name}.")
        if activity_type == "app_team_membership_modification":
            team = d.pick(self._teams) if self._teams else None
            meta: dict[str, Any] = {"team": {"id": int(team.id), "name": team.name}} if team else {}
            return meta, f"{name} added {other.name} to {team.name if team else 'a team'}."
        if activity_type == "admin_two_factor_auth_change":
            enabled = d.chance(80)
            return {"enabled": enabled}, f"{name} {'enabled' if enabled else 'disabled'} two-factor authentication."
        if activity_type == "app_authentication_method_change":
            return ({"changes": {"saml_sso": {"before": False, "after": True}}},
                    f"{name} changed the workspace's authentication methods.")
        if activity_type == "app_identity_verification_change":
            return {"enabled": True, "mode": "enforced"}, f"{name} enforced identity verification."
        if activity_type == "admin_invite_creation":
            return {}, f"{name} invited new.teammate{d.below(100)}@{actor.email.split('@')[1]}."
        if activity_type == "role_change":
            return {"before": "Support agent", "after": "Admin"}, f"{name} changed the role of {other.name}."
        if activity_type == "message_state_change":
            return ({"message": {"id": d.between(100, 999), "title": "Spring newsletter"},
                     "before": "draft", "after": "live"}, f"{name} set the Spring newsletter message live.")
        if activity_type == "app_name_change":
            return {"before": "Example", "after": "Example Corp"}, f"{name} changed your app name."
        if activity_type == "security_settings_change":
            return ({"setting_type": "attachment_upload",
                "changes": {"allowed_file_types": {"before": "all", "after": "images"}}},
                    f"{name} changed security settings.")
        if activity_type == "admin_impersonation_consent_approved":
            return ({"consent_id": d.between(1000, 9999), "expired_at": _iso(created + 7 * DAY)},
                    f"{name} approved Intercom support access.")
        if activity_type == "admin_impersonation_start":
            # Intercom records consent in two shapes (spec: activity_log_metadata consent_id and
            # expired_at): on the start event itself, or as a separate consent_approved event.
            # Half the starts carry their consent; its own draw keeps the entry's other values.
            own = Draw(self._key ^ 0xC0125E47, created)
            meta = ({"consent_id": own.between(100000, 999999), "expired_at": _iso(created + 7 * DAY)}
                    if own.chance(50) else {})
            return meta, f"Intercom support started impersonating {name}."
        if activity_type == "admin_occupancy_state_change":
            return ({"previous_state": "active", "new_state": "away", "threshold_minutes": 30,
                     "last_activity_at": self.now - d.below(DAY), "auto": True},
                    f"{name} was set to away automatically.")
        return {}, f"{name} performed {activity_type.replace('_', ' ')}."

    # scenario -------------------------------------------------------------------------------
    def scenario_events(self, internal_domain: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Planted entries for the scenario region (plus a recent login for every other active
        admin, so only the planted stale admin is stale). Returns (entries, ids by role)."""
        by_id = {a.id: a for a in self._all_admins}
        events: list[dict[str, Any]] = []
        roles: dict[str, str] = {}
        seq = 0

        def add(created: int, activity_type: str, actor_id: str, role: str | None = None, **kw: Any) -> None:
            nonlocal seq
            actor = by_id.get(actor_id)
            if actor is None:
                return
            seq += 1
            d = Draw(self._key ^ 0x5CE7A210, seq)
            entry = self.entry(d, d.uuid(), created, activity_type, actor, **kw)
            events.append(entry)
            if role:
                roles[role] = entry["id"]

        now, tz = self.now, self.tz

        def days_ago_at(days: int, hour: int, minute: int, second: int = 0) -> int:
            """Local wall-clock time on the day `days` ago, at least `days` full days back."""
            t = local_time(local_date(now - days * DAY, tz), hour, minute, second, tz)
            if t > now - days * DAY:
                t = local_time(local_date(now - (days + 1) * DAY, tz), hour, minute, second, tz)
            return t
        in_scenario = self.profile.code == sc.SCENARIO_REGION
        special = {a.id for a in sc.SCENARIO_ADMINS} if in_scenario else set()
        for position, admin in enumerate(self._all_admins):
            if admin.id in special:
                continue
            at = days_ago_at(1 + position % 9, 9 + position % 8, 7 * position % 60, 0)
            add(at, "admin_login_success", admin.id, metadata={"sign_in_method": "google_sso"})
        if not in_scenario:
            return events, roles

        owner = sc.WORKSPACE_OWNER.id
        add(days_ago_at(2, 8, 55, 0), "admin_login_success", owner, metadata={"sign_in_method": "saml_sso"})
        for days in sc.STALE_ADMIN_EARLIER_LOGINS_DAYS_AGO:
            add(days_ago_at(days, 10, 2, 0), "admin_login_success", sc.STALE_ADMIN.id,
                metadata={"sign_in_method": "email_password"})
        add(days_ago_at(sc.STALE_ADMIN_LAST_LOGIN_DAYS_AGO, 16, 40, 0), "admin_login_success",
            sc.STALE_ADMIN.id, "stale_admin_last_login", metadata={"sign_in_method": "email_password"})
        invitee = sc.NEVER_LOGGED_IN_ADMIN.email_at(internal_domain)
        add(days_ago_at(sc.NEVER_LOGGED_IN_INVITED_DAYS_AGO, 11, 0, 0), "admin_invite_creation", owner,
            "never_logged_in_invite", metadata={}, description=f"{sc.WORKSPACE_OWNER.name} invited {invitee}.")
        for k, ip in enumerate(sc.SHARED_ADMIN_LOGIN_IPS):
            add(days_ago_at(3 + 6 * k, 7 + 4 * k, 15, 0), "admin_login_success", sc.SHARED_ADMIN.id,
                f"shared_login_{k + 1}", ip=ip, metadata={"sign_in_method": "email_password"})
        for days in (90, 60, sc.TERMINATED_ADMIN_TERMINATED_DAYS_AGO + 1):
            add(days_ago_at(days, 9, 30, 0), "admin_login_success", sc.TERMINATED_ADMIN.id,
                metadata={"sign_in_method": "google_sso"})
        add(days_ago_at(sc.TERMINATED_ADMIN_LAST_LOGIN_DAYS_AGO, 22, 12, 0), "admin_login_success",
            sc.TERMINATED_ADMIN.id, "terminated_admin_login_after_termination",
            metadata={"sign_in_method": "google_sso"})
        h, m, s = sc.NIGHT_EXPORT_LOCAL_TIME
        export_at = days_ago_at(sc.NIGHT_EXPORT_DAYS_AGO, h, m, s)
        add(export_at, "app_data_export", sc.NIGHT_EXPORT_ADMIN.id, "night_export", metadata={},
            description=f"{sc.NIGHT_EXPORT_ADMIN.name} exported workspace data including "
                        f"{self._contact_mention(Draw(self._key, -1))}.")
        add(days_ago_at(sc.NIGHT_EXPORT_DAYS_AGO + 1, 10, 0, 0), "admin_login_success",
            sc.NIGHT_EXPORT_ADMIN.id, metadata={"sign_in_method": "saml_sso"})
        h, m, s = sc.LOGIN_FAILURE_LOCAL_START
        first = days_ago_at(sc.LOGIN_FAILURE_DAYS_AGO, h, m, s)
        for k in range(sc.LOGIN_FAILURE_COUNT):
            add(first + k * sc.LOGIN_FAILURE_INTERVAL_SECONDS, "admin_login_failure", sc.LOGIN_FAILURE_ADMIN.id,
                f"login_failure_{k + 1}", ip=sc.LOGIN_FAILURE_IP, metadata={"sign_in_method": "email_password"})
        add(first + sc.LOGIN_FAILURE_COUNT * sc.LOGIN_FAILURE_INTERVAL_SECONDS, "admin_login_success",
            sc.LOGIN_FAILURE_ADMIN.id, "login_after_failures", ip=sc.LOGIN_FAILURE_IP,
            metadata={"sign_in_method": "email_password"})
        add(days_ago_at(4, 13, 20, 0), "admin_login_success", sc.VENDOR_ADMIN.id,
            metadata={"sign_in_method": "email_password"})
        return events, roles
