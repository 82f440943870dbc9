"""Import an OpenAPI 3.x document (YAML or JSON) as a spec.

Resources become entities: a schema under `components.schemas` is an entity when it has an id
or is what a GET returns; a collection path whose responses are inline objects gives one too.
Operations become tools by method and path shape: GET /things/{id} get, GET /things list
(query parameters are filters), POST /things create (from the request body), PUT or PATCH
/things/{id} update, DELETE /things/{id} delete, POST /things/{id}/cancel an action (a
transition when the thing's status has a value for the verb). Nested paths
(/owners/{id}/pets) say which reference a list filters on or a create sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import (
    VERB_STATES,
    EntityDraft,
    FieldDraft,
    ImportResult,
    Review,
    SchemaResolver,
    SpecBuilder,
    ToolDraft,
    field_from_schema,
    fields_of,
    load_document,
    match_entity,
    plural,
    read_name,
    singular,
    snake,
)

METHODS = ("get", "post", "put", "patch", "delete")
SCHEMA_SUFFIXES = (
    "_response", "_details", "_detail", "_out", "_output", "_read", "_dto", "_model",
    "_resource", "_entity", "_schema", "_view", "_object",
)  # fmt: skip
VERSION = re.compile(r"^(api|v\d+(\.\d+)*|rest|public|internal)$", re.I)


@dataclass
class _Operation:
    """One method on one path, read into its parts."""

    path: str
    method: str
    spec: dict[str, Any]
    parameters: list[dict[str, Any]]
    collection: str | None = None
    item: bool = False
    action: str | None = None
    parents: list[tuple[str, str]] = field(default_factory=list)


def import_openapi(
    document: dict[str, Any] | str | Path, *, integer_keys: bool = False
) -> ImportResult:
    """A spec from an OpenAPI 3.x document: a dict, or a path to a YAML or JSON file. Raises
    ValueError naming what is wrong (not OpenAPI 3.x, no paths, an unresolvable $ref...).
    Integer ids become prefixed text keys unless `integer_keys` (see SpecBuilder)."""
    doc, source = load_document(document, "OpenAPI document")
    _check(doc, source)
    review = Review()
    resolver = SchemaResolver(doc)
    operations = _operations(doc, resolver)
    schemas = (doc.get("components") or {}).get("schemas") or {}
    if not isinstance(schemas, dict):
        raise ValueError(f"{source}: components.schemas must be a mapping")
    entities, ref_entities = _entities(schemas, operations, resolver, review)
    names = _entity_names(entities)
    for op in operations:
        _place(op, names)
    _implied_entities(operations, entities, resolver, review)
    names = _entity_names(entities)
    for op in operations:
        _place(op, names)
    _path_keys(operations, entities)
    info = doc.get("info") or {}
    title = str(info.get("x-service-name") or info.get("title") or Path(source).stem)
    description = " ".join(str(info.get("description") or info.get("title") or "").split())
    builder = SpecBuilder(
        name=_service_name(title),
        description=description,
        now=info.get("x-now") or doc.get("x-now"),
        source=source,
        review=review,
        ref_entities=ref_entities,
        integer_keys=integer_keys,
    )
    drafts = [_tool_draft(op, entities, ref_entities, resolver, review) for op in operations]
    if resolver.external:
        review.add("components", f"external $refs not followed: {sorted(set(resolver.external))}")
    return builder.build(entities, [d for d in drafts if d is not None], rules_text=description)


def _check(doc: dict[str, Any], source: str) -> None:
    version = doc.get("openapi")
    if version is None:
        if "swagger" in doc:
            raise ValueError(
                f"{source}: Swagger/OpenAPI 2.0 is not supported; convert it to OpenAPI 3.x first"
            )
        raise ValueError(f"{source}: no 'openapi' field; not an OpenAPI 3.x document")
    if not str(version).startswith("3."):
        raise ValueError(f"{source}: OpenAPI version {version!r} is not supported (3.x only)")
    paths = doc.get("paths")
    if not isinstance(paths, dict) or not paths:
        raise ValueError(f"{source}: no 'paths'; the document describes no operations")


def _service_name(title: str) -> str:
    words = [w for w in snake(title).split("_") if w not in ("api", "service", "rest", "http")]
    return "_".join(words[:3]) or "service"


# ----- operations ---------------------------------------------------------------------------


def _operations(doc: dict[str, Any], resolver: SchemaResolver) -> list[_Operation]:
    found = []
    for path, item in doc["paths"].items():
        if not isinstance(item, dict):
            continue
        item = resolver.resolve(item) if "$ref" in item else item
        shared = [resolver.resolve(p) for p in item.get("parameters") or []]
        for method in METHODS:
            spec = item.get(method)
            if not isinstance(spec, dict):
                continue
            own = [resolver.resolve(p) for p in spec.get("parameters") or []]
            names = {(p.get("name"), p.get("in")) for p in own}
            merged = own + [p for p in shared if (p.get("name"), p.get("in")) not in names]
            found.append(_Operation(path=str(path), method=method, spec=spec, parameters=merged))
    return found


def _segments(path: str) -> list[tuple[str, str]]:
    """'/v1/owners/{ownerId}/pets' -> [('lit', 'owners'), ('param', 'ownerId'), ('lit',
    'pets')]; a custom method ('/things/{id}:cancel') becomes a last literal."""
    parts = []
    for raw in path.strip("/").split("/"):
        if not raw:
            continue
        custom = None
        if ":" in raw and not raw.startswith("{") or re.match(r"^\{[^}]+\}:\w", raw):
            raw, custom = raw.rsplit(":", 1)
        if raw.startswith("{") and raw.endswith("}"):
            parts.append(("param", raw[1:-1]))
        elif not VERSION.match(raw):
            parts.append(("lit", raw))
        if custom:
            parts.append(("lit", custom))
    return parts


def _place(op: _Operation, names: dict[str, str]) -> None:
    """Which collection an operation is on, whether on one item, and any action verb."""
    parts = _segments(op.path)
    op.collection, op.item, op.action, op.parents = None, False, None, []
    last_collection = None
    index = 0
    while index < len(parts):
        kind, value = parts[index]
        following = parts[index + 1] if index + 1 < len(parts) else None
        if kind == "lit":
            entity = match_entity(snake(value).split("_"), names)
            after_item = index > 0 and parts[index - 1][0] == "param"
            collection = (
                entity is not None
                or not after_item
                or (following is not None and following[0] == "param")
            )
            if collection:
                if last_collection is not None and op.item:
                    op.parents.append(last_collection)
                name = entity or plural(snake(value))
                last_collection = (name, "")
                op.collection, op.item = name, False
            elif op.collection is not None:
                op.action = snake(value)
        else:
            if last_collection is not None:
                last_collection = (last_collection[0], value)
                op.item = True
        index += 1
    op.parents = [p for p in op.parents if p[1]]


def _entity_names(entities: list[EntityDraft]) -> dict[str, str]:
    names: dict[str, str] = {}
    for draft in entities:
        for form in (draft.name, draft.singular, singular(draft.name)):
            names.setdefault(form, draft.name)
    return names


# ----- entities -----------------------------------------------------------------------------


def _entity_name(schema_name: str) -> str:
    name = snake(schema_name)
    for suffix in SCHEMA_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return singular(name)


def _returned_ref(schema: Any, resolver: SchemaResolver) -> tuple[str | None, dict[str, Any]]:
    """The schema name (and resolved schema) an operation returns as its thing: the schema
    itself, the items of a list, or a list/object wrapped in an envelope ({data: [...]})."""
    resolved = resolver.resolve(schema)
    if resolved.get("type") == "array":
        items = resolver.resolve(resolved.get("items"))
        return items.get("x-ref"), items
    if resolved.get("x-ref") and resolved.get("properties"):
        return resolved["x-ref"], resolved
    properties = resolved.get("properties") or {}
    wrapped = [resolver.resolve(v) for v in properties.values()]
    lists = [w for w in wrapped if w.get("type") == "array"]
    if len(lists) == 1 and len(properties) <= 4:
        items = resolver.resolve(lists[0].get("items"))
        return items.get("x-ref"), items
    objects = [w for w in wrapped if w.get("x-ref") and w.get("properties")]
    if len(objects) == 1 and len(properties) <= 2:
        return objects[0]["x-ref"], objects[0]
    return None, resolved


def _success_schema(spec: dict[str, Any], resolver: SchemaResolver) -> Any:
    responses = spec.get("responses") or {}
    for code in sorted(str(c) for c in responses):
        if not code.startswith("2"):
            continue
        response = resolver.resolve(responses.get(code) or responses.get(int(code)) or {})
        schema = _json_schema(response.get("content"))
        if schema is not None:
            return schema
    return None


def _json_schema(content: Any) -> Any:
    if not isinstance(content, dict):
        return None
    for media, body in content.items():
        readable = "json" in media or media in ("*/*", "application/x-www-form-urlencoded")
        if readable and isinstance(body, dict) and "schema" in body:
            return body["schema"]
    return None


def _entities(
    schemas: dict[str, Any],
    operations: list[_Operation],
    resolver: SchemaResolver,
    review: Review,
) -> tuple[list[EntityDraft], dict[str, str]]:
    """Entities from components.schemas: objects with an id, or returned by a GET."""
    returned = set()
    for op in operations:
        if op.method == "get":
            ref, _ = _returned_ref(_success_schema(op.spec, resolver), resolver)
            if ref:
                returned.add(ref)
    drafts: dict[str, EntityDraft] = {}
    ref_entities: dict[str, str] = {}
    for schema_name, schema in schemas.items():
        resolved = resolver.resolve(schema)
        properties = resolved.get("properties") or {}
        if resolved.get("type") != "object" or not properties:
            continue
        single = _entity_name(str(schema_name))
        keys = {"id", f"{single}_id", "uuid", f"{single.rsplit('_', 1)[-1]}_id"}
        has_key = any(snake(p) in keys for p in properties)
        if not has_key and schema_name not in returned:
            continue
        name = plural(single)
        draft = drafts.get(name)
        if draft is None:
            draft = drafts[name] = EntityDraft(
                name=name,
                singular=single,
                description=str(resolved.get("description") or ""),
                source=f"components.schemas.{schema_name}",
            )
        for fd in fields_of(schema, resolver).values():
            draft.add(fd)
        ref_entities[str(schema_name)] = name
    return list(drafts.values()), ref_entities


def _implied_entities(
    operations: list[_Operation],
    entities: list[EntityDraft],
    resolver: SchemaResolver,
    review: Review,
) -> None:
    """Collections whose operations return inline objects (no named schema) become entities
    named after the path; a nested path adds the parent reference it implies."""
    known = {d.name: d for d in entities}
    for op in operations:
        if op.collection is None or op.action:
            continue
        if op.collection not in known and op.method in ("get", "post"):
            ref, resolved = _returned_ref(_success_schema(op.spec, resolver), resolver)
            if ref or not resolved.get("properties"):
                continue
            draft = EntityDraft(
                name=op.collection,
                singular=singular(op.collection),
                source=f"{op.method.upper()} {op.path}",
            )
            for fd in fields_of(resolved, resolver).values():
                draft.add(fd)
            known[draft.name] = draft
            entities.append(draft)
            review.add(
                f"entities.{draft.name}",
                f"no named schema; fields read from the response of {op.method.upper()} {op.path}",
            )
    for op in operations:
        if op.collection not in known or not op.parents:
            continue
        draft = known[op.collection]
        parent, _ = op.parents[-1]
        if parent not in known or parent == draft.name:
            continue
        fk = f"{known[parent].singular}_id"
        if fk not in draft.fields and not any(f.entity == parent for f in draft.fields.values()):
            draft.fields[fk] = FieldDraft(name=fk, entity=parent, required=True)
            review.add(
                f"entities.{draft.name}.columns.{fk}",
                f"not in the schema; implied by the path {op.path}",
            )
        draft.parent = draft.parent or parent


def _path_keys(operations: list[_Operation], entities: list[EntityDraft]) -> None:
    """An item path names its key: /books/{isbn} makes isbn the key of books."""
    drafts = {d.name: d for d in entities}
    for op in operations:
        if not op.item or op.action or op.collection not in drafts:
            continue
        draft = drafts[op.collection]
        param = next((p for c, p in reversed(_owned(op)) if c == op.collection), None)
        if param and snake(param) in draft.fields and snake(param) != "id" and not draft.key:
            draft.key = snake(param)


def _owned(op: _Operation) -> list[tuple[str, str]]:
    """(collection, path parameter) pairs along an operation's path."""
    return [(c, p) for p, c in _path_owners(op).items()]


# ----- tools --------------------------------------------------------------------------------


def _tool_draft(
    op: _Operation,
    entities: list[EntityDraft],
    ref_entities: dict[str, str],
    resolver: SchemaResolver,
    review: Review,
) -> ToolDraft | None:
    label = f"{op.method.upper()} {op.path}"
    name = snake(op.spec.get("operationId") or "") or _default_name(op)
    description = " ".join(str(op.spec.get("description") or op.spec.get("summary") or "").split())
    summary = str(op.spec.get("summary") or "")
    if summary and description and not description.startswith(summary.rstrip(".")):
        description = f"{summary.rstrip('.')}. {description}"
    drafts = {d.name: d for d in entities}
    entity = op.collection if op.collection in drafts else None
    if entity is None:
        ref, _ = _returned_ref(_success_schema(op.spec, resolver), resolver)
        entity = ref_entities.get(ref or "")
    args = _arguments(op, drafts, resolver, review, name)
    kind, verb, why = _kind(op, label)
    if kind is None:
        review.add(f"tools.{name}", f"dropped: {why}")
        return ToolDraft(
            name=name,
            description=description,
            kind="unknown",
            verb=verb,
            entity=None,
            args=[],
            why=why,
            unresolved=why,
        )
    include = []
    if kind == "get" and entity is not None:
        _, returned = _returned_ref(_success_schema(op.spec, resolver), resolver)
        for prop in (returned.get("properties") or {}).values():
            items = resolver.resolve(resolver.resolve(prop).get("items"))
            child = ref_entities.get(items.get("x-ref") or "")
            if child and child != entity:
                include.append(child)
    return ToolDraft(
        name=name,
        description=description,
        kind=kind,
        verb=verb,
        entity=entity,
        args=args,
        why=why,
        include=include,
        unresolved="" if entity else f"{label} is on no resource this importer recognized",
    )


def _default_name(op: _Operation) -> str:
    single = singular(op.collection or "item")
    if op.action:
        return f"{op.action}_{single}"
    verb = {
        "get": "get" if op.item else "list",
        "post": "create",
        "put": "update",
        "patch": "update",
        "delete": "delete",
    }[op.method]
    return f"{verb}_{single if op.item or verb != 'list' else op.collection}"


def _kind(op: _Operation, label: str) -> tuple[str | None, str, str]:
    """(kind, verb, why) from the method and the path's shape."""
    if op.collection is None:
        return None, op.method, f"{label} is on no resource"
    if op.action:
        verb = op.action if op.action in VERB_STATES else (read_name(op.action).verb or op.action)
        if op.method == "get":
            return "get", verb, f"get: {label} reads {op.action} of one {singular(op.collection)}"
        if not op.item:
            if verb in ("search", "query", "find", "filter", "list"):
                return "list", verb, f"list: {label} searches {op.collection}"
            return "action", verb, f"action: {label} is '{op.action}' on {op.collection}"
        return "action", verb, f"action: {label} is '{op.action}' on one item"
    if op.method == "get":
        if op.item:
            return "get", "get", f"get: {label} reads one item by its key"
        return "list", "list", f"list: {label} lists the collection"
    if op.method == "post" and not op.item:
        return "create", "create", f"create: {label} adds to the collection"
    if op.method in ("put", "patch") and op.item:
        return "update", "update", f"update: {op.method.upper()} on one item"
    if op.method == "delete" and op.item:
        return "delete", "delete", f"delete: {label} removes one item"
    return None, op.method, f"{label} acts on a whole collection (bulk); no pattern fits"


def _arguments(
    op: _Operation,
    drafts: dict[str, EntityDraft],
    resolver: SchemaResolver,
    review: Review,
    tool: str,
) -> list[FieldDraft]:
    """Path parameters (named after what they identify), query parameters and the request
    body's properties, as argument drafts."""
    args: list[FieldDraft] = []
    owners = _path_owners(op)
    skipped = []
    for param in op.parameters:
        where = param.get("in")
        name = str(param.get("name") or "")
        if where in ("header", "cookie") or not name:
            skipped.append(name)
            continue
        fd = field_from_schema(
            name,
            param.get("schema") or {},
            resolver,
            bool(param.get("required")) or where == "path",
        )
        fd.description = fd.description or " ".join(str(param.get("description") or "").split())
        if where == "path" and name in owners and owners[name] in drafts:
            owner = drafts[owners[name]]
            fd.name = owner.key or f"{owner.singular}_id"
            fd.entity = None
        args.append(fd)
    if skipped:
        review.add(f"tools.{tool}", f"header/cookie parameters {skipped} are not modeled")
    body = resolver.resolve(op.spec.get("requestBody") or {})
    schema = _json_schema(body.get("content"))
    if schema is not None:
        resolved = resolver.resolve(schema)
        if resolved.get("type") == "object" or resolved.get("properties"):
            required = bool(body.get("required", True))
            seen = {a.name for a in args}
            for fd in fields_of(schema, resolver).values():
                if fd.name not in seen and fd.name not in ("id",):
                    fd.required = fd.required and required
                    args.append(fd)
        else:
            review.add(f"tools.{tool}", "the request body is not an object; not modeled")
    return args


def _path_owners(op: _Operation) -> dict[str, str]:
    """Path parameter -> the collection whose item it identifies."""
    owners = {}
    collection = None
    for kind, value in _segments(op.path):
        if kind == "lit":
            collection = None if op.action == snake(value) else _collection_of(value, op)
        elif collection is not None:
            owners[value] = collection
    return owners


def _collection_of(value: str, op: _Operation) -> str:
    for name, _ in op.parents:
        if snake(value) in (name, singular(name)) or plural(snake(value)) == name:
            return name
    if op.collection and plural(snake(value)) in (op.collection, plural(op.collection)):
        return op.collection
    return plural(snake(value))
