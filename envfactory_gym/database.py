"""SQLite state: a pristine template per env package, an in-memory copy per env instance.

An episode runs inside the SAVEPOINT `episode`, so `reset()` is a `ROLLBACK TO` whose cost is
proportional to what the episode changed. Each tool call runs in its own nested SAVEPOINT, so a
call that fails leaves no trace. Triggers write every row change into `_changes`, a log that the
rollbacks undo too, which gives the episode's row-level diff in O(changes).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from envfactory_gym.tools import ToolError

CHANGE_LOG = "_changes"
_SCAN_JSON = json.JSONDecoder().scan_once

Diff = dict[str, dict[str, list[dict[str, Any]]]]


def connect_memory() -> sqlite3.Connection:
    """An in-memory connection in autocommit mode (we manage transactions with savepoints)."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def build_template(
    schema_sql: str, seed: Callable[[sqlite3.Connection], None]
) -> sqlite3.Connection:
    """Create the schema, load the seed rows, then install the change-log triggers."""
    conn = connect_memory()
    conn.executescript(schema_sql)
    conn.execute("BEGIN")
    seed(conn)
    conn.execute("COMMIT")
    problems = conn.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise ValueError(f"seed data violates foreign keys: {problems[:5]}")
    install_change_log(conn)
    return conn


def user_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != ? ORDER BY name",
        (CHANGE_LOG,),
    )
    return [name for (name,) in rows]


def quote_name(name: str) -> str:
    """An SQL identifier (table or column name), double-quoted and escaped."""
    return '"' + name.replace('"', '""') + '"'


def install_change_log(conn: sqlite3.Connection) -> None:
    """Add `_changes` and AFTER INSERT/UPDATE/DELETE triggers on every table.

    Each change logs (key, row before, row after); an update that changes the key logs a removal
    of the old key and an addition of the new one. A surrogate `INTEGER PRIMARY KEY` is left out
    of the logged rows: it depends on the order of inserts, not on the resulting state.
    """
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {CHANGE_LOG} ("
        "seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk TEXT NOT NULL, old TEXT, new TEXT)"
    )
    for table in user_tables(conn):
        info = conn.execute(f"PRAGMA table_info({quote_name(table)})").fetchall()
        pk_columns = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5] > 0]
        surrogate = len(pk_columns) == 1 and any(
            row[1] == pk_columns[0] and row[2].upper() == "INTEGER" for row in info
        )
        columns = [row[1] for row in info if not (surrogate and row[1] == pk_columns[0])]

        key_columns = [quote_name(c) for c in pk_columns] or ["rowid"]
        same_key = " AND ".join(f"OLD.{c} IS NEW.{c}" for c in key_columns)
        log = f"INSERT INTO {CHANGE_LOG} (tbl, pk, old, new) VALUES ('{table}', "
        name = table.replace('"', "")
        conn.executescript(
            f"""
            CREATE TRIGGER "_log_{name}_insert" AFTER INSERT ON {quote_name(table)} BEGIN
              {log}{_key_json("NEW", pk_columns)}, NULL, {_row_json("NEW", columns)}); END;
            CREATE TRIGGER "_log_{name}_update" AFTER UPDATE ON {quote_name(table)}
              WHEN {same_key} BEGIN
              {log}{_key_json("NEW", pk_columns)}, {_row_json("OLD", columns)},
                {_row_json("NEW", columns)}); END;
            CREATE TRIGGER "_log_{name}_rekey" AFTER UPDATE ON {quote_name(table)}
              WHEN NOT ({same_key}) BEGIN
              {log}{_key_json("OLD", pk_columns)}, {_row_json("OLD", columns)}, NULL);
              {log}{_key_json("NEW", pk_columns)}, NULL, {_row_json("NEW", columns)}); END;
            CREATE TRIGGER "_log_{name}_delete" AFTER DELETE ON {quote_name(table)} BEGIN
              {log}{_key_json("OLD", pk_columns)}, {_row_json("OLD", columns)}, NULL); END;
            """
        )


def _row_json(alias: str, columns: Sequence[str]) -> str:
    pairs = ", ".join(f"'{c}', {alias}.{quote_name(c)}" for c in columns)
    return f"json_object({pairs})"


def _key_json(alias: str, pk_columns: Sequence[str]) -> str:
    if not pk_columns:
        return f"json_array({alias}.rowid)"
    return "json_array(" + ", ".join(f"{alias}.{quote_name(c)}" for c in pk_columns) + ")"


class Database:
    """The handle tools receive: parameterized queries over one env instance's SQLite copy."""

    def __init__(self, template: sqlite3.Connection) -> None:
        self.conn = connect_memory()
        template.backup(self.conn)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("SAVEPOINT episode")
        self._call_depth = 0

    # ----- queries tools use -------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(sql, params)]

    def row(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        found = self.conn.execute(sql, params).fetchone()
        return dict(found) if found is not None else None

    def value(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        found = self.conn.execute(sql, params).fetchone()
        return found[0] if found is not None else None

    # ----- rows by key: what most tools do, with the agent-facing errors ------------------
    def get(self, table: str, key_column: str, key: Any, label: str = "") -> dict[str, Any]:
        """The row of `table` whose `key_column` is `key`; a `ToolError` names it if missing."""
        found = self.row(
            f"SELECT * FROM {quote_name(table)} WHERE {quote_name(key_column)} = ?", (key,)
        )
        if found is None:
            raise _tool_error(f"{label or table} {key!r} not found")
        return found

    def insert(self, table: str, row: dict[str, Any]) -> None:
        """Insert one row; a broken constraint is a `ToolError` that names it."""
        columns = ", ".join(quote_name(c) for c in row)
        marks = ", ".join("?" * len(row))
        with _constraints(table):
            self.conn.execute(
                f"INSERT INTO {quote_name(table)} ({columns}) VALUES ({marks})", tuple(row.values())
            )

    def update(self, table: str, key_column: str, key: Any, changes: dict[str, Any]) -> None:
        """Set `changes` on the row whose `key_column` is `key`; constraints as in `insert`."""
        sets = ", ".join(f"{quote_name(c)} = ?" for c in changes)
        with _constraints(table):
            self.conn.execute(
                f"UPDATE {quote_name(table)} SET {sets} WHERE {quote_name(key_column)} = ?",
                (*changes.values(), key),
            )

    def delete(self, table: str, key_column: str, key: Any) -> None:
        """Delete the row whose `key_column` is `key` (a row others still refer to stays, and
        the `ToolError` says so)."""
        with _constraints(table):
            self.conn.execute(
                f"DELETE FROM {quote_name(table)} WHERE {quote_name(key_column)} = ?", (key,)
            )

    def next_key(self, table: str, key_column: str, prefix: str = "", digits: int = 5) -> Any:
        """The key for a new row: one more than the largest (prefix + zero-padded number, or an
        integer without a prefix). Derived from the state, never random, so replays are exact."""
        key_sql, table_sql = quote_name(key_column), quote_name(table)
        if not prefix:
            last = self.value(f"SELECT max({key_sql}) FROM {table_sql}")
            return (last or 0) + 1
        last = self.value(
            f"SELECT max({key_sql}) FROM {table_sql} WHERE {key_sql} BETWEEN ? AND ?",
            (prefix + "0" * digits, prefix + "9" * digits),
        )
        number = int(last[len(prefix) :]) + 1 if last else 1
        if number >= 10**digits:
            raise _tool_error(f"{table} is full: no {digits}-digit key is left")
        return f"{prefix}{number:0{digits}d}"

    # ----- episode and call boundaries ----------------------------------------------------
    def reset(self) -> None:
        """Undo everything since the episode began: a rollback of the changed pages only."""
        self.conn.execute("ROLLBACK TO episode")

    @contextmanager
    def call(self) -> Iterator[None]:
        """Run one tool call atomically: any exception rolls back all of its writes."""
        self.conn.execute("SAVEPOINT call")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO call")
            self.conn.execute("RELEASE call")
            raise
        self.conn.execute("RELEASE call")

    def close(self) -> None:
        self.conn.close()

    @property
    def total_changes(self) -> int:
        """Rows changed on this handle so far: a read that moves it wrote."""
        return self.conn.total_changes

    @property
    def connections(self) -> dict[str, sqlite3.Connection]:
        """The SQLite connections behind this handle, by name ('' for a single database)."""
        return {"": self.conn}

    def foreign_key_violations(self) -> list[tuple[Any, ...]]:
        """`PRAGMA foreign_key_check`: rows whose references point nowhere."""
        return self.conn.execute("PRAGMA foreign_key_check").fetchall()

    # ----- what changed -------------------------------------------------------------------
    def _read_log(self) -> tuple[list[tuple[str, str, str | None, str | None]], set]:
        """One pass over the change log: the net changes, and every row changed at some point."""
        first_old: dict[tuple[str, str], str | None] = {}
        last_new: dict[tuple[str, str], str | None] = {}
        written: set[tuple[str, str]] = set()
        for tbl, pk, old, new in self.conn.execute(
            f"SELECT tbl, pk, old, new FROM {CHANGE_LOG} ORDER BY seq"
        ):
            key = (tbl, pk)
            first_old.setdefault(key, old)
            last_new[key] = new
            if old != new:
                written.add(key)
        net = sorted(
            (key[0], key[1], before, last_new[key])
            for key, before in first_old.items()
            if before != last_new[key]
        )
        return net, written

    def changes(self) -> list[tuple[str, str, str | None, str | None]]:
        """Net row changes since the episode began: (table, key, before, after) as JSON text."""
        return self._read_log()[0]

    def written_rows(self) -> set[tuple[str, str]]:
        """Every row the episode changed at some point, restored ones included, as (table, key
        as compact JSON): what the violation rule compares with a task's allowed writes."""
        return self._read_log()[1]

    def diff_and_written(self) -> tuple[Diff, set[tuple[str, str]]]:
        """`diff()` and `written_rows()` from one pass over the change log (what scoring needs)."""
        net, written = self._read_log()
        return diff_from_changes(net), written

    def diff(self) -> Diff:
        """Readable diff: per table, rows added, removed and changed (with only changed fields)."""
        return diff_from_changes(self.changes())

    def state_digest(self) -> dict[str, str]:
        """Canonical, order-independent digest of every table's full contents."""
        return {table: table_digest(self.conn, table) for table in user_tables(self.conn)}


def table_digest(conn: sqlite3.Connection, table: str) -> str:
    """sha256 over the sorted hashes of a table's rows: independent of row order."""
    row_hashes = sorted(
        hashlib.sha256(json.dumps(list(row), default=str).encode()).digest()
        for row in conn.execute(f"SELECT * FROM {quote_name(table)}")
    )
    return hashlib.sha256(b"".join(row_hashes)).hexdigest()


def log_json(text: str) -> Any:
    """A value the change-log triggers wrote as JSON (SQLite's compact, complete text), parsed
    by the C scanner directly: for short rows `json.loads`' own wrapper costs more than the
    parse."""
    value, end = _SCAN_JSON(text, 0)
    if end != len(text):
        raise ValueError(f"trailing text after the JSON value at {end}: {text[end:][:40]!r}")
    return value


def diff_from_changes(changes: Sequence[tuple[str, str, str | None, str | None]]) -> Diff:
    diff: Diff = {}
    for table, key, before, after in changes:
        entry = diff.setdefault(table, {"added": [], "removed": [], "changed": []})
        if before is None and after is not None:
            entry["added"].append(log_json(after))
        elif after is None and before is not None:
            entry["removed"].append(log_json(before))
        elif before is not None and after is not None:
            old, new = log_json(before), log_json(after)
            fields = {k: [old.get(k), v] for k, v in new.items() if old.get(k) != v}
            entry["changed"].append({"key": log_json(key), "fields": fields})
    return diff


def comparable_diff(diff: Diff) -> dict[str, dict[str, tuple[int, Any]]]:
    """A readable diff in a form where equal diffs compare equal whatever their order: per
    table and kind, the count of items and the items (one item as is, several as a multiset,
    so repeated identical rows still count). Values compare as Python does, which is how SQLite
    stores them: 1 == 1.0, and true == 1. The reward compares states this way: with no JSON
    encoding it costs a seventh of `canonical_diff`. For JSON data: dicts, lists, scalars."""
    comparable: dict[str, dict[str, tuple[int, Any]]] = {}
    for table, entry in diff.items():
        kinds: dict[str, tuple[int, Any]] = {}
        for kind, items in entry.items():
            if len(items) == 1:
                kinds[kind] = (1, items[0])
            elif items:
                kinds[kind] = (len(items), Counter(map(_frozen, items)))
        if kinds:
            comparable[table] = kinds
    return comparable


def _frozen(value: Any) -> Any:
    """JSON data (dicts, lists, scalars) as a hashable value that compares equal exactly when
    the data does."""
    if isinstance(value, dict):
        return frozenset((key, _frozen(item)) for key, item in value.items())
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


def canonical_diff(diff: Diff) -> tuple[tuple[str, str, str], ...]:
    """A readable diff as a sorted tuple of (table, kind, item as sorted JSON): equal diffs,
    whatever their order, compare equal (and repeated identical rows still count)."""
    return tuple(
        sorted(
            (table, kind, json.dumps(item, sort_keys=True))
            for table, entry in diff.items()
            for kind, items in entry.items()
            for item in items
        )
    )


def diff_digest(diff: Diff) -> str:
    """Canonical digest of a readable diff: equal diffs give equal digests, whatever the order.
    Stricter than `comparable_diff`: 1 and 1.0 digest differently (a replay must match exactly)."""
    return hashlib.sha256(json.dumps(canonical_diff(diff)).encode()).hexdigest()


def _tool_error(message: str) -> ToolError:
    return ToolError(message)


@contextmanager
def _constraints(table: str) -> Iterator[None]:
    """Turn SQLite's constraint failures into a `ToolError` the agent can read."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        message = str(exc)
        if "FOREIGN KEY" in message:
            message = "it refers to a row that does not exist, or other rows still refer to it"
        raise _tool_error(f"cannot write {table}: {message}") from None
