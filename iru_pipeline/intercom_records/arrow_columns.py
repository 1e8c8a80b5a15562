"""Columns of Arrow tables built from Intercom records: kinds, column specs, `TableSpec`.

Each table is a list of `Column`s: the output column, its kind (how a raw value is coerced),
and where the raw value sits in the record (a field, possibly inside nested objects), or a
function deriving it from several fields. The dlt column hints come from the same list, so
a column is added in one place. The tables themselves are declared in `tables.py`.

Coercion is column-wise. When every raw value of a column already has the expected JSON type
(the normal case), the column is built by Arrow in C; otherwise each value goes through the
scalar coercions of `transforms.py`, which never raise on odd input. `vectorized=False`
forces the scalar path: the tests prove both paths give the same table.

Decoding: `TableSpec.decode` reads a page's JSON records into msgspec structs that hold only
the fields the columns read (every column names them), so the rest of a record (most of its
2 KB) is skipped in C instead of becoming Python objects. A record of another shape (not an
object, or an object where a nested object is expected) makes the page fall back to plain
dicts; both give the same table (tests).
"""

from __future__ import annotations

import keyword
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter
from typing import Any

import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from iru_pipeline.intercom_records.pii import Pseudonymizer
from iru_pipeline.intercom_records.transforms import MAX_EPOCH_SECONDS, flag, integer, sid, text, ts

TS = pa.timestamp("us", tz="UTC")
Items = Sequence[dict[str, Any]]
_NONE = type(None)
_EMPTY: dict[str, Any] = {}


class _QuietArrowHints(logging.Filter):
    """dlt warns that our Arrow types (JSON as text, microsecond timestamps) differ from the
    column hints; the hints win by design, so the warning is noise on every page."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()


logging.getLogger("dlt").addFilter(_QuietArrowHints())

# ----------------------------------------------------------------- kinds: raw values -> Arrow


def _only(values: list[Any], *types: type) -> bool:
    """Every value is None or exactly one of `types` (bool is not an int here)."""
    return set(map(type, values)) <= {_NONE, *types}


def text_array(values: list[Any], vectorized: bool = True, limit: int = 1000) -> pa.Array:
    if vectorized and _only(values, str):
        return pc.utf8_slice_codeunits(pa.array(values, pa.string()), 0, limit)
    return pa.array([text(v, limit) for v in values], pa.string())


def id_values(values: list[Any], vectorized: bool = True) -> list[str | None]:
    """`sid()` of each value, with fast paths for all-string and all-integer columns."""
    if vectorized and _only(values, str):
        return [(v.strip() or None) if v is not None else None for v in values]
    if vectorized and _only(values, int):
        return [str(v) if v is not None else None for v in values]
    return [sid(v) for v in values]


def id_array(values: list[Any], vectorized: bool = True) -> pa.Array:
    return pa.array(id_values(values, vectorized), pa.string())


def assignee_array(values: list[Any], vectorized: bool = True) -> pa.Array:
    """Intercom 2.16 sends 0 for "unassigned" (docs/intercom-api.md#version-216-always-sent): NULL."""
    return pa.array([None if v == "0" else v for v in id_values(values, vectorized)], pa.string())


def flag_array(values: list[Any], vectorized: bool = True) -> pa.Array:
    if vectorized and _only(values, bool):
        return pa.array(values, pa.bool_())
    return pa.array([flag(v) for v in values], pa.bool_())


def int_array(values: list[Any], vectorized: bool = True) -> pa.Array:
    if vectorized and _only(values, int):
        try:
            return pa.array(values, pa.int64())
        except (OverflowError, pa.ArrowInvalid):
            pass  # beyond BIGINT: the scalar path drops those values
    return pa.array([integer(v) for v in values], pa.int64())


def micros(value: Any) -> int | None:
    """Unix seconds -> microseconds since the epoch, with `ts()`'s rules for odd input."""
    parsed = ts(value)
    return None if parsed is None else int(parsed.timestamp() * 1_000_000)


def timestamp_array(values: list[Any], vectorized: bool = True) -> pa.Array:
    """Unix seconds -> TIMESTAMP WITH TIME ZONE; 0 ("never"), negatives and years past 3000
    become NULL, as in `ts()`."""
    if vectorized and _only(values, int):
        try:
            seconds = pa.array(values, pa.int64())
        except (OverflowError, pa.ArrowInvalid):
            seconds = None
        if seconds is not None:
            valid = pc.and_(pc.greater(seconds, 0), pc.less_equal(seconds, MAX_EPOCH_SECONDS))
            return pc.if_else(valid, pc.multiply(seconds, 1_000_000), None).cast(TS)
    return pa.array([micros(v) for v in values], pa.int64()).cast(TS)


def json_array(values: list[Any], vectorized: bool = True) -> pa.Array:
    """Lists already made JSON-safe (ids, names, keys) -> JSON text."""
    return pa.array([orjson.dumps(v).decode() for v in values], pa.string())


_KINDS: dict[str, tuple[pa.DataType, Callable[[list[Any], bool], pa.Array], dict[str, Any]]] = {
    "text": (pa.string(), text_array, {"data_type": "text"}),
    "id": (pa.string(), id_array, {"data_type": "text"}),
    "assignee": (pa.string(), assignee_array, {"data_type": "text"}),
    "flag": (pa.bool_(), flag_array, {"data_type": "bool"}),
    "int": (pa.int64(), int_array, {"data_type": "bigint"}),
    "timestamp": (TS, timestamp_array, {"data_type": "timestamp", "timezone": True}),
    "json": (pa.string(), json_array, {"data_type": "json"}),
}

# ----------------------------------------------------------------- columns and tables


class Records:
    """A page of raw records, with the nested objects of each record looked up once.

    The records are dicts, or (`typed`) the structs of `TableSpec.decode`, where a field the
    record lacks is None and a nested object is a struct or None."""

    def __init__(self, items: Items, pseudo: Pseudonymizer | None = None, typed: bool = False) -> None:
        self.items = items
        self.pseudo = pseudo
        self.typed = typed
        self._objects: dict[tuple[str, ...], list[Any]] = {(): list(items)}
        self._derived: dict[str, Any] = {}

    def once(self, name: str, compute: Callable[[Records], Any]) -> Any:
        """A value several columns derive from (e.g. normalised e-mails), computed once."""
        if name not in self._derived:
            self._derived[name] = compute(self)
        return self._derived[name]

    def objects(self, path: tuple[str, ...]) -> list[Any]:
        """The object at `path` in each record ({} or, typed, None where absent or not an object)."""
        if path not in self._objects:
            if self.typed:
                self._objects[path] = self.values(path)
            else:
                parents = self.objects(path[:-1])
                key = path[-1]
                self._objects[path] = [v if type(v) is dict else _EMPTY for v in (p.get(key) for p in parents)]
        return self._objects[path]

    def values(self, path: tuple[str, ...]) -> list[Any]:
        key = path[-1]
        parents = self.objects(path[:-1])
        if not self.typed:
            return [o.get(key) for o in parents]
        if len(path) == 1:  # records are never None
            return list(map(attrgetter(key), parents))
        return [getattr(o, key) if o is not None else None for o in parents]


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    path: tuple[str, ...] = ()
    """Where the raw value sits in the record; empty for derived columns."""
    derive: Callable[[Records], list[Any]] | None = None
    """Raw values computed from several fields (then coerced by `kind`)."""
    hints: dict[str, Any] = field(default_factory=dict)
    """Extra dlt hints (dedup_sort, hard_delete)."""
    reads: tuple[tuple[str, ...], ...] = ()
    """The fields `derive` reads (what `TableSpec.decode` keeps of a record)."""

    @property
    def arrow_type(self) -> pa.DataType:
        return _KINDS[self.kind][0]

    def array(self, records: Records, vectorized: bool) -> pa.Array:
        raw = self.derive(records) if self.derive else records.values(self.path)
        return _KINDS[self.kind][1](raw, vectorized)


def col(name: str, kind: str, *path: str, **hints: Any) -> Column:
    """A column read from `path` (default: the field of the same name)."""
    return Column(name, kind, path or (name,), hints=hints)


def derived(name: str, kind: str, fn: Callable[[Records], list[Any]], *reads: str, **hints: Any) -> Column:
    """A column computed by `fn` from the fields `reads` ("location.country_code")."""
    return Column(name, kind, derive=fn, hints=hints, reads=tuple(tuple(r.split(".")) for r in reads))


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]

    @cached_property
    def schema(self) -> pa.Schema:
        keys = ("region", "id")
        fields = [pa.field("region", pa.string(), nullable=False), pa.field("workspace_id", pa.string())]
        fields += [pa.field(c.name, c.arrow_type, nullable=c.name not in keys) for c in self.columns]
        return pa.schema(fields)

    def hints(self) -> dict[str, dict[str, Any]]:
        """dlt column hints, in table order (fresh dicts: dlt writes into them)."""
        key = {"data_type": "text", "nullable": False}
        out: dict[str, dict[str, Any]] = {"region": dict(key), "workspace_id": {"data_type": "text"}}
        for c in self.columns:
            out[c.name] = {**_KINDS[c.kind][2], **({"nullable": False} if c.name == "id" else {}), **c.hints}
        return out

    def table(self, items: Items, region: str, workspace_id: str | None, pseudo: Pseudonymizer | None = None,
              vectorized: bool = True) -> pa.Table:
        return self.table_of(Records(items, pseudo), region, workspace_id, vectorized)

    def table_of(self, records: Records, region: str, workspace_id: str | None, vectorized: bool = True) -> pa.Table:
        n = len(records.items)
        arrays = [pa.array([region] * n, pa.string()), pa.array([workspace_id] * n, pa.string())]
        arrays += [c.array(records, vectorized) for c in self.columns]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def decode(self, records_json: bytes | bytearray, pseudo: Pseudonymizer | None = None, *,
               extra: Sequence[str] = ()) -> Records:
        """A JSON array of records as `Records`: typed structs of the fields the columns (and
        `extra` top-level fields) read, or dicts when a record has another shape (records
        that are not objects are dropped). Both read JSON the same way (msgspec: integers
        beyond 64 bits stay exact, where orjson makes them floats). Raises msgspec.DecodeError
        (a ValueError) for what is not JSON, or numbers beyond a double's range."""
        try:
            return Records(self._decoder(tuple(extra)).decode(records_json), pseudo, typed=True)
        except msgspec.ValidationError:
            return Records([i for i in _ANY_JSON.decode(records_json) if type(i) is dict], pseudo)

    def _decoder(self, extra: tuple[str, ...]) -> msgspec.json.Decoder:
        if extra not in self._decoders:
            paths = [c.path for c in self.columns if c.path] + [p for c in self.columns for p in c.reads]
            record = _struct(f"{self.name}_record", paths + [(e,) for e in extra])
            self._decoders[extra] = msgspec.json.Decoder(list[record])  # type: ignore[valid-type]  # a Struct built at run time
        return self._decoders[extra]

    @cached_property
    def _decoders(self) -> dict[tuple[str, ...], msgspec.json.Decoder]:
        return {}


_ANY_JSON = msgspec.json.Decoder()


def _struct(name: str, paths: list[tuple[str, ...]]) -> type:
    """A msgspec struct with the fields at `paths`: leaves keep any JSON value, nested objects
    are structs or None. Unknown fields are skipped."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for key in path:
            node = node.setdefault(key, {})
    for path in paths:
        node = tree
        for key in path:
            node = node[key]
        if node:
            raise ValueError(f"{'.'.join(path)} is read both as a value and as an object")
    return _struct_of(name, tree)


def _struct_of(name: str, tree: dict[str, Any]) -> type:
    fields = []
    for key, children in tree.items():
        assert key.isidentifier() and not keyword.iskeyword(key) and not key.startswith("_"), key
        kind = _struct_of(f"{name}_{key}", children) | None if children else Any
        fields.append((key, kind, None))
    return msgspec.defstruct(name, fields)
