"""One workspace of the fake: its data, and the mutations tests apply to it.

Iterators (`contacts()`, `conversations()`, ...) yield the current records exactly as the API
serves them, so a test can compare what a pipeline loaded with what the fake holds.
Mutations take their timestamps from the fake's clock, so changed records are "now".
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from . import scenario as sc
from .constants import DEFAULT_INTERNAL_DOMAIN, REGION_PROFILES, SECONDS_PER_DAY, RegionProfile
from .directory import (
    AdminSpec,
    TagSpec,
    TeamSpec,
    admin_json,
    build_admins,
    build_tags,
    build_teams,
    sync_team_ids,
    tag_json,
    team_json,
)
from .gen_activity import ActivityFactory
from .gen_contacts import ContactFactory
from .gen_conversations import ConversationFactory
from .hashing import Draw, stream_key
from .store import Collection
from .timeline import zone

_IP_ALLOWLISTS: dict[str, tuple[bool, tuple[str, ...]]] = {
    # Documentation address blocks (RFC 5737): deterministic, and never a real network.
    "us": (True, ("192.0.2.0/24", "198.51.100.7")),
    "eu": (True, ("203.0.113.0/25",)),
    "au": (False, ()),
}
"""Each region's IP allowlist setting: (enabled, addresses and CIDR ranges)."""


@dataclass(frozen=True)
class WorkspaceSizes:
    """How many records of each kind a workspace generates."""

    contacts: int = 3000
    conversations: int = 1500
    admins: int = 15
    teams: int = 6
    tags: int = 25
    activity_logs: int = 500


class Workspace:
    """The data of one workspace (in one region), with a mutation API."""

    def __init__(
        self,
        region: str,
        *,
        seed: int,
        sizes: WorkspaceSizes,
        clock: Callable[[], float],
        internal_domain: str = DEFAULT_INTERNAL_DOMAIN,
        cache_bytes: int = 48 << 20,
        workspace_id: str | None = None,
        app_name: str | None = None,
    ) -> None:
        profile = REGION_PROFILES[region]
        # Another workspace of the same region: its own `app.id_code` (and name); the region's
        # host, time zone and id scheme stay, so the same seed and sizes give the same record ids.
        if workspace_id:
            profile = replace(profile, workspace_id=workspace_id)
        if app_name:
            profile = replace(profile, app_name=app_name)
        self.profile: RegionProfile = profile
        self.region = region
        self.seed = seed
        self.sizes = sizes
        self.clock = clock
        self.created_at = int(clock())
        self.internal_domain = internal_domain
        self.tz = zone(self.profile.timezone)
        self._lock = threading.RLock()
        self._mutations = 0
        self._mutation_key = stream_key(seed, self.profile.id_salt, "mutation")
        self.version = 0

        now = self.created_at
        self._admins: list[AdminSpec] = build_admins(region, sizes.admins, internal_domain)
        self._teams: list[TeamSpec] = build_teams(region, sizes.teams, self._admins)
        self._tags: list[TagSpec] = build_tags(region, sizes.tags)
        admin_ids = [a.id for a in self._admins]

        self.contact_factory = ContactFactory(
            seed=seed, profile=self.profile, size=sizes.contacts, now=now, tz=self.tz,
            internal_domain=internal_domain, admin_ids=admin_ids, tag_ids=[t.id for t in self._tags])
        self.contact_store = Collection(
            self.contact_factory, base_size=sizes.contacts, id_of=self.contact_factory.contact_id,
            relevance_key=stream_key(seed, self.profile.id_salt, "contact.relevance"), cache_bytes=cache_bytes)

        in_scenario = region == sc.SCENARIO_REGION
        self.conversation_factory = ConversationFactory(
            seed=seed, profile=self.profile, size=sizes.conversations, now=now, tz=self.tz,
            contacts=self.contact_factory, admins=self._admins, teams=self._teams, tags=self._tags,
            with_scenario=in_scenario)
        cf = self.conversation_factory
        pre_deleted = [i for i in range(29, sizes.conversations, 61) if cf.is_pre_deleted(i)]
        self.conversation_store = Collection(
            cf, base_size=sizes.conversations, id_of=cf.conversation_id,
            relevance_key=stream_key(seed, self.profile.id_salt, "conversation.relevance"),
            pre_hidden=pre_deleted, cache_bytes=cache_bytes)
        self._deleted: list[tuple[int, str, bool]] = sorted(
            (cf.pre_deleted_at(i), cf.conversation_id(i), cf.pre_deleted_metrics_retained(i)) for i in pre_deleted)

        self.activity_factory = ActivityFactory(
            seed=seed, profile=self.profile, size=sizes.activity_logs, now=now, tz=self.tz,
            admins=self._admins, teams=self._teams, contacts=self.contact_factory)
        events, roles = self.activity_factory.scenario_events(internal_domain)
        self._extra_logs: list[tuple[int, int, dict[str, Any]]] = sorted(
            (e["created_at"], k, e) for k, e in enumerate(events))
        self._extra_seq = len(events)
        enabled, ranges = _IP_ALLOWLISTS.get(region, (False, ()))
        self._ip_allowlist: dict[str, Any] = {"enabled": enabled, "ip_allowlist": list(ranges)}
        self._merged_into: dict[int, int] = {}
        self._merge_history: dict[int, list[dict[str, Any]]] = {}
        self.scenario: sc.ScenarioFacts | None = self._resolve_scenario(events, roles) if in_scenario else None

    # identity ---------------------------------------------------------------------------------
    @property
    def workspace_id(self) -> str:
        """`app.id_code` (equal to `contact.workspace_id`)."""
        return self.profile.workspace_id

    @property
    def timezone(self) -> str:
        """IANA time zone of the workspace (`app.timezone`)."""
        return self.profile.timezone

    @property
    def owner(self) -> AdminSpec:
        """The admin `GET /me` answers with."""
        return self._admins[0]

    @property
    def data_version(self) -> tuple[int, int, int]:
        """Changes whenever any served data changes (used to key response caches)."""
        return self.version, self.contact_store.version, self.conversation_store.version

    def now(self) -> int:
        return int(self.clock())

    def warm(self) -> int:
        """Pre-encode generated contacts and conversations into the bounded caches, so the
        first pass over them is as fast as later ones. Returns how many were encoded."""
        return self.contact_store.warm() + self.conversation_store.warm()

    # current data, as the API serves it -------------------------------------------------------
    def admins(self, *, display_avatar: bool = False) -> list[dict[str, Any]]:
        return [admin_json(a, with_avatar=display_avatar) for a in self._admins]

    def teams(self) -> list[dict[str, Any]]:
        return [team_json(t) for t in self._teams]

    def tags(self) -> list[dict[str, Any]]:
        return [tag_json(t) for t in self._tags]

    def ip_allowlist(self) -> dict[str, Any]:
        """`GET /ip_allowlist`, as the 2.16 spec's `ip_allowlist` object."""
        return {"type": "ip_allowlist", "enabled": self._ip_allowlist["enabled"],
                "ip_allowlist": list(self._ip_allowlist["ip_allowlist"])}

    def contacts(self) -> Iterator[dict[str, Any]]:
        """Live contacts in `GET /contacts` order."""
        store = self.contact_store
        for index in store.live_indices():
            yield store.record(index)

    def conversations(self) -> Iterator[dict[str, Any]]:
        """Live conversations (list items, without parts) in `GET /conversations` order."""
        store = self.conversation_store
        for index in store.live_indices():
            yield store.record(index)

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        index = self.contact_store.find(contact_id)
        return None if index is None else self.contact_store.record(index)

    def conversation(self, conversation_id: str) -> dict[str, Any] | None:
        index = self.conversation_store.find(conversation_id)
        return None if index is None else self.conversation_store.record(index)

    def activity_logs(self, created_at_after: int = 0, created_at_before: int | None = None) -> list[dict[str, Any]]:
        """All activity-log entries in the window, newest first (as the API orders them)."""
        total = self.count_activity_logs(created_at_after, created_at_before)
        return self.activity_log_slice(created_at_after, created_at_before, 0, total)

    def deleted_conversations(self, order: str = "desc") -> list[dict[str, Any]]:
        """`/conversations/deleted` items; newest deletion first unless order="asc"."""
        items = [{"type": "conversation", "id": cid, "metrics_retained": kept, "deleted_at": at}
                 for at, cid, kept in self._deleted]
        return items if order == "asc" else items[::-1]

    def merged_into(self, contact_id: str) -> str | None:
        """For a contact merged away: the id of the contact it was merged into."""
        index = self.contact_factory.index_of(contact_id)
        target = self._merged_into.get(index) if index is not None else None
        return None if target is None else self.contact_factory.contact_id(target)

    def merge_history(self, contact: dict[str, Any]) -> list[dict[str, Any]]:
        index = self.contact_factory.index_of(contact["id"])
        return list(self._merge_history.get(index, [])) if index is not None else []

    # activity-log paging ----------------------------------------------------------------------
    def _log_window(self, after: int, before: int | None) -> tuple[int, int, list[tuple[int, int, dict[str, Any]]]]:
        tl = self.activity_factory.timeline
        lo = tl.first_at_or_after(after)
        hi = self.activity_factory.size if before is None else tl.first_after(before)
        extras = [e for e in self._extra_logs if e[0] >= after and (before is None or e[0] <= before)]
        return lo, max(lo, hi), extras

    def count_activity_logs(self, after: int, before: int | None) -> int:
        lo, hi, extras = self._log_window(after, before)
        return (hi - lo) + len(extras)

    def activity_log_slice(self, after: int, before: int | None, offset: int, count: int) -> list[dict[str, Any]]:
        """Entries [offset, offset+count) of the window in newest-first order.

        Generated entries (ordered by index) and planted entries (a short sorted list) are
        merged with a k-th-element binary search, so deep pages cost O(log n + count).
        """
        lo, hi, extras = self._log_window(after, before)
        tl = self.activity_factory.timeline
        base_len = hi - lo
        extras_desc = extras[::-1]

        def a_key(m: int) -> tuple[int, int, int]:  # m-th newest generated entry
            index = hi - 1 - m
            return tl.at(index), 0, index

        def b_key(m: int) -> tuple[int, int, int]:
            created, seq, _ = extras_desc[m]
            return created, 1, seq

        low, high = max(0, offset - len(extras_desc)), min(offset, base_len)
        while low < high:
            mid = (low + high) // 2
            if a_key(mid) > b_key(offset - mid - 1):
                low = mid + 1
            else:
                high = mid
        i, j = low, offset - low
        out: list[dict[str, Any]] = []
        while len(out) < count and (i < base_len or j < len(extras_desc)):
            if j >= len(extras_desc) or (i < base_len and a_key(i) > b_key(j)):
                out.append(self.activity_factory.record(hi - 1 - i))
                i += 1
            else:
                out.append(extras_desc[j][2])
                j += 1
        return out

    # mutations --------------------------------------------------------------------------------
    def _draw(self) -> Draw:
        self._mutations += 1
        return Draw(self._mutation_key, self._mutations)

    def _timestamps(self, count: int, same_second: bool) -> list[int]:
        now = self.now()
        return [now] * count if same_second else [now - (count - 1 - k) for k in range(count)]

    def _pick_live(self, store: Collection, count: int) -> list[int]:
        d = self._draw()
        live = store.live_count()
        if live == 0:
            return []
        count = min(count, live)
        picked: list[int] = []
        seen: set[int] = set()
        if count * 3 > live:
            candidates = list(store.live_indices())
            return sorted(d.sample(candidates, count))
        while len(picked) < count:
            index = d.below(store.next_index)
            if index not in seen and store.is_live(index):
                seen.add(index)
                picked.append(index)
        return sorted(picked)

    def _resolve_ids(self, store: Collection, ids: Iterable[str], kind: str) -> list[int]:
        out = []
        for record_id in ids:
            index = store.find(str(record_id))
            if index is None:
                raise KeyError(f"no live {kind} with id {record_id!r} in {self.region}")
            out.append(index)
        return out

    def update_contacts(self, ids: Iterable[str] | None = None, count: int | None = None, *,
                        same_second: bool = True) -> list[str]:
        """Touch contacts (by id, or `count` chosen deterministically); returns their ids.

        same_second=True gives every touched contact the same `updated_at` (now), the case
        that breaks a strict `updated_at > watermark` cursor."""
        with self._lock:
            store = self.contact_store
            indices = (self._resolve_ids(store, ids, "contact") if ids is not None
                       else self._pick_live(store, count or 1))
            stamps = self._timestamps(len(indices), same_second)
            d = self._draw()
            for index, ts in zip(indices, stamps, strict=True):
                rec = store.editable_copy(index)
                rec["updated_at"] = ts
                rec["last_seen_at"] = ts
                rec["custom_attributes"]["mrr"] = d.below(500_000)
                store.put(index, rec)
            return [store.id_of(i) for i in indices]

    def create_contacts(self, n: int, *, same_second: bool = True) -> list[str]:
        """Create n contacts (created_at = updated_at = now); returns their ids."""
        with self._lock:
            store = self.contact_store
            out = []
            for ts in self._timestamps(n, same_second):
                index = store.allocate()
                store.put(index, self.contact_factory.record(index, updated_at=ts, created_at=ts))
                out.append(store.id_of(index))
            return out

    def delete_contacts(self, ids: Iterable[str]) -> None:
        """Delete contacts: they vanish from list and search without a trace (docs/intercom-api.md#deletions)."""
        with self._lock:
            for index in self._resolve_ids(self.contact_store, ids, "contact"):
                self.contact_store.hide(index)

    def merge_contact(self, source_id: str, target_id: str) -> None:
        """Merge a contact (usually a lead) into another: the source disappears from list and
        search, `GET /contacts/{source}` answers 410, and the target is updated now."""
        with self._lock:
            store = self.contact_store
            (source,) = self._resolve_ids(store, [source_id], "contact")
            (target,) = self._resolve_ids(store, [target_id], "contact")
            source_role = store.record(source)["role"]
            now = self.now()
            store.hide(source)
            self._merged_into[source] = target
            self._merge_history.setdefault(target, []).append({
                "type": "merge_history", "source_contact_id": source_id,
                "source_contact_role": source_role, "merged_at": now})
            rec = store.editable_copy(target)
            rec["updated_at"] = now
            store.put(target, rec)

    def update_conversations(self, ids: Iterable[str] | None = None, count: int | None = None, *,
                             same_second: bool = True) -> list[str]:
        """Touch conversations (a new reply, a state change); returns their ids."""
        with self._lock:
            store = self.conversation_store
            indices = (self._resolve_ids(store, ids, "conversation") if ids is not None
                       else self._pick_live(store, count or 1))
            stamps = self._timestamps(len(indices), same_second)
            d = self._draw()
            for index, ts in zip(indices, stamps, strict=True):
                rec = store.editable_copy(index)
                rec["updated_at"] = ts
                rec["read"] = False
                if d.chance(50):
                    rec["state"], rec["open"] = "open", True
                    rec["waiting_since"] = ts
                stats = rec.get("statistics")
                if stats:
                    stats["last_contact_reply_at"] = ts
                    stats["count_conversation_parts"] = stats.get("count_conversation_parts", 1) + 1
                store.put(index, rec)
            return [store.id_of(i) for i in indices]

    def create_conversations(self, n: int, *, same_second: bool = True) -> list[str]:
        """Create n conversations (created_at = updated_at = now); returns their ids."""
        with self._lock:
            store = self.conversation_store
            out = []
            for ts in self._timestamps(n, same_second):
                index = store.allocate()
                store.put(index, self.conversation_factory.record(index, updated_at=ts, created_at=ts))
                out.append(store.id_of(index))
            return out

    def delete_conversations(self, ids: Iterable[str], *, metrics_retained: bool = False) -> None:
        """Delete conversations: gone from list and search, listed by /conversations/deleted."""
        with self._lock:
            now = self.now()
            for index in self._resolve_ids(self.conversation_store, ids, "conversation"):
                self.conversation_store.hide(index)
                bisect.insort(self._deleted, (now, self.conversation_store.id_of(index), metrics_retained))
            self.version += 1

    def add_activity_logs(self, n: int, activity_type: str | None = None, admin_id: str | None = None,
                          *, same_second: bool = True) -> list[str]:
        """Append n activity-log entries timestamped now; returns their ids."""
        with self._lock:
            actors = [a for a in self._admins if admin_id is None or a.id == str(admin_id)]
            if not actors:
                raise KeyError(f"no admin {admin_id!r} in {self.region}")
            out = []
            for ts in self._timestamps(n, same_second):
                d = self._draw()
                kind = activity_type or d.pick(("admin_login_success", "admin_logout", "admin_permission_change"))
                entry = self.activity_factory.entry(d, d.uuid(), ts, kind, d.pick(actors))
                self._extra_seq += 1
                bisect.insort(self._extra_logs, (ts, self._extra_seq, entry))
                out.append(entry["id"])
            self.version += 1
            return out

    def add_admin(self, name: str | None = None, email: str | None = None, *, job_title: str = "",
                  has_inbox_seat: bool = True, team_ids: Iterable[str] = ()) -> dict[str, Any]:
        """Add a teammate (optionally to teams); returns it as `GET /admins` serves it."""
        with self._lock:
            numeric = [int(a.id) for a in self._admins]
            admin_id = str(max(numeric, default=7_390_000) + 1)
            admin = AdminSpec(id=admin_id, name=name or f"New Teammate {admin_id}",
                              email=email or f"new.teammate{admin_id}@{self.internal_domain}",
                              job_title=job_title, has_inbox_seat=has_inbox_seat)
            self._admins.append(admin)
            for team in self._teams:
                if team.id in {str(t) for t in team_ids}:
                    team.admin_ids.append(int(admin_id))
            sync_team_ids(self._admins, self._teams)
            self.version += 1
            return admin_json(admin, with_avatar=False)

    def remove_admin(self, admin_id: str) -> str:
        """Remove a teammate from the workspace and from every team, and log it as Intercom
        does: an `admin_deletion` activity-log entry timestamped now, performed by the workspace
        owner (or, when the owner is the one removed, the next admin), naming the removed admin
        in its metadata (`scenario.removal_metadata`) and description. Returns the entry's id."""
        with self._lock:
            removed = next((a for a in self._admins if a.id == str(admin_id)), None)
            if removed is None:
                raise KeyError(f"no admin {admin_id!r} in {self.region}")
            remaining = [a for a in self._admins if a.id != removed.id]
            by = self.owner if self.owner.id != removed.id else (remaining[0] if remaining else removed)
            self._admins = remaining
            for team in self._teams:
                team.admin_ids = [a for a in team.admin_ids if a != int(admin_id)]
                team.primary_admin_ids = [a for a in team.primary_admin_ids if a != int(admin_id)]
            sync_team_ids(self._admins, self._teams)
            d = self._draw()
            now = self.now()
            entry = self.activity_factory.entry(
                d, d.uuid(), now, "admin_deletion", by,
                metadata=sc.removal_metadata(removed.id, removed.name, removed.email, by.id, by.name),
                description=f"{by.name} removed a teammate ({removed.email}).")
            self._extra_seq += 1
            bisect.insort(self._extra_logs, (now, self._extra_seq, entry))
            self.version += 1
            return entry["id"]

    def set_ip_allowlist(self, enabled: bool, ranges: Iterable[str]) -> None:
        """Turn the IP allowlist on or off and replace its addresses and CIDR ranges."""
        with self._lock:
            self._ip_allowlist = {"enabled": bool(enabled), "ip_allowlist": [str(r) for r in ranges]}
            self.version += 1

    def set_team_members(self, team_id: str, admin_ids: Iterable[str]) -> None:
        """Replace a team's members."""
        with self._lock:
            team = next((t for t in self._teams if t.id == str(team_id)), None)
            if team is None:
                raise KeyError(f"no team {team_id!r} in {self.region}")
            known = {a.id for a in self._admins}
            members = [int(a) for a in admin_ids if str(a) in known]
            team.admin_ids = members
            team.primary_admin_ids = members[:2]
            sync_team_ids(self._admins, self._teams)
            self.version += 1

    # scenario ---------------------------------------------------------------------------------
    def _resolve_scenario(self, events: list[dict[str, Any]], roles: dict[str, str]) -> sc.ScenarioFacts:
        by_id = {e["id"]: e for e in events}
        at = lambda role: by_id[roles[role]]["created_at"]  # noqa: E731
        cf = self.conversation_factory
        placed = cf.scenario
        dsar = cf.record(placed.dsar) if placed.dsar is not None else None
        security = cf.record(placed.security) if placed.security is not None else None
        passports = sorted(self.contact_factory.sensitive_indices)
        return sc.ScenarioFacts(
            region=self.region,
            now=self.created_at,
            internal_domain=self.internal_domain,
            stale_admin_id=sc.STALE_ADMIN.id,
            stale_admin_last_login_at=at("stale_admin_last_login"),
            never_logged_in_admin_id=sc.NEVER_LOGGED_IN_ADMIN.id,
            shared_admin_id=sc.SHARED_ADMIN.id,
            shared_admin_email=sc.SHARED_ADMIN.email_at(self.internal_domain),
            terminated_admin_id=sc.TERMINATED_ADMIN.id,
            terminated_admin_email=sc.TERMINATED_ADMIN.email_at(self.internal_domain),
            terminated_at=self.created_at - sc.TERMINATED_ADMIN_TERMINATED_DAYS_AGO * SECONDS_PER_DAY,
            terminated_admin_last_login_at=at("terminated_admin_login_after_termination"),
            night_export_admin_id=sc.NIGHT_EXPORT_ADMIN.id,
            night_export_at=at("night_export"),
            login_failure_admin_id=sc.LOGIN_FAILURE_ADMIN.id,
            login_failure_times=tuple(at(f"login_failure_{k + 1}") for k in range(sc.LOGIN_FAILURE_COUNT)),
            vendor_admin_id=sc.VENDOR_ADMIN.id,
            retention_conversation_ids=tuple(cf.conversation_id(i) for i in placed.retention),
            dsar_conversation_id=cf.conversation_id(placed.dsar) if placed.dsar is not None else "",
            dsar_created_at=dsar["created_at"] if dsar else 0,
            dsar_first_admin_reply_at=dsar["statistics"]["first_admin_reply_at"] if dsar else 0,
            security_conversation_id=cf.conversation_id(placed.security) if placed.security is not None else "",
            security_created_at=security["created_at"] if security else 0,
            security_first_admin_reply_at=security["statistics"]["first_admin_reply_at"] if security else 0,
            sensitive_attribute_contact_ids=tuple(self.contact_factory.contact_id(i) for i in passports),
            sensitive_attribute_values=tuple(sc.passport_number_value(i) for i in passports),
            activity_log_ids=dict(roles),
        )
