"""Shared inference for the importers: naming, JSON-Schema resolution, and the builder that
turns entity and operation drafts (from MCP metadata or an OpenAPI document) into a complete,
compilable `Spec`.

The importers only read their format into drafts; every decision that is not literally in the
source (a key, a seed generator, a row count, a tool's pattern, an actor) is made here, the
same way for both formats, and every default is recorded as a `needs_review` item so that a
person can check it. Nothing is invented silently.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..spec import (
    Actor,
    ChildCount,
    Column,
    Entity,
    Filter,
    Intent,
    PolicyRule,
    Spec,
    ToolSpec,
    Transfer,
    ValueGen,
    create_anchor,
    dump_spec,
)

DEFAULT_NOW = "2025-06-02T09:00:00"
TOP_LEVEL_ROWS = 200
"""Seed rows of an entity with no parent when the source gives no volume."""
CHILDREN = (0, 5)
"""Rows per parent row of a child entity (1..4 when the parent is the actor)."""

# ----- naming -------------------------------------------------------------------------------

_IRREGULAR = {
    "person": "people", "child": "children", "man": "men", "woman": "women", "mouse": "mice",
    "foot": "feet", "tooth": "teeth", "goose": "geese", "criterion": "criteria",
    "datum": "data", "analysis": "analyses", "index": "indices", "leaf": "leaves",
    "life": "lives", "knife": "knives", "wife": "wives", "half": "halves", "shelf": "shelves",
    "diagnosis": "diagnoses", "thesis": "theses", "crisis": "crises",
}  # fmt: skip
_SINGULAR_IRREGULAR = {plural: singular for singular, plural in _IRREGULAR.items()}
_UNCOUNTABLE = {
    "series", "species", "news", "information", "info", "equipment", "staff", "feedback",
    "software", "hardware", "metadata", "data", "sheep", "fish", "inventory", "media",
}  # fmt: skip
_ES_PLURALS = {
    "statuses", "buses", "bonuses", "viruses", "campuses", "censuses", "syllabuses",
    "surpluses", "choruses", "aliases", "canvases", "biases", "gases", "atlases", "heroes",
    "potatoes", "tomatoes", "echoes", "vetoes", "quizzes",
}  # fmt: skip
_IES_TO_IE = {"movies", "cookies", "calories", "pies", "ties", "lies", "rookies", "selfies"}
_CHES_TO_CHE = {"caches", "niches", "headaches", "avalanches", "moustaches", "cliches"}


def snake(text: Any) -> str:
    """`text` as a snake_case identifier: 'startTime', 'Start-Time', 'start time' ->
    'start_time'."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(text))
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    text = re.sub(r"_+", "_", text) or "x"
    return f"n_{text}" if text[0].isdigit() else text


def _last(word: str) -> tuple[str, str]:
    head, _, last = word.rpartition("_")
    return (head + "_" if head else ""), last


def singular(word: str) -> str:
    """The singular of a snake_case noun phrase (only its last word changes)."""
    head, last = _last(word)
    if last in _UNCOUNTABLE or last in _IRREGULAR:
        return word
    if last in _SINGULAR_IRREGULAR:
        return head + _SINGULAR_IRREGULAR[last]
    if last in _ES_PLURALS:
        return head + (last[:-3] if last.endswith("zzes") else last[:-2])
    if last.endswith("ies") and len(last) > 4:
        return head + (last[:-1] if last in _IES_TO_IE else last[:-3] + "y")
    if last.endswith(("sses", "shes", "xes")) or (
        last.endswith("ches") and last not in _CHES_TO_CHE
    ):
        return head + last[:-2]
    if last.endswith(("ss", "us", "is")) or not last.endswith("s") or len(last) < 3:
        return word
    return head + last[:-1]


def plural(word: str) -> str:
    """The plural of a snake_case noun phrase; a plural stays as it is."""
    word = singular(word)
    head, last = _last(word)
    if last in _UNCOUNTABLE:
        return word
    if last in _IRREGULAR:
        return head + _IRREGULAR[last]
    if last.endswith(("s", "x", "z", "ch", "sh")):
        return head + last + "es"
    if last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        return head + last[:-1] + "ies"
    return head + last + "s"


def words(name: str) -> str:
    """A snake_case name as people say it: 'start_time' -> 'start time'."""
    return name.replace("_", " ").strip()


def camel_id(name: str) -> str:
    """A Gym id stem from a snake_case name: 'vet_clinic' -> 'VetClinic'."""
    return "".join(part.capitalize() for part in name.split("_") if part) or "Imported"


def id_prefix(singular_name: str, used: set[str]) -> str:
    """A three-letter key prefix for an entity ('note' -> 'NOT'), unique among `used`."""
    letters = re.sub(r"[^a-z]", "", singular_name).upper() or "ROW"
    parts = [p for p in singular_name.split("_") if p]
    candidates = [letters[:3]]
    if len(parts) > 1:
        candidates.append(("".join(p[0] for p in parts) + letters[len(parts) :])[:3].upper())
    consonants = letters[0] + re.sub(r"[AEIOU]", "", letters[1:])
    candidates += [consonants[:3], letters[0] + letters[2:4], letters[:2] + letters[-1]]
    for candidate in candidates:
        if len(candidate) >= 2 and candidate not in used:
            return candidate
    for n in range(2, 1000):
        candidate = f"{letters[:2]}{chr(ord('A') + n % 26)}{n // 26 or ''}"
        if candidate not in used:
            return candidate
    raise ValueError(f"no free id prefix for {singular_name!r}")


def first_sentence(text: str, limit: int = 240) -> str:
    """The first sentence of a description, trimmed to `limit` characters."""
    text = " ".join(str(text or "").split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    sentence = match.group(1) if match else text
    return sentence if len(sentence) <= limit else sentence[: limit - 3].rstrip() + "..."


# ----- review -------------------------------------------------------------------------------


class Review:
    """What was defaulted and why: `(path, message)` pairs in the order they were found, one
    per path and message. A path is dotted (`entities.notes.count`), list items by name."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        item = (path, " ".join(message.split()))
        if item not in self.items:
            self.items.append(item)

    def lines(self) -> list[str]:
        return [f"{path}: {message}" for path, message in self.items]


# ----- JSON Schema --------------------------------------------------------------------------


class SchemaResolver:
    """Follows local `$ref`s and merges `allOf`, `anyOf`/`oneOf` with null and 3.1 type lists,
    so that inference sees one plain schema. The name a `$ref` pointed to is kept as `x-ref`,
    nullability as `nullable`."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.external: list[str] = []

    def target(self, ref: str) -> dict[str, Any]:
        if not ref.startswith("#/"):
            self.external.append(ref)
            return {}
        node: Any = self.document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"unresolvable $ref {ref!r}: no {part!r}")
            node = node[part]
        return node if isinstance(node, dict) else {}

    def resolve(self, schema: Any, seen: tuple[str, ...] = ()) -> dict[str, Any]:
        """A resolved copy of `schema` (nested properties and items stay unresolved)."""
        if not isinstance(schema, dict):
            return {}
        if "$ref" in schema:
            ref = str(schema["$ref"])
            name = ref.rsplit("/", 1)[-1]
            if ref in seen:
                return {"type": "object", "x-ref": name, "x-cycle": True}
            resolved = dict(self.resolve(self.target(ref), (*seen, ref)))
            for key in ("description", "nullable", "readOnly", "default"):
                if key in schema:
                    resolved[key] = schema[key]
            resolved["x-ref"] = name
            return resolved
        schema = dict(schema)
        if "allOf" in schema:
            parts = [self.resolve(part, seen) for part in schema.pop("allOf") or []]
            merged = _merge_schemas(parts)
            refs = [p["x-ref"] for p in parts if p.get("x-ref")]
            own = [p for p in parts if not p.get("x-ref") and p.get("properties")]
            if len(refs) == 1 and not own and not schema.get("properties"):
                merged["x-ref"] = refs[0]
            else:
                merged.pop("x-ref", None)
            schema = _merge_schemas([merged, schema])
        for key in ("anyOf", "oneOf"):
            if key not in schema:
                continue
            variants = [self.resolve(v, seen) for v in schema.pop(key) or []]
            solid = [v for v in variants if v.get("type") != "null"]
            if len(solid) < len(variants):
                schema["nullable"] = True
            if solid:
                first = dict(solid[0])
                if len(solid) > 1:
                    first["x-variants"] = len(solid)
                schema = {**first, **schema}
        kind = schema.get("type")
        if isinstance(kind, list):
            solid_types = [t for t in kind if t != "null"]
            if len(solid_types) < len(kind):
                schema["nullable"] = True
            schema["type"] = solid_types[0] if solid_types else None
        if "const" in schema and "enum" not in schema:
            schema["enum"] = [schema["const"]]
        if not schema.get("type"):
            if "properties" in schema:
                schema["type"] = "object"
            elif "items" in schema:
                schema["type"] = "array"
            elif schema.get("enum") and all(isinstance(v, str) for v in schema["enum"]):
                schema["type"] = "string"
        return schema


def _merge_schemas(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """allOf: properties and required lists united (later parts win a property), other keys
    from the first part that has them."""
    merged: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for part in parts:
        properties.update(part.get("properties") or {})
        required += [r for r in part.get("required") or [] if r not in required]
        for key, value in part.items():
            if key not in ("properties", "required") and key not in merged:
                merged[key] = value
    if properties:
        merged["properties"] = properties
        merged.setdefault("type", "object")
    if required:
        merged["required"] = required
    return merged


@dataclass
class FieldDraft:
    """One property as the source describes it (before it becomes a column or argument)."""

    name: str
    type: str | None = None
    format: str | None = None
    enum: list[Any] = field(default_factory=list)
    nullable: bool = False
    required: bool = False
    description: str = ""
    ref: str | None = None
    properties: dict[str, FieldDraft] = field(default_factory=dict)
    items: FieldDraft | None = None
    minimum: float | None = None
    maximum: float | None = None
    default: Any = None
    raw_name: str = ""
    entity: str | None = None

    def merge(self, other: FieldDraft) -> None:
        """Fill what this draft lacks from `other` (another sighting of the same field)."""
        if other.type and (not self.type or (self.type == "string" and other.format)):
            self.type = other.type
        self.format = self.format or other.format
        self.enum += [v for v in other.enum if v not in self.enum]
        self.required = self.required or other.required
        self.description = self.description or other.description
        self.ref = self.ref or other.ref
        self.entity = self.entity or other.entity
        for name, sub in other.properties.items():
            self.properties.setdefault(name, sub)
        self.items = self.items or other.items
        self.minimum = self.minimum if self.minimum is not None else other.minimum
        self.maximum = self.maximum if self.maximum is not None else other.maximum
        self.default = self.default if self.default is not None else other.default


def field_from_schema(
    name: str, schema: Any, resolver: SchemaResolver, required: bool = False, depth: int = 0
) -> FieldDraft:
    """A `FieldDraft` for property `name` with (unresolved) `schema`."""
    resolved = resolver.resolve(schema)
    enum = [v for v in resolved.get("enum") or [] if v is not None]
    draft = FieldDraft(
        name=snake(name),
        raw_name=str(name),
        type=resolved.get("type"),
        format=resolved.get("format"),
        enum=enum,
        nullable=bool(resolved.get("nullable")) or None in (resolved.get("enum") or []),
        required=required,
        description=" ".join(str(resolved.get("description") or "").split()),
        ref=resolved.get("x-ref"),
        minimum=_number_or_none(resolved.get("minimum", resolved.get("exclusiveMinimum"))),
        maximum=_number_or_none(resolved.get("maximum", resolved.get("exclusiveMaximum"))),
        default=resolved.get("default") if _scalar(resolved.get("default")) else None,
    )
    if depth < 3 and draft.type == "object":
        needed = set(resolved.get("required") or [])
        for sub, sub_schema in (resolved.get("properties") or {}).items():
            draft.properties[snake(sub)] = field_from_schema(
                sub, sub_schema, resolver, sub in needed, depth + 1
            )
    if depth < 3 and draft.type == "array":
        draft.items = field_from_schema(
            singular(snake(name)), resolved.get("items") or {}, resolver, True, depth + 1
        )
    return draft


def fields_of(schema: Any, resolver: SchemaResolver) -> dict[str, FieldDraft]:
    """The properties of an object schema as drafts, by snake_case name."""
    resolved = resolver.resolve(schema)
    needed = set(resolved.get("required") or [])
    return {
        snake(name): field_from_schema(name, sub, resolver, name in needed)
        for name, sub in (resolved.get("properties") or {}).items()
    }


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


@dataclass
class EntityDraft:
    """An entity as the source shows it: a named collection of fields."""

    name: str
    singular: str
    description: str = ""
    fields: dict[str, FieldDraft] = field(default_factory=dict)
    key: str | None = None
    keyed_by_map: bool = False
    identifier_only: bool = False
    parent: str | None = None
    source: str = ""

    def add(self, draft: FieldDraft) -> None:
        if draft.name in self.fields:
            self.fields[draft.name].merge(draft)
        else:
            self.fields[draft.name] = draft


@dataclass
class ToolDraft:
    """An operation as the source shows it, with the importer's reading of its kind.

    `kind` is get, list, create, update, delete, action (a verb such as cancel on one row) or
    unknown; `verb` the word it was read from; `entity` the entity it is about, if known;
    `by` a lookup column named by the operation (get_user_by_email)."""

    name: str
    description: str
    kind: str
    verb: str
    entity: str | None
    args: list[FieldDraft]
    why: str
    by: str | None = None
    include: list[str] = field(default_factory=list)
    path_args: dict[str, str] = field(default_factory=dict)
    unresolved: str = ""


@dataclass
class ImportResult:
    """An imported spec, what in it was defaulted (`review`, also `spec.needs_review`) and how
    each tool's pattern was inferred (`inferred`, by tool name; dropped tools included)."""

    spec: Spec
    review: list[str]
    inferred: dict[str, str]


def load_document(
    source: dict[str, Any] | str | Path, what: str, yaml_ok: bool = True
) -> tuple[dict[str, Any], str]:
    """A JSON (or, with `yaml_ok`, YAML) document from a dict or a path, and a name for
    messages; ValueError names the file and the problem."""
    if isinstance(source, dict):
        return source, what
    if not isinstance(source, str | Path):
        raise ValueError(f"{what} must be a dict or a path, got {type(source).__name__}")
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if not yaml_ok or path.suffix.lower() == ".json":
            raise ValueError(f"{path}: {what} is not valid JSON: {exc}") from None
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: {what} is neither JSON nor YAML: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: {what} must be an object/mapping, got {type(data).__name__}")
    return data, str(path)


# ----- vocabulary for inference -------------------------------------------------------------

PERSON_WORDS = {
    "user", "customer", "client", "member", "owner", "person", "patient", "student",
    "employee", "guest", "patron", "contact", "subscriber", "buyer", "seller", "passenger",
    "traveler", "traveller", "driver", "rider", "tenant", "player", "author", "participant",
    "profile", "applicant", "candidate", "volunteer", "donor", "account_holder", "holder",
    "shopper", "attendee", "vet", "veterinarian", "doctor", "physician", "teacher",
    "instructor", "agent", "staff_member", "therapist", "stylist", "technician", "provider",
    "clinician", "nurse", "coach", "trainer", "host", "organizer", "reader", "borrower",
}  # fmt: skip
ACTOR_WORDS = {
    "user", "customer", "client", "member", "owner", "person", "patient", "guest", "patron",
    "subscriber", "buyer", "shopper", "passenger", "traveler", "traveller", "rider", "tenant",
    "student", "player", "profile", "applicant", "donor", "account_holder", "holder",
    "reader", "borrower",
}  # fmt: skip
ROLE_WORDS = {
    "owner", "user", "author", "creator", "created_by", "organizer", "organiser", "host",
    "assignee", "assigned_to", "reporter", "requester", "sender", "recipient", "member",
    "customer", "client", "holder", "account_holder", "payer", "buyer", "seller", "patient",
    "borrower", "reader", "updated_by", "modified_by", "submitted_by", "approver",
}  # fmt: skip
READABLE = (
    "title", "name", "subject", "summary", "display_name", "full_name", "label", "nickname",
    "headline", "topic", "caption", "heading", "username", "handle",
)  # fmt: skip
HAPPENS = (
    "start_time", "starts_at", "start_at", "start", "start_date", "scheduled_at",
    "scheduled_for", "scheduled_date", "date", "due_date", "due_at", "due", "appointment_date",
    "appointment_time", "event_date", "check_in", "departure", "time", "datetime",
    "occurred_at",
)  # fmt: skip
"""Columns that say when a row happens (a row is 'the ... on June 3')."""
WHEN = (*HAPPENS, "paid_at", "created_at", "created", "timestamp")
STATE_COLUMNS = ("status", "state", "stage", "phase", "lifecycle")
TERMINAL = {
    "cancelled", "canceled", "completed", "complete", "done", "closed", "archived", "deleted",
    "failed", "refunded", "rejected", "declined", "expired", "void", "voided", "delivered",
    "no_show", "finished", "ended", "returned", "removed", "trashed", "resolved", "paid",
    "settled", "fulfilled", "checked_out", "dismissed", "revoked", "terminated", "inactive",
    "disabled", "blocked", "frozen", "suspended", "locked",
}  # fmt: skip
INACTIVE = TERMINAL | {"paused", "on_hold", "held", "snoozed", "draft"}
INITIAL_STATES = (
    "draft", "pending", "scheduled", "requested", "new", "open", "active", "planned", "todo",
    "to_do", "upcoming", "confirmed", "submitted", "created", "unpaid", "available",
    "tentative", "booked", "queued",
)  # fmt: skip
VERB_STATES = {
    "cancel": ("cancelled", "canceled", "cancel"),
    "complete": ("completed", "complete", "done", "finished"),
    "finish": ("finished", "completed", "done"),
    "close": ("closed",),
    "reopen": ("open", "reopened", "active"),
    "open": ("open", "opened"),
    "approve": ("approved",),
    "reject": ("rejected", "declined"),
    "decline": ("declined", "rejected"),
    "accept": ("accepted", "confirmed"),
    "confirm": ("confirmed",),
    "archive": ("archived",),
    "unarchive": ("active", "open"),
    "restore": ("active", "open", "restored"),
    "publish": ("published", "live"),
    "unpublish": ("draft", "unpublished"),
    "activate": ("active", "activated", "enabled"),
    "enable": ("enabled", "active"),
    "deactivate": ("inactive", "deactivated", "disabled"),
    "disable": ("disabled", "inactive"),
    "suspend": ("suspended",),
    "freeze": ("frozen", "blocked", "locked"),
    "unfreeze": ("active", "unfrozen"),
    "lock": ("locked",),
    "unlock": ("active", "unlocked"),
    "block": ("blocked",),
    "unblock": ("active", "unblocked"),
    "void": ("void", "voided"),
    "refund": ("refunded",),
    "pay": ("paid",),
    "resolve": ("resolved",),
    "ship": ("shipped",),
    "deliver": ("delivered",),
    "fulfill": ("fulfilled",),
    "start": ("in_progress", "started", "active"),
    "begin": ("in_progress", "started"),
    "stop": ("stopped",),
    "end": ("ended", "finished"),
    "pause": ("paused",),
    "resume": ("active", "in_progress", "resumed"),
    "check_in": ("checked_in", "arrived"),
    "checkin": ("checked_in", "arrived"),
    "check_out": ("checked_out",),
    "checkout": ("checked_out",),
    "submit": ("submitted", "pending"),
    "escalate": ("escalated",),
    "expire": ("expired",),
    "fail": ("failed",),
    "hold": ("on_hold", "held"),
    "release": ("released",),
    "dispatch": ("dispatched",),
    "return": ("returned",),
    "snooze": ("snoozed",),
    "dismiss": ("dismissed",),
    "acknowledge": ("acknowledged",),
    "verify": ("verified",),
    "reserve": ("reserved",),
    "revoke": ("revoked",),
    "terminate": ("terminated",),
    "settle": ("settled",),
    "reschedule": ("rescheduled",),
}
REVERSING = {
    "reopen", "unarchive", "restore", "unpublish", "activate", "enable", "unfreeze", "unlock",
    "unblock", "resume",
}  # fmt: skip
GET_VERBS = {
    "get", "fetch", "read", "retrieve", "show", "view", "describe", "lookup", "inspect",
    "check", "find", "load", "see",
}  # fmt: skip
LIST_VERBS = {"list", "search", "query", "browse", "filter", "find", "lookup", "all", "enumerate"}
CREATE_VERBS = {
    "create", "add", "new", "insert", "make", "register", "open", "post", "submit", "schedule",
    "book", "record", "log", "upload", "issue", "place", "enroll", "invite", "save", "write",
    "compose", "draft", "send", "start", "request",
}  # fmt: skip
UPDATE_VERBS = {
    "update", "edit", "modify", "set", "change", "rename", "patch", "move", "reschedule",
    "assign", "reassign", "replace", "put", "adjust", "tag", "retag", "configure",
}  # fmt: skip
DELETE_VERBS = {
    "delete", "remove", "destroy", "erase", "purge", "trash", "discard", "unregister", "drop",
}  # fmt: skip
TRANSFER_VERBS = {"transfer", "move", "send", "pay", "wire", "remit", "shift"}
READ_WORDS = (
    "return", "get", "retrieve", "fetch", "show", "list", "look", "find", "search", "read",
    "export", "render", "check", "compute", "calculate", "preview", "summar", "count",
)  # fmt: skip
FROM_ROLES = ("from", "source", "src", "sender", "debit", "payer", "origin", "withdraw")
TO_ROLES = ("to", "destination", "dest", "target", "recipient", "receiver", "credit", "deposit")
SEARCH_ARGS = {
    "query", "q", "search", "keyword", "keywords", "text", "term", "search_term",
    "search_query", "search_text", "contains", "match", "phrase",
}  # fmt: skip
LIMIT_ARGS = {
    "limit", "max_results", "page_size", "per_page", "top", "max", "size", "max_items",
    "num_results", "maxresults", "n",
}  # fmt: skip
PAGING_ARGS = {
    "offset", "page", "cursor", "page_token", "next_token", "skip", "start_index",
    "page_number", "starting_after", "ending_before", "continuation_token", "after_cursor",
}  # fmt: skip
SORT_ARGS = {
    "sort", "sort_by", "order", "order_by", "orderby", "direction", "ascending", "descending",
    "sort_order", "sort_direction",
}  # fmt: skip
SIDE_ARGS = {
    "fields", "expand", "include", "verbose", "format", "dry_run", "notify", "send_updates",
    "send_notifications", "notify_attendees", "notify_guests", "idempotency_key", "reason",
    "comment", "note", "timezone", "time_zone", "locale", "confirm", "force",
}  # fmt: skip
LOWER_BOUNDS = ("after", "since", "from", "start", "min", "gte", "gt", "begin", "earliest")
UPPER_BOUNDS = ("before", "until", "to", "end", "max", "lte", "lt", "latest", "till")
SYNONYMS = {
    "start": ("start_time", "starts_at", "start_at", "start_date", "start_datetime", "begin"),
    "end": ("end_time", "ends_at", "end_at", "end_date", "end_datetime", "finish"),
    "body": ("content", "text", "body_text", "notes"),
    "content": ("body", "text", "body_text"),
    "text": ("content", "body"),
    "notes": ("description", "body", "content"),
    "description": ("details", "notes", "body"),
    "email": ("email_address", "mail"),
    "email_address": ("email",),
    "phone": ("phone_number", "mobile", "telephone"),
    "phone_number": ("phone",),
    "name": ("title", "full_name", "display_name"),
    "title": ("name", "subject", "summary"),
    "summary": ("title", "name"),
    "subject": ("title",),
    "amount": ("total", "value", "amount_usd"),
    "due": ("due_date", "due_at"),
    "when": ("start_time", "scheduled_at", "date"),
    "date": ("start_date", "scheduled_date", "appointment_date", "event_date"),
    "tags": ("labels", "tag_list"),
    "labels": ("tags",),
}
ENTITY_CATEGORIES = (
    ("event", ("event", "meeting", "appointment", "session", "call", "booking", "reservation",
               "visit", "class", "lesson", "interview", "shift", "webinar", "slot")),
    ("document", ("note", "document", "doc", "page", "article", "post", "memo", "file",
                  "report", "entry", "journal", "draft", "snippet", "message", "email",
                  "comment", "review", "wiki")),
    ("task", ("task", "todo", "ticket", "issue", "bug", "story", "job", "request", "case",
              "incident", "chore", "reminder", "goal", "milestone")),
    ("media", ("book", "movie", "film", "song", "track", "episode", "podcast", "album",
               "video", "game", "title")),
    ("product", ("product", "item", "listing", "dish", "menu_item", "sku", "offer", "plan",
                 "package", "course", "service", "ingredient", "recipe")),
    ("pet", ("pet", "animal", "dog", "cat", "horse")),
    ("collection", ("notebook", "folder", "calendar", "collection", "list", "board",
                    "channel", "group", "category", "tag", "label", "project", "playlist",
                    "workspace", "space", "team", "section", "topic", "shelf")),
    ("account", ("account", "wallet", "card", "budget", "fund", "pot", "vault")),
    ("company", ("payee", "merchant", "vendor", "company", "organization", "organisation",
                 "org", "business", "supplier", "partner", "employer", "bank", "biller",
                 "brand", "store", "shop")),
    ("place", ("room", "location", "venue", "place", "clinic", "branch", "office", "site",
               "warehouse", "facility", "station", "hotel", "restaurant", "property",
               "address", "building", "hospital")),
)  # fmt: skip
TITLE_LISTS: dict[str, tuple[str, dict[str, list[str]]]] = {
    "event": ("{team} {kind}", {
        "team": ["Marketing", "Engineering", "Design", "Sales", "Product", "Finance", "Support",
                 "Leadership", "Hiring", "Board", "Partner", "Research"],
        "kind": ["sync", "review", "planning", "standup", "workshop", "retro", "kickoff",
                 "demo", "offsite", "check-in", "briefing", "lunch"]}),
    "document": ("{topic} {kind}", {
        "topic": ["Budget", "Roadmap", "Team offsite", "Hiring plan", "Vendor contract",
                  "Launch", "Research", "Onboarding", "Security review", "Customer interview",
                  "Garden", "Trip", "Recipe", "Book club", "Home renovation"],
        "kind": ["notes", "draft", "summary", "ideas", "outline", "plan", "checklist",
                 "minutes", "brainstorm", "follow-ups"]}),
    "task": ("{verb} {object}", {
        "verb": ["Fix", "Update", "Review", "Draft", "Migrate", "Test", "Deploy", "Clean up",
                 "Document", "Redesign", "Schedule", "Order"],
        "object": ["login page", "billing export", "onboarding flow", "search index",
                   "release notes", "API docs", "dashboard", "invoice template",
                   "mobile layout", "data pipeline", "supplies", "team photos"]}),
    "media": ("The {adjective} {noun}", {
        "adjective": ["Silent", "Golden", "Hidden", "Last", "Broken", "Distant", "Secret",
                      "Crimson", "Winter", "Midnight", "Lost", "Burning"],
        "noun": ["Harbor", "Garden", "Letter", "River", "Kingdom", "Orchard", "Lighthouse",
                 "Promise", "Voyage", "Archive", "Mountain", "Signal"]}),
    "product": ("{adjective} {noun}", {
        "adjective": ["Classic", "Deluxe", "Compact", "Organic", "Wireless", "Vintage",
                      "Premium", "Eco", "Travel", "Smart", "Handmade", "Ultralight"],
        "noun": ["backpack", "desk lamp", "kettle", "notebook", "headphones", "mug", "chair",
                 "jacket", "blender", "speaker", "water bottle", "yoga mat"]}),
    "pet": ("{pet_name}", {
        "pet_name": ["Bella", "Max", "Luna", "Charlie", "Milo", "Daisy", "Rocky", "Coco",
                     "Bailey", "Lola", "Oliver", "Nala", "Simba", "Ruby", "Teddy", "Willow",
                     "Biscuit", "Pepper", "Ziggy", "Maple", "Rosie", "Scout", "Loki", "Olive",
                     "Hazel", "Jasper", "Mochi", "Juniper", "Bruno", "Pumpkin"]}),
    "collection": ("{area}", {
        "area": ["Work", "Personal", "Family", "Travel", "Fitness", "Book club", "Side project",
                 "Volunteering", "Garden", "Recipes", "Home renovation", "School",
                 "Finances", "Reading list", "Spanish lessons", "Photography", "Running",
                 "Wedding planning", "Job search", "Team offsite", "Conference", "Music",
                 "Holidays", "Board games", "Cooking", "Birthdays", "Client work",
                 "Research", "Health", "Podcast"]}),
    "account": ("{purpose}", {
        "purpose": ["Everyday checking", "Rainy day fund", "Vacation savings",
                    "Emergency fund", "Holiday gifts", "House deposit", "Car fund",
                    "Tuition savings", "Bills", "Joint checking", "Travel card",
                    "Business checking", "Wedding fund", "Home repairs", "Pet care",
                    "Retirement top-up", "Groceries", "Side hustle", "Kids savings",
                    "Moving fund"]}),
    "place": ("{direction} {place}", {
        "direction": ["North", "South", "East", "West", "Central", "Riverside", "Hillside",
                      "Lakeview", "Downtown", "Harbor", "Oak Park", "Midtown"],
        "place": ["Clinic", "Office", "Branch", "Studio", "Center", "Hall", "Annex",
                  "Campus"]}),
    "generic": ("{adjective} {noun}", {
        "adjective": ["Quarterly", "Annual", "Weekly", "Spring", "Autumn", "Priority",
                      "Northern", "Core", "Shared", "Summer", "Evening", "Starter"],
        "noun": ["plan", "review", "project", "program", "bundle", "package", "series",
                 "initiative", "report", "batch", "campaign", "collection"]}),
}  # fmt: skip
SENTENCES = (
    "{opener} {topic}",
    {
        "opener": [
            "Follow up on",
            "Notes about",
            "Reminder about",
            "Questions on",
            "Draft for",
            "Ideas for",
            "Summary of",
            "Agenda for",
            "Next steps for",
            "Thoughts on",
        ],
        "topic": [
            "the budget",
            "the launch",
            "next quarter",
            "the client visit",
            "the new hire",
            "the offsite",
            "the migration",
            "the renewal",
            "the audit",
            "the roadmap",
            "the garden",
            "the trip",
            "the party",
            "the move",
        ],
    },
)
LOCATIONS = [
    "Main conference room", "Room A", "Room B", "Lobby", "Cafe downstairs", "Video call",
    "Phone call", "Client office", "Library", "Rooftop terrace", "Board room",
    "Training room", "Community center", "City hall", "Studio", "Gym",
]  # fmt: skip
TAGS = [
    "work",
    "personal",
    "urgent",
    "ideas",
    "travel",
    "finance",
    "health",
    "family",
    "reading",
    "shopping",
    "follow-up",
    "archive",
]
COLORS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "gray"]
TIMEZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Tokyo",
]
COUNTRIES = ["United States", "Canada", "United Kingdom", "Germany", "France", "Mexico"]
US_STATES = ["CA", "NY", "TX", "FL", "IL", "WA", "MA", "CO", "GA", "OR", "PA", "AZ"]
DIGITS = [str(d) for d in range(10)]
GENRES = ["fiction", "mystery", "biography", "history", "science", "fantasy", "romance",
          "poetry", "travel", "cooking"]  # fmt: skip
VARIANTS = ["archive", "ideas", "drafts", "plans", "journal", "inbox", "projects", "extras"]
"""Words that make a new value of a unique column differ from every seeded one."""
TIMES = ["07:30", "08:00", "08:30", "09:00", "09:30", "10:00", "12:00", "13:00", "14:00"]
LETTERS = list("ABCDEFGHJKLMNPQRSTUVWXYZ")


NAME_FILLER = {
    "all", "my", "a", "an", "the", "details", "detail", "info", "information", "data", "new",
    "current", "existing", "single", "one", "many", "multiple", "full", "entry", "record",
}  # fmt: skip
NAME_STOPS = {
    "by",
    "for",
    "from",
    "in",
    "of",
    "on",
    "with",
    "to",
    "between",
    "within",
    "at",
    "into",
    "and",
    "or",
    "via",
    "using",
    "as",
}
COMPOUND_VERBS = {
    ("check", "in"): "check_in", ("check", "out"): "check_out", ("no", "show"): "no_show",
    ("sign", "up"): "register", ("set", "up"): "create", ("look", "up"): "lookup",
    ("mark", "as"): "mark",
}  # fmt: skip
ALL_VERBS = (
    GET_VERBS
    | LIST_VERBS
    | CREATE_VERBS
    | UPDATE_VERBS
    | DELETE_VERBS
    | TRANSFER_VERBS
    | set(VERB_STATES)
    | {"mark"}
)


@dataclass
class NameParts:
    """An operation name read as verb + noun phrase (+ a lookup column after 'by')."""

    verb: str
    nouns: list[str]
    by: str | None
    tokens: list[str]
    marked: bool = False


def read_name(name: str) -> NameParts:
    """'get_user_by_email' -> verb get, nouns [user], by email; 'event_create' -> verb create,
    nouns [event]; 'mark_invoice_paid' -> verb paid (the state), nouns [invoice]."""
    raw = snake(name).split("_")
    tokens: list[str] = []
    index = 0
    while index < len(raw):
        pair = tuple(raw[index : index + 2])
        if pair in COMPOUND_VERBS:
            tokens.append(COMPOUND_VERBS[pair])  # type: ignore[index]
            index += 2
        else:
            tokens.append(raw[index])
            index += 1
    position = next((i for i, t in enumerate(tokens) if t in ALL_VERBS), None)
    if position is None and len(tokens) == 1:
        return NameParts("", [t for t in tokens if t not in NAME_FILLER], None, tokens)
    verb = tokens[position or 0]
    position = position or 0
    after, before = tokens[position + 1 :], tokens[:position]
    by = None
    if "by" in after:
        cut = after.index("by")
        by = "_".join(after[cut + 1 :]) or None
        after = after[:cut]
    marked = verb == "mark" and bool(after)
    if marked:
        verb, after = after[-1], after[:-1]
    nouns: list[str] = []
    for token in after:
        if token in NAME_STOPS:
            break
        nouns.append(token)
    if not nouns:
        nouns = before
    return NameParts(verb, [t for t in nouns if t not in NAME_FILLER], by, tokens, marked)


def verb_kind(parts: NameParts, takes_own_key: bool, plural_noun: bool) -> str:
    """The kind an operation's verb suggests (get, list, create, update, delete, action or
    unknown), given whether it takes its entity's key and names it in the plural."""
    verb = parts.verb
    if parts.marked:
        return "action"
    if verb in DELETE_VERBS:
        return "delete"
    if verb in UPDATE_VERBS:
        return "update"
    if verb in VERB_STATES and (takes_own_key or verb not in CREATE_VERBS):
        return "action"
    if verb in CREATE_VERBS or verb in TRANSFER_VERBS:
        return "create"
    if verb in LIST_VERBS - {"find", "lookup"}:
        return "list"
    if verb in GET_VERBS:
        return "list" if plural_noun and not takes_own_key else "get"
    if verb and verb not in ALL_VERBS:
        return "unknown"
    return "action" if verb else "unknown"


def match_entity(nouns: list[str], names: dict[str, str]) -> str | None:
    """The entity a noun phrase names: the whole phrase, then shorter tails and heads, then
    single words; `names` maps singular and plural names to entity names."""
    if not nouns:
        return None
    candidates = ["_".join(nouns)]
    candidates += ["_".join(nouns[i:]) for i in range(1, len(nouns))]
    candidates += ["_".join(nouns[:i]) for i in range(len(nouns) - 1, 0, -1)]
    candidates += list(reversed(nouns))
    for candidate in candidates:
        for form in (candidate, singular(candidate)):
            if form in names:
                return names[form]
    return None


# ----- the builder: entities ----------------------------------------------------------------

Found = list[tuple[FieldDraft, str, str]]
"""A tool's arguments read against its entity: (argument, role, column)."""


@dataclass
class _Table:
    """An entity being built, with what the builder knows beyond the spec's fields."""

    draft: EntityDraft
    entity: Entity
    fields: dict[str, FieldDraft] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    category: str = "generic"
    person: bool = False

    @property
    def name(self) -> str:
        return self.entity.name

    @property
    def label(self) -> str:
        return self.entity.singular or words(self.draft.singular)

    def columns(self) -> dict[str, Column]:
        return {c.name: c for c in self.entity.columns}

    def has(self, name: str) -> bool:
        return any(c.name == name for c in self.entity.columns)


class SpecBuilder:
    """Builds a complete spec from drafts; `review` collects every default it makes."""

    def __init__(
        self,
        *,
        name: str,
        description: str,
        now: str | None,
        source: str,
        review: Review | None = None,
        ref_entities: dict[str, str] | None = None,
        integer_keys: bool = False,
    ) -> None:
        self.name = snake(name)
        self.description = " ".join((description or "").split())
        self.source = source
        self.review = review or Review()
        self.ref_entities = dict(ref_entities or {})
        self.integer_keys = integer_keys
        self.now = _parse_now(now, self.review)
        self.tables: dict[str, _Table] = {}
        self.actor: _Table | None = None
        self.knows: list[str] = []
        self.inferred: dict[str, str] = {}
        self.tool_texts: dict[str, str] = {}
        self.forbidden_states: dict[str, list[str]] = {}
        self.tool_verbs: dict[str, str] = {}

    # ----- public ---------------------------------------------------------------------------
    def build(
        self, entities: list[EntityDraft], tools: list[ToolDraft], rules_text: str = ""
    ) -> ImportResult:
        """The spec for `entities` and `tools`; `rules_text` is service-level prose that may
        state policy rules."""
        if not entities:
            raise ValueError(
                f"{self.source}: found no entities to model (no state schema, "
                "no object schemas and no identifiers in the tool arguments)"
            )
        self._make_tables(self._expand(entities))
        self._link_references()
        self._choose_actor()
        self._break_cycles()
        self._choose_parents()
        for table in self.tables.values():
            table.entity.describe = self._describe(table)
        for table in self.tables.values():
            self._seed_table(table)
        specs = [t for t in (self._tool(d) for d in tools) if t is not None]
        specs = self._ensure_tools(_unique_tools(specs))
        policy = self._policy(specs, rules_text)
        intents = self._intents(specs, policy)
        assert self.actor is not None
        if not self.description:
            self.description = f"{camel_id(self.name)} service imported from {self.source}."
            self.review.add("description", "the source has no description; a placeholder")
        spec = Spec(
            name=self.name,
            id=camel_id(self.name),
            domain=self._domain(),
            description=self.description,
            now=self.now.isoformat(),
            seed=0,
            actor=Actor(entity=self.actor.name, knows=self.knows),
            entities=[t.entity for t in self.tables.values()],
            tools=specs,
            policy=policy,
            intents=intents,
            needs_review=self.review.lines(),
            inferred=self.inferred,
        )
        return ImportResult(spec=spec, review=self.review.lines(), inferred=self.inferred)

    # ----- entities: nesting ----------------------------------------------------------------
    def _entity_for_ref(self, ref: str | None, known: dict[str, EntityDraft]) -> str | None:
        if not ref:
            return None
        if ref in self.ref_entities and self.ref_entities[ref] in known:
            return self.ref_entities[ref]
        name = plural(snake(ref))
        return name if name in known else None

    def _expand(self, drafts: list[EntityDraft]) -> list[EntityDraft]:
        """Arrays of objects become child entities (or references from an existing entity),
        `<x>_ids` lists references from x; what stays is scalar or flattened later."""
        known = {d.name: d for d in drafts}
        queue = list(drafts)
        index = 0
        while index < len(queue):
            draft = queue[index]
            index += 1
            for name, fd in list(draft.fields.items()):
                if fd.type != "array" or fd.items is None:
                    continue
                item = fd.items
                target = item.entity or self._entity_for_ref(item.ref, known)
                if target is None and name.endswith("_ids"):
                    base = plural(name[:-4])
                    target = base if base in known else None
                if target == draft.name:
                    del draft.fields[name]
                    self.review.add(
                        f"entities.{draft.name}.columns.{name}",
                        f"a list of {draft.name} inside each {words(draft.singular)} (a tree); "
                        "not modeled beyond a parent column, if the source has one",
                    )
                    continue
                if target is not None:
                    del draft.fields[name]
                    self._link_child(known[target], draft, f"{draft.name}.{name}")
                    continue
                if item.type == "object" and item.properties and plural(name) in known:
                    same = known[plural(name)]
                    for sub in item.properties.values():
                        if sub.name not in same.fields:
                            same.add(sub)
                    del draft.fields[name]
                    self._link_child(same, draft, f"{draft.name}.{name}")
                    continue
                if item.type == "object" and item.properties:
                    child_name = plural(name)
                    child = EntityDraft(
                        name=child_name,
                        singular=singular(child_name),
                        description=fd.description,
                        fields=dict(item.properties),
                        parent=draft.name,
                        source=f"{draft.source} > {name}",
                    )
                    if item.ref:
                        self.ref_entities.setdefault(item.ref, child_name)
                    del draft.fields[name]
                    known[child_name] = child
                    queue.append(child)
                    self._link_child(child, draft, f"{draft.name}.{name}")
                    self.review.add(
                        f"entities.{child_name}",
                        f"the nested list {draft.name}.{name} became a child entity of "
                        f"{draft.name}",
                    )
        return queue

    def _link_child(self, child: EntityDraft, parent: EntityDraft, where: str) -> None:
        """Make sure `child` has a reference to `parent` (a nested list implies one)."""
        fk = f"{parent.singular}_id"
        for fd in child.fields.values():
            if fd.entity == parent.name or fd.name == fk:
                fd.entity = parent.name
                child.parent = child.parent or parent.name
                return
            if fd.ref and self.ref_entities.get(fd.ref) == parent.name:
                child.parent = child.parent or parent.name
                return
        child.fields = {
            fk: FieldDraft(name=fk, type=None, required=True, entity=parent.name),
            **child.fields,
        }
        child.parent = child.parent or parent.name
        self.review.add(
            f"entities.{child.name}.columns.{fk}",
            f"{where} lists {child.name}; modeled as a reference from each of them to its "
            f"{words(parent.singular)} (one-to-many assumed)",
        )

    # ----- entities: tables and columns ----------------------------------------------------
    def _make_tables(self, drafts: list[EntityDraft]) -> None:
        used: set[str] = set()
        for draft in drafts:
            key, key_field, how = self._pick_key(draft)
            integer_key = key_field is not None and key_field.type == "integer"
            prefix = ""
            if not (integer_key and self.integer_keys):
                prefix = id_prefix(draft.singular, used)
                used.add(prefix)
            if integer_key and not self.integer_keys:
                integer_key = False
                self.review.add(
                    f"entities.{draft.name}.key",
                    f"the source's ids are integers; generated as text ids like "
                    f"'{prefix}00001' so that no id equals a number users say (a date, an "
                    "amount); import with integer_keys=True to keep integers",
                )
            knows_key = bool(
                re.search(
                    r"number|code|confirmation|reference|locator|username|"
                    r"handle|slug|sku|isbn|pnr",
                    key,
                )
            )
            entity = Entity(
                name=draft.name,
                singular=words(draft.singular),
                description=first_sentence(draft.description),
                key=key,
                id_prefix=prefix,
                user_knows_key=knows_key,
                columns=[],
            )
            table = _Table(draft=draft, entity=entity)
            table.category = _category(draft.singular)
            self.tables[draft.name] = table
            key_column = Column(
                name=key,
                type="integer" if integer_key else "text",
                description=(key_field.description if key_field else "")
                or f"The {words(draft.singular)}'s id.",
                known_to_user=knows_key,
            )
            entity.columns.append(key_column)
            if key_field is not None:
                table.aliases[key_field.name] = key
                table.aliases[key_field.raw_name or key_field.name] = key
            table.aliases["id"] = key
            if how:
                self.review.add(f"entities.{draft.name}.key", how)
            if key_field is not None and key_field.format == "uuid":
                self.review.add(
                    f"entities.{draft.name}.key",
                    f"the source's ids are UUIDs; generated as prefixed ids like '{prefix}00001'",
                )
            for fd in draft.fields.values():
                if fd is key_field:
                    continue
                self._add_field(table, fd)
            if draft.identifier_only:
                table.entity.columns.append(Column(name="name", description="Its name."))
                self.review.add(
                    f"entities.{draft.name}",
                    f"known only from the identifier {key}; given a name column so people can "
                    "refer to one",
                )
            table.person = self._is_person(table)

    def _pick_key(self, draft: EntityDraft) -> tuple[str, FieldDraft | None, str]:
        """The key column's name, the field it comes from, and a review note if defaulted."""
        s = draft.singular
        last = s.rsplit("_", 1)[-1]
        wanted = [draft.key] if draft.key else []
        wanted += [
            f"{s}_id",
            "id",
            f"{last}_id",
            "uuid",
            f"{s}_uuid",
            f"{s}_number",
            f"{s}_code",
            f"{s}_key",
            "key",
        ]
        for name in wanted:
            fd = draft.fields.get(snake(name)) if name else None
            if fd is not None and fd.type in (None, "string", "integer"):
                column = f"{s}_id" if fd.name in ("id", "uuid", "key") else fd.name
                if column != fd.name and column in draft.fields:
                    column = fd.name
                return column, fd, ""
        for fd in draft.fields.values():
            if fd.format == "uuid" and fd.entity is None:
                return fd.name, fd, ""
        if draft.keyed_by_map:
            return f"{s}_id", None, ""
        return (
            f"{s}_id",
            None,
            "no id field in the source; added a generated key column",
        )

    def _add_field(self, table: _Table, fd: FieldDraft, prefix: str = "") -> None:
        name = safe_name(f"{prefix}{fd.name}")
        if name != f"{prefix}{fd.name}":
            table.aliases[f"{prefix}{fd.name}"] = name
        where = f"entities.{table.name}.columns"
        if table.has(name):
            return
        target = fd.entity or self._entity_for_ref(fd.ref, self._drafts_by_name())
        if target is not None:
            column_name = name if name.endswith("_id") else f"{name}_id"
            if table.has(column_name):
                return
            column = self._column(fd, column_name)
            column.type = "text"
            column.known_to_user = False
            column.enum = []
            table.entity.columns.append(column)
            table.fields[column_name] = FieldDraft(name=column_name, entity=target)
            if fd.raw_name:
                table.aliases[snake(fd.raw_name)] = column_name
            table.aliases[fd.name] = column_name
            return
        if fd.type == "object":
            if not fd.properties or prefix:
                self.review.add(
                    f"{where}.{name}",
                    "a free-form or deeply nested object; not modeled as a column (dropped)",
                )
                return
            for sub in fd.properties.values():
                if sub.type in ("object", "array"):
                    self.review.add(f"{where}.{name}_{sub.name}", "nested too deep; dropped")
                    continue
                flat = FieldDraft(**{**sub.__dict__, "required": sub.required and fd.required})
                self._add_field(table, flat, prefix=f"{name}_")
            self.review.add(
                f"{where}.{name}", f"the object {name} was flattened into {name}_* columns"
            )
            return
        column = self._column(fd, name)
        if fd.type == "array":
            column.type = "text"
            column.nullable = True
            column.enum = []
            self.review.add(
                f"{where}.{name}",
                "a list in the source; stored as one text value (comma-separated)",
            )
        table.entity.columns.append(column)
        table.fields[name] = fd
        if fd.raw_name:
            table.aliases[snake(fd.raw_name)] = name

    def _drafts_by_name(self) -> dict[str, EntityDraft]:
        return {name: table.draft for name, table in self.tables.items()} | {
            name: EntityDraft(name=name, singular=singular(name))
            for name in self.ref_entities.values()
        }

    def _column(self, fd: FieldDraft, name: str) -> Column:
        kind = _column_type(fd)
        enum = [str(v) for v in fd.enum] if kind == "text" else []
        default = fd.default if _fits(fd.default, kind, enum) else None
        column = Column(
            name=name,
            type=kind,
            description=first_sentence(fd.description),
            nullable=fd.nullable or (not fd.required and default is None),
            enum=enum,
            min=fd.minimum if kind in ("integer", "real") else None,
            max=fd.maximum if kind in ("integer", "real") else None,
            default=default,
        )
        if re.search(r"(^|_)(ids?|uuid|token|hash|secret|password|api_key)$", name) or name in (
            "created_at",
            "updated_at",
            "modified_at",
        ):
            column.known_to_user = False
        return column

    def _is_person(self, table: _Table) -> bool:
        names = set(table.columns())
        if table.draft.singular in PERSON_WORDS or table.draft.singular.split("_")[-1] in (
            PERSON_WORDS
        ):
            return True
        return {"first_name", "last_name"} <= names or (
            bool(names & {"email", "email_address"})
            and bool(names & {"name", "full_name", "display_name"})
        )

    # ----- entities: references, actor, parents ----------------------------------------------
    def _link_references(self) -> None:
        """Foreign keys: explicit ones from nesting and $refs, then `<singular>_id` columns
        (with role prefixes: from_account_id) and role names (owner_id) for people."""
        by_singular = {singular(t.name): t.name for t in self.tables.values()}
        by_singular.update({t.draft.singular: t.name for t in self.tables.values()})
        by_singular.update({t.name: t.name for t in self.tables.values()})
        people = [t.name for t in self.tables.values() if t.person]
        keys = {
            t.entity.key: t.name for t in self.tables.values() if not t.entity.key.endswith("_id")
        }
        for table in self.tables.values():
            for column in table.entity.columns:
                if column.name == table.entity.key:
                    continue
                fd = table.fields.get(column.name)
                target = fd.entity if fd is not None else None
                how = ""
                if column.name in ("parent_id", f"parent_{table.draft.singular}_id"):
                    target = table.name
                if target is None and column.name.endswith("_id"):
                    target, how = _reference_target(column.name[:-3], by_singular, people)
                if target is None and column.name in keys and keys[column.name] != table.name:
                    target = keys[column.name]
                if target is None or target not in self.tables:
                    continue
                if how:
                    self.review.add(f"entities.{table.name}.columns.{column.name}", how)
                key_column = self.tables[target].columns()[self.tables[target].entity.key]
                column.references = target
                column.type = key_column.type
                column.enum = []
                column.known_to_user = False
                table.fields.setdefault(column.name, FieldDraft(name=column.name))
                table.fields[column.name].entity = target
        for table in self.tables.values():
            for column in table.entity.columns:
                if (
                    column.name.endswith("_id")
                    and column.name != table.entity.key
                    and (not column.references)
                ):
                    self._rename_identifier(table, column)

    def _rename_identifier(self, table: _Table, column: Column) -> None:
        """A `*_id` column that references nothing is an external code (microchip_id): renamed
        `*_code`, since tools treat `*_id` arguments as references to check."""
        old = column.name
        new = _free_name(f"{old[:-3]}_code", table.columns())
        column.name = new
        column.known_to_user = True
        if old in table.fields:
            table.fields[new] = table.fields.pop(old)
        for alias, target in list(table.aliases.items()):
            if target == old:
                table.aliases[alias] = new
        table.aliases[old] = new
        self.review.add(
            f"entities.{table.name}.columns.{new}",
            f"{old} refers to no entity of this service; renamed {new} (an external code)",
        )

    def _references(self, table: _Table) -> list[Column]:
        """The table's references to other tables (a self-reference is not one of them)."""
        return [
            c
            for c in table.entity.columns
            if c.references and c.name != table.entity.key and c.references != table.name
        ]

    def _choose_actor(self) -> None:
        """The person talking: a people-like entity, preferring user/customer-like names, an
        email column and many entities pointing at it."""
        referrers = {name: 0 for name in self.tables}
        for table in self.tables.values():
            for column in self._references(table):
                if column.references != table.name:
                    referrers[column.references or ""] += 1

        def score(table: _Table) -> float:
            names = set(table.columns())
            last = table.draft.singular.split("_")[-1]
            value = referrers[table.name] + 0.1 * len(self._descendants(table.name))
            if table.person:
                value += 20
            if last in ACTOR_WORDS or table.draft.singular in ACTOR_WORDS:
                value += 10
            if names & {"email", "email_address"}:
                value += 5
            if _readable_column(table) is not None:
                value += 1
            if table.draft.identifier_only:
                value -= 3
            return value

        ranked = sorted(self.tables.values(), key=lambda t: -score(t))
        actor = ranked[0]
        self.actor = actor
        columns = actor.columns()
        email = next((c for c in ("email", "email_address") if c in columns), None)
        names = [c for c in ("first_name", "last_name") if c in columns]
        if len(names) < 2:
            names = [c for c in ("full_name", "name", "display_name") if c in columns][:1]
        knows = [*([email] if email else []), *names]
        if not actor.person:
            readable = _readable_column(actor)
            knows = [readable] if readable else knows
        if not knows:
            knows = [actor.entity.key]
            actor.entity.user_knows_key = True
            columns[actor.entity.key].known_to_user = True
            self.review.add(
                "actor.knows",
                f"{actor.name} has no email or name column; users are assumed to know their "
                f"{actor.entity.key}",
            )
        for name in knows:
            columns[name].known_to_user = True
            columns[name].nullable = False
        self.knows = knows
        if not actor.person:
            self.review.add(
                "actor",
                f"no people-like entity (users, customers, members...) in the source; "
                f"{actor.name} was taken as who talks to the agent, identified by "
                f"{', '.join(knows)}",
            )
        elif actor.draft.singular.split("_")[-1] not in ACTOR_WORDS:
            self.review.add(
                "actor",
                f"no customer-like entity (users, customers, members...); {actor.name} was "
                "taken as who talks to the agent",
            )
        elif not email:
            self.review.add("actor", f"{actor.name} has no email column; users identify by {knows}")

    def _descendants(self, name: str) -> set[str]:
        found: set[str] = set()
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for table in self.tables.values():
                if table.name in found or table.name == name:
                    continue
                if any(c.references == current for c in self._references(table)):
                    found.add(table.name)
                    frontier.append(table.name)
        return found

    def _break_cycles(self) -> None:
        """Foreign keys must form no cycle (seed rows are made parents first): the back edge
        of a cycle becomes a plain nullable column. A self-reference (a tree) stays, nullable,
        with every seeded row a root."""
        for table in self.tables.values():
            for column in table.entity.columns:
                if column.references == table.name and column.name != table.entity.key:
                    column.nullable = True
                    column.seed = ValueGen(kind="choice", values=[None])
                    self.review.add(
                        f"entities.{table.name}.columns.{column.name}",
                        f"refers to {table.name} itself; seeded rows have no parent",
                    )
        while True:
            cycle = self._find_cycle()
            if not cycle:
                return
            actor = self.actor.name if self.actor else ""
            table, column = min(
                cycle,
                key=lambda tc: (not tc[1].nullable, tc[1].references == actor, 0),
            )
            self._drop_reference(table, column, "closes a cycle of references")

    def _find_cycle(self) -> list[tuple[_Table, Column]]:
        state: dict[str, int] = {}
        stack: list[tuple[_Table, Column]] = []

        def visit(name: str) -> list[tuple[_Table, Column]]:
            state[name] = 1
            table = self.tables[name]
            for column in self._references(table):
                target = column.references or ""
                stack.append((table, column))
                if state.get(target) == 1:
                    start = next(i for i, (t, _) in enumerate(stack) if t.name == target)
                    return stack[start:]
                if target not in state:
                    found = visit(target)
                    if found:
                        return found
                stack.pop()
            state[name] = 2
            return []

        for name in self.tables:
            if name not in state:
                found = visit(name)
                if found:
                    return found
        return []

    def _drop_reference(self, table: _Table, column: Column, why: str) -> None:
        old = column.name
        new = _free_name(f"{old[:-3]}_ref", table.columns()) if old.endswith("_id") else old
        self.review.add(
            f"entities.{table.name}.columns.{new}",
            f"{old} {why}; kept as a plain nullable column {new} (seeded empty) without the "
            f"reference to {column.references}",
        )
        column.references = None
        column.nullable = True
        column.seed = ValueGen(kind="choice", values=[None])
        column.name = new
        if old in table.fields:
            table.fields[new] = table.fields.pop(old)
            table.fields[new].entity = None
        for alias, target in list(table.aliases.items()):
            if target == old:
                table.aliases[alias] = new
        table.aliases[old] = new

    def _distance_to_actor(self, name: str, seen: frozenset[str] = frozenset()) -> int | None:
        if self.actor is not None and name == self.actor.name:
            return 0
        best: int | None = None
        for column in self._references(self.tables[name]):
            target = column.references or ""
            if target in seen:
                continue
            found = self._distance_to_actor(target, seen | {name})
            if found is not None and (best is None or found + 1 < best):
                best = found + 1
        return best

    def _choose_parents(self) -> None:
        """Child entities are seeded per parent row (`per` on the reference to the parent);
        others get a row count. A second reference that the parent also holds is copied from
        the parent, so rows stay consistent (a visit's owner is its pet's owner)."""
        assert self.actor is not None
        for table in self.tables.values():
            entity = table.entity
            path = f"entities.{table.name}"
            parent = None if table is self.actor else self._parent_column(table)
            if parent is None:
                entity.count = TOP_LEVEL_ROWS
                self.review.add(
                    f"{path}.count",
                    f"no volume information; defaulted to {TOP_LEVEL_ROWS} rows",
                )
                continue
            low, high = (1, 4) if parent.references == self.actor.name else CHILDREN
            entity.per = ChildCount(column=parent.name, min=low, max=high)
            self.review.add(
                f"{path}.per",
                f"no volume information; defaulted to {low}..{high} per "
                f"{self.tables[parent.references or ''].label}",
            )

    def _parent_column(self, table: _Table) -> Column | None:
        def score(column: Column) -> tuple[float, ...]:
            target = column.references or ""
            distance = self._distance_to_actor(target)
            reach = 10 + distance if distance is not None else 0
            nested = 4 if table.draft.parent == target else 0
            exact = 2 if column.name == f"{self.tables[target].draft.singular}_id" else 0
            return (nested + reach + exact + (0 if column.nullable else 1),)

        candidates = self._references(table)
        return max(candidates, key=score) if candidates else None

    # ----- entities: describe and seeds -------------------------------------------------------
    def _describe(self, table: _Table) -> str:
        """How a user names one row: a readable column, plus its date when it has one."""
        columns = table.columns()
        if table.person:
            if {"first_name", "last_name"} <= set(columns):
                return "{first_name} {last_name}"
            people = [n for n in ("full_name", "name", "display_name", "email") if n in columns]
            people.sort(key=lambda n: columns[n].nullable)
            if people:
                return f"{{{people[0]}}}"
        readable = _readable_column(table)
        when = _when_column(table)
        label = table.label
        if readable and table.category == "pet":
            return f"{{{readable}}}"
        phrase = _date_phrase(when) if when else ""
        if readable and when:
            return f"the {{{readable}}} {label} {phrase} {{{when}|date}}"
        if readable:
            return f"the {{{readable}}} {label}"
        money = next(
            (c for c in columns.values() if _money_name(c.name) and _numeric(c) and not c.nullable),
            None,
        )
        if money is not None and when:
            return f"the {{{money.name}|money}} {label} {phrase} {{{when}|date}}"
        if when:
            enum = next((c for c in columns.values() if c.enum and not _state(c)), None)
            if enum is not None:
                return f"the {{{enum.name}|words}} {label} {phrase} {{{when}|date}}"
            return f"the {label} {phrase} {{{when}|date}}"
        self.review.add(
            f"entities.{table.name}.describe",
            "no human-readable column (name, title) or date; rows are described by their key",
        )
        return f"{label} {{{table.entity.key}}}"

    def _seed_table(self, table: _Table) -> None:
        entity = table.entity
        described = set(re.findall(r"\{(\w+)", entity.describe))
        parent = entity.per.column if entity.per else None
        parent_table = None
        if parent is not None:
            parent_table = self.tables[entity.column(parent).references or ""]
        for column in entity.columns:
            if column.name == entity.key or column.seed is not None:
                continue
            if column.references:
                copied = self._copy_from_parent(column, parent, parent_table)
                column.seed = copied or ValueGen(kind="ref", entity=column.references)
                continue
            column.seed = self._seed(table, column)
            if column.seed is None:
                continue
            if (
                column.nullable
                and column.name not in described
                and column.name not in (self.knows if table is self.actor else [])
            ):
                column.seed.null_fraction = 0.1
        if table is self.actor and table.person:
            for name in self.knows:
                if "email" in name:
                    entity.column(name).unique = True

    def _copy_from_parent(
        self, column: Column, parent: str | None, parent_table: _Table | None
    ) -> ValueGen | None:
        if parent is None or parent_table is None or column.name == parent:
            return None
        for other in self._references(parent_table):
            if other.references == column.references:
                return ValueGen(kind="copy", column=other.name, via=parent)
        return None

    def _seed(self, table: _Table, column: Column) -> ValueGen | None:
        """A seed generator from the column's name, type and format."""
        name = column.name
        where = f"entities.{table.name}.columns.{name}.seed"
        fd = table.fields.get(name)
        if column.enum:
            return ValueGen(kind="choice", values=list(column.enum))
        if fd is not None and fd.type == "array":
            return _list_seed(fd)
        if column.type == "boolean":
            return ValueGen(kind="bool", p=_bool_share(name))
        if column.type in ("date", "datetime"):
            return self._time_seed(table, column)
        if column.type in ("integer", "real"):
            return _number_seed(column, fd)
        return self._text_seed(table, column, where)

    def _time_seed(self, table: _Table, column: Column) -> ValueGen:
        name = column.name
        now = self.now
        start, end = now - timedelta(days=60), now + timedelta(days=60)
        if re.search(r"birth|dob", name):
            return ValueGen(kind="date", start="1950-01-01", end="2005-12-31")
        partner = _start_partner(name, table.columns())
        if partner is not None and column.type == "datetime":
            return ValueGen(kind="after", column=partner, min=30, max=180)
        if re.match(
            r"(created|updated|modified|registered|joined|signed|opened|last_|submitted|"
            r"paid|completed|occurred|posted|sent|received|logged|processed|booked)",
            name,
        ):
            end = now
        elif re.search(r"expir|valid_until|renew", name):
            start, end = now, now + timedelta(days=365)
        if column.type == "date":
            return ValueGen(kind="date", start=start.date().isoformat(), end=end.date().isoformat())
        return ValueGen(
            kind="datetime",
            start=_iso(start.replace(hour=8, minute=0)),
            end=_iso(end.replace(hour=18, minute=0)),
            step_minutes=30,
        )

    def _text_seed(self, table: _Table, column: Column, where: str) -> ValueGen:
        name = column.name
        tokens = set(name.split("_"))
        columns = table.columns()
        if "email" in tokens:
            return ValueGen(kind="email")
        if name in ("first_name", "given_name", "firstname", "forename"):
            return ValueGen(kind="first_name")
        if name in ("last_name", "surname", "family_name", "lastname"):
            return ValueGen(kind="last_name")
        if tokens & {"phone", "mobile", "telephone", "fax", "cell"}:
            return ValueGen(kind="phone")
        if tokens & {"city", "town"}:
            return ValueGen(kind="city")
        if tokens & {"address", "street"} or name in ("line1", "address_line"):
            return ValueGen(kind="street_address")
        person_name = name in ("full_name", "contact_name", "holder_name") or (
            name.endswith("_name")
            and tokens & (PERSON_WORDS | ROLE_WORDS | {"contact", "emergency"})
        )
        person_name = person_name or name in ROLE_WORDS or name in ("author", "artist")
        if person_name or (table.person and name in ("name", "display_name")):
            return ValueGen(kind="full_name")
        if tokens & {
            "company",
            "organization",
            "organisation",
            "employer",
            "bank",
            "merchant",
            "vendor",
            "business",
            "payee",
            "biller",
            "insurer",
        }:
            return ValueGen(kind="company")
        if tokens & {"zip", "postcode"} or name in ("postal_code", "zip_code"):
            return _digits(5)
        if "country" in tokens:
            return ValueGen(kind="choice", values=COUNTRIES[:])
        if name in ("state", "province", "region") and columns.keys() & {"city", "zip", "address"}:
            return ValueGen(kind="choice", values=US_STATES[:])
        if "currency" in tokens:
            return ValueGen(kind="choice", values=["USD", "EUR", "GBP"], weights=[8, 1, 1])
        if tokens & {"timezone", "tz"} or name == "time_zone":
            return ValueGen(kind="choice", values=TIMEZONES[:])
        if tokens & {"color", "colour"}:
            return ValueGen(kind="choice", values=COLORS[:])
        if tokens & {"language", "locale", "lang"}:
            return ValueGen(kind="choice", values=["en", "es", "fr", "de"])
        if tokens & {"url", "website", "link", "homepage", "uri"}:
            return ValueGen(
                kind="template",
                template="https://www.{site}.example.com",
                lists={
                    "site": [
                        "acme",
                        "northwind",
                        "bluebird",
                        "harbor",
                        "summit",
                        "maple",
                        "cedar",
                        "orbit",
                    ]
                },
            )
        if tokens & {"username", "handle", "login"}:
            return ValueGen(
                kind="template",
                template="{word}_{animal}",
                lists={
                    "word": ["sunny", "quiet", "rapid", "lucky", "brave", "jolly"],
                    "animal": ["otter", "falcon", "panda", "fox", "heron", "lynx"],
                },
            )
        if tokens & {"last4", "last_four"} or name.endswith("last_four"):
            return _digits(4)
        if tokens & {"iban", "routing", "account_number"} or name.endswith("_number"):
            return _digits(10)
        if tokens & {"sku", "code", "reference", "confirmation", "locator", "ref", "id", "uuid"}:
            return ValueGen(
                kind="template",
                template="{a}{b}{c}-{d}{e}{f}",
                lists={k: LETTERS for k in "abc"} | {k: DIGITS for k in "def"},
            )
        if tokens & {"token", "secret", "hash", "password", "key"}:
            return ValueGen(
                kind="template",
                template="{a}{b}{c}{d}{e}{f}{g}{h}",
                lists={k: LETTERS + DIGITS for k in "abcdefgh"},
            )
        fd = table.fields.get(name)
        if re.search(r"\bhh:mm\b", (fd.description if fd else "").lower()) or (
            fd is not None and fd.format == "time"
        ):
            return ValueGen(kind="choice", values=TIMES[:])
        if tokens & {"location", "venue", "place", "where", "room"}:
            return ValueGen(kind="choice", values=LOCATIONS[:])
        if tokens & {"tags", "tag", "labels", "label"} and name not in ("label",):
            return ValueGen(kind="choice", values=TAGS[:])
        if name in ("gender", "sex"):
            return ValueGen(kind="choice", values=["female", "male", "nonbinary"])
        if name == "species":
            return ValueGen(kind="choice", values=["dog", "cat", "rabbit", "bird", "hamster"])
        if name == "genre":
            return ValueGen(kind="choice", values=GENRES[:])
        if name == "isbn" or name.startswith("isbn"):
            return _digits(13)
        if name == "breed":
            return ValueGen(
                kind="choice", values=["Labrador", "Beagle", "Siamese", "Poodle", "Tabby", "Mixed"]
            )
        if name in READABLE or name.endswith(("_name", "_title")) or name == "summary":
            if table.category == "company":
                return ValueGen(kind="company")
            return _title_seed(table.category)
        if tokens & {
            "description",
            "body",
            "content",
            "notes",
            "note",
            "comment",
            "message",
            "memo",
            "details",
            "bio",
            "about",
            "reason",
            "text",
            "instructions",
            "summary",
            "remarks",
            "purpose",
            "agenda",
        }:
            template, lists = SENTENCES
            return ValueGen(
                kind="template", template=template, lists={k: list(v) for k, v in lists.items()}
            )
        choices = {
            "priority": ["low", "normal", "high"],
            "role": ["member", "admin", "viewer"],
            "visibility": ["public", "private"],
            "level": ["beginner", "intermediate", "advanced"],
            "tier": ["basic", "plus", "premium"],
            "plan": ["basic", "plus", "premium"],
            "frequency": ["daily", "weekly", "monthly"],
            "channel": ["email", "sms", "push"],
            "method": ["card", "bank_transfer", "cash"],
            "unit": ["each", "kg", "box"],
            "status": ["active", "inactive"],
        }
        for word, values in choices.items():
            if word in tokens:
                self.review.add(where, f"no enum in the source; defaulted to a choice of {values}")
                return ValueGen(kind="choice", values=values)
        if tokens & {"type", "kind", "category", "group", "class"}:
            self.review.add(
                where,
                "no enum in the source; defaulted to a choice of ['standard', 'special', 'other']",
            )
            return ValueGen(kind="choice", values=["standard", "special", "other"])
        self.review.add(where, "no name, type or format hint; defaulted to generic words")
        return _title_seed("generic")

    # ----- tools: arguments ---------------------------------------------------------------------
    def column_for(self, table: _Table, argument: str) -> str | None:
        """The column an argument sets or matches, by name (with aliases and synonyms)."""
        name = snake(argument)
        columns = table.columns()
        if name in table.aliases:
            return table.aliases[name]
        if name in columns:
            return name
        own = table.draft.singular + "_"
        if name.startswith(own) and name[len(own) :] in columns:
            return name[len(own) :]
        if f"{name}_id" in columns and columns[f"{name}_id"].references:
            return f"{name}_id"
        for other in SYNONYMS.get(name, ()):
            if other in columns:
                return other
        for other in (singular(name), plural(name)):
            if other in columns:
                return other
        if name.endswith("_id"):
            target = self._entity_of_key(name)
            pointing = [c.name for c in columns.values() if target and c.references == target]
            if len(pointing) == 1:
                return pointing[0]
        return None

    def _entity_of_key(self, argument: str) -> str | None:
        name = snake(argument)
        for table in self.tables.values():
            if name in (table.entity.key, f"{table.draft.singular}_id"):
                return table.name
        return None

    def _bound(self, table: _Table, name: str) -> tuple[str, str] | None:
        """A range argument (start_after, min_amount, since) -> (column, 'gte' or 'lte')."""
        if name.endswith("_id"):
            return None
        for words_, op in ((LOWER_BOUNDS, "gte"), (UPPER_BOUNDS, "lte")):
            for word in words_:
                base = None
                if name == word:
                    base = ""
                elif name.endswith("_" + word):
                    base = name[: -len(word) - 1]
                elif name.startswith(word + "_"):
                    base = name[len(word) + 1 :]
                if base is None:
                    continue
                column = self._range_column(table, base)
                if column is not None:
                    return column, op
        return None

    def _range_column(self, table: _Table, base: str) -> str | None:
        columns = table.columns()
        ordered = [base, f"{base}_at", f"{base}_time", f"{base}_date", *SYNONYMS.get(base, ())]
        for name in ordered:
            column = columns.get(name)
            if column is not None and column.type in ("date", "datetime", "integer", "real"):
                return name
        if base in ("", "time", "date", "datetime", "timestamp", "period", "when", "day"):
            return _when_column(table)
        if _money_name(base):
            return next(
                (c.name for c in columns.values() if _money_name(c.name) and _numeric(c)), None
            )
        return None

    def _arguments(self, draft: ToolDraft, table: _Table) -> Found:
        """(argument, role, column) for each argument: role is column, search, gte, lte,
        limit, paging, sort, side or unmapped."""
        found = []
        for arg in draft.args:
            name = arg.name
            column = self.column_for(table, name)
            if column is not None:
                found.append((arg, "column", column))
            elif name in LIMIT_ARGS:
                found.append((arg, "limit", ""))
            elif name in PAGING_ARGS:
                found.append((arg, "paging", ""))
            elif name in SORT_ARGS:
                found.append((arg, "sort", ""))
            elif name in SEARCH_ARGS:
                found.append((arg, "search", ""))
            elif (bound := self._bound(table, name)) is not None:
                found.append((arg, bound[1], bound[0]))
            elif name in SIDE_ARGS or name.startswith(("include_", "show_", "notify_", "send_")):
                found.append((arg, "side", ""))
            else:
                found.append((arg, "unmapped", ""))
        return found

    def _drop_args(self, tool: str, found: Found, used: set[str]) -> list[str]:
        """Note the arguments no column or filter took (paging, sorting and limits quietly);
        returns the quiet ones."""
        ignored = [a.name for a, role, _ in found if a.name not in used and role != "column"]
        ignored += [a.name for a, role, _ in found if a.name not in used and role == "column"]
        quiet = {a.name for a, role, _ in found if role in ("limit", "paging", "sort")}
        loud = [n for n in ignored if n not in quiet]
        if loud:
            self.review.add(
                f"tools.{tool}",
                f"argument(s) {', '.join(loud)} have no column or filter to map to; dropped",
            )
        return [n for n in ignored if n in quiet]

    # ----- tools: patterns ----------------------------------------------------------------------
    def _tool(self, draft: ToolDraft) -> ToolSpec | None:
        name = snake(draft.name)
        self.tool_texts[name] = draft.description
        self.tool_verbs[name] = draft.verb
        moved = self._transfer(draft, name)
        if moved is not None:
            return moved
        entity = draft.entity if draft.entity in self.tables else None
        if entity is None and not draft.unresolved:
            entity = next((e for e in (self._entity_of_key(a.name) for a in draft.args) if e), None)
        if entity is None:
            self._dropped(name, draft.unresolved or "no entity it works on could be recognized")
            return None
        table = self.tables[entity]
        found = self._arguments(draft, table)
        kind = draft.kind
        why = draft.why
        if kind == "unknown":
            kind, why = self._guess_kind(draft, table, found)
            if kind is None:
                self._dropped(name, why)
                return None
        make = {
            "get": self._get,
            "list": self._list,
            "create": self._create,
            "update": self._update,
            "delete": self._delete,
            "action": self._action,
        }[kind]
        tool = make(name, draft, table, found, why)
        return tool

    def _dropped(self, name: str, why: str) -> None:
        self.inferred[name] = f"dropped: {why}"
        self.review.add(f"tools.{name}", f"dropped: {why}")

    def _description(self, draft: ToolDraft, fallback: str) -> str:
        return first_sentence(draft.description, 300) or fallback

    def _guess_kind(self, draft: ToolDraft, table: _Table, found: Found) -> tuple[str | None, str]:
        """For a verb no table knows: a read when the description says it returns something
        (export, render), else an action on one row when it takes the row's key."""
        text = draft.description.lower()
        reads = text.startswith(READ_WORDS) or bool(
            re.match(r"\w+s (the|a|an) ", text)
            and any(text.split(" ", 1)[0].startswith(w) for w in READ_WORDS)
        )
        has_key = any(role == "column" and col == table.entity.key for _, role, col in found)
        verb = draft.verb or draft.name
        if reads:
            self.review.add(
                f"tools.{snake(draft.name)}",
                f"'{verb}' is not a known verb; its description reads like a lookup, so it "
                f"was mapped to a plain {'get' if has_key else 'list'} of {table.name}",
            )
            return ("get" if has_key else "list"), f"read-only by its description ('{verb}')"
        if has_key:
            return "action", f"unknown verb '{verb}' on one {table.label}"
        return None, f"'{verb}' matches no pattern and takes no {table.label} key"

    def _get(
        self, name: str, draft: ToolDraft, table: _Table, found: Found, why: str
    ) -> ToolSpec | None:
        entity = table.entity
        key = [col for _, role, col in found if role == "column" and col == entity.key]
        by = None
        if not key:
            lookups = [(a, col) for a, role, col in found if role == "column"]
            named = [
                col for a, col in lookups if draft.by and col == self.column_for(table, draft.by)
            ]
            unique = [col for _, col in lookups if _lookup_column(col)]
            if named or unique:
                by = (named or unique)[0]
            elif lookups or any(role in ("search", "gte", "lte") for _, role, _ in found):
                return self._list(name, draft, table, found, why + "; no key, so a list")
            elif table is self.actor:
                by = self.knows[-1]
                self.review.add(
                    f"tools.{name}",
                    f"takes no arguments (the server knows the caller); made a lookup of "
                    f"{table.name} by {by}",
                )
            else:
                self._dropped(name, f"takes no key or lookup column of {table.name}")
                return None
        used = {a.name for a, role, col in found if role == "column" and col in (by, entity.key)}
        self._drop_args(name, found, used)
        if by is not None:
            column = entity.column(by)
            column.known_to_user = True
            if _lookup_column(by) and by not in ("name", "title"):
                column.unique = True
        include = [
            c
            for c in draft.include
            if c in self.tables
            and any(col.references == table.name for col in self._references(self.tables[c]))
        ]
        self.inferred[name] = why + (f"; looks up by {by}" if by else "")
        return ToolSpec(
            name=name,
            pattern="get",
            entity=table.name,
            description=self._description(draft, f"Get one {table.label}."),
            by=by,
            include=include,
        )

    def _list(self, name: str, draft: ToolDraft, table: _Table, found: Found, why: str) -> ToolSpec:
        filters: list[Filter] = []
        used: set[str] = set()
        limit = 20
        columns = table.columns()
        for arg, role, col in found:
            if role == "column":
                column = columns[col]
                op = "contains" if _free_text(column) else "eq"
                if column.type == "datetime" and op == "eq":
                    op = "lte" if re.search(r"end|before|until|to$|max", arg.name) else "gte"
                filters.append(
                    Filter(
                        column=col, op=op, arg=_arg_name(arg.name, col, op), required=arg.required
                    )
                )
            elif role in ("gte", "lte"):
                filters.append(
                    Filter(
                        column=col,
                        op=role,
                        arg=_arg_name(arg.name, col, role),
                        required=arg.required,
                    )
                )
            elif role == "search":
                target = _readable_column(table) or next(
                    (
                        c.name
                        for c in columns.values()
                        if c.type == "text" and not c.references and c.name != table.entity.key
                    ),
                    None,
                )
                if target is None:
                    continue
                filters.append(
                    Filter(
                        column=target,
                        op="contains",
                        arg=_arg_name(arg.name, target, "contains"),
                        required=arg.required,
                    )
                )
                self.review.add(
                    f"tools.{name}.filters.{arg.name}",
                    f"free-text search mapped to a match on {target} only",
                )
            elif role == "limit":
                limit = int(min(max(arg.default or arg.maximum or 20, 1), 100))
            else:
                continue
            used.add(arg.name)
        filters = _unique_filters(filters)
        quiet = self._drop_args(name, found, used)
        sort = _when_column(table)
        self.inferred[name] = (
            why
            + (f"; filters on {', '.join(f.column for f in filters)}" if filters else "")
            + (f"; ignores {', '.join(quiet)}" if quiet else "")
        )
        return ToolSpec(
            name=name,
            pattern="list",
            entity=table.name,
            description=self._description(draft, f"List {table.name}."),
            filters=filters,
            sort=sort,
            limit=limit,
        )

    def _create(
        self, name: str, draft: ToolDraft, table: _Table, found: Found, why: str
    ) -> ToolSpec | None:
        entity = table.entity
        columns = table.columns()
        required: list[str] = []
        optional: list[str] = []
        used: set[str] = set()
        for arg, role, col in found:
            if role != "column" or col in required or col in optional:
                continue
            if col == entity.key:
                self.review.add(
                    f"tools.{name}",
                    f"the caller-chosen {col} is dropped: keys are generated by the table",
                )
                used.add(arg.name)
                continue
            column = columns[col]
            if arg.required or (not column.nullable and column.default is None):
                if not arg.required:
                    self.review.add(
                        f"tools.{name}.fields.{col}",
                        f"optional in the source but {table.name}.{col} has no default; made "
                        "required",
                    )
                required.append(col)
            else:
                optional.append(col)
            used.add(arg.name)
        self._drop_args(name, found, used)
        fixed: dict[str, Any] = {}
        for column in entity.columns:
            if (
                column.name == entity.key
                or column.name in required
                or column.name in optional
                or column.nullable
                or column.default is not None
            ):
                continue
            value = self._creation_value(table, column)
            if value is not None:
                fixed[column.name] = value
                continue
            if column.default is not None:
                continue
            required.append(column.name)
            self.review.add(
                f"tools.{name}.fields.{column.name}",
                f"{table.name}.{column.name} is required but the source's arguments do not set "
                "it; added as a required argument",
            )
        parent = entity.per.column if entity.per else None
        required.sort(key=lambda c: (c != parent, not columns[c].references))
        self.inferred[name] = why
        return ToolSpec(
            name=name,
            pattern="create",
            entity=table.name,
            description=self._description(draft, f"Create a {table.label}."),
            fields=required,
            optional=optional,
            set=fixed,
        )

    def _creation_value(self, table: _Table, column: Column) -> Any:
        """A fixed value for a required column a create tool does not take: the initial state,
        'now' for creation times, false or zero; None if nothing is safe."""
        name = column.name
        where = f"entities.{table.name}.columns.{name}"
        if column.enum:
            initial = next((s for s in INITIAL_STATES if s in column.enum), column.enum[0])
            if _state(column):
                return initial
            column.default = initial
            self.review.add(where, f"not set on creation; defaulted to {initial!r}")
            return None
        if column.type in ("datetime", "date") and re.match(
            r"(created|updated|modified|submitted|opened|registered|joined|added|requested)",
            name,
        ):
            return "now" if column.type == "datetime" else "today"
        if column.type == "boolean":
            column.default = False
            self.review.add(where, "not set on creation; defaulted to false")
            return None
        if column.type in ("integer", "real") and not column.references:
            column.default = max(0, column.min or 0)
            self.review.add(where, f"not set on creation; defaulted to {column.default}")
            return None
        return None

    def _update(
        self, name: str, draft: ToolDraft, table: _Table, found: Found, why: str
    ) -> ToolSpec | None:
        entity = table.entity
        if not any(role == "column" and col == entity.key for _, role, col in found):
            self._dropped(name, f"does not take the {table.label}'s key")
            return None
        fields = []
        used = set()
        for arg, role, col in found:
            if role == "column":
                used.add(arg.name)
                if col != entity.key and col not in fields:
                    fields.append(col)
        if not fields:
            self._dropped(name, "sets no column")
            return None
        self._drop_args(name, found, used)
        self.inferred[name] = why
        return ToolSpec(
            name=name,
            pattern="update",
            entity=table.name,
            description=self._description(draft, f"Update a {table.label}."),
            fields=fields,
        )

    def _delete(
        self, name: str, draft: ToolDraft, table: _Table, found: Found, why: str
    ) -> ToolSpec | None:
        entity = table.entity
        if not any(role == "column" and col == entity.key for _, role, col in found):
            self._dropped(name, f"does not take the {table.label}'s key")
            return None
        used = {a.name for a, role, col in found if role == "column" and col == entity.key}
        self._drop_args(name, found, used)
        self.inferred[name] = why
        return ToolSpec(
            name=name,
            pattern="delete",
            entity=table.name,
            description=self._description(draft, f"Delete a {table.label}."),
        )

    def _action(
        self, name: str, draft: ToolDraft, table: _Table, found: Found, why: str
    ) -> ToolSpec | None:
        """A verb on one row: a transition when the state column has the verb's state, an
        update of a flag named after it (pin -> pinned), a delete for cancel-like verbs."""
        entity = table.entity
        verb = draft.verb
        if not any(role == "column" and col == entity.key for _, role, col in found):
            self._dropped(name, f"'{verb}' does not take the {table.label}'s key")
            return None
        state = _state_column(table)
        target = _state_for(verb, state.enum) if state is not None else None
        if state is not None and target is not None:
            return self._transition(name, draft, table, found, why, state, target)
        flag = _flag_column(verb, table)
        if flag is not None:
            self.review.add(
                f"tools.{name}",
                f"'{verb}' has no state to move to; mapped to an update of the flag {flag} "
                "(the agent passes true or false)",
            )
            self.inferred[name] = f"{why}; no state value for it, so an update of {flag}"
            used = {a.name for a, role, col in found if role == "column"}
            self._drop_args(name, found, used)
            return ToolSpec(
                name=name,
                pattern="update",
                entity=table.name,
                description=self._description(draft, f"{verb} a {table.label}."),
                fields=[flag],
            )
        if verb in ("cancel", "withdraw", "revoke", "void", "discard", "remove", "unsubscribe"):
            self.review.add(
                f"tools.{name}",
                f"{table.name} has no state column with a value for '{verb}'; mapped to a "
                "delete of the row",
            )
            self.inferred[name] = f"{why}; no state to move to, so a delete"
            used = {a.name for a, role, col in found if role == "column" and col == entity.key}
            self._drop_args(name, found, used)
            return ToolSpec(
                name=name,
                pattern="delete",
                entity=table.name,
                description=self._description(draft, f"{verb} a {table.label}."),
            )
        columns = [col for _, role, col in found if role == "column" and col != entity.key]
        if columns:
            self.review.add(
                f"tools.{name}",
                f"'{verb}' has no state to move to; mapped to an update of {', '.join(columns)}",
            )
            return self._update(name, draft, table, found, f"{why}; an update of its columns")
        why_not = (
            f"{table.name} has no state column"
            if state is None
            else f"{table.name}.{state.name} has no value for '{verb}'"
        )
        self._dropped(name, f"'{verb}' cannot be expressed: {why_not}")
        return None

    def _transition(
        self,
        name: str,
        draft: ToolDraft,
        table: _Table,
        found: Found,
        why: str,
        state: Column,
        target: str,
    ) -> ToolSpec:
        entity = table.entity
        allowed, forbidden = _stated_states(draft.description, state.enum, target)
        reverses = _reversed_state(draft.verb, state.enum)
        if allowed:
            sources, how = allowed, "the states its description allows"
        elif forbidden:
            sources = [v for v in state.enum if v != target and v not in forbidden]
            how = "the states its description does not forbid"
        elif reverses:
            sources, how = [reverses], f"the state '{draft.verb}' undoes"
        else:
            reversing = draft.verb in REVERSING
            sources = [v for v in state.enum if v != target and (_norm(v) in INACTIVE) == reversing]
            how = "guessed from the state names"
            self.review.add(
                f"tools.{name}.from_states",
                f"the source does not say from which {state.name} values '{draft.verb}' is "
                f"allowed; guessed {sources or 'all others'}",
            )
        sources = sources or [v for v in state.enum if v != target]
        fixed = {}
        stem = _norm(target)
        for column in (f"{stem}_at", f"{draft.verb}ed_at", f"{draft.verb}d_at"):
            if table.has(column) and entity.column(column).type == "datetime":
                fixed[column] = "now"
                break
        used = {a.name for a, role, col in found if role == "column" and col == entity.key}
        self._drop_args(name, found, used)
        self.inferred[name] = f"{why}; moves {state.name} to {target!r} from {sources} ({how})"
        return ToolSpec(
            name=name,
            pattern="transition",
            entity=table.name,
            description=self._description(draft, f"{draft.verb} a {table.label}."),
            state_column=state.name,
            from_states=sources,
            to_state=target,
            set=fixed,
        )

    def _transfer(self, draft: ToolDraft, name: str) -> ToolSpec | None:
        """A tool that moves an amount between two rows of one entity (from_account_id,
        to_account_id, amount) over a balance-like column; a ledger entity records it."""
        if draft.kind in ("get", "list", "delete"):
            return None
        ends: dict[str, tuple[str, str]] = {}
        amount = None
        for arg in draft.args:
            role, rest = _role(arg.name)
            if role and (rest.endswith("_id") or rest in ("", "id")):
                entity = self._entity_of_key(rest) if rest not in ("", "id") else draft.entity
                if entity:
                    ends.setdefault(role, (arg.name, entity))
            elif amount is None and (
                _money_name(arg.name)
                or arg.name in ("quantity", "points", "credits", "units", "value")
            ):
                amount = arg.name
        if set(ends) != {"from", "to"} or amount is None:
            return None
        (from_arg, entity), (to_arg, other) = ends["from"], ends["to"]
        if entity != other:
            return None
        table = self.tables[entity]
        balance = _balance_column(table)
        if balance is None:
            self.review.add(
                f"tools.{name}",
                f"looks like a transfer but {entity} has no balance column; not mapped as one",
            )
            return None
        extra = [a.name for a in draft.args if a.name not in (from_arg, to_arg, amount)]
        needed = [a.name for a in draft.args if a.name in extra and a.required]
        ledger, fields = self._ledger(table, draft, needed, name)
        used = set(fields.values())
        dropped = [a for a in extra if a not in used]
        if dropped:
            self.review.add(
                f"tools.{name}",
                f"argument(s) {', '.join(dropped)} are optional "
                "or have no column to record them in (a transfer "
                "takes only required extras); dropped",
            )
        self.inferred[name] = (
            f"transfer: moves {amount} of {entity}.{balance} from "
            f"{from_arg} to {to_arg}" + (f", recorded in {ledger}" if ledger else "")
        )
        return ToolSpec(
            name=name,
            pattern="transfer",
            description=self._description(draft, f"Move {balance} between {entity}."),
            transfer=Transfer(
                entity=entity,
                column=balance,
                from_arg=safe_name(from_arg),
                to_arg=safe_name(to_arg),
                amount_arg=safe_name(amount),
                ledger=ledger,
                ledger_fields=fields,
            ),
        )

    def _ledger(
        self, table: _Table, draft: ToolDraft, extra: list[str], name: str
    ) -> tuple[str | None, dict[str, str]]:
        for ledger in self.tables.values():
            if ledger is table:
                continue
            refs = [c for c in self._references(ledger) if c.references == table.name]
            ends = {_role(c.name)[0]: c.name for c in refs if _role(c.name)[0]}
            money = next(
                (c for c in ledger.entity.columns if _money_name(c.name) and _numeric(c)), None
            )
            if set(ends) < {"from", "to"} or money is None:
                continue
            fields = {ends["from"]: "from", ends["to"]: "to", money.name: "amount"}
            problem = None
            for column in ledger.entity.columns:
                if column.name in fields or column.name == ledger.entity.key:
                    continue
                arg = next((a for a in extra if self.column_for(ledger, a) == column.name), None)
                if arg is not None and arg not in ("from", "to", "amount", "now", "today"):
                    fields[column.name] = arg
                elif column.type == "datetime" and not column.references:
                    fields[column.name] = "now"
                elif column.type == "date":
                    fields[column.name] = "today"
                elif column.enum:
                    value = _ledger_state(column.enum)
                    fields[column.name] = f"'{value}'"
                    if value not in ("completed", "posted", "settled", "succeeded", "transfer"):
                        self.review.add(
                            f"tools.{name}.transfer.ledger_fields.{column.name}",
                            f"recorded as {value!r} (a guess)",
                        )
                elif column.nullable or column.default is not None:
                    continue
                else:
                    problem = column.name
                    break
            if problem is None:
                return ledger.name, fields
            self.review.add(
                f"tools.{name}.transfer",
                f"{ledger.name} looks like its ledger but {problem} cannot be filled; not recorded",
            )
        return None, {}

    # ----- tools: what tasks need -------------------------------------------------------------
    def _ensure_tools(self, tools: list[ToolSpec]) -> list[ToolSpec]:
        """A lookup of the actor by what users know, and for every entity below the actor a
        list filtered by its parent, so that tasks can get from a person to any of their rows."""
        assert self.actor is not None
        actor = self.actor
        names = {t.name for t in tools}
        exposed = {t.entity for t in tools if t.entity} | {
            t.transfer.entity for t in tools if t.transfer
        }
        finder = any(
            t.pattern == "get" and t.entity == actor.name and t.by in self.knows for t in tools
        )
        listed = [
            f.column
            for t in tools
            if t.pattern == "list" and t.entity == actor.name
            for f in t.filters
            if f.op == "eq" and f.column in self.knows
        ]
        if not finder and listed:
            column = listed[0]
            if f"{{{column}}}" not in actor.entity.describe:
                actor.entity.describe += f" ({{{column}}})"
        elif not finder:
            by = next((k for k in self.knows if "email" in k), self.knows[-1])
            name = _free_name(f"find_{actor.draft.singular}", names)
            actor.entity.column(by).unique = True
            tools.append(
                ToolSpec(
                    name=name,
                    pattern="get",
                    entity=actor.name,
                    by=by,
                    description=f"Find a {actor.label} by {words(by)}.",
                )
            )
            names.add(name)
            self.inferred[name] = f"added: no tool looks {_a(actor.label)} up by {by}"
            self.review.add(
                f"tools.{name}",
                f"added: the source has no way to find {_a(actor.label)} from what users know "
                f"({by})",
            )
        for table in self.tables.values():
            if table is actor or self._distance_to_actor(table.name) is None:
                continue
            link = table.entity.per.column if table.entity.per else None
            if link is None:
                link = next(
                    c.name
                    for c in self._references(table)
                    if self._distance_to_actor(c.references or "") is not None
                )
            lists = [t for t in tools if t.pattern == "list" and t.entity == table.name]
            if any(any(f.column == link and f.op == "eq" for f in t.filters) for t in lists):
                continue
            if lists:
                tool = lists[0]
                arg = link if link not in {f.argument for f in tool.filters} else f"{link}_eq"
                tool.filters.append(Filter(column=link, arg="" if arg == link else arg))
                self.inferred[tool.name] += f"; {link} filter added"
                self.review.add(
                    f"tools.{tool.name}.filters.{link}",
                    f"added: the source lists {table.name} without saying whose "
                    "(its server knows the caller); filter by the owner",
                )
                continue
            name = _free_name(f"list_{table.name}", names)
            names.add(name)
            filters = [Filter(column=c.name) for c in self._references(table)]
            tools.append(
                ToolSpec(
                    name=name,
                    pattern="list",
                    entity=table.name,
                    description=f"List {words(table.name)}, filtered by "
                    + _or_words([words(f.column) for f in filters])
                    + ".",
                    filters=filters,
                    sort=_when_column(table),
                )
            )
            self.inferred[name] = f"added: no tool lists {table.name} by {link}"
            self.review.add(
                f"tools.{name}",
                f"added: the source has no way to list {table.name} by {link}, which tasks need",
            )
        return self._ensure_gets(tools, names, exposed)

    def _ensure_gets(
        self, tools: list[ToolSpec], names: set[str], exposed: set[str]
    ) -> list[ToolSpec]:
        """A get by key for each entity below the actor that the source exposes but never
        returns one at a time: questions about one row need it."""
        for table in self.tables.values():
            if table is self.actor or table.name not in exposed:
                continue
            if self._distance_to_actor(table.name) is None:
                continue
            if any(t.pattern == "get" and t.entity == table.name and not t.by for t in tools):
                continue
            name = _free_name(f"get_{table.draft.singular}", names)
            names.add(name)
            tools.append(
                ToolSpec(
                    name=name,
                    pattern="get",
                    entity=table.name,
                    description=f"Get one {table.label} by its id.",
                )
            )
            self.inferred[name] = f"added: no tool returns one {table.label} by its key"
            self.review.add(
                f"tools.{name}",
                f"added: the source returns {table.name} only in lists; questions about one "
                f"{table.label} need a lookup by key",
            )
        return tools

    # ----- policy -------------------------------------------------------------------------------
    def _policy(self, tools: list[ToolSpec], rules_text: str) -> list[PolicyRule]:
        """Rules stated in so many words in the descriptions ('Only ... can be cancelled',
        '... cannot be changed after ...'); machine-checkable where they name state values or
        a time limit on the row."""
        rules: list[PolicyRule] = []
        ids: set[str] = set()
        for tool in tools:
            text = self.tool_texts.get(tool.name, "")
            for sentence in _rule_sentences(text):
                rule_id = _free_name(f"{tool.name}_rule", ids)
                ids.add(rule_id)
                forbids = self._forbids(tool, sentence) if tool.writes else None
                rules.append(PolicyRule(id=rule_id, text=sentence, tool=tool.name, forbids=forbids))
                if tool.name in self.forbidden_states and tool.pattern == "transition":
                    self._permissive(tool, rule_id)
        for sentence in _rule_sentences(rules_text):
            rule_id = _free_name("service_rule", ids)
            ids.add(rule_id)
            rules.append(PolicyRule(id=rule_id, text=sentence))
        if not rules:
            self.review.add(
                "policy", "no rule is stated in the source's descriptions; the policy is empty"
            )
        for rule in rules:
            self.review.add(
                f"policy.{rule.id}",
                "derived from the description"
                + (
                    f"; forbids {rule.forbids}"
                    if rule.forbids
                    else "; text only (not machine-checked)"
                ),
            )
        return rules

    def _permissive(self, tool: ToolSpec, rule_id: str) -> None:
        """A restriction the description states becomes the policy rule, not the tool's: the
        transition itself accepts every other state, so an agent can break the rule (and
        refusal tasks can test that it does not)."""
        assert tool.entity is not None
        column = self.tables[tool.entity].entity.column(tool.state_column)
        tool.from_states = [v for v in column.enum if v != tool.to_state]
        self.review.add(
            f"tools.{tool.name}.from_states",
            f"every {tool.state_column} but {tool.to_state!r}: the description's restriction is "
            f"policy rule {rule_id}, which the agent must follow",
        )

    def _forbids(self, tool: ToolSpec, sentence: str) -> str | None:
        if tool.pattern not in ("transition", "update", "delete") or tool.entity is None:
            return None
        table = self.tables[tool.entity]
        lowered = sentence.lower()
        state = _state_column(table)
        if state is not None:
            allowed, forbidden = _stated_states(sentence, state.enum, tool.to_state)
            if allowed:
                self.forbidden_states[tool.name] = [v for v in state.enum if v not in allowed]
                return f"{state.name} NOT IN ({', '.join(repr(v) for v in allowed)})"
            if forbidden:
                self.forbidden_states[tool.name] = forbidden
                return f"{state.name} IN ({', '.join(repr(v) for v in forbidden)})"
        when = _when_column(table)
        if when is None or table.entity.column(when).type != "datetime":
            return None
        window = re.search(r"(\d+)\s*(hour|day|minute)s?", lowered)
        if window and re.search(r"before|prior|within|less than|notice", lowered):
            amount, unit = window.group(1), window.group(2)
            return f"{when} < strftime('%Y-%m-%dT%H:%M:%S', :now, '+{amount} {unit}s')"
        if re.search(
            r"(already|has|have) (started|begun|passed|happened)|in the past|"
            r"after (it|they|the \w+) (start|begin|began|has started)",
            lowered,
        ):
            return f"{when} <= :now"
        return None

    # ----- intents ------------------------------------------------------------------------------
    def _intents(self, tools: list[ToolSpec], policy: list[PolicyRule]) -> list[Intent]:
        """A read intent per get tool and a write intent per write tool, in a user's words."""
        intents: list[Intent] = []
        tool_words = {t.name for t in tools}
        for tool in tools:
            try:
                intent = self._intent(tool)
            except _NoIntent as exc:
                self.review.add(f"intents.{tool.name}", f"no intent: {exc}")
                continue
            if intent is None:
                continue
            intent.templates = _clean_templates(intent.templates, tool_words)
            intent.held_out = _clean_templates(intent.held_out, tool_words)
            if len(intent.templates) < 2 or not intent.held_out:
                self.review.add(f"intents.{tool.name}", "no intent: every wording names a tool")
                continue
            intents.append(intent)
        return intents

    def _intent(self, tool: ToolSpec) -> Intent | None:
        if tool.pattern == "list":
            return None
        if tool.pattern == "transfer":
            return self._transfer_intent(tool)
        table = self.tables[tool.entity or ""]
        if tool.pattern == "get":
            return self._read_intent(tool, table)
        if tool.pattern == "create":
            return self._create_intent(tool, table)
        context = self._context(table)
        thing = "{describe}" + context
        if tool.pattern == "delete":
            return Intent(
                id=tool.name,
                kind="write",
                tool=tool.name,
                where=self._unreferenced(table),
                templates=[
                    f"Please delete {thing}.",
                    f"I don't need {thing} anymore; please remove it.",
                    f"Can you get rid of {thing} for me?",
                ],
                held_out=[f"Could you erase {thing} from my records?"],
            )
        if tool.pattern == "transition":
            verb = self._verb(tool)
            state = words(tool.to_state or "")
            targets = tool.from_states + [
                v for v in self.forbidden_states.get(tool.name, []) if v not in tool.from_states
            ]
            values = ", ".join(f"'{v}'" for v in targets)
            column = table.entity.column(tool.state_column)
            where = (
                None if set(column.enum) <= set(targets) else (f"{tool.state_column} IN ({values})")
            )
            if verb is None:
                return Intent(
                    id=tool.name,
                    kind="write",
                    tool=tool.name,
                    where=where,
                    templates=[
                        f"Please mark {thing} as {state}.",
                        f"Can you set {thing} to {state}?",
                        f"I need {thing} marked as {state}.",
                    ],
                    held_out=[f"I'd like {thing} to be {state} now."],
                )
            return Intent(
                id=tool.name,
                kind="write",
                tool=tool.name,
                where=where,
                templates=[
                    f"Please {verb} {thing}.",
                    f"I need to {verb} {thing}.",
                    f"Can you mark {thing} as {state}?",
                ],
                held_out=[
                    f"Could you go ahead and {verb} {thing} for me?",
                    f"I'd like {thing} to be {state} now.",
                ],
            )
        return self._update_intent(tool, table, thing)

    def _by_label(self, label: str) -> _Table:
        return next(t for t in self.tables.values() if t.label == label)

    def _verb(self, tool: ToolSpec) -> str | None:
        """The verb a user would use for a transition ('cancel', 'check in'), or None when the
        tool's name only names the state (mark_paid)."""
        verb = self.tool_verbs.get(tool.name, "")
        if not verb or _norm(verb) == _norm(tool.to_state or "") or not verb.isidentifier():
            return None
        return words(verb)

    def _unreferenced(self, table: _Table) -> str | None:
        """SQL: the row is not referenced by any other row (so deleting it can succeed)."""
        key = table.entity.key
        clauses = [
            f"{key} NOT IN (SELECT {c.name} FROM {other.name} WHERE {c.name} IS NOT NULL)"
            for other in self.tables.values()
            for c in self._references(other)
            if c.references == table.name
        ]
        return " AND ".join(clauses) or None

    def _context(self, table: _Table) -> str:
        """' in the Work calendar': the parent chain up to (not including) the actor."""
        parts = []
        current = table
        for _ in range(2):
            if current.entity.per is None:
                break
            parent = self.tables[current.entity.column(current.entity.per.column).references or ""]
            if parent is self.actor:
                break
            joint = {"collection": "in", "account": "from", "place": "at"}.get(
                parent.category, "for"
            )
            parts.append(f" {joint} {{{parent.label.replace(' ', '_')}.describe}}")
            current = parent
        return "".join(parts)

    def _read_intent(self, tool: ToolSpec, table: _Table) -> Intent:
        asks = self._asks(table)
        if not asks:
            raise _NoIntent(f"{table.name} has no column worth asking about")
        phrase = _and_words([_phrase(a) for a in asks])
        where = " AND ".join(f"{a} IS NOT NULL" for a in asks if table.entity.column(a).nullable)
        if table is self.actor and table.person:
            return Intent(
                id=tool.name,
                kind="read",
                tool=tool.name,
                ask=asks,
                where=where or None,
                templates=[
                    f"What {phrase} do you have on file for me?",
                    f"Could you check my {phrase} in your records?",
                    f"I forgot which {phrase} I gave you. Can you look it up?",
                ],
                held_out=[f"Can you read me back the {phrase} on my profile?"],
            )
        thing = "{describe}" + self._context(table)
        return Intent(
            id=tool.name,
            kind="read",
            tool=tool.name,
            ask=asks,
            where=where or None,
            templates=[
                f"What is the {phrase} of {thing}?",
                f"Could you tell me the {phrase} for {thing}?",
                f"I need the {phrase} of {thing}, please.",
            ],
            held_out=[f"Can you look up {thing} and tell me its {phrase}?"],
        )

    def _asks(self, table: _Table) -> list[str]:
        entity = table.entity
        described = set(re.findall(r"\{(\w+)", entity.describe))

        def score(column: Column) -> float:
            if (
                column.name == entity.key
                or column.references
                or not column.known_to_user
                or column.name in described
                or column.name in self.knows
            ):
                return 0
            seed = column.seed.kind if column.seed else ""
            value = 1.0
            if _state(column):
                value = 6
            elif _numeric(column) and _money_name(column.name):
                value = 5
            elif seed in ("choice", "city", "street_address", "phone", "company"):
                value = 4
            elif column.type in ("date", "datetime"):
                value = 3.5
            elif column.enum or column.type == "integer":
                value = 3
            elif column.type == "real":
                value = 2.5
            elif column.type == "boolean":
                value = 1.5
            elif seed == "template" and column.seed and "opener" in column.seed.lists:
                value = 0.5
            return value - (0.5 if column.nullable else 0)

        ranked = sorted(entity.columns, key=lambda c: -score(c))
        good = [c.name for c in ranked if score(c) >= 2.5]
        return (good or [c.name for c in ranked if score(c) > 0])[:2]

    def _new_value(self, table: _Table, column: Column) -> tuple[ValueGen, str]:
        """A generator for a new value a user asks for, and how templates format it."""
        day = (self.now + timedelta(days=1)).replace(hour=8, minute=0, second=0)
        if column.type in ("date", "datetime"):
            start, end = day, day + timedelta(days=12, hours=9)
            if _pair_role(table, column) == "start":
                start, end = day, day.replace(hour=12)
            elif _pair_role(table, column) == "end":
                start, end = day.replace(hour=12, minute=30), day.replace(hour=18)
            if column.type == "date":
                return ValueGen(
                    kind="date", start=start.date().isoformat(), end=end.date().isoformat()
                ), "|date"
            return ValueGen(
                kind="datetime", start=_iso(start), end=_iso(end), step_minutes=30
            ), "|datetime"
        seed = column.seed
        if seed is not None and seed.kind in ("int", "money"):
            return ValueGen(kind=seed.kind, min=seed.min, max=seed.max), (
                "|money" if seed.kind == "money" and _money_name(column.name) else ""
            )
        if column.type == "boolean":
            return ValueGen(kind="choice", values=[True, False]), ""
        if seed is not None and seed.kind in ("after", "ref", "copy", "sequence", "id"):
            raise _NoIntent(f"a new {column.name} cannot be made up by a user")
        if (
            seed is not None
            and seed.kind == "template"
            and any(
                name not in seed.lists and name != "number"
                for name in re.findall(r"\{(\w+)\}", seed.template or "")
            )
        ):
            raise _NoIntent(f"a new {column.name} depends on other columns")
        if seed is None:
            raise _NoIntent(f"{column.name} has no generator")
        style = "|words" if seed.kind == "choice" else ""
        fresh = seed.model_copy(update={"null_fraction": 0.0})
        if column.unique and seed.kind == "template":
            fresh.template = f"{seed.template} {{variant}}"
            fresh.lists = {**seed.lists, "variant": list(VARIANTS)}
        elif column.unique and seed.kind != "email":
            raise _NoIntent(f"a new {column.name} must be unique; its generator cannot promise it")
        return fresh, style

    def _update_intent(self, tool: ToolSpec, table: _Table, thing: str) -> Intent:
        candidates = [f for f in tool.fields if not table.entity.column(f).references]
        if not candidates:
            raise _NoIntent("it only changes references, which users cannot name")
        described = set(re.findall(r"\{(\w+)", table.entity.describe))

        def rank(name: str) -> tuple[int, int]:
            column = table.entity.column(name)
            kind = column.seed.kind if column.seed else ""
            if _state(column):
                order = 6
            elif _pair_role(table, column):
                order = 5
            elif column.type == "boolean":
                order = 4
            elif column.type in ("date", "datetime"):
                order = 3
            elif _numeric(column):
                order = 2
            elif kind == "template":
                order = 1
            else:
                order = 0
            return (name in described, order)

        candidates.sort(key=rank)
        column = table.entity.column(candidates[0])
        gen, style = self._new_value(table, column)
        what = _phrase(column.name)
        value = f"{{new.{column.name}{style}}}"
        if table is self.actor and table.person:
            return Intent(
                id=tool.name,
                kind="write",
                tool=tool.name,
                change={column.name: gen},
                templates=[
                    f"Please change my {what} to {value}.",
                    f"I'd like my {what} updated to {value}.",
                    f"Can you set my {what} to {value}?",
                ],
                held_out=[f"My {what} is now {value}; could you update your records?"],
            )
        if column.type == "boolean":
            return Intent(
                id=tool.name,
                kind="write",
                tool=tool.name,
                change={column.name: gen},
                templates=[
                    f"Please set {what} to {value} for {thing}.",
                    f"For {thing}, {what} should be {value}.",
                    f"Can you change {what} on {thing} to {value}?",
                ],
                held_out=[f"Could you update {thing} so that {what} is {value}?"],
            )
        return Intent(
            id=tool.name,
            kind="write",
            tool=tool.name,
            change={column.name: gen},
            templates=[
                f"Please change the {what} of {thing} to {value}.",
                f"I'd like the {what} of {thing} to be {value} instead.",
                f"Can you set the {what} for {thing} to {value}?",
            ],
            held_out=[f"Could you update {thing} so its {what} is {value}?"],
        )

    def _create_intent(self, tool: ToolSpec, table: _Table) -> Intent:
        entity = table.entity
        anchor = create_anchor(entity, tool)
        others = [f for f in tool.fields if f != anchor and not entity.column(f).references]
        linked = [f for f in tool.fields if f != anchor and entity.column(f).references]
        labels = [self.tables[entity.column(f).references or ""].label for f in linked]
        anchor_label = self.tables[entity.column(anchor).references or ""].label if anchor else None
        if len(set(labels)) < len(labels) or anchor_label in labels:
            raise _NoIntent("two of its references point at the same kind of row")
        change: dict[str, ValueGen] = {}
        parts: list[str] = []
        links = ""
        for label in labels:
            joint = "with" if self._by_label(label).person else "for"
            links += f" {joint} {{{label.replace(' ', '_')}.describe}}"
        for name in others:
            gen, style = self._new_value(table, entity.column(name))
            change[name] = gen
            parts.append(f"{_phrase(name)} {{new.{name}{style}}}")
        if not parts and not links:
            raise _NoIntent("it takes nothing but a reference; a request would say nothing")
        details = links
        if parts:
            details += (": " if links else " with ") + _and_words(parts)
        label = table.label
        place = ""
        if anchor is not None:
            parent = self.tables[entity.column(anchor).references or ""]
            if parent is not self.actor:
                joint = {"collection": "to", "account": "from", "place": "at"}.get(
                    parent.category, "for"
                )
                place = f" {joint} {{describe}}" + self._context(parent)
        if table is self.actor and table.person:
            return Intent(
                id=tool.name,
                kind="write",
                tool=tool.name,
                change=change,
                templates=[
                    f"Please register my partner as a new {label}{details}.",
                    f"I'd like to sign up a friend as {_a(label)}{details}.",
                    f"Can you add my colleague as a new {label}{details}?",
                ],
                held_out=[f"Could you set up {_a(label)} for my sister{details}?"],
            )
        return Intent(
            id=tool.name,
            kind="write",
            tool=tool.name,
            change=change,
            templates=[
                f"Please add a new {label}{place}{details}.",
                f"I'd like to create {_a(label)}{place}{details}.",
                f"Can you set up a new {label}{place}{details}?",
            ],
            held_out=[f"Could you make me {_a(label)}{place}{details}?"],
        )

    def _transfer_intent(self, tool: ToolSpec) -> Intent:
        move = tool.transfer
        assert move is not None
        table = self.tables[move.entity]
        column = table.entity.column(move.column)
        low = max(1.0, column.min or 1.0)
        gen = ValueGen(kind="money" if column.type == "real" else "int", min=low, max=200)
        style = "|money" if column.type == "real" else ""
        amount = f"{{new.{move.amount_arg}{style}}}"
        source, target = "{describe}", "{to.describe}"
        return Intent(
            id=tool.name,
            kind="write",
            tool=tool.name,
            where=f"{move.column} >= 200",
            change={move.amount_arg: gen},
            templates=[
                f"Please move {amount} from {source} to {target}.",
                f"I want to send {amount} from {source} over to {target}.",
                f"Can you take {amount} out of {source} and put it in {target}?",
            ],
            held_out=[f"Could you shift {amount} from {source} into {target} for me?"],
        )

    # ----- spec-level -----------------------------------------------------------------------------
    def _domain(self) -> str:
        text = " ".join([self.name, *self.tables, self.description.lower()])
        domains = {
            "finance": (
                "payment",
                "account",
                "transaction",
                "transfer",
                "bank",
                "card",
                "wallet",
                "invoice",
                "payee",
                "loan",
                "budget",
            ),
            "healthcare": (
                "patient",
                "clinic",
                "vet",
                "doctor",
                "prescription",
                "appointment",
                "visit",
                "pet",
                "diagnos",
                "hospital",
            ),
            "travel": ("flight", "hotel", "trip", "booking", "reservation", "itinerary"),
            "retail": ("order", "product", "cart", "shop", "store", "inventory", "shipment"),
            "productivity": (
                "calendar",
                "event",
                "meeting",
                "note",
                "notebook",
                "task",
                "project",
                "document",
                "todo",
                "reminder",
            ),
            "education": ("course", "student", "lesson", "class", "enrollment", "grade"),
            "library": ("book", "loan", "library", "author", "catalog"),
            "support": ("ticket", "incident", "helpdesk", "support"),
        }
        scores = {d: sum(text.count(k) for k in keys) for d, keys in domains.items()}
        best = max(scores, key=lambda d: scores[d])
        if scores[best] == 0:
            self.review.add("domain", "no domain keywords; defaulted to 'general'")
            return "general"
        return best


class _NoIntent(Exception):
    """No intent can be written for a tool; the message says why."""


# ----- helpers ------------------------------------------------------------------------------


def _parse_now(now: str | None, review: Review) -> datetime:
    if now:
        try:
            return datetime.fromisoformat(str(now).replace("Z", "")).replace(
                microsecond=0, tzinfo=None
            )
        except ValueError:
            review.add("now", f"the source's clock {now!r} is not an ISO datetime; defaulted")
    return datetime.fromisoformat(DEFAULT_NOW)


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def _category(singular_name: str) -> str:
    parts = singular_name.split("_")
    for category, keys in ENTITY_CATEGORIES:
        if parts[-1] in keys or singular_name in keys:
            return category
    for category, keys in ENTITY_CATEGORIES:
        if any(p in keys for p in parts):
            return category
    return "generic"


def _column_type(fd: FieldDraft) -> str:
    kind = fd.type
    fmt = (fd.format or "").lower()
    name = fd.name
    text = fd.description.lower()
    if kind == "integer" or (
        kind is None
        and fd.enum
        and all(isinstance(v, int) and not isinstance(v, bool) for v in fd.enum)
    ):
        return "integer"
    if kind == "number":
        return "real"
    if kind == "boolean":
        return "boolean"
    if kind not in (None, "string"):
        return "text"
    if fmt == "date":
        return "date"
    if fmt in ("date-time", "datetime", "timestamp"):
        return "datetime"
    if fmt or fd.enum:
        return "text"
    if re.search(r"\bhh:mm\b", text) and "yyyy" not in text:
        return "text"
    if "yyyy-mm-ddthh" in text or re.search(r"date[- ]?time|timestamp", text):
        return "datetime"
    if name.endswith(("_at", "_datetime", "_timestamp")) or name in (
        "timestamp",
        "datetime",
        "start",
        "end",
        "starts",
        "ends",
    ):
        return "datetime"
    if name.endswith("_time") and "time_zone" not in name:
        return "datetime"
    if (
        "yyyy-mm-dd" in text
        or name == "date"
        or name.endswith(("_date", "_on"))
        or name
        in (
            "dob",
            "birthday",
            "birthdate",
            "date_of_birth",
        )
    ):
        return "date"
    return "text"


def _fits(value: Any, kind: str, enum: list[str]) -> bool:
    if value is None:
        return False
    if enum:
        return isinstance(value, str) and value in enum
    return {
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "real": isinstance(value, int | float) and not isinstance(value, bool),
        "text": isinstance(value, str),
    }.get(kind, False)


def _reference_target(
    base: str, by_singular: dict[str, str], people: list[str]
) -> tuple[str | None, str]:
    """The entity a `<base>_id` column points to, and a review note if only guessed."""
    if base in by_singular:
        return by_singular[base], ""
    parts = base.split("_")
    for start in range(1, len(parts)):
        suffix = "_".join(parts[start:])
        if suffix in by_singular:
            return by_singular[suffix], ""
    if base in ROLE_WORDS and len(people) >= 1:
        preferred = [p for p in people if singular(p).split("_")[-1] in ACTOR_WORDS]
        target = (preferred or people)[0]
        return target, f"references {target}, guessed from the role name {base!r}"
    return None, ""


def _readable_column(table: _Table) -> str | None:
    columns = table.columns()
    for name in READABLE:
        column = columns.get(name)
        if column is not None and column.type == "text" and not column.references:
            return name
    for column in columns.values():
        if (
            column.name.endswith(("_name", "_title"))
            and column.type == "text"
            and not column.references
        ):
            return column.name
    return None


def _when_column(table: _Table) -> str | None:
    columns = table.columns()
    for name in WHEN:
        column = columns.get(name)
        if column is not None and column.type in ("date", "datetime"):
            return name
    for column in columns.values():
        if column.type in ("date", "datetime") and not re.search(
            r"birth|dob|updated|modified|deleted|expir", column.name
        ):
            return column.name
    return None


def _date_phrase(column: str) -> str:
    """How a row's date is said after its name: 'on' for when it happens, 'opened on' for
    opened_on, 'created on' for created_at."""
    if column in HAPPENS:
        return "on"
    if column.endswith("_on"):
        return words(column)
    if column.endswith("_at"):
        return words(column[:-3]) + " on"
    return "dated"


def _money_name(name: str) -> bool:
    return bool(
        re.search(
            r"(^|_)(amount|price|cost|fee|fees|total|subtotal|balance|limit|credit|debit|payment|"
            r"charge|salary|budget|tip|tax|discount|deposit|refund|fare|spend|revenue|income|"
            r"expense|funds|cents)($|_)",
            name,
        )
    )


def _numeric(column: Column) -> bool:
    return column.type in ("integer", "real")


def _state(column: Column) -> bool:
    return bool(column.enum) and (
        column.name in STATE_COLUMNS or column.name.endswith(("_status", "_state"))
    )


def _state_column(table: _Table) -> Column | None:
    columns = [c for c in table.entity.columns if _state(c)]
    columns.sort(key=lambda c: c.name not in STATE_COLUMNS)
    return columns[0] if columns else None


def _norm(value: str) -> str:
    return snake(value)


def _state_for(verb: str, values: list[str]) -> str | None:
    """The state value a verb moves to: cancel -> 'cancelled', check_in -> 'checked_in'."""
    normalized = {_norm(v): v for v in values}
    for candidate in VERB_STATES.get(verb, ()):
        if candidate in normalized:
            return normalized[candidate]
    stem = verb.rstrip("e")
    for norm, value in normalized.items():
        if norm in (
            verb,
            f"{verb}ed",
            f"{verb}d",
            f"{stem}ed",
            f"{verb[:-1]}ied",
            f"{verb}{verb[-1:]}ed",
        ):
            return value
    return None


def _flag_column(verb: str, table: _Table) -> str | None:
    base = verb[2:] if verb.startswith("un") else verb
    forms = {f"{base}ed", f"{base}d", f"{base}{base[-1:]}ed", base}
    for column in table.entity.columns:
        if column.type == "boolean" and (
            column.name in forms or column.name.removeprefix("is_") in forms
        ):
            return column.name
    return None


def _mentioned(values: list[str], text: str, exclude: str | None = None) -> list[str]:
    lowered = text.lower()
    found = []
    for value in values:
        if value == exclude:
            continue
        forms = {value.lower(), words(value.lower()), value.lower().replace("_", "-")}
        if any(re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", lowered) for f in forms):
            found.append(value)
    return found


def _stated_states(text: str, values: list[str], target: str | None) -> tuple[list[str], list[str]]:
    """States a description allows ('Only scheduled payments can be cancelled', 'Restore an
    archived or trashed note') and forbids ('Trashed notes cannot be archived'), clause by
    clause."""
    allowed: list[str] = []
    forbidden: list[str] = []
    for clause in re.split(r"[.;]|\bbut\b|\bwhile\b", text):
        mentioned = _mentioned(values, clause, exclude=target)
        if not mentioned:
            continue
        if re.search(
            r"cannot|can't|can not|not be|never|may not|must not|not allowed", clause, re.I
        ):
            forbidden += [v for v in mentioned if v not in forbidden]
        else:
            allowed += [v for v in mentioned if v not in allowed]
    return allowed, forbidden


REVERSES = {
    "unfreeze": "freeze", "unarchive": "archive", "unlock": "lock", "unblock": "block",
    "unpublish": "publish", "reopen": "close", "resume": "pause", "reactivate": "deactivate",
    "enable": "disable", "activate": "deactivate", "restore": "archive", "unsuspend": "suspend",
}  # fmt: skip


def _reversed_state(verb: str, values: list[str]) -> str | None:
    """The state an undoing verb starts from: unfreeze -> 'frozen'."""
    base = REVERSES.get(verb)
    return _state_for(base, values) if base else None


def _role(name: str) -> tuple[str | None, str]:
    for role, prefixes in (("from", FROM_ROLES), ("to", TO_ROLES)):
        for prefix in prefixes:
            if name == prefix:
                return role, ""
            if name.startswith(prefix + "_"):
                return role, name[len(prefix) + 1 :]
    return None, name


def _balance_column(table: _Table) -> str | None:
    columns = table.columns()
    for name in (
        "balance",
        "available_balance",
        "current_balance",
        "credits",
        "points",
        "funds",
        "amount",
        "quantity",
        "stock",
        "units",
    ):
        if name in columns and _numeric(columns[name]):
            return name
    return next((c.name for c in columns.values() if "balance" in c.name and _numeric(c)), None)


def _ledger_state(values: list[str]) -> str:
    for wanted in (
        "completed",
        "posted",
        "settled",
        "succeeded",
        "success",
        "transfer",
        "done",
        "cleared",
        "processed",
        "paid",
    ):
        if wanted in values:
            return wanted
    return values[0]


def _lookup_column(name: str) -> bool:
    return bool(
        re.search(
            r"(^|_)(email|username|handle|login|slug|code|number|sku|isbn|phone|"
            r"confirmation|reference|locator)$",
            name,
        )
    )


def _free_text(column: Column) -> bool:
    if column.type != "text" or column.enum or column.references:
        return False
    seed = column.seed
    if seed is not None:
        codes = (DIGITS, LETTERS, LETTERS + DIGITS)
        coded = bool(seed.lists) and all(v in codes for v in seed.lists.values())
        return seed.kind == "template" and "site" not in seed.lists and not coded
    return bool(
        re.search(
            r"(^|_)(title|name|subject|summary|description|body|content|notes?|"
            r"text|tags?|labels?|comment|message|memo)$",
            column.name,
        )
    )


RESERVED = {"db", "limit", "self"}
"""Names a generated tool function already uses."""


def _arg_name(argument: str, column: str, op: str = "eq") -> str:
    """A filter's argument name: '' when it is the column's; a safe name when the source's
    is a Python keyword ('from') or taken ('limit')."""
    if argument == column:
        return ""
    if keyword.iskeyword(argument) or argument in RESERVED:
        suffix = {"gte": "from", "lte": "to"}.get(op, "value")
        return f"{column}_{suffix}"
    return argument


def safe_name(name: str) -> str:
    """A column or argument name usable as a Python parameter: 'from' -> 'from_value'."""
    return f"{name}_value" if keyword.iskeyword(name) or name in RESERVED else name


def _unique_filters(filters: list[Filter]) -> list[Filter]:
    seen: set[str] = set()
    kept = []
    for item in filters:
        if item.argument not in seen:
            seen.add(item.argument)
            kept.append(item)
    return kept


def _unique_tools(tools: list[ToolSpec]) -> list[ToolSpec]:
    names: set[str] = set()
    kept = []
    for tool in tools:
        tool.name = _free_name(tool.name, names)
        names.add(tool.name)
        kept.append(tool)
    return kept


def _free_name(name: str, taken: Iterable[str]) -> str:
    taken = set(taken)
    if name not in taken:
        return name
    number = 2
    while f"{name}_{number}" in taken:
        number += 1
    return f"{name}_{number}"


def _start_partner(name: str, columns: dict[str, Column]) -> str | None:
    pairs = (
        ("end", "start"),
        ("ends", "starts"),
        ("finish", "start"),
        ("check_out", "check_in"),
        ("arrival", "departure"),
        ("dropoff", "pickup"),
        ("return", "departure"),
    )
    for late, early in pairs:
        if name == late or name.startswith(late + "_"):
            partner = early + name[len(late) :]
            column = columns.get(partner)
            if column is not None and column.type == "datetime" and column.name != name:
                return partner
    return None


def _bool_share(name: str) -> float:
    if re.search(r"active|enabled|verified|available|visible|confirmed|primary", name):
        return 0.8
    if re.search(
        r"deleted|archived|pinned|starred|flagged|blocked|locked|muted|private|"
        r"recurring|all_day|default",
        name,
    ):
        return 0.2
    return 0.5


def _number_seed(column: Column, fd: FieldDraft | None) -> ValueGen:
    name = column.name
    integer = column.type == "integer"
    low, high = 0.0, 100.0
    kind = "int" if integer else "money"
    bounds = (
        (r"cents", 500, 50000),
        (r"balance", 0, 5000),
        (r"limit", 500, 10000),
        (r"salary", 30000, 150000),
        (r"budget", 100, 10000),
        (r"tax|tip|discount", 0, 50),
        (r"price|cost|fee|fare|charge", 5, 500),
        (
            r"amount|total|payment|deposit|refund|spend|expense|income|revenue|credit|debit|funds",
            5,
            1000,
        ),
    )
    matched = False
    if _money_name(name) or "cents" in name:
        for pattern, lo, hi in bounds:
            if re.search(pattern, name):
                low, high, matched = lo, hi, True
                break
    if not matched:
        ranges = (
            (r"age$", 18, 85),
            (r"year", 1990, 2025),
            (r"rating|stars", 1, 5),
            (r"percent|score|progress", 0, 100),
            (r"minutes|duration", 15, 120),
            (r"hours", 1, 8),
            (r"days|nights", 1, 14),
            (r"capacity|seats", 2, 40),
            (r"stock|inventory|available", 0, 200),
            (r"weight", 1, 40),
            (r"priority", 1, 5),
            (r"position|order|rank|sequence|index", 1, 20),
            (r"quantity|qty|count|number|num_|guests|party|size|attendees", 1, 10),
            (r"latitude", -60, 60),
            (r"longitude", -120, 120),
        )
        for pattern, lo, hi in ranges:
            if re.search(pattern, name):
                low, high = lo, hi
                kind = (
                    "int"
                    if integer or pattern not in (r"weight", r"latitude", r"longitude")
                    else "money"
                )
                break
        else:
            kind = "int" if integer else "money"
    if column.min is not None:
        low = max(low, column.min)
    if column.max is not None:
        high = min(high, column.max)
    if high < low:
        high = low + (100 if column.max is None else 0)
    if integer:
        low, high = float(int(-(-low // 1))), float(int(high // 1))
    return ValueGen(kind=kind, min=low, max=max(low, high))


def _digits(count: int) -> ValueGen:
    keys = [f"d{i}" for i in range(count)]
    return ValueGen(
        kind="template", template="".join(f"{{{k}}}" for k in keys), lists={k: DIGITS for k in keys}
    )


def _title_seed(category: str) -> ValueGen:
    template, lists = TITLE_LISTS.get(category, TITLE_LISTS["generic"])
    return ValueGen(
        kind="template", template=template, lists={k: list(v) for k, v in lists.items()}
    )


def _list_seed(fd: FieldDraft) -> ValueGen:
    item = fd.items
    if item is not None and item.enum:
        return ValueGen(kind="choice", values=[str(v) for v in item.enum])
    if item is not None and "email" in (item.format or "") or "email" in fd.name:
        return ValueGen(kind="email")
    return ValueGen(kind="choice", values=TAGS[:])


def _rule_sentences(text: str) -> list[str]:
    """Sentences that state a rule in so many words: 'Only scheduled payments can be
    cancelled', 'Events that have started cannot be changed', 'at most 3 per day'."""
    sentences = re.split(r"(?<=[.!?])\s+", " ".join((text or "").split()))
    patterns = (
        r"\b(cannot|can't|can not|may not|must not|mustn't|not allowed|never|not permitted)\b",
        r"\bonly\b[^.]*\b(can|may|allowed|permitted|possible)\b",
        r"\b(can|may) only\b",
        r"\bonly (if|when|while|before|after|once)\b",
        r"\b(no more than|at most|up to|must be at least|must be before|must be after)\b.*\d",
    )
    warning = r"cannot be (undone|reversed|recovered)|can't be undone"
    return [
        s.strip()
        for s in sentences
        if len(s) > 12
        and any(re.search(p, s, re.I) for p in patterns)
        and not re.search(warning, s, re.I)
    ]


def _clean_templates(templates: list[str], tool_names: set[str]) -> list[str]:
    """Templates whose own words name no tool (the grounding checker rejects those)."""
    kept = []
    for template in templates:
        literal = re.sub(r"\{[^}]*\}", " ", template).lower()
        if any(re.search(rf"\b{re.escape(name)}\b", literal) for name in tool_names):
            continue
        kept.append(template)
    return kept


def _pair_role(table: _Table, column: Column) -> str | None:
    """'start' or 'end' when the column is one end of a start/end pair, else None."""
    if column.seed is not None and column.seed.kind == "after":
        return "end"
    for other in table.entity.columns:
        if (
            other.seed is not None
            and other.seed.kind == "after"
            and other.seed.column == (column.name)
        ):
            return "start"
    return None


def _phrase(column: str) -> str:
    """A column as people name it: 'starts_at' -> 'start time', 'duration_minutes' ->
    'duration in minutes', 'is_primary' -> 'primary'."""
    name = re.sub(r"^(is|has)_", "", column)
    units = {
        "minutes": "in minutes",
        "hours": "in hours",
        "days": "in days",
        "kg": "in kg",
        "lbs": "in pounds",
        "cents": "in cents",
        "usd": "in dollars",
    }
    head, _, last = name.rpartition("_")
    if head and last in units:
        return f"{words(head)} {units[last]}"
    if name.endswith("_at"):
        base = name[:-3]
        base = {
            "starts": "start",
            "ends": "end",
            "created": "creation",
            "updated": "update",
            "due": "due",
        }.get(base, base)
        return f"{words(base)} time"
    if name.endswith("_on"):
        return f"{words(name[:-3])} date"
    return words(name)


def _a(noun: str) -> str:
    """'an event', 'a note'."""
    lowered = noun.lower()
    vowel = lowered[:1] in "aeiou" and not lowered.startswith(("use", "uni", "usu", "eu", "one"))
    return ("an " if vowel else "a ") + noun


def _and_words(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _or_words(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


# ----- writing ------------------------------------------------------------------------------


def render_spec(result: ImportResult, source: str = "") -> str:
    """The spec as YAML with a header listing what needs review and, where a reviewed field
    has its own line, an inline `# needs review: ...` comment on it."""
    import yaml

    body = dump_spec(result.spec)
    header = [
        f"# Imported by envfactory{f' from {source}' if source else ''}.",
        "# Everything below was inferred; the needs_review items were defaulted. Check them,",
        "# then run `envfactory generate` on this file.",
    ]
    if result.review:
        header.append(f"# needs review ({len(result.review)}):")
        header += [f"#   - {_one_line(item)}" for item in result.review]
    annotated = _annotate(body, result.review)
    try:
        same = yaml.safe_load(annotated) == yaml.safe_load(body)
    except yaml.YAMLError:
        same = False
    return "\n".join(header) + "\n" + (annotated if same else body)


def write_spec(result: ImportResult, path: str | Path, source: str = "") -> Path:
    """Write `result` as YAML (see `render_spec`), atomically: a temporary file beside `path`,
    then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_spec(result, source)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _one_line(text: str) -> str:
    return " ".join(text.split())


_KEY_LINE = re.compile(r"^( *)(- )?([A-Za-z_][A-Za-z0-9_]*):(?: (.*))?$")


def _annotate(body: str, review: list[str]) -> str:
    """Inline comments on the lines that review paths point at (the deepest line found)."""
    lines = body.split("\n")
    paths = _line_paths(lines)
    notes: dict[int, list[str]] = {}
    for item in review:
        path, _, message = item.partition(": ")
        segments = path.split(".")
        while segments:
            index = paths.get(tuple(segments))
            if index is not None:
                notes.setdefault(index, []).append(message)
                break
            segments.pop()
    for index, messages in notes.items():
        if not _complete(lines, index):
            continue
        comment = "; ".join(_one_line(m) for m in messages)
        lines[index] = f"{lines[index]}  # needs review: {comment}"
    return "\n".join(lines)


def _line_paths(lines: list[str]) -> dict[tuple[str, ...], int]:
    """Dotted paths (list items by their name or id) -> line index, for block YAML as
    `dump_spec` writes it."""
    paths: dict[tuple[str, ...], int] = {}
    stack: list[tuple[int, str, bool]] = []
    for index, line in enumerate(lines):
        match = _KEY_LINE.match(line)
        if not match:
            continue
        indent, dash, key, value = match.groups()
        level = len(indent) + (2 if dash else 0)
        if dash:
            while stack and stack[-1][0] >= level:
                stack.pop()
            label = (value or "").strip().strip("'\"") if key in ("name", "id") else key
            stack.append((level, label, True))
            paths.setdefault(tuple(s for _, s, _ in stack), index)
            continue
        while stack and (stack[-1][0] > level or (stack[-1][0] == level and not stack[-1][2])):
            stack.pop()
        stack.append((level, key, False))
        paths.setdefault(tuple(s for _, s, _ in stack), index)
    return paths


def _complete(lines: list[str], index: int) -> bool:
    """Whether the value on line `index` ends on that line (so a comment cannot split it)."""
    line = lines[index]
    if "#" in line or line.rstrip().endswith(("|", ">", "|-", ">-")):
        return False
    following = lines[index + 1] if index + 1 < len(lines) else ""
    if not following.strip():
        return True
    own = len(line) - len(line.lstrip(" "))
    nested = len(following) - len(following.lstrip(" "))
    match = _KEY_LINE.match(line)
    value = (match.group(4) or "") if match else ""
    if value == "":
        return True
    return bool(_KEY_LINE.match(following) or following.lstrip().startswith("- ")) and (
        nested <= own + 2
    )
