"""The spec: one service described as data (authored as YAML), compiled by `emit` into a package.

A spec names the service, its entities (tables with typed columns, keys, constraints and how
their seed rows are generated), its tools (declarative patterns, or a short custom body), the
policy rules an agent must follow, and the intents users come with (what they ask, in templates
of their own words). Everything downstream (schema, seed rows, tools.py, tasks) derives from it
deterministically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

IDENTIFIER = r"^[a-z][a-z0-9_]*$"
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)(?:\|(\w+))?\}")
"""A template's `{column}`, `{label.column}` or `{new.argument}`, with an optional `|format`."""
STYLES = ("date", "time", "datetime", "money", "words")
ColumnType = Literal["text", "integer", "real", "boolean", "date", "datetime"]
Pattern = Literal["get", "list", "create", "update", "delete", "transition", "transfer", "custom"]
ValueKind = Literal[
    "id", "first_name", "last_name", "full_name", "email", "phone", "city", "street_address",
    "company", "choice", "int", "money", "date", "datetime", "after", "bool", "ref", "template",
    "copy", "sequence",
]  # fmt: skip


class SpecError(ValueError):
    """A spec that cannot compile; the message names the field and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValueGen(_Model):
    """How a column's seed values (or a task's new values) are generated, from a seeded RNG.

    Kinds: `id` (the entity's key: prefix + zero-padded number); `first_name`, `last_name`,
    `full_name`, `email` (from the row's names and `domain`), `phone`, `city`,
    `street_address`, `company`; `choice` (`values`, optional `weights`); `int` and `money`
    (`min`..`max`, money with cents); `date` and `datetime` (`start`..`end`, datetimes on a
    `step_minutes` grid); `after` (a datetime `min`..`max` minutes after column `column`);
    `bool` (`p` true); `ref` (a key of `entity`); `template` (a format string over the row's
    columns and `lists` of words); `copy` (`column` of the row that FK column `via` points
    to); `sequence` (`start` + row number * `step`).
    """

    kind: ValueKind
    values: list[Any] = Field(default_factory=list, description="choice: the values.")
    weights: list[float] = Field(default_factory=list, description="choice: relative weights.")
    min: float | None = Field(None, description="int, money, after (minutes): lower bound.")
    max: float | None = Field(None, description="int, money, after (minutes): upper bound.")
    start: str | int | None = Field(None, description="date/datetime: first; sequence: first.")
    end: str | None = Field(None, description="date/datetime: last (inclusive).")
    step: int = Field(1, description="sequence: increment.")
    step_minutes: int = Field(30, gt=0, description="datetime: the grid values fall on.")
    entity: str | None = Field(None, description="ref: the entity whose key is taken.")
    column: str | None = Field(None, description="after, copy: the column it derives from.")
    via: str | None = Field(None, description="copy: the foreign-key column to follow.")
    template: str | None = Field(None, description="template: e.g. '{adjective} {noun}'.")
    lists: dict[str, list[str]] = Field(default_factory=dict, description="template: words.")
    domain: str = Field("example.com", description="email: the mail domain.")
    p: float = Field(0.5, ge=0, le=1, description="bool: probability of true.")
    null_fraction: float = Field(0.0, ge=0, lt=1, description="Share of NULLs (nullable only).")


class Column(_Model):
    """One column: its SQL type, constraints, and how its seed values are generated."""

    name: str = Field(pattern=IDENTIFIER)
    type: ColumnType = "text"
    description: str = ""
    nullable: bool = False
    unique: bool = False
    enum: list[str] = Field(default_factory=list, description="Allowed values (a CHECK).")
    min: float | None = Field(None, description="CHECK column >= min.")
    max: float | None = Field(None, description="CHECK column <= max.")
    references: str | None = Field(None, description="Entity whose key this column holds.")
    default: Any = Field(None, description="SQL default (create tools use it when omitted).")
    seed: ValueGen | None = Field(None, description="How seed rows fill it (None: default).")
    known_to_user: bool = Field(
        True, description="Whether a user would know this value (ids: no, names: yes)."
    )


class ChildCount(_Model):
    """Rows generated per row of a parent: `min`..`max` children for each parent."""

    column: str = Field(description="The foreign-key column that points at the parent.")
    min: int = Field(0, ge=0)
    max: int = Field(ge=1)


class Entity(_Model):
    """One table. Its key is `key`; with an `id_prefix` keys read like 'ORD00042'."""

    name: str = Field(pattern=IDENTIFIER, description="Table name, plural: 'orders'.")
    singular: str = Field("", description="How a person calls one row: 'order'.")
    description: str = ""
    key: str = Field(description="Primary-key column.")
    id_prefix: str = Field("", description="Key prefix; empty: integer keys.")
    id_digits: int = Field(5, ge=3, le=9)
    user_knows_key: bool = Field(
        False, description="Whether users know keys (a confirmation code) or must have them "
        "looked up (internal ids)."
    )  # fmt: skip
    columns: list[Column]
    checks: list[str] = Field(default_factory=list, description="Table CHECKs, SQL.")
    unique_together: list[list[str]] = Field(default_factory=list)
    count: int = Field(0, ge=0, description="Seed rows (used when `per` is not set).")
    per: ChildCount | None = Field(None, description="Seed rows per parent row instead.")
    describe: str = Field(
        "", description="How a user refers to one row, a template over its columns: "
        "'the {title} meeting on {start|date}'."
    )  # fmt: skip

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise SpecError(f"entity {self.name!r} has no column {name!r}")

    @property
    def label(self) -> str:
        return self.singular or self.name.rstrip("s")


class Filter(_Model):
    """A list tool's filter: argument `arg` (default: the column) compared with `column`."""

    column: str
    op: Literal["eq", "gte", "lte", "contains"] = "eq"
    arg: str = ""
    required: bool = False

    @property
    def argument(self) -> str:
        return self.arg or self.column


class Require(_Model):
    """A hard constraint the tool enforces: the call fails with `error` unless `sql` holds.

    `sql` is an SQL expression over the target row's columns (for a create tool, the row its
    first foreign-key argument points to) and the named arguments (`:amount`), `:now` and
    `:today`."""

    sql: str
    error: str


class Transfer(_Model):
    """Move `amount` of `column` from one row of `entity` to another, atomically; optionally
    record it as a row of `ledger` (its key derived, `ledger_fields` mapping its columns to
    'from', 'to', 'amount', 'now', an argument name, or a quoted literal)."""

    entity: str
    column: str
    from_arg: str = "from_id"
    to_arg: str = "to_id"
    amount_arg: str = "amount"
    ledger: str | None = None
    ledger_fields: dict[str, str] = Field(default_factory=dict)


class Argument(_Model):
    """A custom tool's argument."""

    name: str = Field(pattern=IDENTIFIER)
    type: ColumnType = "text"
    description: str = ""
    required: bool = True


class ToolSpec(_Model):
    """One tool, as a standard pattern over an entity or a custom body.

    - get: the row of `entity` whose `by` column (default: the key) equals the argument, with
      child rows of each `include` entity;
    - list: rows matching `filters`, sorted by `sort`, at most `limit` (the agent may ask
      fewer);
    - create: a new row from `fields` (arguments; `optional` ones may be left out) and `set`
      (fixed values: a literal, 'now' or 'today'), its key derived from the table;
    - update: set `fields` (each optional, at least one) of the row with the given key;
    - delete: remove the row with the given key;
    - transition: move `state_column` from one of `from_states` to `to_state` (plus `set`);
    - transfer: see `Transfer`;
    - custom: `body` is the Python function body; `arguments` its arguments.
    Every pattern that targets one row checks `requires` first, and fails with a clear error.
    """

    name: str = Field(pattern=IDENTIFIER)
    pattern: Pattern
    entity: str | None = None
    description: str
    by: str | None = None
    include: list[str] = Field(default_factory=list)
    filters: list[Filter] = Field(default_factory=list)
    sort: str | None = None
    descending: bool = False
    limit: int = Field(20, ge=1, le=100)
    fields: list[str] = Field(default_factory=list)
    optional: list[str] = Field(default_factory=list)
    set: dict[str, Any] = Field(default_factory=dict)
    state_column: str = "status"
    from_states: list[str] = Field(default_factory=list)
    to_state: str | None = None
    requires: list[Require] = Field(default_factory=list)
    transfer: Transfer | None = None
    arguments: list[Argument] = Field(default_factory=list)
    body: str | None = None
    kind: Literal["read", "write"] | None = Field(
        None, description="custom tools: whether it writes (the patterns know)."
    )

    @property
    def writes(self) -> bool:
        if self.pattern == "custom":
            return self.kind == "write"
        return self.pattern not in ("get", "list")


class PolicyRule(_Model):
    """A rule the agent must follow. With `tool` and `forbids` it is machine-checkable: a call
    of `tool` on a row where the SQL condition `forbids` holds breaks it (refusal tasks). The
    row is the one the tool targets (for a create tool, the row its first foreign-key argument
    points to); the condition may use the call's arguments (`:amount`), `:now` and `:today`."""

    id: str = Field(pattern=IDENTIFIER)
    text: str
    tool: str | None = None
    forbids: str | None = None


class Intent(_Model):
    """What users come for, as templates in their own words.

    `tool` is the goal tool; its target rows are sampled (matching `where`, an SQL condition
    over the target entity). A read intent's answer must state the target row's `ask` columns;
    a write intent's new values come from `change` (argument -> generator). Templates name the
    target row's columns as `{column}`, its parents' as `{parent.column}`, the user's as
    `{user.column}` and new values as `{new.argument}`; `|date`, `|time`, `|datetime`,
    `|money` format a value as people say it. `change` generators run in order, so an `after`
    may follow a new start (`column: start`). `held_out` templates are used only for the test
    split, so that generalization to new wordings can be measured.
    """

    id: str = Field(pattern=IDENTIFIER)
    kind: Literal["read", "write"]
    tool: str
    where: str | None = None
    ask: list[str] = Field(default_factory=list)
    change: dict[str, ValueGen] = Field(default_factory=dict)
    templates: list[str] = Field(min_length=1)
    held_out: list[str] = Field(min_length=1)


class Actor(_Model):
    """Who talks to the agent: a row of `entity`, identified by the `knows` columns."""

    entity: str
    knows: list[str] = Field(min_length=1)


class Spec(_Model):
    """One service: everything `envfactory generate` needs to emit a verified env package."""

    name: str = Field(pattern=IDENTIFIER, description="Package folder name, e.g. 'shop'.")
    id: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$", description="Gym id stem, e.g. 'Shop'.")
    version: int = 0
    domain: str
    description: str
    now: str = Field(description="The service's clock, ISO datetime: tools' 'now'.")
    seed: int = 0
    max_turns: int = 30
    actor: Actor
    entities: list[Entity]
    tools: list[ToolSpec]
    seed_sql: list[str] = Field(
        default_factory=list,
        description="SQL run over the generated rows before they are written, to make them "
        "consistent the way real records are (no tracking number before an order ships).",
    )
    policy: list[PolicyRule] = Field(default_factory=list)
    intents: list[Intent] = Field(default_factory=list)
    needs_review: list[str] = Field(
        default_factory=list,
        description="What an importer could not infer and defaulted (for a person to check).",
    )
    inferred: dict[str, str] = Field(
        default_factory=dict,
        description="How an importer read each tool (tool -> the evidence for its pattern); "
        "empty for a spec written by hand.",
    )

    def entity(self, name: str) -> Entity:
        for entity in self.entities:
            if entity.name == name:
                return entity
        known = ", ".join(e.name for e in self.entities)
        raise SpecError(f"no entity {name!r} (entities: {known})")

    def tool(self, name: str) -> ToolSpec:
        for tool in self.tools:
            if tool.name == name:
                return tool
        raise SpecError(f"no tool {name!r}")

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        problems = list(_problems(self))
        if problems:
            raise SpecError("; ".join(problems))
        return self


def _problems(spec: Spec) -> Any:
    entities = {e.name: e for e in spec.entities}
    if len(entities) != len(spec.entities):
        yield "duplicate entity names"
    for entity in spec.entities:
        columns = {c.name for c in entity.columns}
        if entity.key not in columns:
            yield f"entity {entity.name}: key {entity.key!r} is not one of its columns"
        for column in entity.columns:
            if column.references and column.references not in entities:
                yield f"{entity.name}.{column.name} references unknown entity"
            if column.seed and column.seed.kind in ("ref",) and column.seed.entity not in entities:
                yield f"{entity.name}.{column.name}: seed ref to unknown entity"
        if entity.per and entity.per.column not in columns:
            yield f"entity {entity.name}: per.column {entity.per.column!r} is not a column"
        for name in re.findall(r"\{([a-z_][a-z0-9_]*)", entity.describe):
            if name not in columns:
                yield f"entity {entity.name}: describe names unknown column {name!r}"
    names = [t.name for t in spec.tools]
    if len(names) != len(set(names)):
        yield "duplicate tool names"
    for tool in spec.tools:
        if tool.pattern == "custom":
            if not tool.body:
                yield f"tool {tool.name}: a custom tool needs a body"
            continue
        if tool.pattern == "transfer":
            if tool.transfer is None:
                yield f"tool {tool.name}: a transfer tool needs `transfer`"
            elif tool.transfer.entity not in entities:
                yield f"tool {tool.name}: transfer entity {tool.transfer.entity!r} is unknown"
            continue
        if tool.entity not in entities:
            yield f"tool {tool.name}: unknown entity {tool.entity!r}"
            continue
        columns = {c.name for c in entities[tool.entity].columns}
        used = [*tool.fields, *tool.optional, *tool.set, *(f.column for f in tool.filters)]
        used += [c for c in (tool.by, tool.sort) if c]
        for column in used:
            if column not in columns:
                yield f"tool {tool.name}: {tool.entity} has no column {column!r}"
        if tool.pattern == "transition" and not (tool.to_state and tool.from_states):
            yield f"tool {tool.name}: a transition needs from_states and to_state"
        if tool.pattern == "create":
            given = {entities[tool.entity].key, *tool.fields, *tool.set}
            for column in entities[tool.entity].columns:
                if column.name in given or column.nullable or column.default is not None:
                    continue
                if column.name in tool.optional:
                    yield (
                        f"tool {tool.name}: {tool.entity}.{column.name} is NOT NULL without a "
                        "default, so it cannot be optional; move it to fields, make it nullable, "
                        "or give it a default"
                    )
                else:
                    yield (
                        f"tool {tool.name}: {tool.entity}.{column.name} is NOT NULL without a "
                        "default; add it to fields or set, or give it a default"
                    )
    tools = set(names)
    for rule in spec.policy:
        if rule.tool and rule.tool not in tools:
            yield f"policy {rule.id}: unknown tool {rule.tool!r}"
    by_name = {t.name: t for t in spec.tools}
    for intent in spec.intents:
        if intent.tool not in tools:
            yield f"intent {intent.id}: unknown tool {intent.tool!r}"
            continue
        goal = by_name[intent.tool]
        if intent.ask and goal.entity in entities:
            columns = {c.name for c in entities[goal.entity].columns}
            for name in intent.ask:
                if name not in columns:
                    yield (
                        f"intent {intent.id}: asks for {name!r}, not a column of {goal.entity} "
                        f"(what {goal.name} returns a row of)"
                    )
        for template in [*intent.templates, *intent.held_out]:
            for braces in re.findall(r"\{[^{}]*\}", template):
                match = PLACEHOLDER.fullmatch(braces)
                if match is None or (match.group(2) and match.group(2) not in STYLES):
                    yield (
                        f"intent {intent.id}: {braces} is not a placeholder "
                        f"('{{column}}', '{{label.column}}' or '{{new.argument}}', optionally "
                        f"'|' one of {', '.join(STYLES)})"
                    )
        for name in re.findall(r"\{new\.(\w+)", " ".join(intent.templates + intent.held_out)):
            if name not in intent.change:
                yield f"intent {intent.id}: {{new.{name}}} has no generator in `change`"
    if spec.actor.entity not in entities:
        yield f"actor: unknown entity {spec.actor.entity!r}"


def create_anchor(entity: Entity, tool: ToolSpec) -> str | None:
    """A create tool's anchor: its first required foreign-key field. Its `requires` and policy
    rules are conditions on the row that argument points to (the order a return is for)."""
    return next(
        (
            name
            for name in tool.fields
            if name != entity.key and name not in tool.optional and entity.column(name).references
        ),
        None,
    )


def load_spec(path: str | Path) -> Spec:
    """Read a spec from YAML; errors name the file and the field."""
    import yaml
    from pydantic import ValidationError

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec is a YAML mapping, got {type(data).__name__}")
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise SpecError(f"{path}: invalid spec:\n" + "\n".join(lines)) from None


def dump_spec(spec: Spec) -> str:
    """The spec as YAML, defaults left out, in field order (stable bytes)."""
    import yaml

    data = spec.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
