"""Optional human inputs: CSV files named in the `[inputs]` table of the evidence config.

    hr_roster           email, person_id, status, termination_at, department, manager_email
    access_exceptions   admin_id, email, workspace_id, region, kind, reason, approved_by, expires_at
    evidence_reviews    finding_id, decision, reviewed_by, reviewed_at, note, workspace_id, region

Admin ids and event ids are Intercom's ids within one workspace, and they repeat across
workspaces. So a row naming an admin by id must also name its workspace (`workspace_id`, the
workspace's Intercom id, and/or `region`, us, eu or au); an id-only exception is refused
rather than guessed. An e-mail names a person, who may hold an account in every workspace:
an exception given by e-mail alone applies in every workspace. Every identifier given must
agree (admin_id, email, workspace_id, region) for a row to apply. A review without a
workspace applies to the finding or event of that id in every workspace.

(docs/evidence.md#tables, "Human inputs".) Columns beyond these are ignored and never stored,
so an HR export can be used as it is. A malformed row stops the run with a `ConfigError`
naming the file, the line and the reason: evidence computed from a half-read roster would
look complete and be wrong. Each file is recorded with the run by name, row count and
sha256, so the auditor can tie a result to the exact file that produced it.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path

from iru_pipeline.config import ConfigError
from iru_pipeline.regions import REGION_CODES

HR_STATUSES = ("active", "leave", "terminated")
REGIONS = tuple(REGION_CODES)
EXCEPTION_KINDS = ("service", "external", "shared", "privileged", "inactive")
REVIEW_DECISIONS = ("accepted", "remediated", "false_positive", "escalated")
_TIME_HINT = "use 2024-05-31 (start of that day, UTC) or 2024-05-31T17:00:00Z"


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    required: bool = False
    parse: Callable[[str], object] | None = None
    """Turns the stripped text into the stored value; raises ValueError with the reason."""


def _timestamp(text: str) -> datetime:
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date or date-time ({_TIME_HINT})") from None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _email(text: str) -> str:
    if "@" not in text or text.startswith("@") or text.endswith("@") or " " in text:
        raise ValueError(f"{text!r} is not an e-mail address")
    return text.lower()


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.lower()
        if value not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return value

    return parse


def _check_exception(row: dict[str, object]) -> str | None:
    if row["admin_id"] is None and row["email"] is None:
        return "give admin_id or email (or both)"
    if row["admin_id"] is not None and row["email"] is None and row["workspace_id"] is None and row["region"] is None:
        return (f"admin_id {row['admin_id']} needs workspace_id or region: admin ids repeat across workspaces "
                "(or give the email instead, which applies in every workspace)")
    return None


@dataclass(frozen=True)
class InputSpec:
    name: str
    columns: tuple[Column, ...]
    check_row: Callable[[dict[str, object]], str | None] = lambda row: None
    """Cross-column rule; returns the reason a row is wrong, or None."""
    unique_on: str | None = None

    @property
    def ddl(self) -> str:
        cols = ", ".join(f"{c.name} {c.sql_type}" for c in self.columns)
        return f"create or replace temp table {self.name} ({cols}, source_line integer)"


INPUTS: dict[str, InputSpec] = {
    spec.name: spec
    for spec in (
        InputSpec(
            "hr_roster",
            (
                Column("email", "varchar", True, _email),
                Column("person_id", "varchar", True),
                Column("status", "varchar", True, _one_of(HR_STATUSES)),
                Column("termination_at", "timestamptz", False, _timestamp),
                Column("department", "varchar"),
                Column("manager_email", "varchar", False, _email),
            ),
            check_row=lambda r: ("status is terminated but termination_at is empty"
                                 if r["status"] == "terminated" and r["termination_at"] is None else None),
            unique_on="email",
        ),
        InputSpec(
            "access_exceptions",
            (
                Column("admin_id", "varchar"),
                Column("email", "varchar", False, _email),
                Column("workspace_id", "varchar"),
                Column("region", "varchar", False, _one_of(REGIONS)),
                Column("kind", "varchar", True, _one_of(EXCEPTION_KINDS)),
                Column("reason", "varchar", True),
                Column("approved_by", "varchar", True),
                Column("expires_at", "timestamptz", False, _timestamp),
            ),
            check_row=_check_exception,
        ),
        InputSpec(
            "evidence_reviews",
            (
                Column("finding_id", "varchar", True),
                Column("decision", "varchar", True, _one_of(REVIEW_DECISIONS)),
                Column("reviewed_by", "varchar", True),
                Column("reviewed_at", "timestamptz", True, _timestamp),
                Column("note", "varchar"),
                Column("workspace_id", "varchar"),
                Column("region", "varchar", False, _one_of(REGIONS)),
            ),
        ),
    )
}


@dataclass(frozen=True)
class InputFile:
    """How a run's input file is recorded: no path (it may name a person's home folder)."""

    name: str
    file_name: str
    rows: int
    sha256: str


@dataclass
class HumanInputs:
    rows: dict[str, list[tuple]] = field(default_factory=lambda: {name: [] for name in INPUTS})
    files: list[InputFile] = field(default_factory=list)

    def provided(self, name: str) -> bool:
        return any(f.name == name for f in self.files)

    def as_records(self) -> list[dict[str, object]]:
        return [{"name": f.name, "file_name": f.file_name, "rows": f.rows, "sha256": f.sha256} for f in self.files]


def load_inputs(paths: Mapping[str, str]) -> HumanInputs:
    """Read every configured input. Raises ConfigError on a missing file or a bad row."""
    inputs = HumanInputs()
    for name in sorted(paths):
        spec = INPUTS[name]
        path = Path(paths[name])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"inputs.{name}: cannot read {path} ({exc.strerror}): fix the path in IRU_EVIDENCE_CONFIG"
            ) from None
        inputs.rows[name] = parse_csv(spec, data, str(path))
        inputs.files.append(InputFile(name, path.name, len(inputs.rows[name]), hashlib.sha256(data).hexdigest()))
    return inputs


def parse_csv(spec: InputSpec, data: bytes, where: str) -> list[tuple]:
    """Rows of one input file as tuples in the spec's column order, plus the source line."""
    try:
        text = data.decode("utf-8-sig")  # a BOM is what spreadsheet exports add
    except UnicodeDecodeError:
        raise ConfigError(f"{spec.name} file {where}: not UTF-8 text; save the CSV as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    reader.fieldnames = _header(spec, reader, where)
    out: list[tuple] = []
    seen: dict[object, int] = {}
    try:
        for record in reader:
            line = reader.line_num
            if None in record:
                raise ConfigError(f"{spec.name} file {where}, line {line}: more fields than the header has")
            if all(not (v or "").strip() for v in record.values()):
                continue
            row = _parse_row(spec, record, where, line)
            _check_unique(spec, row, seen, where, line)
            out.append((*row.values(), line))
    except csv.Error as exc:
        raise ConfigError(f"{spec.name} file {where}, line {reader.line_num}: {exc}") from None
    return out


def _header(spec: InputSpec, reader: csv.DictReader, where: str) -> list[str]:
    """The header, lower-case; every required column must be there."""
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise ConfigError(f"{spec.name} file {where}, line 1: {exc}") from None
    missing = [c.name for c in spec.columns if c.required and c.name not in header]
    if missing:
        expected = ", ".join(c.name for c in spec.columns)
        raise ConfigError(
            f"{spec.name} file {where}, line 1: missing column {', '.join(missing)} (expected: {expected})"
        )
    return header


def _check_unique(spec: InputSpec, row: Mapping[str, object], seen: dict[object, int], where: str,
                  line: int) -> None:
    if spec.unique_on is None:
        return
    key = row[spec.unique_on]
    if key in seen:
        raise ConfigError(f"{spec.name} file {where}, line {line}: {spec.unique_on} {key!r} "
                          f"already given on line {seen[key]}")
    seen[key] = line


def _parse_row(spec: InputSpec, record: Mapping[str, str | None], where: str, line: int) -> dict[str, object]:
    row: dict[str, object] = {}
    for col in spec.columns:
        text = (record.get(col.name) or "").strip()
        if not text:
            if col.required:
                raise ConfigError(f"{spec.name} file {where}, line {line}: {col.name} is empty")
            row[col.name] = None
            continue
        try:
            row[col.name] = col.parse(text) if col.parse else text
        except ValueError as exc:
            raise ConfigError(f"{spec.name} file {where}, line {line}: {col.name} {exc}") from None
    reason = spec.check_row(row)
    if reason:
        raise ConfigError(f"{spec.name} file {where}, line {line}: {reason}")
    return row


def register_inputs(con: object, inputs: HumanInputs) -> None:
    """Create the temp tables `hr_roster`, `access_exceptions`, `evidence_reviews` (empty when
    the input is not configured) on a DuckDB connection."""
    for name, spec in INPUTS.items():
        con.execute(spec.ddl)  # type: ignore[attr-defined]
        rows = inputs.rows.get(name) or []
        if rows:
            marks = ", ".join("?" * (len(spec.columns) + 1))
            con.executemany(f"insert into {name} values ({marks})", rows)  # type: ignore[attr-defined]
