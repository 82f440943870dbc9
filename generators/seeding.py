"""Seed rows from a spec: deterministic (one RNG per entity, seeded from the spec's seed and the
entity's name), in foreign-key order, with unique and reference constraints met by construction.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from envfactory_gym.generators import vocab
from envfactory_gym.generators.spec import Column, Entity, Spec, SpecError, ValueGen

Rows = dict[str, list[dict[str, Any]]]
MAX_TRIES = 50
"""Draws of a unique column before giving up (then a numeric suffix makes it unique)."""


def entity_order(spec: Spec) -> list[Entity]:
    """Entities with every referenced entity before the ones that reference it."""
    done: list[str] = []
    pending = {e.name: e for e in spec.entities}
    while pending:
        ready = [
            name
            for name, entity in pending.items()
            if all(
                c.references in done or c.references == name or c.references is None
                for c in entity.columns
            )
        ]
        if not ready:
            raise SpecError(f"foreign keys form a cycle among {sorted(pending)}")
        for name in ready:
            done.append(name)
            del pending[name]
    return [spec.entity(name) for name in done]


def format_key(entity: Entity, number: int) -> str | int:
    """The key of the `number`-th row: 'ORD00042' with a prefix, else the integer itself."""
    if not entity.id_prefix:
        return number
    return f"{entity.id_prefix}{number:0{entity.id_digits}d}"


def generate_rows(spec: Spec) -> Rows:
    """Every entity's seed rows, keyed by entity name, in foreign-key order."""
    rows: Rows = {}
    for entity in entity_order(spec):
        rng = random.Random(f"{spec.seed}:{entity.name}")
        rows[entity.name] = list(_entity_rows(spec, entity, rows, rng))
    return {name: found for name, found in rows.items() if not name.startswith("#")}


def _entity_rows(
    spec: Spec, entity: Entity, done: Rows, rng: random.Random
) -> Iterator[dict[str, Any]]:
    parents: list[Any] = [None] * entity.count
    if entity.per is not None:
        target = entity.column(entity.per.column).references
        if target is None or target not in done:
            raise SpecError(f"{entity.name}.per: {entity.per.column} must reference an entity")
        parent_key = spec.entity(target).key
        parents = [
            parent[parent_key]
            for parent in done[target]
            for _ in range(rng.randint(entity.per.min, entity.per.max))
        ]
    seen: dict[str, set[Any]] = {c.name: set() for c in entity.columns if c.unique}
    seen_together: list[set[tuple]] = [set() for _ in entity.unique_together]
    for number, parent in enumerate(parents, 1):
        row: dict[str, Any] = {}
        for column in _fill_order(entity):
            if column.name == entity.key:
                row[column.name] = format_key(entity, number)
            elif entity.per is not None and column.name == entity.per.column:
                row[column.name] = parent
            elif column.seed is not None and column.seed.kind == "sequence":
                row[column.name] = int(column.seed.start or 0) + (number - 1) * column.seed.step
            else:
                row[column.name] = _unique_value(spec, entity, column, row, done, rng, seen)
        together = [tuple(row[c] for c in group) for group in entity.unique_together]
        if any(t in s for t, s in zip(together, seen_together, strict=True)):
            continue  # a repeated combination: skip the row rather than break the constraint
        for t, s in zip(together, seen_together, strict=True):
            s.add(t)
        yield {c.name: row[c.name] for c in entity.columns}


def _fill_order(entity: Entity) -> list[Column]:
    """Columns whose values derive from others (email, after, template, copy) come last."""
    late = {"email", "after", "template", "copy"}
    return sorted(entity.columns, key=lambda c: c.seed is not None and c.seed.kind in late)


def _unique_value(
    spec: Spec,
    entity: Entity,
    column: Column,
    row: dict[str, Any],
    done: Rows,
    rng: random.Random,
    seen: dict[str, set[Any]],
) -> Any:
    if column.name not in seen:
        return column_value(spec, entity, column, row, done, rng)
    value = None
    for _ in range(MAX_TRIES):
        value = column_value(spec, entity, column, row, done, rng)
        if value not in seen[column.name]:
            break
    suffix = 2
    base = value
    while value in seen[column.name]:
        value = _with_suffix(base, suffix)
        suffix += 1
    seen[column.name].add(value)
    return value


def _with_suffix(value: Any, suffix: int) -> Any:
    if isinstance(value, str) and "@" in value:
        local, domain = value.split("@", 1)
        return f"{local}{suffix}@{domain}"
    if isinstance(value, str):
        return f"{value} {suffix}"
    return value + suffix


def column_value(
    spec: Spec,
    entity: Entity,
    column: Column,
    row: dict[str, Any],
    done: Rows,
    rng: random.Random,
) -> Any:
    """One seed value for `column` of a row being built (`row` holds the columns so far)."""
    gen = column.seed
    if gen is None:
        if column.enum:
            return rng.choice(column.enum)
        if column.references:
            return _pick_key(spec, column.references, done, rng)
        if column.default is not None or column.nullable:
            return column.default
        raise SpecError(f"{entity.name}.{column.name}: no seed generator and no default")
    if column.nullable and gen.null_fraction and rng.random() < gen.null_fraction:
        return None
    if gen.kind == "ref":
        return _pick_key(spec, gen.entity or column.references or "", done, rng)
    if gen.kind == "copy":
        if not gen.via or not gen.column:
            raise SpecError(f"{entity.name}.{column.name}: copy needs `via` and `column`")
        target = spec.entity(entity.column(gen.via).references or "")
        return _index(done, target.name, target.key)[row[gen.via]][gen.column]
    return make_value(gen, rng, row, f"{entity.name}.{column.name}")


def make_value(gen: ValueGen, rng: random.Random, row: dict[str, Any], where: str) -> Any:
    """A value of one of the row-independent kinds (also used for tasks' new values)."""
    kind = gen.kind
    if kind == "choice":
        if not gen.values:
            raise SpecError(f"{where}: choice needs `values`")
        return rng.choices(gen.values, weights=gen.weights or None)[0]
    if kind == "first_name":
        return rng.choice(vocab.FIRST_NAMES)
    if kind == "last_name":
        return rng.choice(vocab.LAST_NAMES)
    if kind == "full_name":
        return f"{rng.choice(vocab.FIRST_NAMES)} {rng.choice(vocab.LAST_NAMES)}"
    if kind == "email":
        return _email(gen, rng, row)
    if kind == "phone":
        return f"+1-{rng.randint(201, 989)}-555-{rng.randint(0, 9999):04d}"
    if kind == "city":
        return rng.choice(vocab.CITIES)
    if kind == "street_address":
        street = f"{rng.choice(vocab.STREET_NAMES)} {rng.choice(vocab.STREET_KINDS)}"
        return f"{rng.randint(1, 9899)} {street}"
    if kind == "company":
        return f"{rng.choice(vocab.COMPANY_WORDS)} {rng.choice(vocab.COMPANY_KINDS)}"
    if kind == "int":
        return rng.randint(int(_bound(gen.min, 0)), int(_bound(gen.max, 100)))
    if kind == "money":
        cents = rng.randint(round(_bound(gen.min, 1) * 100), round(_bound(gen.max, 500) * 100))
        return round(cents / 100, 2)
    if kind == "bool":
        return int(rng.random() < gen.p)
    if kind == "date":
        first, last = _date(gen.start, where), _date(gen.end, where)
        return (first + timedelta(days=rng.randint(0, (last - first).days))).isoformat()
    if kind == "datetime":
        first, last = _datetime(gen.start, where), _datetime(gen.end, where)
        slots = int((last - first).total_seconds() // 60 // gen.step_minutes)
        moment = first + timedelta(minutes=gen.step_minutes * rng.randint(0, max(slots, 0)))
        return moment.isoformat()
    if kind == "after":
        if gen.column is None or row.get(gen.column) is None:
            raise SpecError(f"{where}: after needs `column`, a datetime filled before it")
        minutes = rng.randint(int(_bound(gen.min, 30)), int(_bound(gen.max, 120)))
        minutes -= minutes % gen.step_minutes if minutes >= gen.step_minutes else 0
        return (_datetime(row[gen.column], where) + timedelta(minutes=minutes)).isoformat()
    if kind == "template":
        return _template(gen, rng, row, where)
    raise SpecError(f"{where}: kind {kind!r} needs the row (use it on a column)")


def _bound(value: float | None, default: float) -> float:
    return default if value is None else value


def _email(gen: ValueGen, rng: random.Random, row: dict[str, Any]) -> str:
    first = row.get("first_name")
    last = row.get("last_name")
    if not (first and last):
        name = row.get("name") or row.get("full_name") or ""
        parts = str(name).split()
        first, last = (parts[0], parts[-1]) if len(parts) >= 2 else ("", "")
    if not (first and last):
        first, last = rng.choice(vocab.FIRST_NAMES), rng.choice(vocab.LAST_NAMES)
    local = f"{first}.{last}".lower()
    return re.sub(r"[^a-z0-9.]", "", local) + "@" + gen.domain


def _template(gen: ValueGen, rng: random.Random, row: dict[str, Any], where: str) -> str:
    if not gen.template:
        raise SpecError(f"{where}: template needs `template`")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in gen.lists:
            return str(rng.choice(gen.lists[name]))
        if name in row:
            return str(row[name])
        if name == "number":
            return str(rng.randint(1, 99))
        raise SpecError(f"{where}: template names {{{name}}}, neither a list nor a column")

    return re.sub(r"\{(\w+)\}", fill, gen.template)


def _date(value: Any, where: str) -> date:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise SpecError(f"{where}: expected an ISO date, got {value!r}") from None


def _datetime(value: Any, where: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise SpecError(f"{where}: expected an ISO datetime, got {value!r}") from None


def _pick_key(spec: Spec, entity_name: str, done: Rows, rng: random.Random) -> Any:
    if entity_name not in done or not done[entity_name]:
        raise SpecError(f"reference to {entity_name!r}, which has no rows (yet)")
    key = spec.entity(entity_name).key
    return rng.choice(done[entity_name])[key]


def _index(done: Rows, entity_name: str, key: str) -> dict[Any, dict[str, Any]]:
    """The finished rows of an entity by key, built on first use (kept in `done` under a
    name no entity can have)."""
    slot = f"#{entity_name}.{key}"
    if slot not in done:
        done[slot] = [{row[key]: row for row in done[entity_name]}]  # type: ignore[list-item]
    return done[slot][0]
