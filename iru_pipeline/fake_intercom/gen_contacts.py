"""Contacts as a pure function of (seed, region, index) -- see docs/intercom-api.md#record-shapes-worth-knowing for
the shape.

`updated_at` never decreases with the index (timeline.py) and ids sort like indices, so
(updated_at, id) order equals index order for generated contacts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from . import pools
from . import scenario as sc
from .constants import HISTORY_SECONDS, SECONDS_PER_DAY, RegionProfile
from .hashing import Draw, stream_key
from .timeline import Timeline, build_timeline

_CONTACT_ID_OFFSET = 0x1BB69F9F2193


@dataclass(frozen=True)
class ContactIdentity:
    """The few contact fields other records quote (conversation authors, log descriptions)."""

    id: str
    role: str
    name: str | None
    email: str
    phone: str | None
    external_id: str | None


class ContactFactory:
    """Generates contact records lazily; nothing per contact is stored."""

    def __init__(
        self,
        *,
        seed: int,
        profile: RegionProfile,
        size: int,
        now: int,
        tz: ZoneInfo,
        internal_domain: str,
        admin_ids: list[str],
        tag_ids: list[str],
    ) -> None:
        self.profile = profile
        self.size = size
        self.now = now
        self.internal_domain = internal_domain
        self.earliest = now - HISTORY_SECONDS - 90 * SECONDS_PER_DAY
        self._key = stream_key(seed, profile.id_salt, "contact")
        self._admin_ids = admin_ids
        self._tag_ids = tag_ids
        # The scenario's sensitive attribute (scenario.py, item 11): a few US contacts carry a value.
        self.sensitive_indices: frozenset[int] = frozenset(
            sc.sensitive_attribute_indices(size) if profile.code == sc.SCENARIO_REGION else ())
        burst = max(2, min(400, size // 6))
        self.timeline: Timeline = build_timeline(
            size,
            start=now - HISTORY_SECONDS,
            end=now - 60,
            tz=tz,
            jitter_key=stream_key(seed, profile.id_salt, "contact.time"),
            # Hundreds of contacts share one updated_at second (a bulk import, a CSV update);
            # the last burst is within the final day, where incremental syncs look.
            bursts=((0.30, burst), (0.70, max(2, burst * 2 // 3)), (0.995, max(2, burst // 2))),
            midnight_points=(0.5, 0.9, 0.97, 0.999),
            old_fraction=0.1,
            old_until=now - 800 * SECONDS_PER_DAY,
        )

    # ids ------------------------------------------------------------------------------------
    def contact_id(self, index: int) -> str:
        """24 hex digits like a Mongo ObjectId; sorts like the index (fixed width)."""
        p = self.profile
        return f"{p.contact_id_prefix}{p.contact_id_stride * index + _CONTACT_ID_OFFSET:016x}"

    def index_of(self, contact_id: str) -> int | None:
        """The index a contact id was generated from, or None when it is not one of ours."""
        p = self.profile
        if len(contact_id) != 24 or not contact_id.startswith(p.contact_id_prefix):
            return None
        try:
            value = int(contact_id[8:], 16) - _CONTACT_ID_OFFSET
        except ValueError:
            return None
        if value < 0 or value % p.contact_id_stride:
            return None
        return value // p.contact_id_stride

    # identity -------------------------------------------------------------------------------
    def identity(self, index: int) -> ContactIdentity:
        """Identity fields only (cheaper than `record`, and equal to its values)."""
        return self._identity(Draw(self._key, index), index)

    def _identity(self, d: Draw, index: int) -> ContactIdentity:
        role = "lead" if d.chance(30) else "user"
        first, first_ascii = d.pick(pools.FIRST_NAMES)
        last, last_ascii = d.pick(pools.LAST_NAMES)
        style = d.below(100)
        name: str | None
        if style < 5:
            name = d.pick(pools.RTL_FULL_NAMES)
        elif style < 10:
            name = d.pick(pools.CJK_FULL_NAMES)
        elif style < (30 if role == "lead" else 15):
            name = None
        else:
            name = f"{first} {last}{d.pick(pools.NAME_DECORATIONS)}"
        kind = d.weighted((("public", 55), ("company", 17), ("plus_test", 8), ("internal", 6), ("qa", 6),
                           ("upper", 4), ("empty", 4)))
        tag = index
        if kind == "empty" and role == "lead":
            email = ""  # leads without an e-mail carry an empty string (spec: email is a string)
        elif kind == "plus_test":
            email = f"{first_ascii}.{last_ascii}+test{tag}@{d.pick(pools.PUBLIC_EMAIL_DOMAINS)}"
        elif kind == "internal":
            email = f"{first_ascii}.{last_ascii}{tag}@{self.internal_domain}"
        elif kind == "qa":
            email = f"qa.user{tag}@{d.pick((self.internal_domain, 'mailinator.com', 'gmail.com'))}"
        elif kind == "upper":
            domain = d.pick(pools.COMPANY_EMAIL_DOMAINS).upper()
            email = f"{first_ascii.capitalize()}.{last_ascii.capitalize()}{tag}@{domain}"
        elif kind == "company":
            email = f"{first_ascii[0]}{last_ascii}{tag}@{d.pick(pools.COMPANY_EMAIL_DOMAINS)}"
        else:
            email = f"{first_ascii}.{last_ascii}{tag}@{d.pick(pools.PUBLIC_EMAIL_DOMAINS)}"
        phone: str | None = None
        if d.chance(60):
            n = d.bits()
            phone = d.pick(pools.PHONE_FORMATS).format(
                n4=f"{n % 10_000:04d}", n2=f"{n // 10_000 % 100:02d}", n2b=f"{n // 1_000_000 % 100:02d}")
        external_id: str | None = None
        if role == "user":
            k = d.below(10)
            if k < 6:
                external_id = f"cus_{d.bits() & 0xFFFFFFFFFFFF:012x}"
            elif k < 9:
                external_id = str(100_000 + index)
        return ContactIdentity(self.contact_id(index), role, name, email, phone, external_id)

    # full record ----------------------------------------------------------------------------
    def record(self, index: int, *, updated_at: int | None = None, created_at: int | None = None) -> dict[str, Any]:
        """The contact as `GET /contacts` serves it. Overlay records pass their own timestamps."""
        d = Draw(self._key, index)
        ident = self._identity(d, index)
        contact_id = ident.id
        updated = self.timeline.at(index) if updated_at is None else updated_at
        if created_at is None:
            created = updated if d.chance(10) else updated - d.below(max(1, updated - self.earliest))
        else:
            created = created_at
        lifetime = max(0, updated - created)

        def within(percent: float) -> int | None:
            return created + d.below(lifetime + 1) if d.chance(percent) else None

        signed_up = min(updated, created + d.below(3600)) if ident.role == "user" else None
        last_seen = updated - d.below(min(lifetime, 30 * SECONDS_PER_DAY) + 1) if d.chance(75) else None
        device = d.below(10)
        browser, browser_version = d.pick(pools.BROWSERS)
        has_browser = device < 7
        android = device == 8
        ios = device == 9
        country, region, city, country_code, continent = d.pick(pools.LOCATIONS)
        email = ident.email
        email_domain = email.rsplit("@", 1)[1].lower() if "@" in email else ""

        custom: dict[str, Any] = {
            "plan": d.pick(pools.PLANS),
            "mrr": d.below(500_000),
            "beta_tester": d.chance(20),
            "signup_source": d.pick(pools.SIGNUP_SOURCES),
        }
        if d.chance(25):
            custom["support_notes"] = d.pick(pools.CONTACT_NOTE_TEXTS)
        if d.chance(30):
            custom["trial_ends_at"] = created + 14 * SECONDS_PER_DAY
        if index in self.sensitive_indices:
            custom[sc.SENSITIVE_ATTRIBUTE] = sc.passport_number_value(index)

        tag_roll = d.below(100)
        tag_count = 0 if tag_roll < 50 else d.between(1, 3) if tag_roll < 80 else \
            d.between(4, 10) if tag_roll < 93 else d.between(11, min(16, len(self._tag_ids)))
        tag_ids = d.sample(self._tag_ids, tag_count)
        note_count = d.below(3) if d.chance(30) else 0
        company_count = d.below(3) if d.chance(40) else 0

        return {
            "type": "contact",
            "id": contact_id,
            "workspace_id": self.profile.workspace_id,
            "external_id": ident.external_id,
            "role": ident.role,
            "email": email,
            "email_domain": email_domain,
            "phone": ident.phone,
            "name": ident.name,
            "avatar": ({"type": "avatar", "image_url": f"https://static.intercomassets.com/avatars/{contact_id}/square_128/a.jpg"}
                       if d.chance(15) else None),
            "owner_id": d.pick(self._admin_ids) if self._admin_ids and d.chance(35) else None,
            "social_profiles": {"type": "list", "data": (
                [{"type": "social_profile", "name": "Twitter", "url": f"http://twitter.com/user{index}"}]
                if d.chance(8) else [])},
            "has_hard_bounced": d.chance(2),
            "marked_email_as_spam": d.chance(1),
            "unsubscribed_from_emails": d.chance(12),
            "created_at": created,
            "updated_at": updated,
            "signed_up_at": signed_up,
            "last_seen_at": last_seen,
            "last_replied_at": within(30),
            "last_contacted_at": within(40),
            "last_email_opened_at": within(25),
            "last_email_clicked_at": within(10),
            "language_override": d.pick(pools.LANGUAGES) if d.chance(10) else None,
            "browser": browser if has_browser else None,
            "browser_version": browser_version if has_browser else None,
            "browser_language": d.pick(pools.LANGUAGES) if has_browser else None,
            "os": d.pick(pools.OSES) if has_browser else None,
            "location": {"type": "location", "country": country, "region": region, "city": city,
                         "country_code": country_code, "continent_code": continent},
            "android_app_name": "Example Corp" if android else None,
            "android_app_version": "5.12.0" if android else None,
            "android_device": "Pixel 8" if android else None,
            "android_os_version": "14" if android else None,
            "android_sdk_version": "15.6.2" if android else None,
            "android_last_seen_at": last_seen if android else None,
            "ios_app_name": "Example Corp" if ios else None,
            "ios_app_version": "5.12.1" if ios else None,
            "ios_device": "iPhone15,2" if ios else None,
            "ios_os_version": "18.1" if ios else None,
            "ios_sdk_version": "17.3.0" if ios else None,
            "ios_last_seen_at": last_seen if ios else None,
            "custom_attributes": custom,
            # Inline reference lists hold at most 10 items (docs/intercom-api.md#record-shapes-worth-knowing).
            "tags": _ref_list([{"type": "tag", "id": t, "url": f"/tags/{t}"} for t in tag_ids],
                              f"/contacts/{contact_id}/tags"),
            "notes": _ref_list([{"type": "note", "id": str(90_000_000 + index * 3 + k),
                "url": f"/notes/{90_000_000 + index * 3 + k}"}
                                for k in range(note_count)], f"/contacts/{contact_id}/notes"),
            "companies": _ref_list([{"type": "company", "id": f"5f{(index * 3 + k) * 7919 + 0x1a2b3c:022x}",
                                     "url": f"/companies/5f{(index * 3 + k) * 7919 + 0x1a2b3c:022x}"}
                                    for k in range(company_count)], f"/contacts/{contact_id}/companies"),
            "opted_out_subscription_types": _ref_list([], f"/contacts/{contact_id}/subscriptions"),
            "opted_in_subscription_types": _ref_list([], f"/contacts/{contact_id}/subscriptions"),
            "utm_campaign": "spring-sale" if d.chance(5) else None,
            "utm_content": None,
            "utm_medium": "email" if d.chance(5) else None,
            "utm_source": "newsletter" if d.chance(5) else None,
            "utm_term": None,
            "referrer": "https://www.google.com/" if d.chance(10) else None,
        }


class RefList(dict):
    """An inline reference list (`tags`, `notes`, `companies`): at most 10 items are served,
    but search by `tag_id` must see all of them, so the full list rides along unserialised."""

    all_items: list[dict[str, Any]]


def _ref_list(items: list[dict[str, Any]], url: str) -> RefList:
    out = RefList(type="list", data=items[:10], url=url, total_count=len(items), has_more=len(items) > 10)
    out.all_items = items
    return out
