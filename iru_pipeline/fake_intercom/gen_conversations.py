"""Conversations as a pure function of (seed, region, index) -- docs/intercom-api.md#version-216-always-sent for the
shape.

List and search items carry message content (`source.body`, `subject`, author name and
e-mail, attachments, `title`, rating remarks, custom attribute values), all marked with
MESSAGE_BODY_MARKER, because real list responses do too (docs/intercom-api.md#ids-timestamps-and-free-text). `GET
/conversations/{id}` adds `conversation_parts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from . import pools
from . import scenario as sc
from .constants import HISTORY_SECONDS, MESSAGE_BODY_MARKER, SECONDS_PER_DAY, RegionProfile
from .directory import AdminSpec, TagSpec, TeamSpec
from .gen_contacts import ContactFactory
from .hashing import Draw, stream_key
from .timeline import Timeline, build_timeline

DAY = SECONDS_PER_DAY


@dataclass(frozen=True)
class ConversationScenario:
    """Indices of the planted conversations (scenario.py) in one workspace."""

    retention: tuple[int, ...] = ()
    dsar: int | None = None
    security: int | None = None

    def special(self) -> set[int]:
        out = set(self.retention)
        out.update(i for i in (self.dsar, self.security) if i is not None)
        return out


class ConversationFactory:
    """Generates conversation records lazily; nothing per conversation is stored."""

    def __init__(
        self,
        *,
        seed: int,
        profile: RegionProfile,
        size: int,
        now: int,
        tz: ZoneInfo,
        contacts: ContactFactory,
        admins: list[AdminSpec],
        teams: list[TeamSpec],
        tags: list[TagSpec],
        with_scenario: bool,
    ) -> None:
        self.profile = profile
        self.size = size
        self.now = now
        self._key = stream_key(seed, profile.id_salt, "conversation")
        self._contacts = contacts
        self._admins = admins
        self._admin_ints = [int(a.id) for a in admins]
        self._team_ints = [int(t.id) for t in teams]
        self._tags = {t.name: t for t in tags}
        # The scenario's tags mark exactly one conversation each, so the pool excludes them.
        self._plain_tags = [t for t in tags if t.name not in (sc.DSAR_TAG, sc.SECURITY_TAG)]
        burst = max(2, min(300, size // 4))
        self.timeline: Timeline = build_timeline(
            size,
            start=now - HISTORY_SECONDS,
            end=now - 30,
            tz=tz,
            jitter_key=stream_key(seed, profile.id_salt, "conversation.time"),
            bursts=((0.40, burst), (0.985, max(2, burst // 2))),
            midnight_points=(0.7, 0.95),
            old_fraction=0.08,
            old_until=now - 800 * DAY,
        )
        self.scenario = self._place_scenario() if with_scenario else ConversationScenario()

    def _place_scenario(self) -> ConversationScenario:
        if self.size < 8:
            return ConversationScenario()
        retention = tuple(range(sc.RETENTION_CONVERSATION_COUNT))
        dsar = max(len(retention), self.timeline.first_at_or_after(self.now - 30 * DAY))
        dsar = min(dsar, self.size - 2)
        security = max(dsar + 1, self.timeline.first_at_or_after(self.now - 20 * DAY))
        security = min(security, self.size - 1)
        return ConversationScenario(retention=retention, dsar=dsar, security=security)

    # ids ------------------------------------------------------------------------------------
    def conversation_id(self, index: int) -> str:
        """Numeric string of fixed width, so string order equals index order."""
        return str(self.profile.conversation_id_base + self.profile.conversation_id_stride * index)

    def index_of(self, conversation_id: str) -> int | None:
        if not conversation_id.isdigit():
            return None
        value = int(conversation_id) - self.profile.conversation_id_base
        stride = self.profile.conversation_id_stride
        if value < 0 or value % stride:
            return None
        return value // stride

    def is_pre_deleted(self, index: int) -> bool:
        """About one in 61 generated conversations was deleted before the fake started."""
        return index % 61 == 29 and index not in self.scenario.special()

    def pre_deleted_at(self, index: int) -> int:
        d = Draw(self._key ^ 0xDE1E7ED, index)
        return min(self.now - 3600, self.timeline.at(index) + d.below(20 * DAY))

    def pre_deleted_metrics_retained(self, index: int) -> bool:
        return index % 2 == 1

    # records --------------------------------------------------------------------------------
    def record(self, index: int, *, updated_at: int | None = None, created_at: int | None = None) -> dict[str, Any]:
        """The conversation as list and search endpoints serve it."""
        d = Draw(self._key, index)
        conv_id = self.conversation_id(index)
        updated = self.timeline.at(index) if updated_at is None else updated_at
        scen = self.scenario
        duration = d.weighted(((0, 5), (3600, 30), (DAY, 35), (14 * DAY, 20), (120 * DAY, 10)))
        if created_at is not None:
            created = created_at
        else:
            created = updated - d.below(duration + 1)
            if index in scen.retention:
                created = self.now - (sc.RETENTION_MIN_AGE_DAYS + 200 + 7 * index) * DAY
            elif index == scen.dsar:
                created = self.now - sc.DSAR_CREATED_DAYS_AGO * DAY
            elif index == scen.security:
                created = self.now - sc.SECURITY_CREATED_DAYS_AGO * DAY
        created = min(created, updated)
        life = updated - created

        state = d.weighted((("closed", 70), ("open", 20), ("snoozed", 10)))
        contact_index = d.below(max(1, self._contacts.size))
        contact = self._contacts.identity(contact_index)
        admin = d.pick(self._admins)
        source_type = d.weighted(pools.CONVERSATION_SOURCE_TYPES)
        delivered_as = d.weighted((("customer_initiated", 70), ("admin_initiated", 15),
                                   ("operator_initiated", 10), ("automated", 5)))
        from_admin = delivered_as == "admin_initiated"
        n = 1000 + index
        subject = d.pick(pools.CONVERSATION_SUBJECTS).format(n=n) if source_type == "email" or d.chance(15) else ""
        body = d.pick(pools.CONVERSATION_BODIES).format(n=n)
        attachments = []
        if d.chance(20):
            name, ctype = d.pick(pools.ATTACHMENT_NAMES)
            attachments.append({"type": "upload", "name": name,
                                "url": f"https://downloads.intercomcdn.com/i/o/{index}/{d.bits() & 0xFFFFFF:06x}/file",
                                "content_type": ctype, "filesize": d.between(1_000, 5_000_000),
                                "width": 800 if ctype.startswith("image") else 0,
                                "height": 600 if ctype.startswith("image") else 0})
        source: dict[str, Any] = {
            "type": source_type,
            "id": str(400_000_000 + index),
            "delivered_as": delivered_as,
            "subject": subject,
            "body": body,
            "author": ({"type": "admin", "id": admin.id, "name": admin.name, "email": admin.email} if from_admin else
                       {"type": contact.role, "id": contact.id, "name": contact.name,
                        "email": contact.email or None}),
            "attachments": attachments,
            "url": (f"https://app.example-corp.com/help?ref={index}"
                    if source_type == "conversation" and d.chance(30) else None),
            "redacted": False,
        }
        if source_type == "email" and contact.email:
            source["recipients"] = [{"type": "to", "email": f"support@{self._contacts.internal_domain}",
                "drop_reason": None}]
            source["reply_to"] = [{"email": contact.email, "name": contact.name}]
            source["email_message_metadata"] = {
                "message_id": f"<{index}.{d.bits() & 0xFFFFFFFF:08x}@mail.example>",
                "subject": subject,
                "email_address_headers": [{"type": "from", "email_address": contact.email, "name": contact.name}],
                "history": f"<blockquote>Earlier message {MESSAGE_BODY_MARKER}</blockquote>",
            }

        assigned = d.chance(80)
        admin_assignee = d.pick(self._admin_ints) if assigned and self._admin_ints else 0
        team_assignee = d.pick(self._team_ints) if self._team_ints and d.chance(70) else 0

        # Tags ------------------------------------------------------------------------------
        tag_specs: list[TagSpec] = []
        if index == scen.dsar:
            tag_specs = [self._tags[sc.DSAR_TAG]]
            if "gdpr" in self._tags:
                tag_specs.append(self._tags["gdpr"])
        elif index == scen.security:
            tag_specs = [self._tags[sc.SECURITY_TAG]]
        else:
            roll = d.below(100)
            count = 0 if roll < 60 else 1 if roll < 90 else d.between(2, 3)
            tag_specs = d.sample(self._plain_tags, count)
        tagger = d.pick(self._admins)
        tags = [{"type": "tag", "id": t.id, "name": t.name, "applied_at": created + d.below(life + 1),
                 "applied_by": {"type": "admin", "id": tagger.id}} for t in tag_specs]

        # Statistics: only moments that happened are present (the spec types them as integers).
        stats: dict[str, Any] | None = None
        reply_delay: int | None = None
        planted = index == scen.dsar or index == scen.security
        if index == scen.dsar:
            reply_delay = sc.DSAR_REPLY_DELAY_DAYS * DAY
        elif index == scen.security:
            reply_delay = sc.SECURITY_REPLY_DELAY_SECONDS
        elif d.chance(85):
            reply_delay = d.weighted(((d.between(30, 900), 40), (d.between(900, 4 * 3600), 35),
                                      (d.between(4 * 3600, 3 * DAY), 20), (d.between(3 * DAY, 40 * DAY), 5)))
            reply_delay = min(reply_delay, life)
        if not d.chance(4) or planted:  # the planted replies are always on record
            stats = {"type": "conversation_statistics"}
            first_contact_reply = created if not from_admin else created + min(life, d.below(3600))
            stats["first_contact_reply_at"] = first_contact_reply
            if assigned:
                t_assign = d.below(min(life, 1800) + 1)
                stats["time_to_assignment"] = t_assign
                stats["first_assignment_at"] = created + t_assign
                stats["last_assignment_at"] = created + t_assign
                stats["count_assignments"] = 1 + d.below(3)
            if reply_delay is not None:
                stats["time_to_admin_reply"] = reply_delay
                stats["first_admin_reply_at"] = created + reply_delay
                stats["last_admin_reply_at"] = created + reply_delay + d.below(max(0, life - reply_delay) + 1)
                stats["median_time_to_reply"] = max(1, reply_delay // 2)
                if assigned:
                    stats["last_assignment_admin_reply_at"] = created + reply_delay
            stats["last_contact_reply_at"] = first_contact_reply + d.below(max(0, updated - first_contact_reply) + 1)
            if state == "closed":
                stats["time_to_first_close"] = life
                stats["time_to_last_close"] = life
                stats["first_close_at"] = updated
                stats["last_close_at"] = updated
                stats["last_closed_by_id"] = admin.id
            stats["count_reopens"] = d.below(2)
            stats["count_conversation_parts"] = 2 + d.below(12)
            stats["assigned_team_first_response_time"] = []
            stats["assigned_team_first_response_time_in_office_hours"] = []
            stats["handling_time"] = d.below(3600)

        rating = None
        if state == "closed" and d.chance(30):
            rated_at = updated - d.below(min(life, 3600) + 1)
            rating = {"rating": d.between(1, 5), "remark": d.pick(pools.RATING_REMARKS),
                      "created_at": rated_at, "updated_at": rated_at,
                      "contact": {"type": "contact", "id": contact.id, "external_id": contact.external_id},
                      "teammate": {"type": "admin", "id": admin.id}}

        ai_participated = d.chance(25)
        ai_agent = None
        if ai_participated:
            ai_agent = {
                "source_type": d.pick(("essentials_plan_setup", "profile", "workflow", "workflow_preview",
                    "fin_preview")),
                "source_title": d.pick(pools.AI_SOURCE_TITLES),
                "last_answer_type": d.pick((None, "ai_answer", "custom_answer")),
                "resolution_state": d.pick(("assumed_resolution", "confirmed_resolution", "escalated",
                                            "negative_feedback", "procedure_handoff", None)),
                "rating": d.between(1, 5) if d.chance(30) else None,
                "rating_remark": d.pick(pools.AI_RATING_REMARKS) if d.chance(30) else None,
                "created_at": created,
                "updated_at": created + d.below(life + 1),
                "content_sources": {"type": "content_source.list", "total_count": 1, "content_sources": [
                    {"content_type": "article", "url": f"https://help.example-corp.com/articles/{index % 97}",
                     "title": d.pick(pools.AI_CONTENT_TITLES), "locale": "en"}]},
            }

        custom: dict[str, Any] = {}
        if d.chance(60):
            custom["Issue type"] = d.pick(pools.CUSTOM_ISSUE_TYPES)
        if rating is not None or d.chance(20):
            custom["CX Score rating"] = d.between(1, 5)
            custom["CX Score explanation"] = f"Customer seemed frustrated about the delay. {MESSAGE_BODY_MARKER}"
        if d.chance(10):
            custom["Escalation notes"] = f"Escalated to tier 2 — see internal note. {MESSAGE_BODY_MARKER}"

        teammates = None
        if reply_delay is not None or from_admin:
            teammates = {"type": "admin.list", "teammates": [{"type": "admin", "id": admin.id}]}

        is_open = state != "closed"
        return {
            "type": "conversation",
            "id": conv_id,
            "created_at": created,
            "updated_at": updated,
            "waiting_since": (updated - d.below(min(life, DAY) + 1)) if state == "open" and d.chance(60) else None,
            "snoozed_until": (self.now + d.between(3600, 7 * DAY)) if state == "snoozed" else None,
            "source": source,
            "contacts": {"type": "contact.list", "contacts": [
                {"type": "contact", "id": contact.id, "external_id": contact.external_id}]},
            "first_contact_reply": ({"created_at": created, "type": "conversation", "url": None}
                                    if not from_admin else None),
            # 2.16: 0 means unassigned (docs/intercom-api.md#version-216-always-sent).
            "admin_assignee_id": admin_assignee,
            "team_assignee_id": team_assignee,
            "open": is_open,
            "state": state,
            "read": d.chance(70),
            "tags": {"type": "tag.list", "tags": tags},
            "priority": d.weighted((("none", 60), ("low", 10), ("medium", 15), ("high", 10), ("urgent", 5))),
            "sla_applied": ({"type": "conversation_sla_summary", "sla_name": d.pick(pools.SLA_NAMES),
                             "sla_status": d.pick(("hit", "missed", "cancelled", "active"))}
                            if d.chance(25) else None),
            "statistics": stats,
            "conversation_rating": rating,
            "teammates": teammates,
            "title": d.pick(pools.CONVERSATION_TITLES),
            "custom_attributes": custom,
            "topics": {},
            "ticket": None,
            "linked_objects": {"type": "list", "data": [], "total_count": 0, "has_more": False},
            "ai_agent": ai_agent,
            "ai_agent_participated": ai_participated,
        }

    def parts(self, index: int, record: dict[str, Any]) -> dict[str, Any]:
        """`conversation_parts` for `GET /conversations/{id}` (bodies included, as Intercom does)."""
        d = Draw(self._key ^ 0x9A57, index)
        created, updated = record["created_at"], record["updated_at"]
        stats = record.get("statistics") or {}
        count = max(2, min(12, stats.get("count_conversation_parts", 3)))
        admin = d.pick(self._admins)
        parts = []
        for k in range(count):
            at = created + (updated - created) * (k + 1) // (count + 1)
            by_admin = k % 2 == 0
            parts.append({
                "type": "conversation_part",
                "id": str(2_000_000_000 + index * 20 + k),
                "part_type": "comment" if k < count - 1 or record["state"] != "closed" else "close",
                "body": d.pick(pools.PART_BODIES) if by_admin or k < count - 1 else None,
                "created_at": at,
                "updated_at": at,
                "notified_at": at,
                "assigned_to": None,
                "author": ({"type": "admin", "id": admin.id, "name": admin.name, "email": admin.email,
                            "from_ai_agent": False, "is_ai_answer": False} if by_admin else
                           {"type": "user", "id": record["contacts"]["contacts"][0]["id"],
                            "name": record["source"]["author"].get("name"),
                            "email": record["source"]["author"].get("email") or "",
                            "from_ai_agent": False, "is_ai_answer": False}),
                "attachments": [],
                "external_id": None,
                "redacted": False,
                "email_message_metadata": None,
                "state": "closed" if record["state"] == "closed" and k == count - 1 else "open",
                "tags": [],
                "event_details": None,
                "app_package_code": None,
            })
        return {"type": "conversation_part.list", "conversation_parts": parts, "total_count": len(parts)}
