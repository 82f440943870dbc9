"""Importers: MCP tool metadata and OpenAPI documents become specs that validate, map each tool
to the expected pattern, flag what was defaulted, write YAML that round-trips, import the same
way every time, and compile into verified packages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from envfactory_gym.generators.importers import (
    ImportResult,
    import_mcp,
    import_openapi,
    render_spec,
    write_spec,
)
from envfactory_gym.generators.importers.common import plural, read_name, singular, snake
from envfactory_gym.generators.spec import Spec, load_spec

FIXTURES = Path(__file__).parent / "fixtures" / "importers"
SOURCES = {
    "calendar": "calendar_mcp.json",  # MCP with a stateSchema
    "notes": "notes_mcp.json",  # MCP without one, no people in it
    "payments": "payments_mcp.json",  # MCP without one, output schemas, a transfer
    "helpdesk": "helpdesk_mcp.json",  # a JSON-RPC tools/list response, camelCase names
    "clinic": "clinic_openapi.yaml",  # OpenAPI 3.0 YAML: allOf, $ref parameters, actions
    "library": "library_openapi.json",  # OpenAPI 3.1 JSON: type lists, inline schemas
}
PATTERNS = {
    "calendar": {
        "list_calendars": "list", "get_calendar": "get", "create_calendar": "create",
        "list_events": "list", "get_event": "get", "create_event": "create",
        "update_event": "update", "cancel_event": "transition", "delete_event": "delete",
        "find_user": "get", "list_attendees": "list",
    },
    "notes": {
        "list_notebooks": "list", "create_notebook": "create", "rename_notebook": "update",
        "search_notes": "list", "get_note": "get", "create_note": "create",
        "update_note": "update", "move_note": "update", "pin_note": "update",
        "archive_note": "transition", "restore_note": "transition", "delete_note": "delete",
        "export_note": "get", "find_notebook": "get",
    },
    "payments": {
        "find_customer": "get", "get_customer": "get", "list_accounts": "list",
        "get_account_balance": "get", "freeze_account": "transition",
        "unfreeze_account": "transition", "transfer_funds": "transfer",
        "list_transactions": "list", "get_transaction": "get", "list_payees": "list",
        "add_payee": "create", "remove_payee": "delete", "schedule_payment": "create",
        "list_payments": "list", "cancel_payment": "transition", "get_payee": "get",
        "get_payment": "get",
    },
    "helpdesk": {
        "search_tickets": "list", "get_ticket": "get", "create_ticket": "create",
        "update_ticket_priority": "update", "assign_ticket": "update", "add_comment": "create",
        "solve_ticket": "transition", "reopen_ticket": "transition", "list_agents": "list",
        "find_agent": "get", "list_comments": "list", "get_comment": "get",
    },
    "clinic": {
        "list_owners": "list", "create_owner": "create", "get_owner": "get",
        "update_owner": "update", "list_owner_pets": "list", "add_pet": "create",
        "get_pet": "get", "update_pet": "update", "delete_pet": "delete", "list_vets": "list",
        "get_vet": "get", "list_appointments": "list", "book_appointment": "create",
        "get_appointment": "get", "reschedule_appointment": "update",
        "cancel_appointment": "transition", "check_in_appointment": "transition",
    },
    "library": {
        "find_members": "list", "get_member": "get", "list_member_loans": "list",
        "search_catalog": "list", "get_book": "get", "checkout_book": "create",
        "return_book": "transition", "list_holds": "list", "place_hold": "create",
        "cancel_hold": "delete", "get_loan": "get", "get_hold": "get",
    },
}  # fmt: skip
DROPPED = {
    "calendar": {"respond_to_invitation", "find_free_time"},
    "notes": {"list_tags"},
    "payments": {"get_exchange_rate"},
    "helpdesk": {"get_sla_policy"},
    "clinic": {"send_appointment_reminder"},
    "library": {"renew_loan"},
}
ADDED = {
    "calendar": {"find_user", "list_attendees"},
    "notes": {"find_notebook"},
    "payments": {"get_payee", "get_payment"},
    "helpdesk": {"find_agent", "list_comments", "get_comment"},
    "clinic": set(),
    "library": {"get_loan", "get_hold"},
}
PLACEHOLDER = re.compile(r"\{([a-z_]+)(?:\.([a-z_]+))?(?:\|(\w+))?\}")


def _import(name: str) -> ImportResult:
    path = FIXTURES / SOURCES[name]
    return import_openapi(path) if "openapi" in path.name else import_mcp(path)


@pytest.fixture(scope="module")
def imported() -> dict[str, ImportResult]:
    return {name: _import(name) for name in SOURCES}


# ----- the spec -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SOURCES)
def test_imported_spec_validates_and_compiles_as_data(imported, name):
    result = imported[name]
    spec = Spec.model_validate(result.spec.model_dump())
    assert spec.now == "2025-06-02T09:00:00" and spec.seed == 0
    assert all(tool.pattern != "custom" for tool in spec.tools)
    for entity in spec.entities:
        assert entity.describe, entity.name
        assert entity.count or entity.per, entity.name
        for column in entity.columns:
            if column.name != entity.key:
                assert column.seed is not None or column.nullable, f"{entity.name}.{column}"
        if entity.id_prefix:
            assert re.fullmatch(r"[A-Z]{2,4}\d?", entity.id_prefix)


@pytest.mark.parametrize("name", SOURCES)
def test_each_tool_maps_to_the_expected_pattern(imported, name):
    result = imported[name]
    assert {t.name: t.pattern for t in result.spec.tools} == PATTERNS[name]
    dropped = {t for t, how in result.inferred.items() if how.startswith("dropped")}
    assert dropped == DROPPED[name]
    added = {t for t, how in result.inferred.items() if how.startswith("added")}
    assert added == ADDED[name]
    assert set(result.inferred) == set(PATTERNS[name]) | DROPPED[name]
    for tool in DROPPED[name] | ADDED[name]:
        assert any(item.startswith(f"tools.{tool}:") for item in result.review), tool


@pytest.mark.parametrize("name", SOURCES)
def test_defaults_are_flagged_for_review(imported, name):
    result = imported[name]
    assert result.review == result.spec.needs_review
    assert len(result.review) == len(set(result.review))
    for entity in result.spec.entities:
        field = "per" if entity.per else "count"
        assert f"entities.{entity.name}.{field}: no volume information" in " ".join(
            result.review
        ), entity.name
    if not result.spec.policy:
        assert any(item.startswith("policy:") for item in result.review)
    for rule in result.spec.policy:
        assert any(item.startswith(f"policy.{rule.id}:") for item in result.review)


@pytest.mark.parametrize("name", SOURCES)
def test_the_actor_can_be_found_from_what_users_know(imported, name):
    spec = imported[name].spec
    actor = spec.entity(spec.actor.entity)
    for known in spec.actor.knows:
        assert actor.column(known).known_to_user
    finders = [t for t in spec.tools if t.entity == actor.name and t.pattern == "get" and t.by]
    listers = [
        f
        for t in spec.tools
        if t.entity == actor.name and t.pattern == "list"
        for f in t.filters
        if f.op == "eq" and f.column in spec.actor.knows and f"{{{f.column}}}" in actor.describe
    ]
    assert any(t.by in spec.actor.knows for t in finders) or listers


@pytest.mark.parametrize("name", SOURCES)
def test_rows_below_the_actor_can_be_listed_by_their_parent(imported, name):
    spec = imported[name].spec
    for entity in spec.entities:
        if entity.per is None or entity.name == spec.actor.entity:
            continue
        lists = [t for t in spec.tools if t.pattern == "list" and t.entity == entity.name]
        assert any(f.column == entity.per.column for t in lists for f in t.filters), entity.name


@pytest.mark.parametrize("name", SOURCES)
def test_intents_are_in_a_users_words(imported, name):
    result = imported[name]
    spec = result.spec
    tool_names = {t.name for t in spec.tools}
    labels = {e.label.replace(" ", "_"): e for e in spec.entities}
    by_tool = {i.tool: i for i in spec.intents}
    for tool in spec.tools:
        wanted = tool.pattern == "get" or tool.writes
        flagged = any(item.startswith(f"intents.{tool.name}: no intent") for item in result.review)
        assert (tool.name in by_tool) == (wanted and not flagged), tool.name
    for intent in spec.intents:
        tool = spec.tool(intent.tool)
        assert intent.kind == ("write" if tool.writes else "read")
        assert len(intent.templates) >= 2 and intent.held_out
        assert intent.kind == "write" or intent.ask
        for template in [*intent.templates, *intent.held_out]:
            literal = PLACEHOLDER.sub(" ", template).lower()
            assert not re.search(r"\d", literal), template  # no ids
            assert not any(re.search(rf"\b{n}\b", literal) for n in tool_names), template
            for owner, field, _ in PLACEHOLDER.findall(template):
                if owner == "new":
                    assert field in intent.change, template
                elif owner in ("from", "to"):  # a transfer's two rows
                    assert tool.pattern == "transfer" and field == "describe", template
                elif owner != "describe":
                    assert owner in labels and field == "describe", template
        for gen in intent.change.values():
            assert gen.kind not in ("ref", "copy", "after", "id", "sequence")


def test_without_a_state_schema_entities_come_from_the_tools(imported):
    notes = imported["notes"]
    assert any("no stateSchema" in item for item in notes.review)
    spec = notes.spec
    assert {e.name for e in spec.entities} == {"notebooks", "notes"}
    note = spec.entity("notes")
    assert note.column("notebook_id").references == "notebooks"
    assert note.column("status").enum == ["active", "archived", "trashed"]
    assert note.column("created_at").type == "datetime"
    assert note.column("tags").nullable  # a list, stored as text
    assert "entities.notes.columns.tags" in " ".join(notes.review)
    assert any(item.startswith("actor:") for item in notes.review)  # no people: flagged
    assert spec.tool("pin_note").fields == ["pinned"]  # pin -> the pinned flag
    assert spec.tool("restore_note").from_states == ["archived", "trashed"]
    # "Trashed notes cannot be archived" is a policy rule; the tool itself allows it, so that
    # refusal tasks can check that the agent follows the rule
    assert spec.tool("archive_note").from_states == ["active", "trashed"]
    rule = next(r for r in spec.policy if r.tool == "archive_note")
    assert rule.forbids == "status IN ('trashed')"
    assert "tools.archive_note.from_states" in " ".join(notes.review)


def test_with_a_state_schema_entities_come_from_it(imported):
    result = imported["calendar"]
    spec = result.spec
    assert [e.name for e in spec.entities] == ["users", "calendars", "events", "attendees"]
    events = spec.entity("events")
    assert events.key == "event_id" and events.id_prefix == "EVE" and events.id_digits == 5
    assert events.column("start_time").type == "datetime"
    assert events.column("location").nullable  # Optional[str] = None
    assert events.column("status").default == "confirmed"
    assert events.column("end_time").seed.kind == "after"
    assert events.per.column == "calendar_id"
    assert events.describe == "the {title} event on {start_time|date}"
    assert spec.entity("attendees").column("event_id").references == "events"  # nested list
    assert spec.entity("calendars").column("owner_id").references == "users"  # a role name
    assert spec.actor.entity == "users" and spec.actor.knows[0] == "email"
    assert spec.entity("users").column("email").unique
    cancel = spec.tool("cancel_event")
    assert (cancel.to_state, cancel.from_states) == ("cancelled", ["confirmed", "tentative"])
    assert "tools.cancel_event.from_states" in " ".join(result.review)
    rule = next(r for r in spec.policy if r.tool == "cancel_event")
    assert rule.forbids == "start_time <= :now"
    listed = spec.tool("list_events")
    assert [(f.column, f.op, f.argument) for f in listed.filters] == [
        ("calendar_id", "eq", "calendar_id"),
        ("start_time", "gte", "time_min"),
        ("start_time", "lte", "time_max"),
        ("title", "contains", "query"),
    ]
    assert listed.limit == 25


def test_payments_transfer_transitions_and_policy(imported):
    spec = imported["payments"].spec
    move = spec.tool("transfer_funds").transfer
    assert (move.entity, move.column, move.from_arg, move.to_arg, move.amount_arg) == (
        "accounts",
        "balance",
        "from_account_id",
        "to_account_id",
        "amount",
    )
    assert move.ledger == "transactions"
    assert move.ledger_fields["from_account_id"] == "from"
    assert move.ledger_fields["created_at"] == "now"
    assert spec.tool("find_customer").by == "email"
    cancel = spec.tool("cancel_payment")
    assert cancel.from_states == ["scheduled", "processing", "paid", "failed"]  # see the rule
    assert spec.tool("freeze_account").from_states == ["active", "closed"]
    assert spec.tool("unfreeze_account").from_states == ["frozen"]  # undoes freeze
    forbids = {r.tool: r.forbids for r in spec.policy}
    assert forbids["cancel_payment"] == "status NOT IN ('scheduled')"
    assert forbids["freeze_account"] == "status IN ('closed')"
    accounts = spec.entity("accounts")
    assert accounts.column("balance").seed.kind == "money"
    assert accounts.per.column == "customer_id"


def test_openapi_resources_operations_and_schemas(imported):
    result = imported["clinic"]
    spec = result.spec
    owners = spec.entity("owners")
    assert [c.name for c in owners.columns][:4] == ["owner_id", "first_name", "last_name", "email"]
    assert owners.column("created_at").type == "datetime"  # from allOf
    assert owners.column("address").nullable
    assert owners.id_prefix and "integers" in " ".join(result.review)  # int64 ids flagged
    pets = spec.entity("pets")
    assert pets.column("species").enum == ["dog", "cat", "rabbit", "bird", "reptile"]  # $ref
    assert pets.column("birth_date").type == "date"
    assert pets.column("weight_kg").type == "real"
    assert pets.column("owner_id").references == "owners"
    assert "microchip_code" in [c.name for c in pets.columns]  # *_id that is no reference
    assert spec.tool("list_owner_pets").filters[0].column == "owner_id"  # nested path
    assert spec.tool("add_pet").fields[0] == "owner_id"
    listed = spec.tool("list_appointments")
    assert [(f.column, f.op, f.argument) for f in listed.filters] == [
        ("pet_id", "eq", "pet_id"),
        ("status", "eq", "status"),
        ("starts_at", "gte", "starts_at_from"),  # 'from' is a Python keyword
        ("starts_at", "lte", "to"),
    ]
    check_in = spec.tool("check_in_appointment")
    assert check_in.to_state == "checked_in"
    rule = next(r for r in spec.policy if r.tool == "check_in_appointment")
    assert rule.forbids == "status NOT IN ('scheduled')"
    cancel = next(r for r in spec.policy if r.tool == "cancel_appointment")
    assert "+24 hours" in (cancel.forbids or "")
    assert "X-Request-Id" in " ".join(result.review)
    assert spec.actor.entity == "owners"
    kept = import_openapi(FIXTURES / SOURCES["clinic"], integer_keys=True).spec
    assert kept.entity("owners").id_prefix == "" and kept.entity("owners").column(
        "owner_id"
    ).type == ("integer")


def test_openapi_31_json_inline_schemas_and_path_keys(imported):
    spec = imported["library"].spec
    assert spec.entity("books").key == "isbn"  # /books/{isbn}
    assert spec.entity("loans").column("isbn").references == "books"
    assert spec.entity("members").column("phone").nullable  # type: [string, "null"]
    holds = spec.entity("holds")  # no named schema: read from the response
    assert holds.column("status").enum == ["waiting", "ready", "collected", "cancelled"]
    assert spec.tool("cancel_hold").pattern == "delete"
    assert spec.tool("search_catalog").filters[0].argument == "q"


def test_json_and_yaml_openapi_import_alike(tmp_path):
    document = yaml.safe_load((FIXTURES / SOURCES["clinic"]).read_text(encoding="utf-8"))
    as_json = tmp_path / "clinic.json"
    as_json.write_text(json.dumps(document), encoding="utf-8")
    assert import_openapi(as_json).spec == _import("clinic").spec
    assert import_openapi(document).spec == _import("clinic").spec


# ----- writing --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SOURCES)
def test_written_yaml_round_trips_with_review_comments(imported, tmp_path, name):
    result = imported[name]
    path = write_spec(result, tmp_path / f"{name}.yaml", source=SOURCES[name])
    assert load_spec(path) == result.spec
    text = path.read_text(encoding="utf-8")
    header = text.split("\nname:", 1)[0]
    assert f"# needs review ({len(result.review)}):" in header
    for item in result.review:
        assert " ".join(item.split()) in header
    assert "  # needs review: " in text.split("\nname:", 1)[1]  # inline, on the fields
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.yaml"]  # no temporary left


@pytest.mark.parametrize("name", SOURCES)
def test_importing_is_deterministic(tmp_path, name):
    first = write_spec(_import(name), tmp_path / "a.yaml").read_bytes()
    second = write_spec(_import(name), tmp_path / "b.yaml").read_bytes()
    assert first == second
    assert render_spec(_import(name)).encode() == first


# ----- bad input ------------------------------------------------------------------------------


def test_bad_mcp_input_is_a_clear_value_error(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{'tools': [", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        import_mcp(broken)
    with pytest.raises(ValueError, match="cannot read"):
        import_mcp(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="no 'tools' list"):
        import_mcp({"name": "x"})
    with pytest.raises(ValueError, match="'tools' must be a list"):
        import_mcp({"tools": {"get_x": {}}})
    with pytest.raises(ValueError, match="empty"):
        import_mcp({"tools": []})
    with pytest.raises(ValueError, match=r"tools\[1\] has no name"):
        import_mcp({"tools": [{"name": "get_note"}, {"description": "x"}]})
    with pytest.raises(ValueError, match="listed twice"):
        import_mcp({"tools": [{"name": "get_note"}, {"name": "get_note"}]})
    with pytest.raises(ValueError, match="stateSchema"):
        import_mcp({"tools": [{"name": "get_note"}], "stateSchema": []})
    with pytest.raises(ValueError, match="no entities"):
        import_mcp({"tools": [{"name": "ping", "inputSchema": {"type": "object"}}]})


def test_bad_openapi_input_is_a_clear_value_error(tmp_path):
    with pytest.raises(ValueError, match="2.0 is not supported"):
        import_openapi({"swagger": "2.0", "paths": {}})
    with pytest.raises(ValueError, match="no 'openapi' field"):
        import_openapi({"paths": {"/x": {}}})
    with pytest.raises(ValueError, match="no 'paths'"):
        import_openapi({"openapi": "3.0.0", "info": {"title": "x"}})
    garbage = tmp_path / "api.yaml"
    garbage.write_text("openapi: [3.0\n  paths: {", encoding="utf-8")
    with pytest.raises(ValueError, match="neither JSON nor YAML"):
        import_openapi(garbage)
    dangling = {
        "openapi": "3.0.0",
        "paths": {
            "/things/{id}": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"application/json": {"schema": {"$ref": "#/components/x"}}},
                        }
                    }
                }
            }
        },
    }
    with pytest.raises(ValueError, match="unresolvable \\$ref"):
        import_openapi(dangling)


# ----- inference units ------------------------------------------------------------------------


def test_naming_helpers():
    assert [singular(w) for w in ("categories", "addresses", "statuses", "people", "notes")] == [
        "category",
        "address",
        "status",
        "person",
        "note",
    ]
    assert [plural(w) for w in ("category", "address", "status", "person", "notes")] == [
        "categories",
        "addresses",
        "statuses",
        "people",
        "notes",
    ]
    assert snake("getUserByEmail") == "get_user_by_email" and snake("X-Request-Id") == (
        "x_request_id"
    )
    parts = read_name("get_user_by_email")
    assert (parts.verb, parts.nouns, parts.by) == ("get", ["user"], "email")
    assert read_name("event_create").verb == "create"
    assert read_name("checkInAppointment").verb == "check_in"
    marked = read_name("mark_invoice_paid")
    assert (marked.verb, marked.nouns, marked.marked) == ("paid", ["invoice"], True)


def test_a_service_never_seen_before():
    """Inference rests on structure and naming, not on the fixtures: a small todo server."""
    metadata = {
        "name": "todo",
        "tools": [
            {
                "name": "listTodoLists",
                "description": "List the user's to-do lists.",
                "inputSchema": {"type": "object", "properties": {"ownerEmail": {"type": "string"}}},
            },
            {
                "name": "addItem",
                "description": "Add an item to a list.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "listId": {"type": "string"},
                        "text": {"type": "string"},
                        "dueDate": {"type": "string", "format": "date"},
                    },
                    "required": ["listId", "text"],
                },
            },
            {
                "name": "completeItem",
                "description": "Tick an item off.",
                "inputSchema": {
                    "type": "object",
                    "properties": {"itemId": {"type": "string"}},
                    "required": ["itemId"],
                },
                "outputSchema": {
                    "type": "object",
                    "properties": {
                        "itemId": {"type": "string"},
                        "listId": {"type": "string"},
                        "text": {"type": "string"},
                        "state": {"type": "string", "enum": ["open", "done"]},
                    },
                },
            },
            {
                "name": "deleteItem",
                "description": "Delete an item.",
                "inputSchema": {
                    "type": "object",
                    "properties": {"itemId": {"type": "string"}},
                    "required": ["itemId"],
                },
            },
        ],
    }
    result = import_mcp(metadata)
    spec = result.spec
    assert {e.name for e in spec.entities} == {"lists", "items"}
    assert spec.entity("items").column("list_id").references == "lists"
    assert spec.entity("items").column("due_date").type == "date"
    done = spec.tool("complete_item")
    assert (done.pattern, done.state_column, done.to_state) == ("transition", "state", "done")
    assert spec.tool("add_item").pattern == "create"
    assert spec.tool("delete_item").pattern == "delete"
    assert any(item.startswith("policy:") for item in result.review)  # no rules stated
    assert any(item.startswith("entities.lists") for item in result.review)


# ----- generation -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SOURCES)
def test_imported_specs_generate_and_verify_unattended(imported, tmp_path, name):
    from envfactory_gym.generators.emit import generate_package

    report = generate_package(imported[name].spec, tmp_path / name)
    assert report.verified is True
    assert report.tasks >= 54  # the default 60, less at most the 10% the generator tolerates
