"""Evidence parameters: the TOML file named by `IRU_EVIDENCE_CONFIG`, with documented defaults.

Every parameter has a default (docs/evidence.md#tables), so the file is optional. The values
used by a run are recorded with it (`params_json`) and hashed (`params_sha256`), so an
auditor can tell which thresholds produced a test result. A wrong value or an unknown key
(a typo would otherwise silently fall back to the default) is a `ConfigError` naming the
key and the fix.

    internal_domains = ["example-corp.com"]
    stale_admin_days = 90
    [inputs]
    hr_roster = "hr_roster.csv"          # relative to this file
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from iru_pipeline.config import ConfigError

FREEMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com", "msn.com",
    "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.de", "gmx.net", "web.de",
    "yandex.ru", "mail.ru", "qq.com", "163.com",
)
GENERIC_LOCALPARTS: tuple[str, ...] = ("support", "info", "admin", "team", "help", "sales", "noreply", "ops")
GENERIC_DISPLAY_NAMES: tuple[str, ...] = (
    "support", "admin", "administrator", "team", "shared", "info", "sales", "help", "helpdesk", "service",
    "services", "ops", "operations", "office", "billing", "accounts", "inbox", "general", "customer", "success",
    "care", "desk", "agent", "bot", "test", "noreply",
)
INPUT_NAMES: tuple[str, ...] = ("hr_roster", "access_exceptions", "evidence_reviews")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_BUSINESS_HOURS = re.compile(r"^\s*([A-Za-z]{3})\s*-\s*([A-Za-z]{3})\s+(\d{1,2})\s*-\s*(\d{1,2})\s*$")


@dataclass(frozen=True)
class EvidenceParams:
    """One run's parameters. Field docs are the README's parameter table."""

    internal_domains: tuple[str, ...] = ()
    """E-mail domains of the company: admins outside them are external (docs/evidence.md#tables)."""
    period_days: int = 365
    """Length of the evidence window ending at the run: events, SLAs and exports inside it are evaluated."""
    stale_admin_days: int = 90
    """An admin with no activity-log event for this many days is stale (T03)."""
    offboarding_sla_hours: int = 24
    """Access must be removed within this many hours of an HR termination (T02)."""
    privileged_role_names: tuple[str, ...] = ("Owner", "Admin")
    """Intercom role names that count as privileged (T04)."""
    max_privileged_admins: int = 5
    """More privileged admins than this per workspace fails T04."""
    access_managers: tuple[str, ...] = ()
    """E-mails of the people allowed to grant access; empty: admins with a privileged role (T06)."""
    generic_localparts: tuple[str, ...] = GENERIC_LOCALPARTS
    """E-mail local parts that suggest a shared account (T05)."""
    generic_display_names: tuple[str, ...] = GENERIC_DISPLAY_NAMES
    """Words of a generic display name: an admin whose name is made only of them (e.g. "Support",
    "Sales Team") looks shared (T05)."""
    shared_account_min_ips: int = 4
    """Logins from this many distinct IPs within 30 days also suggest a shared account (T05)."""
    allowed_regions: tuple[str, ...] = ("US", "EU", "AU")
    """Data-residency regions the contract allows (Intercom's `app.region` values) (T09)."""
    conversation_retention_days: int = 730
    contact_retention_days: int = 730
    lead_retention_days: int = 365
    retention_tolerance_pct: float = 0.0
    """Share of records past retention that is still tolerated (T12)."""
    first_reply_sla_hours: int = 24
    resolution_sla_hours: int = 120
    dsar_tags: tuple[str, ...] = ("dsar",)
    """Conversation tags that mark a data-subject request (T14); compared case-insensitively."""
    dsar_sla_days: int = 30
    security_tags: tuple[str, ...] = ("security",)
    security_first_reply_hours: int = 24
    login_failure_burst: int = 5
    """This many failed logins by one admin from one IP within an hour is a finding (R1)."""
    business_hours: str = "Mon-Fri 07-20"
    """Working days and hours in each workspace's time zone; exports outside are high severity (R3)."""
    review_due_days: int = 7
    """A high-risk finding must be reviewed within this many days of being first detected (T11)."""
    k_min_domain: int = 5
    """Contact e-mail domains with fewer contacts are folded into "(rare)" in the inventory."""
    freemail_domains: tuple[str, ...] = FREEMAIL_DOMAINS
    approved_attributes: tuple[str, ...] = ()
    """Custom attribute names (contact or conversation) reviewed and approved for collection (T13)."""
    internal_contact_max_pct: float = 5.0
    """A larger share of contacts on internal domains suggests test accounts in production."""
    activity_log_max_lag_hours: int = 48
    """T10 asks for a review when the newest activity-log event held is older than this."""
    activity_log_max_gap_hours: int = 168
    """T10 asks for a review of every stretch of the period longer than this without any
    activity-log event held (from the period start to the first event, between events)."""
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Paths of the optional human inputs (CSV), resolved against the TOML file's folder."""

    # ------------------------------------------------------------------ derived values

    @property
    def business_days(self) -> list[int]:
        """ISO weekday numbers (Mon=1) of `business_hours`."""
        return _parse_business_hours(self.business_hours)[0]

    @property
    def business_hour_start(self) -> int:
        return _parse_business_hours(self.business_hours)[1]

    @property
    def business_hour_end(self) -> int:
        return _parse_business_hours(self.business_hours)[2]

    def as_dict(self) -> dict[str, Any]:
        """The thresholds as plain JSON values, keys sorted. Input files are not part of it:
        they are recorded by content hash (inputs.py), so moving a file changes no hash."""
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if k != "inputs"}
        return dict(sorted(out.items()))

    def canonical_json(self) -> str:
        return canonical_json(self.as_dict())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def canonical_json(value: Any) -> str:
    """The one JSON spelling that is hashed: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load_params(config: Mapping[str, object], config_path: Path | None = None) -> EvidenceParams:
    """Validate the parsed TOML (`Settings.evidence_config`). Raises ConfigError."""
    where = f"IRU_EVIDENCE_CONFIG={config_path}" if config_path else "evidence config"
    known = {f.name: f for f in fields(EvidenceParams)}
    values: dict[str, Any] = {}
    for key, raw in config.items():
        if key not in known:
            hint = difflib.get_close_matches(key, list(known), n=1)
            fix = f"did you mean {hint[0]!r}?" if hint else f"known keys: {', '.join(sorted(known))}"
            raise ConfigError(f"{where}: unknown key {key!r}: {fix}")
        values[key] = _coerce(where, key, raw, known[key].default, config_path)
    params = EvidenceParams(**values)
    _parse_business_hours(params.business_hours, where)
    return params


_LOWER_CASE_LISTS = ("internal_domains", "access_managers", "freemail_domains", "generic_localparts",
                     "generic_display_names", "dsar_tags", "security_tags")
"""Lists compared lower-case in the SQL."""


def _coerce(where: str, key: str, raw: object, default: object, config_path: Path | None) -> object:
    if key == "inputs":
        return _inputs(where, raw, config_path)
    if isinstance(default, tuple):
        return _string_list(where, key, raw)
    if isinstance(default, bool) or not isinstance(default, (int, float, str)):
        raise ConfigError(f"{where}: {key} cannot be set")  # pragma: no cover - no such field today
    if isinstance(default, str):
        if not isinstance(raw, str):
            raise ConfigError(f"{where}: {key} must be a string like {default!r} (got {raw!r})")
        return raw
    if isinstance(default, float):
        return _percentage(where, key, raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ConfigError(f"{where}: {key} must be a whole number of at least 1 (got {raw!r})")
    return raw


def _string_list(where: str, key: str, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(v, str) and v.strip() for v in raw):
        raise ConfigError(f"{where}: {key} must be a list of non-empty strings, e.g. {key} = [\"x\"] (got {raw!r})")
    items = [v.strip() for v in raw]
    if key in _LOWER_CASE_LISTS:
        items = [v.lower().lstrip("@") for v in items]
    if key == "allowed_regions":
        items = [v.upper() for v in items]
    return tuple(dict.fromkeys(items))


def _percentage(where: str, key: str, raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 100:
        raise ConfigError(f"{where}: {key} must be a percentage between 0 and 100 (got {raw!r})")
    return float(raw)


def _inputs(where: str, raw: object, config_path: Path | None) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [inputs] must be a table of file paths, e.g. hr_roster = \"roster.csv\"")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if name not in INPUT_NAMES:
            raise ConfigError(f"{where}: unknown input {name!r} in [inputs]: use {', '.join(INPUT_NAMES)}")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: inputs.{name} must be the path of a CSV file (got {value!r})")
        path = Path(value).expanduser()
        if not path.is_absolute() and config_path is not None:
            path = config_path.parent / path  # relative to the TOML file, not the working directory
        out[name] = str(path)
    return out


def _parse_business_hours(text: str, where: str = "evidence config") -> tuple[list[int], int, int]:
    m = _BUSINESS_HOURS.match(text)
    fix = 'use e.g. "Mon-Fri 07-20" (days Mon..Sun, hours 0-24, end after start)'
    if not m:
        raise ConfigError(f"{where}: business_hours {text!r} is not understood: {fix}")
    first, last = m.group(1).lower(), m.group(2).lower()
    start, end = int(m.group(3)), int(m.group(4))
    if first not in _DAYS or last not in _DAYS or _DAYS.index(last) < _DAYS.index(first) or not 0 <= start < end <= 24:
        raise ConfigError(f"{where}: business_hours {text!r} is not understood: {fix}")
    return list(range(_DAYS.index(first) + 1, _DAYS.index(last) + 2)), start, end
