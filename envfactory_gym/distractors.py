"""Distractors: the wrong answers a guess would list, computed from a task's ground truth.

For each required output, find where the ground-truth tool outputs hold it (the JSON field it
sits in, or for a bare result such as a status, the database column whose values include it).
Its distractors are the other values of that field: the same field elsewhere in the outputs
(the other flights' prices, the other payment methods' balances, the reservation's status next
to the flight's) and, where the column is enum-like (a handful of distinct values), the column's
other values (the other statuses, the other bag counts). Values that are themselves required,
or that the user said, are never distractors.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from envfactory_gym.database import user_tables
from envfactory_gym.reward import RewardConfig, close, fold, mentions, number_value

MAX_ENUM_VALUES = 8
"""A column with at most this many distinct values is enum-like: its values compete."""


def find_distractors(
    outputs: list[str],
    results: list[Any],
    conn: sqlite3.Connection,
    said_by_user: str = "",
) -> list[str]:
    """The distractors of a task whose required `outputs` come from the ground truth `results`,
    over the task's start database `conn`; `said_by_user` is the instruction and user facts."""
    if not outputs:
        return []
    found = list(leaves(results))
    fields: set[str] = set()
    for output in outputs:
        for field, value in found:
            if _same(value, output):
                fields.update([field] if field else _columns_holding(conn, value))
    candidates = {value for field, value in found if field in fields}
    for field in fields:
        candidates.update(_enum_values(conn, field))
    said = fold(said_by_user)
    kept = set()
    for value in candidates:
        text = _as_text(value)
        if text is None or any(_overlaps(text, output) for output in outputs):
            continue
        if mentions(said, text):
            continue
        kept.add(text)
    return sorted_distractors(kept)


def sorted_distractors(values: Iterable[str]) -> list[str]:
    """Distractors in their stored order: numbers by value first, then words."""
    return sorted(values, key=lambda t: (number_value(t) is None, number_value(t) or 0.0, t))


def leaves(value: Any, field: str | None = None) -> Iterator[tuple[str | None, Any]]:
    """(field name, scalar) for every scalar in a tool result; JSON text is parsed first. A
    list's items inherit the list's field; a bare result has field None."""
    if isinstance(value, str) and value[:1] in "[{":
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, key)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item, field)
    elif value is not None and not isinstance(value, bool):
        yield field, value


def _columns_holding(conn: sqlite3.Connection, value: Any) -> list[str]:
    """Names of the enum-like columns that hold `value` somewhere."""
    names = []
    for table in user_tables(conn):
        for column in _column_names(conn, table):
            sql = f'SELECT 1 FROM "{table}" WHERE "{column}" = ? LIMIT 1'
            if conn.execute(sql, (value,)).fetchone() and _enum_values(conn, column, table):
                names.append(column)
    return names


def _enum_values(conn: sqlite3.Connection, column: str, only: str | None = None) -> set[Any]:
    """The distinct values of every enum-like column called `column`."""
    values: set[Any] = set()
    for table in [only] if only else user_tables(conn):
        if column not in _column_names(conn, table):
            continue
        sql = f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL LIMIT ?'
        found = [row[0] for row in conn.execute(sql, (MAX_ENUM_VALUES + 1,))]
        if len(found) <= MAX_ENUM_VALUES:
            values.update(found)
    return values


def _column_names(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def _same(value: Any, output: str) -> bool:
    text = _as_text(value)
    if text is None:
        return False
    a, b = number_value(text), number_value(output)
    return a == b if a is not None and b is not None else fold(text) == fold(output)


NUMBER_TOLERANCE = RewardConfig.model_fields["number_tolerance"].default
"""Numbers this close to an answer count as stating it, so they cannot be distractors."""


def _overlaps(text: str, output: str) -> bool:
    """Equal as numbers (within the reward's tolerance), or one text contained in the other, so
    that stating the answer never trips a distractor."""
    a, b = number_value(text), number_value(output)
    if a is not None or b is not None:
        return a is not None and b is not None and close(a, b, NUMBER_TOLERANCE)
    x, y = fold(text), fold(output)
    return not x or x in y or y in x


def _as_text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text if 0 < len(text) <= 200 else None
