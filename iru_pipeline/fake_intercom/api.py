"""Intercom endpoints of one workspace: parameters, envelopes and errors (docs/intercom-api.md#pagination-four-kinds).

Transport concerns (auth, rate limits, injected status and connection faults) live in
hosted.py; this module answers a request that got through them. Data faults that change a
response body (repeating cursors, lying counts, mangled JSON, index lag) are applied here.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from . import constants as C
from .directory import conversation_attributes_json, data_attributes_json
from .encoding import CursorCodec, InvalidCursor, encode, splice
from .faults import MISSING, FaultConfig, path_matches
from .search import QueryCompiler, SearchError, parse_sort
from .store import Collection, Page
from .workspace import Workspace

JSON = "application/json; charset=utf-8"
_V216_ONLY = ("/conversations/deleted", "/conversations/attributes")


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


class ApiError(Exception):
    """An Intercom error.list answer."""

    def __init__(self, status: int, code: str, message: str | None, *, with_request_id: bool = True,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message or code)
        self.status, self.code, self.message = status, code, message
        self.with_request_id = with_request_id
        self.headers = headers or []


def error_body(code: str, message: str | None, request_id: str | None) -> bytes:
    """`{type: error.list, request_id, errors: [{code, message}]}` (docs/intercom-api.md#errors)."""
    body: dict[str, Any] = {"type": "error.list"}
    if request_id is not None:
        body["request_id"] = request_id
    err: dict[str, Any] = {"code": code}
    if message is not None:
        err["message"] = message
    body["errors"] = [err]
    return encode(body)


class RequestIds:
    """Short lowercase ids like `am8kvuenottnjlupq970` (real ones are not UUIDs,
    docs/intercom-api.md#ids-timestamps-and-free-text)."""

    _ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

    def __init__(self, seed: int) -> None:
        import random
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            return "".join(self._rng.choice(self._ALPHABET) for _ in range(20))


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    version: str

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() == "true"

    @property
    def legacy(self) -> bool:
        """True for API versions before 2.16 (owner_id int, old priority, null assignees)."""
        return _version_tuple(self.version) < (2, 16)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


class RegionApi:
    """Routes and answers API requests for one workspace."""

    def __init__(self, workspace: Workspace, faults: FaultConfig, *, secret: bytes,
                 base_url: Callable[[], str], activity_logs_next_style: str = "url",
                 page_cache_bytes: int = 16 << 20) -> None:
        self.ws = workspace
        self.faults = faults
        self.cursors = CursorCodec(secret)
        self.base_url = base_url
        self.activity_logs_next_style = activity_logs_next_style
        self._contact_compiler = QueryCompiler("contact", workspace.tz)
        self._conversation_compiler = QueryCompiler("conversation", workspace.tz)
        self._page_cache: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._page_cache_size = 0
        self._page_cache_limit = page_cache_bytes
        self._cache_lock = threading.Lock()
        self._fresh_count = 0
        self._routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "/me"): self.me,
            ("GET", "/admins"): self.admins,
            ("GET", "/admins/activity_logs"): self.activity_logs,
            ("GET", "/teams"): self.teams,
            ("GET", "/tags"): self.tags,
            ("GET", "/data_attributes"): self.data_attributes,
            ("GET", "/conversations/attributes"): self.conversation_attributes,
            ("GET", "/contacts"): self.list_contacts,
            ("POST", "/contacts/search"): self.search_contacts,
            ("GET", "/conversations"): self.list_conversations,
            ("POST", "/conversations/search"): self.search_conversations,
            ("GET", "/conversations/deleted"): self.deleted_conversations,
            ("GET", "/ip_allowlist"): self.ip_allowlist,
        }
        self._item_routes: dict[tuple[str, str], Callable[[Request, str], Response]] = {
            ("GET", "/admins"): self.get_admin,
            ("GET", "/teams"): self.get_team,
            ("GET", "/tags"): self.get_tag,
            ("GET", "/contacts"): self.get_contact,
            ("GET", "/conversations"): self.get_conversation,
        }

    # routing ----------------------------------------------------------------------------------
    def route_name(self, method: str, path: str) -> str:
        """`GET /conversations/{id}` style name of a request, for statistics."""
        if (method, path) in self._routes:
            return f"{method} {path}"
        head, _, tail = path.rpartition("/")
        if tail and (method, head) in self._item_routes:
            return f"{method} {head}/{{id}}"
        return f"{method} (unknown)"

    def dispatch(self, req: Request) -> Response:
        if req.version not in C.KNOWN_API_VERSIONS:
            raise ApiError(400, "intercom_version_invalid", f"Intercom-Version {req.version!r} is not supported")
        if req.path in _V216_ONLY and req.legacy:
            raise ApiError(400, "intercom_version_invalid",
                "Requested resource is not available in current API version.")
        handler = self._routes.get((req.method, req.path))
        if handler is not None:
            response = self._cached(req, handler)
        else:
            head, _, tail = req.path.rpartition("/")
            item_handler = self._item_routes.get((req.method, head))
            if item_handler is None or not tail:
                raise ApiError(404, "not_found", "Resource Not Found", with_request_id=False)
            response = item_handler(req, tail)
        if response.status == 200 and path_matches(req.path, self.faults.malformed_paths):
            response = self._malformed(response)
        return response

    def _cacheable(self, req: Request) -> bool:
        f = self.faults
        return not (f.repeat_cursor_paths or f.malformed_paths or f.total_count_offset or f.search_index_lag_seconds
                    or f.fresh_cursor_paths or f.malformed_cursor_values)

    def _cached(self, req: Request, handler: Callable[[Request], Response]) -> Response:
        """Successful bodies are reused until the workspace data changes (cheap hot pages)."""
        if not self._cacheable(req):
            return handler(req)
        key = (req.method, req.path, tuple(sorted((k, tuple(v)) for k, v in req.query.items())), req.body,
               req.version, self.ws.data_version, self.activity_logs_next_style)
        body = self._page_cache.get(key)
        if body is not None:
            return Response(200, body)
        response = handler(req)
        if response.status == 200 and response.content_type == JSON and not response.headers:
            with self._cache_lock:
                self._page_cache[key] = response.body
                self._page_cache_size += len(response.body)
                while self._page_cache_size > self._page_cache_limit and self._page_cache:
                    _, old = self._page_cache.popitem(last=False)
                    self._page_cache_size -= len(old)
        return response

    def _malformed(self, response: Response) -> Response:
        if self.faults.malformed_kind == "not_json":
            return Response(200, b"<html><body><h1>Intercom</h1><p>We'll be right back.</p></body></html>",
                            "text/html; charset=utf-8")
        try:
            data = json.loads(response.body)
        except ValueError:
            return response
        if isinstance(data, dict):
            # Same data under unexpected keys: a client must not silently read an empty page.
            data = {("_" + k if k not in ("type",) else k): v for k, v in data.items()}
        return Response(200, encode(data), response.content_type, response.headers)

    # helpers ----------------------------------------------------------------------------------
    @staticmethod
    def _int_param(req: Request, name: str, default: int, *, low: int = 1, high: int | None = None) -> int:
        raw = req.param(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, "parameter_invalid", f"{name} must be an integer") from None
        value = max(low, value)
        return min(value, high) if high is not None else value

    def _decode_cursor(self, listing: str, cursor: str | None) -> list[Any] | None:
        if not cursor:
            return None
        try:
            position = self.cursors.decode(listing, cursor)
        except InvalidCursor:
            raise ApiError(400, "client_error", "Invalid starting_after param. Please try again using a "
                                                "starting_after value from a paginated response") from None
        if position and isinstance(position[-1], dict) and "fresh" in position[-1]:
            position = position[:-1]  # fresh_cursor_paths: the nonce only makes it new
        return position or None

    def _fresh_cursor(self, listing: str, position: list[Any] | None) -> str:
        """fresh_cursor_paths: a cursor never issued before, for the same position."""
        self._fresh_count += 1
        return self.cursors.encode(listing, [*(position or []), {"fresh": self._fresh_count}])

    def _total(self, total: int) -> int:
        return max(0, total + self.faults.total_count_offset)

    def _cursor_pages(self, req: Request, listing: str, page: Page, per_page: int,
        incoming: str | None) -> dict[str, Any]:
        """`pages` of a cursor listing: next is omitted on the last page
        (docs/intercom-api.md#pagination-four-kinds)."""
        pages: dict[str, Any] = {"type": "pages"}
        if page.next_position is not None:
            cursor = self.cursors.encode(listing, page.next_position)
            if incoming and path_matches(req.path, self.faults.repeat_cursor_paths):
                cursor = incoming  # fault: the server keeps handing back the same cursor
            pages["next"] = {"per_page": per_page, "starting_after": cursor}
        if path_matches(req.path, self.faults.fresh_cursor_paths):
            # fault: this page comes again with a new cursor, for ever
            pages["next"] = {"per_page": per_page,
                             "starting_after": self._fresh_cursor(listing, self._decode_cursor(listing, incoming))}
        pages["page"] = page.page
        pages["per_page"] = per_page
        pages["total_pages"] = math.ceil(page.total / per_page) if page.total else 0
        return pages

    def _items(self, store: Collection, indices: list[int],
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None) -> list[bytes]:
        if self.faults.malformed_cursor_values:
            inner = transform
            transform = lambda rec: self._malformed_cursor(inner(rec) if inner else rec, "updated_at")  # noqa: E731
        if transform is None:
            return [store.record_bytes(i) for i in indices]
        return [encode(transform(store.record(i))) for i in indices]

    def _malformed_cursor(self, rec: dict[str, Any], field: str) -> dict[str, Any]:
        """malformed_cursor_values: the record as served, with its cursor field replaced."""
        bad = self.faults.malformed_cursors()
        key = str(rec.get("id"))
        if key not in bad:
            return rec
        out = dict(rec)
        if bad[key] == MISSING:
            out.pop(field, None)
        else:
            out[field] = bad[key]
        return out

    def _contact_transform(self, req: Request) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        with_history = req.flag("include_merge_history")
        if not with_history and not req.legacy:
            return None

        def transform(rec: dict[str, Any]) -> dict[str, Any]:
            out = dict(rec)
            if with_history and out.get("role") == "user":
                out["merge_history"] = self.ws.merge_history(rec)
            if req.legacy and isinstance(out.get("owner_id"), str):
                # integer before 2.16 (docs/intercom-api.md#version-216-always-sent)
                out["owner_id"] = int(out["owner_id"])
            return out
        return transform

    @staticmethod
    def _conversation_transform(req: Request) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        if not req.legacy:
            return None

        def transform(rec: dict[str, Any]) -> dict[str, Any]:
            out = dict(rec)
            # Before 2.16: priority|not_priority, and null (not 0) for unassigned
            # (docs/intercom-api.md#version-216-always-sent).
            out["priority"] = "priority" if rec.get("priority") in ("high", "urgent") else "not_priority"
            out["admin_assignee_id"] = rec.get("admin_assignee_id") or None
            out["team_assignee_id"] = rec.get("team_assignee_id") or None
            return out
        return transform

    def _json_body(self, req: Request) -> dict[str, Any]:
        if not req.body.strip():
            return {}
        try:
            data = json.loads(req.body)
        except ValueError:
            raise ApiError(400, "bad_request", "The request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "bad_request", "The request body must be a JSON object")
        return data

    # admins, teams, tags, attributes ----------------------------------------------------------
    def me(self, req: Request) -> Response:
        owner = self.ws.owner
        ws = self.ws
        body = {
            "type": "admin",
            "id": owner.id,
            "email": owner.email,
            "name": owner.name,
            "email_verified": True,
            "job_title": owner.job_title,
            "away_mode_enabled": owner.away_mode_enabled,
            "away_mode_reassign": owner.away_mode_reassign,
            "has_inbox_seat": owner.has_inbox_seat,
            "team_ids": list(owner.team_ids),
            "app": {
                "type": "app",
                "id_code": ws.workspace_id,
                "name": ws.profile.app_name,
                "created_at": ws.profile.app_created_at,
                "secure": True,
                "identity_verification": ws.region != "au",
                "timezone": ws.timezone,
                "region": ws.profile.reported_region,
            },
            # An object here, a plain URL on `admin` (docs/intercom-api.md#record-shapes-worth-knowing).
            "avatar": {"type": "avatar", "image_url": owner.avatar},
        }
        return Response(200, encode(body))

    def admins(self, req: Request) -> Response:
        admins = self.ws.admins(display_avatar=req.flag("display_avatar"))
        if req.legacy:
            for a in admins:
                a.pop("role", None)
        return Response(200, encode({"type": "admin.list", "admins": admins}))

    def get_admin(self, req: Request, admin_id: str) -> Response:
        for a in self.ws.admins(display_avatar=True):
            if a["id"] == admin_id:
                return Response(200, encode(a))
        raise ApiError(404, "admin_not_found", "Admin not found")

    def teams(self, req: Request) -> Response:
        return Response(200, encode({"type": "team.list", "teams": self.ws.teams()}))

    def get_team(self, req: Request, team_id: str) -> Response:
        for t in self.ws.teams():
            if t["id"] == team_id:
                return Response(200, encode(t))
        raise ApiError(404, "team_not_found", "Team not found")

    def tags(self, req: Request) -> Response:
        return Response(200, encode({"type": "list", "data": self.ws.tags()}))

    def get_tag(self, req: Request, tag_id: str) -> Response:
        for t in self.ws.tags():
            if t["id"] == tag_id:
                return Response(200, encode(t))
        raise ApiError(404, "tag_not_found", "Tag not found")

    def data_attributes(self, req: Request) -> Response:
        model = req.param("model")
        if model == "conversation":
            # 2.16 moved conversation attributes to their own endpoint (docs/intercom-api.md#version-216-always-sent).
            raise ApiError(422, "parameter_invalid",
                           "model=conversation is no longer supported. Use GET /conversations/attributes instead")
        if model not in (None, "contact", "company"):
            raise ApiError(422, "parameter_invalid", f"model must be contact or company, not {model!r}")
        archived = req.flag("include_archived")
        owner = self.ws.owner.id
        created = self.ws.profile.app_created_at
        models = [model] if model else ["contact", "company"]
        planted = self.ws.created_at if self.ws.scenario is not None else None
        data = [a for m in models for a in data_attributes_json(m, archived, created, owner, scenario_now=planted)]
        return Response(200, encode({"type": "list", "data": data}))

    def conversation_attributes(self, req: Request) -> Response:
        data = conversation_attributes_json(req.flag("include_archived"), self.ws.profile.app_created_at,
            self.ws.owner.id)
        return Response(200, encode({"type": "list", "data": data}))

    def ip_allowlist(self, req: Request) -> Response:
        return Response(200, encode(self.ws.ip_allowlist()))

    # contacts -------------------------------------------------------------------------------
    def list_contacts(self, req: Request) -> Response:
        per_page = self._int_param(req, "per_page", C.CONTACTS_LIST_DEFAULT_PER_PAGE, high=C.MAX_PER_PAGE)
        incoming = req.param("starting_after")
        position = self._decode_cursor("contacts", incoming)
        store = self.ws.contact_store
        page = store.list_page(per_page, position)
        envelope = {"type": "list", "data": None, "total_count": self._total(page.total),
                    "pages": self._cursor_pages(req, "contacts", page, per_page, incoming)}
        return Response(200, splice(envelope, "data", self._items(store, page.indices, self._contact_transform(req))))

    def search_contacts(self, req: Request) -> Response:
        return self._search(req, "contact")

    def get_contact(self, req: Request, contact_id: str) -> Response:
        rec = self.ws.contact(contact_id)
        if rec is None:
            target = self.ws.merged_into(contact_id)
            if target is not None and not req.legacy:
                # 2.16: a merged contact answers 410 with a Link to the survivor
                # (docs/intercom-api.md#version-216-always-sent).
                raise ApiError(410, "contact_merged",
                               "This contact has been merged. See the 'Link' header for the canonical contact.",
                               headers=[("Link", f'</contacts/{target}>; rel="canonical"')])
            raise ApiError(404, "not_found", "User Not Found")
        transform = self._contact_transform(req)
        out = transform(rec) if transform else dict(rec)
        out["enabled_push_messaging"] = None
        return Response(200, encode(out))

    # conversations --------------------------------------------------------------------------
    def list_conversations(self, req: Request) -> Response:
        per_page = self._int_param(req, "per_page", C.CONVERSATIONS_DEFAULT_PER_PAGE, high=C.MAX_PER_PAGE)
        incoming = req.param("starting_after")
        position = self._decode_cursor("conversations", incoming)
        store = self.ws.conversation_store
        page = store.list_page(per_page, position)
        envelope = {"type": "conversation.list",
                    "pages": self._cursor_pages(req, "conversations", page, per_page, incoming),
                    "total_count": self._total(page.total), "conversations": None}
        items = self._items(store, page.indices, self._conversation_transform(req))
        return Response(200, splice(envelope, "conversations", items))

    def search_conversations(self, req: Request) -> Response:
        return self._search(req, "conversation")

    def get_conversation(self, req: Request, conversation_id: str) -> Response:
        store = self.ws.conversation_store
        index = store.find(conversation_id)
        if index is None:
            raise ApiError(404, "not_found", "Resource Not Found")
        rec = dict(store.record(index))
        transform = self._conversation_transform(req)
        if transform:
            rec = transform(rec)
        rec["conversation_parts"] = self.ws.conversation_factory.parts(index, rec)
        return Response(200, encode(rec))

    def deleted_conversations(self, req: Request) -> Response:
        """2.16 `/conversations/deleted`: page numbers, `pages.next` a URL or null (pages_link)."""
        per_page = self._int_param(req, "per_page", C.DELETED_DEFAULT_PER_PAGE, high=C.DELETED_MAX_PER_PAGE)
        page_no = self._int_param(req, "page", 1)
        order = req.param("order") or "desc"
        if order not in ("asc", "desc"):
            raise ApiError(400, "parameter_invalid", "order must be asc or desc")
        items = self.ws.deleted_conversations(order)
        total = len(items)
        total_pages = math.ceil(total / per_page) if total else 0
        fresh = path_matches(req.path, self.faults.fresh_cursor_paths)
        if fresh:
            total_pages = page_no + 1  # fault: always one more page, which repeats the first
        chunk = items[(0 if fresh else page_no - 1) * per_page: (1 if fresh else page_no) * per_page]
        chunk = [self._malformed_cursor(i, "deleted_at") for i in chunk]
        next_url = None
        if page_no < total_pages:
            next_url = f"{self.base_url()}/conversations/deleted?" + urlencode(
                {"per_page": per_page, "order": order, "page": page_no + 1})
        body = {"type": "conversations.list", "total_count": self._total(total),
                "pages": {"type": "pages", "next": next_url, "page": page_no, "per_page": per_page,
                          "total_pages": total_pages},
                "conversations": chunk}
        return Response(200, encode(body))

    # search ---------------------------------------------------------------------------------
    def _search(self, req: Request, model: str) -> Response:
        """Pagination comes only from the body; `starting_after` in the query string and
        `pagination.page` are ignored (docs/intercom-api.md#pagination-four-kinds), so such a client gets page 1
        again."""
        body = self._json_body(req)
        compiler = self._contact_compiler if model == "contact" else self._conversation_compiler
        try:
            node = compiler.compile(body.get("query"))
            sort = parse_sort(body.get("sort"), model)
        except SearchError as exc:
            raise ApiError(400, exc.code, exc.message) from None
        pagination = body.get("pagination") or {}
        if not isinstance(pagination, dict):
            raise ApiError(400, "parameter_invalid", "pagination must be an object")
        default = C.CONTACTS_SEARCH_DEFAULT_PER_PAGE if model == "contact" else C.CONVERSATIONS_DEFAULT_PER_PAGE
        per_page = pagination.get("per_page", default)
        if not isinstance(per_page, int) or isinstance(per_page, bool):
            raise ApiError(400, "parameter_invalid", "pagination.per_page must be an integer")
        per_page = max(1, min(per_page, C.MAX_PER_PAGE))
        incoming = pagination.get("starting_after")
        listing = f"{model}s.search"
        position = self._decode_cursor(listing, incoming if isinstance(incoming, str) else None)
        lag = self.faults.search_index_lag_seconds
        visible_until = self.ws.now() - int(lag) if lag > 0 else None
        store = self.ws.contact_store if model == "contact" else self.ws.conversation_store
        query_key = json.dumps([body.get("query")], sort_keys=True, separators=(",", ":"))
        try:
            page = store.search(node, sort, per_page, position, visible_until=visible_until, query_key=query_key)
        except (TypeError, IndexError):
            # A genuine cursor, but from a search with another sort: its position is meaningless here.
            raise ApiError(400, "client_error", "Invalid starting_after param. Please try again using a "
                                                "starting_after value from a paginated response") from None
        pages = self._cursor_pages(req, listing, page, per_page, incoming if isinstance(incoming, str) else None)
        if model == "contact":
            envelope = {"type": "list", "data": None, "total_count": self._total(page.total), "pages": pages}
            items = self._items(store, page.indices, self._contact_transform(req))
            return Response(200, splice(envelope, "data", items))
        envelope = {"type": "conversation.list", "pages": pages, "total_count": self._total(page.total),
                    "conversations": None}
        items = self._items(store, page.indices, self._conversation_transform(req))
        return Response(200, splice(envelope, "conversations", items))

    # activity logs --------------------------------------------------------------------------
    def activity_logs(self, req: Request) -> Response:
        """Newest first; `created_at_after` required; `pages.next` an absolute URL
        (docs/intercom-api.md#pagination-four-kinds)
        or, with activity_logs_next_style="cursor", the spec's `{starting_after}` object."""
        after_raw = req.param("created_at_after")
        if after_raw is None or after_raw == "":
            raise ApiError(400, "parameter_not_found", "created_at_after is a required parameter")
        after = _unix_param("created_at_after", after_raw)
        before_raw = req.param("created_at_before")
        before = _unix_param("created_at_before", before_raw) if before_raw not in (None, "") else None
        per_page = self._int_param(req, "per_page", C.ACTIVITY_LOGS_DEFAULT_PER_PAGE, high=C.ACTIVITY_LOGS_MAX_PER_PAGE)
        page_no = self._int_param(req, "page", 1)
        cursor = req.param("starting_after")
        if cursor:
            position = self._decode_cursor("activity_logs", cursor)
            page_no = int(position[0]) if position else 1
        total = self.ws.count_activity_logs(after, before)
        total_pages = math.ceil(total / per_page) if total else 0
        fresh = path_matches(req.path, self.faults.fresh_cursor_paths)
        entries = self.ws.activity_log_slice(after, before, (page_no - 1) * per_page, per_page)
        entries = [self._malformed_cursor(e, "created_at") for e in entries]
        next_page = page_no if fresh else page_no + 1  # fresh_cursor_paths: this page again, for ever
        next_value: Any = None
        if page_no < total_pages or (fresh and total_pages):
            if self.activity_logs_next_style == "cursor":
                if fresh:
                    starting_after = self._fresh_cursor("activity_logs", [next_page])
                elif cursor and path_matches(req.path, self.faults.repeat_cursor_paths):
                    starting_after = cursor
                else:
                    starting_after = self.cursors.encode("activity_logs", [next_page])
                next_value = {"per_page": per_page, "starting_after": starting_after}
            else:
                params: dict[str, Any] = {"created_at_after": after_raw}
                if before is not None:
                    params["created_at_before"] = before_raw
                params["page"] = next_page
                if req.param("per_page") is not None:
                    params["per_page"] = per_page
                if path_matches(req.path, self.faults.repeat_cursor_paths):
                    params["page"] = page_no
                if fresh:
                    self._fresh_count += 1
                    params["fresh"] = self._fresh_count
                next_value = f"{self.base_url()}/admins/activity_logs?{urlencode(params)}"
        body = {"type": "activity_log.list",
                "pages": {"type": "pages", "next": next_value, "page": page_no, "per_page": per_page,
                          "total_pages": total_pages},
                "activity_logs": entries}
        return Response(200, encode(body))


def _unix_param(name: str, raw: str) -> int:
    if not re.fullmatch(r"\s*-?\d+\s*", raw):
        raise ApiError(400, "parameter_invalid", f"{name} must be a Unix timestamp in seconds")
    return int(raw)
