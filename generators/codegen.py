"""tools.py from a spec: one readable, typed, documented function per tool, formatted as ruff
formats it (so the emitted file passes `ruff format --check` and `ruff check`), using only the
runtime's tool API (`tool`, `ToolError`, `Database.get/insert/update/delete/next_key`).
"""

from __future__ import annotations

import json
import keyword
import re
import textwrap
from typing import Any

from envfactory_gym.generators.spec import (
    Column,
    Entity,
    Require,
    Spec,
    SpecError,
    ToolSpec,
    create_anchor,
)

WIDTH = 100
PY_TYPES = {
    "text": "str", "integer": "int", "real": "float", "boolean": "bool",
    "date": "Date", "datetime": "DateTime",
}  # fmt: skip
ALIASES = {
    "Date": 'Date = Annotated[str, Field(pattern=r"^\\d{4}-\\d{2}-\\d{2}$")]',
    "DateTime": 'DateTime = Annotated[str, Field(pattern=r"^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}$")]',  # noqa: E501
    "Limit": "Limit = Annotated[int, Field(ge=1, le=100)]",
    "Amount": "Amount = Annotated[float, Field(gt=0, le=1_000_000)]",
    "Quantity": "Quantity = Annotated[int, Field(gt=0, le=1_000_000)]",
}  # fmt: skip


def q(text: str) -> str:
    """A Python string literal the way ruff writes it (double quotes unless that escapes more)."""
    if '"' in text and "'" not in text:
        return "'" + json.dumps(text, ensure_ascii=False)[1:-1].replace('\\"', '"') + "'"
    return json.dumps(text, ensure_ascii=False)


def literal(value: Any) -> str:
    if isinstance(value, str):
        return q(value)
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return "None"
    return repr(value)


def bracket(
    indent: int, head: str, items: list[str], tail: str = "", pair: str = "()"
) -> list[str]:
    """`head(items)tail` laid out as ruff does: one line, else the items on one indented line
    (calls, signatures, subscripts; never a list or dict literal), else one item per line with
    a trailing comma."""
    pad, inner = " " * indent, " " * (indent + 4)
    opening, closing = pair
    one = f"{pad}{head}{opening}{', '.join(items)}{closing}{tail}"
    if len(one) <= WIDTH or not items:
        return [one]
    hug = inner + ", ".join(items)
    literal = pair != "()" and not head.endswith("Literal")  # a list or dict literal explodes
    if (len(hug) <= WIDTH and not literal) or len(items) == 1:
        return [f"{pad}{head}{opening}", hug, f"{pad}{closing}{tail}"]
    return [
        f"{pad}{head}{opening}",
        *(f"{inner}{item}," for item in items),
        f"{pad}{closing}{tail}",
    ]


def string_lines(indent: int, head: str, text: str, fstring: bool = False) -> list[str]:
    """`head"text"` (an f-string with `fstring`), split into implicitly concatenated parts in
    parentheses when it does not fit; `head` may end in "(" to make the parts a call's only
    argument (`raise ToolError(`)."""
    pad = " " * indent
    call = head.endswith("(")
    one = f"{pad}{head}{_literal(text, fstring)}{')' if call else ''}"
    if len(one) <= WIDTH:
        return [one]
    hug = f"{pad}    {_literal(text, fstring)}"
    opening = head if call else f"{head}("
    if len(hug) <= WIDTH:
        return [f"{pad}{opening}", hug, f"{pad})"]
    parts = textwrap.wrap(text, WIDTH - indent - 8, drop_whitespace=False, break_long_words=False)
    return [f"{pad}{opening}", *(f"{pad}    {_literal(p, fstring)}" for p in parts), f"{pad})"]


def _literal(text: str, fstring: bool) -> str:
    """A string literal; an f-string only where it interpolates."""
    return ("f" if fstring and "{" in text else "") + q(text)


def docstring(indent: int, summary: str, args: list[tuple[str, str]]) -> list[str]:
    pad = " " * indent
    width = WIDTH - indent
    lines = textwrap.wrap('"""' + " ".join(summary.split()), width) or ['"""']
    if args:
        lines += ["", "Args:"]
        for name, text in args:
            lines += textwrap.wrap(
                f"{name}: {' '.join(text.split())}",
                width,
                initial_indent="    ",
                subsequent_indent="        ",
            )
        lines.append('"""')
    elif len(lines[-1]) + 3 <= width:
        lines[-1] += '"""'
    else:
        lines.append('"""')
    return [pad + line if line else "" for line in lines]


def camel(name: str) -> str:
    """'bill payment' or 'bill_payment' -> 'BillPayment'."""
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", name))


class ToolsModule:
    """Builds the text of tools.py for one spec."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.aliases: dict[str, str] = {}
        self.uses: set[str] = set()

    # ----- types ---------------------------------------------------------------------------
    def column_type(self, entity: Entity, column: Column) -> str:
        if column.enum:
            name = camel(entity.label) + camel(column.name)
            values = [q(value) for value in column.enum]
            self.aliases[name] = "\n".join(bracket(0, f"{name} = Literal", values, "", "[]"))
            self.uses.add("Literal")
            return name
        base = PY_TYPES[column.type]
        if base in ALIASES:
            self.aliases[base] = ALIASES[base]
            self.uses.add("Annotated")
        return base

    def alias(self, name: str) -> str:
        self.aliases[name] = ALIASES[name]
        self.uses.add("Annotated")
        return name

    # ----- the module ------------------------------------------------------------------------
    def render(self) -> str:
        functions = [self.function(tool) for tool in self.spec.tools]
        header = [
            f'"""{self.spec.id} tools: {self.spec.description.rstrip(".")}.',
            "",
            "Generated by `envfactory generate` from spec.yaml: edit the spec, not this file.",
            '"""',
        ]
        header = [*textwrap.wrap(header[0], WIDTH), *header[1:]]
        typing_names = sorted(self.uses & {"Annotated", "Any", "Literal"})
        imports = ["from __future__ import annotations", ""]
        if typing_names:
            imports += [f"from typing import {', '.join(typing_names)}", ""]
        if "Annotated" in self.uses:
            imports += ["from pydantic import Field", ""]
        runtime = ["Database", "tool"] + (["ToolError"] if "ToolError" in self.uses else [])
        imports.append(f"from envfactory_gym import {', '.join(sorted(runtime))}")
        constants = [f"NOW = {q(self.spec.now)}"]
        if "TODAY" in self.uses:
            constants.append("TODAY = NOW[:10]")
        constants += [self.aliases[name] for name in sorted(self.aliases)]
        body = "\n\n\n".join(functions)
        return "\n".join([*header, "", *imports, "", *constants, "", "", body]) + "\n"

    def function(self, tool: ToolSpec) -> str:
        make = getattr(self, f"_{tool.pattern}")
        params, docs, body = make(tool)
        decorator = "@tool" if not tool.writes else '@tool(kind="write")'
        returns = {"list": "list[dict]"}.get(tool.pattern, "dict")
        if tool.pattern == "custom":
            returns = "Any"
            self.uses.add("Any")
        signature = bracket(0, f"def {tool.name}", ["db: Database", *params], f" -> {returns}:")
        lines = [decorator, *signature, *docstring(4, tool.description, docs), *body]
        return "\n".join(lines)

    # ----- helpers for bodies ------------------------------------------------------------------
    def entity(self, tool: ToolSpec) -> Entity:
        return self.spec.entity(tool.entity or "")

    def arg(self, entity: Entity, column_name: str, optional: bool = False) -> str:
        column = entity.column(column_name)
        kind = self.column_type(entity, column)
        return f"{column_name}: {kind} | None = None" if optional else f"{column_name}: {kind}"

    def arg_doc(self, entity: Entity, column_name: str) -> tuple[str, str]:
        column = entity.column(column_name)
        text = column.description or _default_description(entity, column)
        if column.type in ("date", "datetime"):
            text += " (YYYY-MM-DD)" if column.type == "date" else " (YYYY-MM-DDTHH:MM:SS)"
        return column_name, text

    def get_call(self, entity: Entity, value: str, head: str = "") -> list[str]:
        items = [q(entity.name), q(entity.key), value, q(entity.label)]
        return bracket(4, f"{head}db.get", items)

    def foreign_key_checks(self, entity: Entity, columns: list[str], optional: bool) -> list[str]:
        lines: list[str] = []
        for name in columns:
            target = entity.column(name).references
            if not target or name == entity.key:
                continue
            parent = self.spec.entity(target)
            check = [q(parent.name), q(parent.key), name, q(parent.label)]
            if optional:
                lines.append(f"    if {name} is not None:")
                lines += ["    " + line for line in bracket(4, "db.get", check)]
            else:
                lines += bracket(4, "db.get", check)
        return lines

    def requires(
        self, requires: list[Require], entity: Entity | None, key_arg: str | None, args: list[str]
    ) -> list[str]:
        lines: list[str] = []
        for rule in requires:
            names = sorted(set(re.findall(r"(?<!:):(\w+)", rule.sql)))
            params: dict[str, str] = {}
            for name in names:
                if name == "now":
                    params[name] = "NOW"
                elif name == "today":
                    params[name] = "TODAY"
                    self.uses.add("TODAY")
                elif name in args:
                    params[name] = name
                else:
                    raise SpecError(f"requires {rule.sql!r}: :{name} is not an argument")
            if entity is not None and key_arg is not None:
                params.setdefault(key_arg, key_arg)
                sql = f"SELECT {rule.sql} FROM {entity.name} WHERE {entity.key} = :{key_arg}"
            else:
                sql = f"SELECT {rule.sql}"
            items = [f"{q(k)}: {v}" for k, v in params.items()]
            mapping = "{" + ", ".join(items) + "}"
            one = f"    if not db.value({q(sql)}, {mapping}):"
            if len(one) <= WIDTH:
                lines.append(one)
            else:
                lines += string_lines(4, "query = ", sql)
                check = bracket(4, "if not db.value", ["query", mapping], ":")
                if max(len(line) for line in check) > WIDTH:  # name the parameters too
                    lines += bracket(4, "params = ", items, "", "{}")
                    check = ["    if not db.value(query, params):"]
                lines += check
            lines += string_lines(8, "raise ToolError(", rule.error)
            self.uses.add("ToolError")
        return lines

    # ----- patterns: each returns (parameters, argument docs, body lines) -----------------------
    def _get(self, tool: ToolSpec) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        entity = self.entity(tool)
        by = tool.by or entity.key
        var = variable_name(entity.label)
        body = bracket(4, f"{var} = db.get", [q(entity.name), q(by), by, q(entity.label)])
        for child_name in tool.include:
            child = self.spec.entity(child_name)
            fk = _reference_to(child, entity)
            sql = f"SELECT * FROM {child.name} WHERE {fk} = ? ORDER BY {child.key}"
            body += bracket(
                4, f"{var}[{q(child.name)}] = db.rows", [q(sql), f"({var}[{q(entity.key)}],)"]
            )
        if len(body) == 1:  # nothing to add: return the row directly
            body = bracket(4, "return db.get", [q(entity.name), q(by), by, q(entity.label)])
        else:
            body.append(f"    return {var}")
        return [self.arg(entity, by)], [self.arg_doc(entity, by)], body

    def _list(self, tool: ToolSpec) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        entity = self.entity(tool)
        required = [f for f in tool.filters if f.required]
        optional = [f for f in tool.filters if not f.required]
        params, docs = [], []
        for filt in [*required, *optional]:
            column = entity.column(filt.column)
            kind = "str" if filt.op == "contains" else self.column_type(entity, column)
            params.append(f"{filt.argument}: {kind}" + ("" if filt.required else " | None = None"))
            docs.append((filt.argument, _filter_doc(entity, filt.column, filt.op)))
        params.append(f"limit: {self.alias('Limit')} = {tool.limit}")
        docs.append(("limit", f"At most this many {entity.name} (1 to 100)."))
        clause = {
            "eq": "{c} = ?", "gte": "{c} >= ?", "lte": "{c} <= ?",
            "contains": "instr(lower({c}), lower(?)) > 0",
        }  # fmt: skip
        body = [
            "    clauses = ["
            + ", ".join(q(clause[f.op].format(c=f.column)) for f in required)
            + "]",
            "    params: list = [" + ", ".join(f.argument for f in required) + "]",
        ]
        for filt in optional:
            body += [
                f"    if {filt.argument} is not None:",
                f"        clauses.append({q(clause[filt.op].format(c=filt.column))})",
                f"        params.append({filt.argument})",
            ]
        order = f"{tool.sort} DESC" if tool.sort and tool.descending else tool.sort
        order = f"{order}, {entity.key}" if order and order != entity.key else entity.key
        body.append('    where = " AND ".join(clauses) or "1"')
        sql = f"SELECT * FROM {entity.name} WHERE {{where}} ORDER BY {order} LIMIT ?"
        call = bracket(4, "return db.rows", ["f" + q(sql), "[*params, limit]"])
        if max(len(line) for line in call) > WIDTH:  # the query alone is too long: name it
            call = string_lines(4, "query = ", sql, fstring=True)
            call.append("    return db.rows(query, [*params, limit])")
        body += call
        return params, docs, body

    def _create(self, tool: ToolSpec) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        entity = self.entity(tool)
        fields = [f for f in tool.fields if f != entity.key and f not in tool.optional]
        optional = [f for f in tool.optional if f != entity.key]
        params = [self.arg(entity, f) for f in fields] + [
            self.arg(entity, f, optional=True) for f in optional
        ]
        docs = [self.arg_doc(entity, f) for f in [*fields, *optional]]
        body = self.foreign_key_checks(entity, fields, optional=False)
        body += self.foreign_key_checks(entity, optional, optional=True)
        anchor = create_anchor(entity, tool)
        if anchor is None:
            body += self.requires(tool.requires, None, None, [*fields, *optional])
        else:
            parent = self.spec.entity(entity.column(anchor).references or "")
            body += self.requires(tool.requires, parent, anchor, [*fields, *optional])
        key_items = [q(entity.name), q(entity.key), q(entity.id_prefix), str(entity.id_digits)]
        body += bracket(4, f"{entity.key} = db.next_key", key_items)
        items = [f"{q(entity.key)}: {entity.key}", *(f"{q(f)}: {f}" for f in fields)]
        items += [f"{q(c)}: {self.fixed(v)}" for c, v in tool.set.items()]
        body += bracket(4, "row = ", items, "", "{}")
        for name in optional:
            body += [f"    if {name} is not None:", f"        row[{q(name)}] = {name}"]
        body.append(f"    db.insert({q(entity.name)}, row)")
        body += self.get_call(entity, entity.key, "return ")
        return params, docs, body

    def _update(self, tool: ToolSpec) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        entity = self.entity(tool)
        fields = [f for f in tool.fields if f != entity.key]
        if len(fields) == 1:
            return self._update_one(tool, entity, fields[0])
        params = [self.arg(entity, entity.key), *(self.arg(entity, f, True) for f in fields)]
        docs = [self.arg_doc(entity, entity.key)]
        docs += [(name, text + " Leave out to keep it.") for name, text in
                 (self.arg_doc(entity, f) for f in fields)]  # fmt: skip
        body = self.get_call(entity, entity.key)
        body += self.requires(tool.requires, entity, entity.key, [entity.key, *fields])
        body += bracket(4, "changes = ", [f"{q(f)}: {f}" for f in fields], "", "{}")
        body.append("    changes = {k: v for k, v in changes.items() if v is not None}")
        body.append("    if not changes:")
        body += string_lines(8, "raise ToolError(", f"nothing to change: give {_or(fields)}")
        self.uses.add("ToolError")
        body += self.foreign_key_checks(entity, fields, optional=True)
        for column, value in tool.set.items():  # fixed values stamped on every change
            body.append(f"    changes[{q(column)}] = {self.fixed(value)}")
        body += bracket(4, "db.update", [q(entity.name), q(entity.key), entity.key, "changes"])
        body += self.get_call(entity, entity.key, "return ")
        return params, docs, body

    def _update_one(
        self, tool: ToolSpec, entity: Entity, field: str
    ) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        params = [self.arg(entity, entity.key), self.arg(entity, field)]
        docs = [self.arg_doc(entity, entity.key), self.arg_doc(entity, field)]
        body = self.get_call(entity, entity.key)
        body += self.requires(tool.requires, entity, entity.key, [entity.key, field])
        body += self.foreign_key_checks(entity, [field], optional=False)
        fixed = "".join(f", {q(c)}: {self.fixed(v)}" for c, v in tool.set.items())
        items = [q(entity.name), q(entity.key), entity.key, f"{{{q(field)}: {field}{fixed}}}"]
        body += bracket(4, "db.update", items)
        body += self.get_call(entity, entity.key, "return ")
        return params, docs, body

    def _delete(self, tool: ToolSpec) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        entity = self.entity(tool)
        body = self.get_call(entity, entity.key)
        body += self.requires(tool.requires, entity, entity.key, [entity.key])
        body.append(f"    db.delete({q(entity.name)}, {q(entity.key)}, {entity.key})")
        body.append(f'    return {{"deleted": {entity.key}}}')
        return [self.arg(entity, entity.key)], [self.arg_doc(entity, entity.key)], body

    def _transition(self, tool: ToolSpec) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        entity = self.entity(tool)
        var = variable_name(entity.label)
        state = tool.state_column
        body = self.get_call(entity, entity.key, f"{var} = ")
        allowed = (
            "("
            + ", ".join(q(s) for s in tool.from_states)
            + ("," if len(tool.from_states) == 1 else "")
            + ")"
        )
        body.append(f"    if {var}[{q(state)}] not in {allowed}:")
        message = (
            f"{entity.label} {{{entity.key}}} is {{{var}['{state}']}}, not {_or(tool.from_states)}"
        )
        body += string_lines(8, "raise ToolError(", message, fstring=True)
        self.uses.add("ToolError")
        body += self.requires(tool.requires, entity, entity.key, [entity.key])
        items = [f"{q(state)}: {q(tool.to_state or '')}"]
        items += [f"{q(c)}: {self.fixed(v)}" for c, v in tool.set.items()]
        body += bracket(4, "changes = ", items, "", "{}")
        body += bracket(4, "db.update", [q(entity.name), q(entity.key), entity.key, "changes"])
        body += self.get_call(entity, entity.key, "return ")
        return [self.arg(entity, entity.key)], [self.arg_doc(entity, entity.key)], body

    def _transfer(self, tool: ToolSpec) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        move = tool.transfer
        assert move is not None
        entity = self.spec.entity(move.entity)
        column = entity.column(move.column)
        integer = column.type == "integer"
        amount_type = self.alias("Quantity" if integer else "Amount")
        key_type = self.column_type(entity, entity.column(entity.key))
        ledger = self.spec.entity(move.ledger) if move.ledger else None
        extra = [
            value for value in move.ledger_fields.values()
            if value not in ("from", "to", "amount", "now", "today") and not value.startswith("'")
        ]  # fmt: skip
        params = [
            f"{move.from_arg}: {key_type}",
            f"{move.to_arg}: {key_type}",
            f"{move.amount_arg}: {amount_type}",
        ]
        docs = [
            (move.from_arg, f"The {entity.label} the {column.name} is taken from."),
            (move.to_arg, f"The {entity.label} it goes to."),
            (move.amount_arg, f"How much {column.name} to move (more than 0)."),
        ]
        ledger_columns = {v: c for c, v in move.ledger_fields.items()}
        for name in extra:
            assert ledger is not None
            params.append(
                self.arg(ledger, ledger_columns[name]).replace(ledger_columns[name], name, 1)
            )
            docs.append((name, self.arg_doc(ledger, ledger_columns[name])[1]))
        body = self.get_call(entity, move.from_arg, "source = ")
        body += self.get_call(entity, move.to_arg, "target = ")
        body.append(f"    if {move.from_arg} == {move.to_arg}:")
        body += string_lines(8, "raise ToolError(", f"the two {entity.name} must differ")
        body.append(f"    if source[{q(column.name)}] < {move.amount_arg}:")
        message = f"not enough {column.name}: {{{move.from_arg}}} has {{source['{column.name}']}}"
        body += string_lines(8, "raise ToolError(", message, fstring=True)
        self.uses.add("ToolError")
        body += self.requires(
            tool.requires,
            entity,
            move.from_arg,
            [move.from_arg, move.to_arg, move.amount_arg, *extra],
        )
        for var, sign, key in (("source", "-", move.from_arg), ("target", "+", move.to_arg)):
            value = f"source[{q(column.name)}] {sign} {move.amount_arg}".replace("source", var)
            value = value if integer else f"round({value}, 2)"
            body += bracket(
                4,
                "db.update",
                [q(entity.name), q(entity.key), key, f"{{{q(column.name)}: {value}}}"],
            )
        if ledger is None:
            body += bracket(
                4,
                "return ",
                [
                    '"from": db.get('
                    + ", ".join([q(entity.name), q(entity.key), move.from_arg])
                    + ")",
                    '"to": db.get(' + ", ".join([q(entity.name), q(entity.key), move.to_arg]) + ")",
                ],
                "",
                "{}",
            )
            return params, docs, body
        body += bracket(
            4,
            f"{ledger.key} = db.next_key",
            [q(ledger.name), q(ledger.key), q(ledger.id_prefix), str(ledger.id_digits)],
        )
        tokens = {
            "from": move.from_arg,
            "to": move.to_arg,
            "amount": move.amount_arg,
            "now": "NOW",
            "today": "TODAY",
        }
        if "today" in move.ledger_fields.values():
            self.uses.add("TODAY")
        items = [f"{q(ledger.key)}: {ledger.key}"]
        for column_name, value in move.ledger_fields.items():
            rendered = tokens.get(value) or (q(value[1:-1]) if value.startswith("'") else value)
            items.append(f"{q(column_name)}: {rendered}")
        body += bracket(4, "row = ", items, "", "{}")
        body.append(f"    db.insert({q(ledger.name)}, row)")
        body += self.get_call(ledger, ledger.key, "return ")
        return params, docs, body

    def _custom(self, tool: ToolSpec) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        params, docs = [], []
        for argument in tool.arguments:
            kind = PY_TYPES[argument.type]
            if kind in ALIASES:
                self.alias(kind)
            params.append(
                f"{argument.name}: {kind}" + ("" if argument.required else " | None = None")
            )
            docs.append((argument.name, argument.description or argument.name.replace("_", " ")))
        body_text = textwrap.dedent(tool.body or "").strip("\n")
        if "ToolError" in body_text:
            self.uses.add("ToolError")
        if "TODAY" in body_text:
            self.uses.add("TODAY")
        return (
            params,
            docs,
            ["    " + line if line.strip() else "" for line in body_text.splitlines()],
        )

    def fixed(self, value: Any) -> str:
        """A `set` value: 'now' and 'today' are the service's clock, anything else a literal."""
        if value == "now":
            return "NOW"
        if value == "today":
            self.uses.add("TODAY")
            return "TODAY"
        return literal(value)


def _reference_to(child: Entity, parent: Entity) -> str:
    for column in child.columns:
        if column.references == parent.name:
            return column.name
    raise SpecError(f"{child.name} has no column referencing {parent.name}")


def _default_description(entity: Entity, column: Column) -> str:
    if column.name == entity.key:
        return f"The {entity.label}'s id."
    if column.references:
        return f"The id of the {column.references.rstrip('s')}."
    return f"The {entity.label}'s {column.name.replace('_', ' ')}."


def _filter_doc(entity: Entity, column: str, op: str) -> str:
    words = column.replace("_", " ")
    return {
        "eq": f"Only {entity.name} with this {words}.",
        "gte": f"Only {entity.name} whose {words} is on or after / at least this.",
        "lte": f"Only {entity.name} whose {words} is on or before / at most this.",
        "contains": f"Only {entity.name} whose {words} contains this text (any case).",
    }[op]


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def render_tools(spec: Spec) -> str:
    """The text of tools.py for `spec`."""
    return ToolsModule(spec).render()


def variable_name(label: str) -> str:
    """A Python local variable for an entity's label: spaces and other non-word characters
    ('trade-in') become underscores, and a keyword ('pass', 'class') gets a trailing underscore."""
    name = re.sub(r"\W", "_", label)
    return name + "_" if keyword.iskeyword(name) else name
