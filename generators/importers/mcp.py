"""Import an MCP server's tool metadata (its `tools/list` result, optionally with a
`stateSchema`) as a spec.

Entities come from the state schema when there is one (each collection of objects in the state
is a table), else from the tools themselves: the nouns in their names, the `<thing>_id`
identifiers they take, the arguments that create or update a thing and the objects they
return. Each tool's pattern is read from its name (verb + noun), its arguments (does it take
its entity's key?) and its outputs; `common.SpecBuilder` does the rest.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .common import (
    LIMIT_ARGS,
    NAME_FILLER,
    NAME_STOPS,
    PAGING_ARGS,
    SEARCH_ARGS,
    SIDE_ARGS,
    SORT_ARGS,
    SYNONYMS,
    EntityDraft,
    FieldDraft,
    ImportResult,
    NameParts,
    Review,
    SchemaResolver,
    SpecBuilder,
    ToolDraft,
    fields_of,
    load_document,
    match_entity,
    plural,
    read_name,
    singular,
    snake,
    verb_kind,
)

CONTROL_ARGS = LIMIT_ARGS | PAGING_ARGS | SEARCH_ARGS | SIDE_ARGS | SORT_ARGS
"""Arguments that steer a call rather than describe a thing (never columns)."""


def import_mcp(
    metadata: dict[str, Any] | str | Path, *, integer_keys: bool = False
) -> ImportResult:
    """A spec from MCP tool metadata: a dict, or a path to a JSON file, holding
    `{"name"?, "description"?, "tools": [...], "stateSchema"?}` (a JSON-RPC response whose
    `result` holds the tools is accepted too). Raises ValueError naming what is wrong.
    Integer ids become prefixed text keys unless `integer_keys` (see SpecBuilder)."""
    data, source = load_document(metadata, "MCP metadata", yaml_ok=False)
    if "tools" not in data and isinstance(data.get("result"), dict):
        data = {**data, **data["result"]}
    tools = _checked_tools(data, source)
    review = Review()
    state = data.get("stateSchema")
    if state is not None and not isinstance(state, dict):
        raise ValueError(f"{source}: stateSchema must be a JSON Schema object")
    ref_entities: dict[str, str] = {}
    if state:
        entities = _state_entities(state, review, ref_entities)
        if not entities:
            review.add(
                "entities",
                "the stateSchema holds no collection of objects; entities "
                "were read from the tools instead",
            )
            entities = _tool_entities(tools, review)
    else:
        review.add(
            "entities",
            "no stateSchema: entities and their columns were inferred from "
            "the tools' names, arguments and outputs",
        )
        entities = _tool_entities(tools, review)
    server = data.get("serverInfo") if isinstance(data.get("serverInfo"), dict) else {}
    name = data.get("name") or server.get("name")
    if not name:
        name = Path(source).stem if source != "MCP metadata" else "mcp_service"
        review.add("name", f"the metadata has no name; named {snake(name)!r}")
    description = str(data.get("description") or data.get("instructions") or "")
    builder = SpecBuilder(
        name=_service_name(str(name)),
        description=description,
        now=data.get("now"),
        source=source,
        review=review,
        ref_entities=ref_entities,
        integer_keys=integer_keys,
    )
    drafts = [_tool_draft(tool, entities, ref_entities) for tool in tools]
    return builder.build(entities, drafts, rules_text=description)


def _service_name(name: str) -> str:
    words = [w for w in snake(name).split("_") if w not in ("mcp", "server", "service", "api")]
    return "_".join(words) or snake(name)


def _checked_tools(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    tools = data.get("tools")
    if tools is None:
        raise ValueError(
            f"{source}: no 'tools' list; expected a tools/list result like "
            '{"tools": [{"name": ..., "inputSchema": ...}]}'
        )
    if not isinstance(tools, list):
        raise ValueError(f"{source}: 'tools' must be a list, got {type(tools).__name__}")
    if not tools:
        raise ValueError(f"{source}: the 'tools' list is empty")
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise ValueError(
                f"{source}: tools[{index}] has no name (each tool is an object "
                "with a string 'name')"
            )
        if tool["name"] in seen:
            raise ValueError(f"{source}: tool {tool['name']!r} is listed twice")
        seen.add(tool["name"])
        schema = tool.get("inputSchema", {})
        if not isinstance(schema, dict):
            raise ValueError(f"{source}: tool {tool['name']!r}: inputSchema must be an object")
    return tools


# ----- entities from a state schema -----------------------------------------------------------


def _state_entities(
    state: dict[str, Any], review: Review, ref_entities: dict[str, str]
) -> list[EntityDraft]:
    """Each collection in the state (a list of objects, or a map from id to object) is an
    entity named after its property; nested lists of objects become child entities later."""
    resolver = SchemaResolver(state)
    root = resolver.resolve(state)
    drafts = []
    for prop, schema in (root.get("properties") or {}).items():
        resolved = resolver.resolve(schema)
        keyed = False
        item_schema: Any = None
        if resolved.get("type") == "array":
            item_schema = resolved.get("items")
        elif resolved.get("type") == "object" and isinstance(
            resolved.get("additionalProperties"), dict
        ):
            item_schema, keyed = resolved["additionalProperties"], True
        item = resolver.resolve(item_schema) if item_schema is not None else {}
        if item.get("type") != "object" or not item.get("properties"):
            review.add(f"stateSchema.{prop}", "not a collection of objects; not imported")
            continue
        name = plural(snake(prop))
        ref = item.get("x-ref")
        single = snake(ref) if ref and plural(snake(ref)) == name else singular(name)
        draft = EntityDraft(
            name=name,
            singular=single,
            description=str(item.get("description") or resolved.get("description") or ""),
            fields=fields_of(item_schema, resolver),
            keyed_by_map=keyed,
            source=f"stateSchema.{prop}",
        )
        if ref:
            ref_entities[ref] = name
        drafts.append(draft)
    if resolver.external:
        review.add("stateSchema", f"external $refs not followed: {sorted(set(resolver.external))}")
    return drafts


# ----- entities from the tools ------------------------------------------------------------------


def _parsed(tool: dict[str, Any]) -> tuple[NameParts, dict[str, FieldDraft]]:
    """A tool's name read as verb + nouns, and its arguments as field drafts. A bare verb
    ('search', 'fetch') takes its noun from the description ('Fetch a document by id')."""
    schema = tool.get("inputSchema") or {}
    parts = read_name(tool["name"])
    if parts.verb and not parts.nouns:
        text = str(tool.get("description") or "").lower()
        found = re.search(r"\b(?:a|an|the|one|some|all)\s+([a-z]{3,})", text)
        if found and found.group(1) not in NAME_FILLER | NAME_STOPS:
            parts.nouns = [found.group(1)]
    return parts, fields_of(schema, SchemaResolver(schema))


def _tool_entities(tools: list[dict[str, Any]], review: Review) -> list[EntityDraft]:
    """Entities named by identifiers (`note_id`) and by the nouns of tools that create, get
    or return a thing; their fields from create/update arguments, lookups and outputs."""
    parsed = [(tool, *_parsed(tool)) for tool in tools]
    nouns: dict[str, EntityDraft] = {}

    def entity(single: str) -> EntityDraft:
        if single not in nouns:
            nouns[single] = EntityDraft(
                name=plural(single), singular=single, source="tool identifiers"
            )
        return nouns[single]

    for _, _, args in parsed:
        for name in args:
            base = _id_base(name)
            if base:
                entity(base).identifier_only = True
    for tool, parts, args in parsed:
        phrase = "_".join(parts.nouns)
        if not phrase or match_entity(parts.nouns, _names(nouns)):
            continue
        kind = verb_kind(parts, False, singular(phrase) != phrase)
        output = _output_object(tool, phrase)
        created = kind == "create" and not _moves_between(args)
        returned = output is not None and any(_is_key(f, singular(phrase)) for f in output.values())
        if created or returned:
            entity(singular(phrase)).source = f"tool {tool['name']}"
    names = _names(nouns)
    sightings = []
    for tool, parts, args in parsed:
        target = match_entity(parts.nouns, names) or _key_entity(args, names)
        if target is not None:
            draft = next(d for d in nouns.values() if d.name == target)
            kind = verb_kind(parts, _takes_key(args, draft), _plural(parts.nouns))
            sightings.append((tool, parts, args, draft, kind))
    unnamed: dict[str, set[str]] = {}
    for tool, _, _, draft, _ in sightings:  # what a tool returns says most about a thing
        for fd in (_output_object(tool, draft.singular) or {}).values():
            if fd.name not in PAGING_ARGS:
                _add(draft, fd, required=fd.required)
                base = _id_base(fd.name)
                if base and base != draft.singular and base not in names:
                    unnamed.setdefault(draft.name, set()).add(fd.name)
    order = {"create": 0, "update": 1}
    for _, parts, args, draft, kind in sorted(sightings, key=lambda s: order.get(s[4], 2)):
        if _moves_between(args):
            continue
        for fd in args.values():
            base = _id_base(fd.name)
            if _is_control(fd.name) or (
                base and base != draft.singular and kind not in ("create", "update")
            ):
                continue
            if (
                base
                and base != draft.singular
                and fd.name not in draft.fields
                and (unnamed.get(draft.name))
            ):
                continue  # the returned object names this reference otherwise (assignee_id)
            if kind == "create":
                _add(draft, fd, required=fd.required)
            elif kind == "update":
                _add(draft, fd, required=False)
            elif base == draft.singular:
                _add(draft, fd, required=True)
            elif (
                kind in ("list", "get") and not _is_range(fd.name) and not _known_as(draft, fd.name)
            ):
                _add(draft, fd, required=False)
        if parts.by and parts.by in args and not _known_as(draft, parts.by):
            _add(draft, args[parts.by], required=False)
    drafts = list(nouns.values())
    for draft in drafts:
        if any(not _is_key(f, draft.singular) for f in draft.fields.values()):
            draft.identifier_only = False
        draft.key = next(
            (f.name for f in draft.fields.values() if _is_key(f, draft.singular)), None
        )
    return drafts


def _known_as(draft: EntityDraft, name: str) -> bool:
    """Whether `name` (a filter argument such as 'tag') is a field already, under this or a
    close name ('tags')."""
    forms = {name, singular(name), plural(name), *SYNONYMS.get(name, ())}
    return any(form in draft.fields for form in forms)


def _names(nouns: dict[str, EntityDraft]) -> dict[str, str]:
    found: dict[str, str] = {}
    for single, draft in nouns.items():
        found[single] = draft.name
        found[draft.name] = draft.name
    return found


def _add(draft: EntityDraft, fd: FieldDraft, required: bool) -> None:
    copy = FieldDraft(**{**fd.__dict__, "required": required})
    if copy.name in draft.fields:
        existing = draft.fields[copy.name]
        existing.merge(copy)
        existing.required = existing.required or required
    else:
        draft.fields[copy.name] = copy


def _id_base(name: str) -> str | None:
    """'calendar_id' -> 'calendar'; 'from_account_id' -> 'account'; 'id' -> None."""
    if not name.endswith("_id") or name == "_id":
        return None
    base = name[:-3]
    for prefix in ("from_", "to_", "source_", "destination_", "target_", "parent_", "new_"):
        if base.startswith(prefix) and len(base) > len(prefix):
            return base[len(prefix) :]
    return base


def _is_key(fd: FieldDraft, single: str) -> bool:
    return fd.name in (f"{single}_id", "id") or fd.name == f"{single.rsplit('_', 1)[-1]}_id"


def _takes_key(args: dict[str, FieldDraft], draft: EntityDraft) -> bool:
    return any(_is_key(fd, draft.singular) for fd in args.values())


def _key_entity(args: dict[str, FieldDraft], names: dict[str, str]) -> str | None:
    for name in args:
        base = _id_base(name)
        if base and base in names and not name.startswith(("from_", "to_")):
            return names[base]
    return None


def _plural(nouns: list[str]) -> bool:
    return bool(nouns) and singular(nouns[-1]) != nouns[-1]


def _is_control(name: str) -> bool:
    return name in CONTROL_ARGS or name.startswith(("include_", "notify_", "send_"))


def _is_range(name: str) -> bool:
    if name.endswith("_id"):
        return False
    bounds = (
        "after",
        "before",
        "since",
        "until",
        "from",
        "to",
        "min",
        "max",
        "start",
        "end",
        "earliest",
        "latest",
    )
    parts = name.split("_")
    return len(parts) > 1 and (parts[0] in bounds or parts[-1] in bounds) or name in bounds


def _moves_between(args: dict[str, FieldDraft]) -> bool:
    """Whether arguments name two ends (from_x_id, to_x_id): a transfer, not a thing."""
    names = set(args)
    return any(n.startswith(("from_", "source_")) for n in names) and any(
        n.startswith(("to_", "destination_", "target_")) for n in names
    )


def _output_object(tool: dict[str, Any], single: str) -> dict[str, FieldDraft] | None:
    """The fields of the thing a tool returns: the output object itself, a property named
    after the thing, or the items of a list property."""
    schema = tool.get("outputSchema")
    if not isinstance(schema, dict):
        return None
    resolver = SchemaResolver(schema)
    fields = fields_of(schema, resolver)
    if not fields:
        return None
    for name in (single, plural(single), "items", "results", "data", "records"):
        fd = fields.get(name)
        if fd is not None and fd.type == "object" and fd.properties:
            return fd.properties
        if fd is not None and fd.type == "array" and fd.items and fd.items.properties:
            return fd.items.properties
    arrays = [f for f in fields.values() if f.type == "array" and f.items and f.items.properties]
    if len(arrays) == 1 and len(fields) <= 3:
        return arrays[0].items.properties  # type: ignore[union-attr]
    return fields


# ----- tools ------------------------------------------------------------------------------------


def _tool_draft(
    tool: dict[str, Any], entities: list[EntityDraft], ref_entities: dict[str, str]
) -> ToolDraft:
    parts, args = _parsed(tool)
    names: dict[str, str] = {}
    for draft in entities:
        names[draft.singular] = draft.name
        names[draft.name] = draft.name
        names.setdefault(singular(draft.name), draft.name)
    name = tool["name"]
    entity = match_entity(parts.nouns, names)
    unresolved = ""
    how = f"name {name!r} names {'_'.join(parts.nouns) or 'nothing'}"
    if entity is None:
        entity = _output_entity(tool, ref_entities, names)
        how = "its output is one" if entity else how
    if entity is None:
        keyed = _key_entity(args, names)
        subject = "_".join(parts.nouns)
        if keyed is not None and (not subject or _is_attribute(subject, keyed, entities)):
            entity, how = keyed, f"it takes the key of {keyed}"
        elif subject:
            unresolved = f"its subject {subject!r} is not an entity of this service"
    draft = next((d for d in entities if d.name == entity), None)
    own_key = draft is not None and _takes_key(args, draft)
    kind = verb_kind(parts, own_key, _plural(parts.nouns))
    key = next((a for a in args if draft is not None and _is_key(args[a], draft.singular)), None)
    verb = parts.verb or name
    why = f"{kind}: verb '{verb}'" if parts.verb else f"{kind}: no known verb in {name!r}"
    why += f", {how}" + (f", takes the key {key}" if key else "")
    include = []
    if draft is not None:
        output = _output_object(tool, draft.singular) or {}
        include = [
            names[fd.name]
            for fd in output.values()
            if fd.type == "array" and fd.name in names and names[fd.name] != draft.name
        ]
    return ToolDraft(
        name=name,
        description=str(tool.get("description") or ""),
        kind=kind,
        verb=verb,
        entity=entity,
        args=list(args.values()),
        why=why,
        by=parts.by,
        include=include,
        unresolved=unresolved,
    )


def _output_entity(
    tool: dict[str, Any], ref_entities: dict[str, str], names: dict[str, str]
) -> str | None:
    """The entity a tool's output schema refers to ($ref into the state's $defs)."""
    schema = tool.get("outputSchema")
    if not isinstance(schema, dict):
        return None
    resolver = SchemaResolver(schema)
    resolved = resolver.resolve(schema)
    candidates = [resolved]
    for sub in (resolved.get("properties") or {}).values():
        sub = resolver.resolve(sub)
        candidates.append(sub)
        if sub.get("type") == "array":
            candidates.append(resolver.resolve(sub.get("items")))
    for candidate in candidates:
        ref = candidate.get("x-ref") or candidate.get("title")
        if ref and ref in ref_entities:
            return ref_entities[ref]
        if ref and snake(ref) in names:
            return names[snake(ref)]
    return None


def _is_attribute(subject: str, entity: str, entities: list[EntityDraft]) -> bool:
    """Whether a tool's subject ('balance' in get_balance) is a field of `entity`."""
    draft = next(d for d in entities if d.name == entity)
    words = subject.split("_")
    return any(w in draft.fields or plural(w) in draft.fields for w in words) or any(
        w in draft.singular.split("_") for w in words
    )
