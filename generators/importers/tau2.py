"""Import a tau2-bench domain folder (airline or retail) as an env package.

`import_tau2(DOMAIN_DIR, OUT)` reads the folder's `db.json` (or `db.toml`), `tasks.json`,
`policy.md` and, when present, `split_tasks.json`, and writes an env package that runs on
Airline-v0's or Retail-v0's tools (`envs/airline/tools.py`, `envs/retail/tools.py`):

- `schema.sql`: Airline-v0's or Retail-v0's tables, widened so that tau2's data fits as it is:
  flight dates that cannot be booked (no seats or prices), the actual and estimated times of
  flights that flew or are about to, arrival times written `HH:MM:SS+1` for overnight flights,
  addresses with a second line and a country, saved passengers, payment methods and a user's
  orders in tau2's order, gift cards and certificates with their amounts, '#W...' order ids,
  cancelled orders without a reason, parcels with several tracking numbers, orders with no
  creation time. What the tables cannot hold is refused with a message naming the record.
- `rows.json` + `seed.py`: the rows, loaded by a ten-line seed.
- `tools.py`: Airline-v0's or Retail-v0's tools, imported unchanged, plus the views that show
  tau2's records as tau2 does (users, orders) and the one-stop search that connects across
  midnight (`+1` arrivals).
- `tasks.jsonl`: each tau2 task as a `Task`. The ground truth is the action list; the expected
  diff and allowed writes come from replaying it on the package; the required outputs are the
  `communicate_info` values (and a tau-bench-style `outputs` list) that the ground truth's tool
  outputs hold; the opening message is the reason for the call in the user's own voice; the
  user's facts are read from the known information (name, user id, email, zip code, reservation
  and order ids). A task whose action list is empty gets the look-up of the user it names as its
  ground truth, so that doing nothing does not pass as a refusal. An action that fails here is
  left out of the ground truth, as tau2's own replay skips a failing action (a look-up of a
  mistyped email). Tasks left with no action that succeeds, or that fail the per-task checker,
  are left out; both are reported.
- `user_scenarios.json`: each task's whole tau2 user scenario (persona, instructions, known and
  unknown information) and its natural-language assertions, for an LLM user.

`export_tau2_db(conn, domain)` rebuilds tau2's JSON from the package's database: the round trip
the tests check. The CLI is `envfactory import tau2 DOMAIN_DIR --out DIR` (see `cmd_import_tau2`)
or `python -m envfactory_gym.generators.importers.tau2 DOMAIN_DIR --out DIR`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DOMAINS = ("airline", "retail")
DOMAIN_OF = {"airline": "travel", "retail": "commerce"}
"""The env.toml domain of each tau2 domain."""
CABINS = ("basic_economy", "economy", "business")
ROWS_FILE = "rows.json"
SCENARIOS_FILE = "user_scenarios.json"
TEST_SHARE = 4
"""Without a split file, one task in TEST_SHARE (by a hash of its id) goes to the test split."""

AIRPORT_CITIES = {
    "ATL": "Atlanta", "BOS": "Boston", "CLT": "Charlotte", "DEN": "Denver", "DFW": "Dallas",
    "DTW": "Detroit", "EWR": "Newark", "IAH": "Houston", "JFK": "New York", "LAS": "Las Vegas",
    "LAX": "Los Angeles", "LGA": "New York", "MCO": "Orlando", "MIA": "Miami",
    "MSP": "Minneapolis", "ORD": "Chicago", "PHL": "Philadelphia", "PHX": "Phoenix",
    "SEA": "Seattle", "SFO": "San Francisco",
}  # fmt: skip
"""tau2's airline db has no airport table (its tools list a fixed set); cities for the codes a
flight names, the code itself for any other."""


class Tau2ImportError(ValueError):
    """The folder is not a tau2 airline or retail domain, or a record does not fit the tables."""


@dataclass
class Tau2ImportResult:
    """What `import_tau2` wrote: the package, its row counts, and the tasks it kept or left out."""

    folder: Path
    domain: str
    gym_id: str
    rows: dict[str, int]
    tasks: int
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ----- reading the domain folder ------------------------------------------------------------
def load_db(source: Path) -> dict[str, Any]:
    """The domain's database: `db.json`, else `db.toml`."""
    if (source / "db.json").is_file():
        return json.loads((source / "db.json").read_text(encoding="utf-8"))
    if (source / "db.toml").is_file():
        with (source / "db.toml").open("rb") as handle:
            return tomllib.load(handle)
    raise Tau2ImportError(f"{source}: no db.json or db.toml (is it a tau2 domain folder?)")


def detect_domain(db: dict[str, Any]) -> str:
    """'airline' (flights, users, reservations) or 'retail' (products, users, orders)."""
    if {"flights", "users", "reservations"} <= db.keys():
        return "airline"
    if {"products", "users", "orders"} <= db.keys():
        return "retail"
    raise Tau2ImportError(
        f"the db has keys {sorted(db)}: expected tau2's airline (flights, users, reservations) "
        "or retail (products, users, orders) domain"
    )


def load_splits(source: Path) -> dict[str, str]:
    """Task id -> 'train' | 'test' from `split_tasks.json` ({"train": [...], "test": [...]})."""
    path = source / "split_tasks.json"
    if not path.is_file():
        return {}
    splits = json.loads(path.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for split in ("train", "test"):
        for task_id in splits.get(split, []):
            found[str(task_id)] = split
    return found


# ----- tau2 db -> rows ------------------------------------------------------------------------
Rows = dict[str, list[dict[str, Any]]]


def _cents(amount: Any, where: str) -> int:
    cents = round(float(amount) * 100)
    if abs(cents - float(amount) * 100) > 1e-6:
        raise Tau2ImportError(f"{where}: amount {amount!r} has more than two decimals")
    return cents


def _dollars(cents: int) -> int | float:
    return cents // 100 if cents % 100 == 0 else round(cents / 100, 2)


def airline_rows(db: dict[str, Any]) -> Rows:
    """tau2's airline db as rows of the imported package's tables."""
    rows: Rows = {t: [] for t in (
        "airports", "flights", "flight_dates", "users", "payment_methods", "saved_passengers",
        "reservations", "reservation_flights", "reservation_passengers", "payments")}  # fmt: skip
    codes: dict[str, None] = {}
    for number, flight in db["flights"].items():
        codes.update({flight["origin"]: None, flight["destination"]: None})
        rows["flights"].append({
            "flight_number": number, "origin": flight["origin"],
            "destination": flight["destination"],
            "departure_time": flight["scheduled_departure_time_est"],
            "arrival_time": flight["scheduled_arrival_time_est"],
        })  # fmt: skip
        for date, state in flight.get("dates", {}).items():
            row: dict[str, Any] = {"flight_number": number, "date": date,
                                   "status": state["status"]}  # fmt: skip
            seats, prices = state.get("available_seats") or {}, state.get("prices") or {}
            for cabin in CABINS:
                row[f"seats_{cabin}"] = seats.get(cabin)
                row[f"price_{cabin}"] = prices.get(cabin)
            for when in ("estimated", "actual"):
                for what in ("departure", "arrival"):
                    row[f"{when}_{what}"] = state.get(f"{when}_{what}_time_est")
            rows["flight_dates"].append(row)
    rows["airports"] = [{"iata": c, "city": AIRPORT_CITIES.get(c, c)} for c in sorted(codes)]
    for user_id, user in db["users"].items():
        address = user.get("address") or {}
        rows["users"].append({
            "user_id": user_id, "first_name": user["name"]["first_name"],
            "last_name": user["name"]["last_name"], "email": user["email"], "dob": user["dob"],
            "membership": user["membership"], "address1": address.get("address1"),
            "address2": address.get("address2"), "city": address.get("city"),
            "state": address.get("state"), "country": address.get("country"),
            "zip": address.get("zip"),
        })  # fmt: skip
        for payment_id, method in user.get("payment_methods", {}).items():
            rows["payment_methods"].append({
                "payment_id": method.get("id", payment_id), "user_id": user_id,
                "source": method["source"], "brand": method.get("brand"),
                "last_four": method.get("last_four"), "balance": method.get("amount"),
            })  # fmt: skip
        for position, passenger in enumerate(user.get("saved_passengers", [])):
            rows["saved_passengers"].append({"user_id": user_id, "position": position,
                                             **_passenger(passenger)})  # fmt: skip
    # Reservations in each user's order (their rowid order is the order the user lists them
    # in, which is what Airline-v0's views and ours sort by), then any a user does not list.
    order = [r for u in db["users"].values() for r in u.get("reservations", [])]
    missing = [r for r in order if r not in db["reservations"]]
    if missing:
        raise Tau2ImportError(f"users list reservations that do not exist: {missing[:5]}")
    order += [r for r in db["reservations"] if r not in set(order)]
    for reservation_id in dict.fromkeys(order):
        rows_for_reservation(db["reservations"][reservation_id], db["flights"], rows)
    return rows


def _passenger(passenger: dict[str, Any]) -> dict[str, Any]:
    return {k: passenger[k] for k in ("first_name", "last_name", "dob")}


def rows_for_reservation(res: dict[str, Any], flights: dict[str, Any], rows: Rows) -> None:
    """Append one tau2 reservation's rows."""
    reservation_id = res["reservation_id"]
    rows["reservations"].append({
        "reservation_id": reservation_id, "user_id": res["user_id"], "origin": res["origin"],
        "destination": res["destination"], "flight_type": res["flight_type"],
        "cabin": res["cabin"], "insurance": int(res["insurance"] == "yes"),
        "total_baggages": res["total_baggages"], "nonfree_baggages": res["nonfree_baggages"],
        "created_at": res["created_at"], "status": res.get("status") or "active",
    })  # fmt: skip
    for position, leg in enumerate(res["flights"]):
        known = flights.get(leg["flight_number"], {})
        route = (known.get("origin"), known.get("destination"))
        if "origin" in leg and route != (leg["origin"], leg["destination"]):
            raise Tau2ImportError(
                f"reservation {reservation_id}: flight {leg['flight_number']} is listed as "
                f"{leg['origin']}-{leg['destination']} but the flight flies {route[0]}-{route[1]}"
            )
        rows["reservation_flights"].append({
            "reservation_id": reservation_id, "position": position,
            "flight_number": leg["flight_number"], "date": leg["date"], "price": leg["price"],
        })  # fmt: skip
    for position, passenger in enumerate(res["passengers"]):
        rows["reservation_passengers"].append(
            {"reservation_id": reservation_id, "position": position, **_passenger(passenger)}
        )
    for payment in res.get("payment_history", []):
        rows["payments"].append(
            {
                "reservation_id": reservation_id,
                "payment_id": payment["payment_id"],
                "amount": payment["amount"],
            }
        )


def retail_rows(db: dict[str, Any]) -> Rows:
    """tau2's retail db as rows of the imported package's tables (money in cents)."""
    rows: Rows = {t: [] for t in (
        "users", "payment_methods", "products", "product_options", "items", "item_options",
        "orders", "fulfillments", "order_items", "payments", "order_requests",
        "request_items")}  # fmt: skip
    for product_id, product in db["products"].items():
        rows["products"].append({"product_id": product_id, "name": product["name"]})
        names: dict[str, None] = {}
        for variant in product["variants"].values():
            names.update(dict.fromkeys(variant["options"]))
        position_of = {name: i for i, name in enumerate(names)}
        rows["product_options"] += [
            {"product_id": product_id, "position": i, "name": name}
            for name, i in position_of.items()
        ]
        for item_id, variant in product["variants"].items():
            rows["items"].append({
                "item_id": variant.get("item_id", item_id), "product_id": product_id,
                "price": _cents(variant["price"], f"item {item_id}"),
                "available": int(bool(variant["available"])),
            })  # fmt: skip
            rows["item_options"] += [
                {"item_id": item_id, "position": position_of[name], "value": value}
                for name, value in variant["options"].items()
            ]
    listed: dict[str, int] = {}
    for user_id, user in db["users"].items():
        address = user["address"]
        rows["users"].append({"user_id": user_id, **user["name"], "email": user["email"],
                              **{k: address.get(k) for k in ADDRESS}})  # fmt: skip
        for position, (method_id, method) in enumerate(user.get("payment_methods", {}).items()):
            balance = method.get("balance")
            rows["payment_methods"].append({
                "payment_method_id": method.get("id", method_id), "user_id": user_id,
                "position": position, "source": method["source"], "brand": method.get("brand"),
                "last_four": method.get("last_four"),
                "balance": None if balance is None else _cents(balance, f"gift card {method_id}"),
            })  # fmt: skip
        for position, order_id in enumerate(user.get("orders", [])):
            listed[order_id] = position
    for order_id, order in db["orders"].items():
        rows_for_order(order_id, order, listed.get(order_id), rows)
    return rows


ADDRESS = ("address1", "address2", "city", "state", "country", "zip")


def rows_for_order(order_id: str, order: dict[str, Any], listed: int | None, rows: Rows) -> None:
    """Append one tau2 order's rows (its position in its user's list of orders, if listed)."""
    where = f"order {order_id}"
    rows["orders"].append({
        "order_id": order_id, "user_id": order["user_id"], "user_position": listed,
        "created_at": order.get("created_at"), "status": order["status"],
        **{k: order["address"].get(k) for k in ADDRESS},
        "cancel_reason": order.get("cancel_reason"),
    })  # fmt: skip
    lines = [dict(item, position=i, tracking_id=None) for i, item in enumerate(order["items"])]
    for number, parcel in enumerate(order.get("fulfillments", [])):
        tracking = parcel["tracking_id"]
        tracking = [tracking] if isinstance(tracking, str) else list(tracking)
        if not tracking:
            raise Tau2ImportError(f"{where}: a fulfillment without a tracking id")
        for tracking_id in tracking:
            rows["fulfillments"].append({
                "tracking_id": tracking_id, "order_id": order_id, "position": number,
                "carrier": parcel.get("carrier"), "shipped_at": parcel.get("shipped_at"),
                "delivered_at": parcel.get("delivered_at"),
            })  # fmt: skip
        for item_id in parcel["item_ids"]:
            line = next(
                (x for x in lines if x["item_id"] == item_id and not x["tracking_id"]), None
            )
            if line is None:
                raise Tau2ImportError(f"{where}: a parcel holds item {item_id}, not in the order")
            line["tracking_id"] = tracking[0]
    for line in lines:
        rows["order_items"].append({
            "order_id": order_id, "position": line["position"], "item_id": line["item_id"],
            "price": _cents(line["price"], where), "tracking_id": line["tracking_id"],
        })  # fmt: skip
    for payment in order.get("payment_history", []):
        rows["payments"].append({
            "order_id": order_id, "payment_method_id": payment["payment_method_id"],
            "transaction_type": payment["transaction_type"],
            "amount": _cents(payment["amount"], where),
        })  # fmt: skip
    kinds = [k for k in ("return", "exchange") if order.get(f"{k}_items") is not None]
    if len(kinds) > 1:
        raise Tau2ImportError(f"{where}: both a return and an exchange (the tables hold one)")
    if kinds:
        _request_rows(order_id, order, kinds[0], lines, rows)


def _request_rows(
    order_id: str, order: dict[str, Any], kind: str, lines: list[dict[str, Any]], rows: Rows
) -> None:
    """A return or exchange asked for: tau2 keeps the item ids (and new item ids) sorted; each
    names the first order line with that item that no earlier id took."""
    free = list(lines)
    new_ids = order.get("exchange_new_items") or []
    picked = []
    for index, item_id in enumerate(order[f"{kind}_items"]):
        line = next((x for x in free if x["item_id"] == item_id), None)
        if line is None:
            raise Tau2ImportError(f"order {order_id}: {kind} of item {item_id}, not in the order")
        free.remove(line)
        new = new_ids[index] if kind == "exchange" else None
        picked.append({"order_id": order_id, "position": line["position"], "new_item_id": new})
    if kind == "exchange":
        amount = _cents(order.get("exchange_price_difference") or 0, f"order {order_id}")
    else:
        positions = {p["position"] for p in picked}
        amount = sum(_cents(x["price"], order_id) for x in lines if x["position"] in positions)
    rows["order_requests"].append({
        "order_id": order_id, "kind": kind,
        "payment_method_id": order[f"{kind}_payment_method_id"], "amount": amount,
        "requested_at": None,
    })  # fmt: skip
    rows["request_items"] += sorted(picked, key=lambda r: r["position"])


# ----- rows -> tau2 db (the round trip) ------------------------------------------------------
def export_tau2_db(conn: sqlite3.Connection, domain: str) -> dict[str, Any]:
    """tau2's JSON rebuilt from an imported package's database (in its current state)."""
    conn.row_factory = sqlite3.Row
    try:
        return _export_airline(conn) if domain == "airline" else _export_retail(conn)
    finally:
        conn.row_factory = None


def _export_airline(conn: sqlite3.Connection) -> dict[str, Any]:
    flights: dict[str, Any] = {}
    for f in conn.execute("SELECT * FROM flights ORDER BY rowid"):
        flights[f["flight_number"]] = {
            "flight_number": f["flight_number"], "origin": f["origin"],
            "destination": f["destination"], "scheduled_departure_time_est": f["departure_time"],
            "scheduled_arrival_time_est": f["arrival_time"], "dates": {},
        }  # fmt: skip
    for d in conn.execute("SELECT * FROM flight_dates ORDER BY flight_number, date"):
        state: dict[str, Any] = {"status": d["status"]}
        if d["seats_economy"] is not None:
            state["available_seats"] = {c: d[f"seats_{c}"] for c in CABINS}
            state["prices"] = {c: d[f"price_{c}"] for c in CABINS}
        for when in ("estimated", "actual"):
            for what in ("departure", "arrival"):
                if d[f"{when}_{what}"] is not None:
                    state[f"{when}_{what}_time_est"] = d[f"{when}_{what}"]
        flights[d["flight_number"]]["dates"][d["date"]] = state
    users: dict[str, Any] = {}
    for u in conn.execute("SELECT * FROM users ORDER BY rowid"):
        uid = u["user_id"]
        methods = {}
        for m in conn.execute(
            "SELECT * FROM payment_methods WHERE user_id = ? ORDER BY rowid", (uid,)
        ):
            method = {"source": m["source"], "id": m["payment_id"]}
            if m["source"] == "credit_card":
                method.update(brand=m["brand"], last_four=m["last_four"])
            else:
                method["amount"] = m["balance"]
            methods[m["payment_id"]] = method
        users[uid] = {
            "user_id": uid, "name": {"first_name": u["first_name"], "last_name": u["last_name"]},
            "address": {k: u[k] for k in ADDRESS}, "email": u["email"], "dob": u["dob"],
            "payment_methods": methods,
            "saved_passengers": [
                {"first_name": p["first_name"], "last_name": p["last_name"], "dob": p["dob"]}
                for p in conn.execute(
                    "SELECT * FROM saved_passengers WHERE user_id = ? ORDER BY position", (uid,)
                )
            ],
            "membership": u["membership"],
            "reservations": [r[0] for r in conn.execute(
                "SELECT reservation_id FROM reservations WHERE user_id = ? ORDER BY rowid", (uid,)
            )],
        }  # fmt: skip
    reservations: dict[str, Any] = {}
    for r in conn.execute("SELECT * FROM reservations ORDER BY reservation_id"):
        rid = r["reservation_id"]
        reservations[rid] = {
            **{k: r[k] for k in ("reservation_id", "user_id", "origin", "destination",
                                 "flight_type", "cabin")},
            "flights": [dict(x) for x in conn.execute(
                "SELECT f.origin, f.destination, rf.flight_number, rf.date, rf.price "
                "FROM reservation_flights rf JOIN flights f USING (flight_number) "
                "WHERE rf.reservation_id = ? ORDER BY rf.position", (rid,))],
            "passengers": [dict(x) for x in conn.execute(
                "SELECT first_name, last_name, dob FROM reservation_passengers "
                "WHERE reservation_id = ? ORDER BY position", (rid,))],
            "payment_history": [dict(x) for x in conn.execute(
                "SELECT payment_id, amount FROM payments WHERE reservation_id = ? "
                "ORDER BY payment_seq", (rid,))],
            "created_at": r["created_at"], "total_baggages": r["total_baggages"],
            "nonfree_baggages": r["nonfree_baggages"],
            "insurance": "yes" if r["insurance"] else "no",
            "status": None if r["status"] == "active" else r["status"],
        }  # fmt: skip
    return {"flights": flights, "users": users, "reservations": reservations}


def _export_retail(conn: sqlite3.Connection) -> dict[str, Any]:
    products: dict[str, Any] = {}
    for p in conn.execute("SELECT * FROM products ORDER BY product_id"):
        names = [o[0] for o in conn.execute(
            "SELECT name FROM product_options WHERE product_id = ? ORDER BY position",
            (p["product_id"],))]  # fmt: skip
        variants = {}
        for i in conn.execute(
            "SELECT * FROM items WHERE product_id = ? ORDER BY item_id", (p["product_id"],)
        ):
            variants[i["item_id"]] = {
                "item_id": i["item_id"], "options": _item_options(conn, i["item_id"], names),
                "available": bool(i["available"]), "price": _dollars(i["price"]),
            }  # fmt: skip
        products[p["product_id"]] = {"name": p["name"], "product_id": p["product_id"],
                                     "variants": variants}  # fmt: skip
    users: dict[str, Any] = {}
    for u in conn.execute("SELECT * FROM users ORDER BY user_id"):
        uid = u["user_id"]
        methods = {}
        for m in conn.execute(
            "SELECT * FROM payment_methods WHERE user_id = ? ORDER BY position", (uid,)
        ):
            method: dict[str, Any] = {"source": m["source"], "id": m["payment_method_id"]}
            if m["source"] == "credit_card":
                method.update(brand=m["brand"], last_four=m["last_four"])
            if m["balance"] is not None:
                method["balance"] = _dollars(m["balance"])
            methods[m["payment_method_id"]] = method
        users[uid] = {
            "user_id": uid, "name": {"first_name": u["first_name"], "last_name": u["last_name"]},
            "address": {k: u[k] for k in ADDRESS}, "email": u["email"],
            "payment_methods": methods,
            "orders": [o[0] for o in conn.execute(
                "SELECT order_id FROM orders WHERE user_id = ? AND user_position IS NOT NULL "
                "ORDER BY user_position", (uid,))],
        }  # fmt: skip
    orders = {
        o[0]: _order_json(conn, o[0])
        for o in conn.execute("SELECT order_id FROM orders ORDER BY order_id")
    }
    return {"products": products, "users": users, "orders": orders}


def _item_options(conn: sqlite3.Connection, item_id: str, names: list[str]) -> dict[str, str]:
    return {
        names[position]: value
        for position, value in conn.execute(
            "SELECT position, value FROM item_options WHERE item_id = ? ORDER BY position",
            (item_id,),
        )
    }


def _order_json(conn: sqlite3.Connection, order_id: str) -> dict[str, Any]:
    """One order as tau2 keeps it (the same shape the package's get_order_details shows)."""
    o = conn.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
    lines = conn.execute(
        "SELECT oi.*, i.product_id, p.name FROM order_items oi JOIN items i USING (item_id) "
        "JOIN products p ON p.product_id = i.product_id WHERE oi.order_id = ? "
        "ORDER BY oi.position",
        (order_id,),
    ).fetchall()
    items = []
    for line in lines:
        names = [n[0] for n in conn.execute(
            "SELECT name FROM product_options WHERE product_id = ? ORDER BY position",
            (line["product_id"],))]  # fmt: skip
        items.append({
            "name": line["name"], "product_id": line["product_id"], "item_id": line["item_id"],
            "price": _dollars(line["price"]),
            "options": _item_options(conn, line["item_id"], names),
        })  # fmt: skip
    parcels: dict[int, dict[str, Any]] = {}
    for f in conn.execute(
        "SELECT * FROM fulfillments WHERE order_id = ? ORDER BY position, rowid", (order_id,)
    ):
        parcel = parcels.setdefault(f["position"], {"tracking_id": [], "item_ids": []})
        parcel["tracking_id"].append(f["tracking_id"])
        parcel["item_ids"] += [x["item_id"] for x in lines if x["tracking_id"] == f["tracking_id"]]
    order: dict[str, Any] = {
        "order_id": order_id, "user_id": o["user_id"],
        "address": {k: o[k] for k in ADDRESS}, "items": items, "status": o["status"],
        "fulfillments": list(parcels.values()),
        "payment_history": [
            {"transaction_type": p["transaction_type"], "amount": _dollars(p["amount"]),
             "payment_method_id": p["payment_method_id"]}
            for p in conn.execute(
                "SELECT * FROM payments WHERE order_id = ? ORDER BY payment_seq", (order_id,))
        ],
    }  # fmt: skip
    if o["cancel_reason"] is not None:
        order["cancel_reason"] = o["cancel_reason"]
    request = conn.execute("SELECT * FROM order_requests WHERE order_id = ?", (order_id,))
    request = request.fetchone()
    if request is not None:
        kind = request["kind"]
        covered = conn.execute(
            "SELECT oi.item_id, r.new_item_id FROM request_items r JOIN order_items oi "
            "ON oi.order_id = r.order_id AND oi.position = r.position WHERE r.order_id = ?",
            (order_id,),
        ).fetchall()
        order[f"{kind}_items"] = sorted(row["item_id"] for row in covered)
        if kind == "exchange":
            order["exchange_new_items"] = sorted(row["new_item_id"] for row in covered)
        order[f"{kind}_payment_method_id"] = request["payment_method_id"]
        if kind == "exchange":
            order["exchange_price_difference"] = _dollars(request["amount"])
    return order


# ----- tasks ---------------------------------------------------------------------------------
_YOU_OBJECT = re.compile(
    r"\b(?:to|for|with|at|from|about|by|of|on|than|like|give|gives|gave|tell|tells|told|ask|"
    r"asks|asked|help|helps|let|lets|call|calls|send|sends|sent|contact|offer|offers|offered|"
    r"show|shows|remind|reminds|charge|charges|refund|refunds|assure|assures|transfer|"
    r"transfers|provide|provides|thank|get|gets|put|puts|make|makes)\s+you\b|"
    r"\byou(?=\s*(?:[.,!?;:)]|$)|\s+to\s)",
    re.IGNORECASE,
)
"""Where "you" is an object ("tells you", "for you", "...you.") and becomes "me", not "I"."""
_PRONOUNS = (
    (r"\byou are\b", "I am"), (r"\byou were\b", "I was"), (r"\byou're\b", "I'm"),
    (r"\byou've\b", "I've"), (r"\byou'd\b", "I'd"), (r"\byou'll\b", "I'll"),
    (r"\byourself\b", "myself"), (r"\byours\b", "mine"), (r"\byour\b", "my"),
)  # fmt: skip


def first_person(text: str) -> str:
    """tau2's reason for the call ("You want to cancel your trip...", written to the user) in
    the user's own voice ("I want to cancel my trip..."), and "the agent" as "you"."""
    text = " ".join(text.split())
    for pattern, replacement in _PRONOUNS:
        text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    text = _YOU_OBJECT.sub(lambda m: m.group(0)[:-3] + "me", text)
    text = re.sub(r"\byou\b(?!['’])", "I", text, flags=re.IGNORECASE)
    text = re.sub(r"\b[Tt]he agent\b|(?<!human )\b[Aa]gent\b", "\0", text)
    text = re.sub(r"\0 (\w+)", lambda m: "you " + _plural_verb(m.group(1)), text)
    text = text.replace("\0", "you")
    text = re.sub(r"\bI am\b", "I'm", text)
    text = re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    return text.strip()


_IRREGULAR_VERBS = {"has": "have", "is": "are", "was": "were", "does": "do", "goes": "go"}


def _plural_verb(word: str) -> str:
    """The verb after "you" where tau2 wrote "the agent": "asks" -> "ask", "has" -> "have"."""
    if word in _IRREGULAR_VERBS:
        return _IRREGULAR_VERBS[word]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


_FACTS = (
    ("user_id", re.compile(r"\b([a-z]+(?:_[a-z]+)*_\d{3,})\b")),
    ("email", re.compile(r"\b([\w.+-]+@[\w-]+(?:\.[\w-]+)+)\b")),
    ("zip_code", re.compile(r"\bzip\s*code\s*(?:is\s*)?:?\s*([A-Za-z0-9]{3,10})\b", re.I)),
    ("zip_code", re.compile(r"\b[A-Z]{2},?\s+(\d{5})\b")),  # "Seattle, WA, 98193"
    ("reservation_id", re.compile(
        r"\b(?:reservation|confirmation|booking)\s*(?:id|number|code)?\s*(?:is\s*)?:?\s*"
        r"([A-Z0-9]{6})\b", re.I)),
    ("order_id", re.compile(r"(#[A-Z]\d{5,})")),
)  # fmt: skip
_NAME = re.compile(
    r"\b(?i:you are|your name is|you're|my name is|i am)\s+([A-Z][a-z]+(?:[ -][A-Z][a-z]+)+)"
)


def user_facts(known_info: str | None) -> dict[str, str]:
    """What the user knows and tells when asked, read from tau2's known information: name
    (and first and last name), user id, email, zip code, reservation and order ids."""
    if not known_info:
        return {}
    facts: dict[str, str] = {}
    name = _NAME.search(known_info)
    if name and not re.search(r"_\d", name.group(1)):
        full = name.group(1)
        facts["name"] = full
        facts["first_name"], _, facts["last_name"] = full.partition(" ")
    for key, pattern in _FACTS:
        found = pattern.search(known_info)
        if found and key not in facts:
            facts[key] = found.group(1).strip("'\".,")
    return facts


def _masked(action: dict[str, Any]) -> list[str]:
    """Arguments tau2 does not compare (compare_args) are masked; a handoff's summary too."""
    compare = action.get("compare_args")
    arguments = list(action.get("arguments", {}))
    if action["name"] == "transfer_to_human_agents" and compare is None:
        return [a for a in arguments if a == "summary"]
    if compare is None:
        return []
    return [a for a in arguments if a not in compare]


def _integral(value: Any) -> Any:
    """JSON numbers as the strict tool schemas want them: 500.0 -> 500."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def _lookup_calls(domain: str, facts: dict[str, str]) -> list[dict[str, Any]]:
    """For a task whose action list is empty: the look-up of the user it names."""
    if domain == "airline" and "user_id" in facts:
        return [{"name": "get_user_details", "arguments": {"user_id": facts["user_id"]}}]
    if domain == "retail" and "email" in facts:
        return [{"name": "find_user_id_by_email", "arguments": {"email": facts["email"]}}]
    if domain == "retail" and {"first_name", "last_name", "zip_code"} <= facts.keys():
        return [{"name": "find_user_id_by_name_zip", "arguments": {
            "first_name": facts["first_name"], "last_name": facts["last_name"],
            "zip": facts["zip_code"]}}]  # fmt: skip
    if domain == "retail" and "user_id" in facts:
        return [{"name": "get_user_details", "arguments": {"user_id": facts["user_id"]}}]
    return []


def _user_profile(
    scenario: dict[str, Any], instructions: dict[str, Any], task_model: Any
) -> dict[str, Any]:
    """The tau2 user scenario in the Task's user-profile fields, where the Task model has them
    (an LLM user reads them): persona = tau2's persona and known information ("who you are"),
    reason for contact = the reason for the call as tau2 wrote it (to the user, "You want..."),
    unknowns = the unknown information, reactions' guidance = the task instructions."""
    if "persona" not in task_model.model_fields:
        return {}
    clean = [" ".join(str(scenario.get("persona") or "").split())]
    clean.append(" ".join(str(instructions.get("known_info") or "").split()))
    profile: dict[str, Any] = {
        "persona": " ".join(part for part in clean if part),
        "reason_for_contact": " ".join(str(instructions.get("reason_for_call") or "").split()),
        "user_unknowns": [" ".join(instructions["unknown_info"].split())]
        if instructions.get("unknown_info")
        else [],
    }
    guidance = " ".join(str(instructions.get("task_instructions") or "").split())
    if guidance:
        profile["user_reactions"] = {"guidance": guidance}
    return profile


def _succeeding(package: Any, calls: list[Any], db: Any) -> tuple[list[Any], list[str]]:
    """The calls that succeed when played in order, leaving out each that fails (a look-up of
    a wrong email, a change the rules refuse): tau2 replays its action list the same way,
    logging and skipping a failing action. Also each left-out call, with its error."""
    from envfactory_gym.replay import replay
    from envfactory_gym.tools import ToolError

    kept: list[Any] = []
    dropped: list[str] = []
    for call in calls:
        try:
            replay(package, [*kept, call], db)
        except ToolError as exc:
            dropped.append(f"{call.name}({json.dumps(call.arguments)}): {exc}")
            continue
        kept.append(call)
    return kept, dropped


def _split(task_id: str, splits: dict[str, str]) -> str:
    if splits:
        return splits.get(task_id, "test")
    digest = hashlib.sha256(task_id.encode()).digest()[0]
    return "test" if digest % TEST_SHARE == 0 else "train"


def convert_tasks(
    package: Any, domain: str, tasks: list[dict[str, Any]], splits: dict[str, str]
) -> tuple[list[Any], list[str], dict[str, Any]]:
    """tau2 tasks -> (our `Task`s, why each left-out task was left out, the user scenarios)."""
    from envfactory_gym.distractors import find_distractors, leaves
    from envfactory_gym.replay import replay
    from envfactory_gym.reward import outputs_stated
    from envfactory_gym.tasks import Task, ToolCall

    converted: list[Task] = []
    skipped: list[str] = []
    db = package.new_database()
    scenarios: dict[str, Any] = {}
    for raw in tasks:
        tau2_id = str(raw["id"])
        task_id = f"{package.name}-{tau2_id}"
        scenario = raw.get("user_scenario") or {}
        instructions = scenario.get("instructions") or {}
        if isinstance(instructions, str):
            instructions = {"reason_for_call": instructions, "known_info": None}
        criteria = raw.get("evaluation_criteria") or {}
        if (raw.get("initial_state") or {}).get("initialization_actions") or (
            raw.get("initial_state") or {}
        ).get("initialization_data"):
            skipped.append(f"{tau2_id}: has an initial state (not supported)")
            continue
        actions = criteria.get("actions") or []
        if any(a.get("requestor", "assistant") != "assistant" for a in actions):
            skipped.append(f"{tau2_id}: has actions taken by the user (not supported)")
            continue
        facts = user_facts(instructions.get("known_info"))
        lookup = not actions
        if lookup:
            actions = _lookup_calls(domain, facts)
            if not actions:
                skipped.append(f"{tau2_id}: no actions and no user to look up")
                continue
        unknown = [a["name"] for a in actions if a["name"] not in package.tools]
        if unknown:
            skipped.append(f"{tau2_id}: tools {unknown} are not among the package's tools")
            continue
        calls = [
            ToolCall(name=a["name"], arguments=_integral(a.get("arguments", {})),
                     masked=_masked(a))
            for a in actions
        ]  # fmt: skip
        calls, dropped_calls = _succeeding(package, calls, db)
        if not calls:
            skipped.append(f"{tau2_id}: every action fails here: {'; '.join(dropped_calls)}")
            continue
        try:
            replayed = replay(package, calls, db)
        except Exception as exc:  # noqa: BLE001 - any failing call is the reason to skip
            skipped.append(f"{tau2_id}: the actions do not replay on these tools: {exc}")
            continue
        seen = "\n".join(str(value) for _, value in leaves(replayed.results))
        wanted = [*(criteria.get("communicate_info") or []), *(raw.get("outputs") or [])]
        wanted = [str(w).strip().lstrip("$") for w in wanted if str(w).strip()]
        outputs = [w for w in dict.fromkeys(wanted) if outputs_stated([w], seen, 0.0) == 1.0]
        reason = instructions.get("reason_for_call") or ""
        instruction = first_person(reason) or "Hi, I need help with my account."
        said = instruction + "\n" + "\n".join(facts.values())
        writes = sum(len(rows) for table in replayed.diff.values() for rows in table.values())
        write_calls = sum(
            1 for c in calls if package.tools[c.name].kind == "write"
        ) if writes else 0  # fmt: skip
        if write_calls > 1:
            kind = "multi_write"
        elif write_calls:
            kind = "write"
        elif any(c.name == "transfer_to_human_agents" for c in calls):
            kind = "handoff"
        else:
            kind = "read" if outputs else "refusal"
        converted.append(
            Task(
                id=task_id,
                split=_split(tau2_id, splits),
                kind=kind,
                instruction=instruction,
                user_facts=facts,
                **_user_profile(scenario, instructions, Task),
                calls=calls,
                outputs=outputs,
                distractors=find_distractors(outputs, replayed.results, package.template, said),
                expected_diff=replayed.diff,
                allowed_writes=replayed.written,
            )
        )
        dropped = [w for w in dict.fromkeys(wanted) if w not in outputs]
        scenarios[task_id] = {
            "tau2_id": tau2_id,
            "user_scenario": scenario,
            "description": raw.get("description"),
            "nl_assertions": criteria.get("nl_assertions") or [],
            "communicate_info_not_in_tool_outputs": dropped,
            "ground_truth_added": lookup,
            "dropped_calls": dropped_calls,
        }
    return converted, skipped, scenarios


# ----- the package ---------------------------------------------------------------------------
def import_tau2(
    source: str | Path,
    out: str | Path,
    *,
    env_id: str | None = None,
    check: bool = True,
) -> Tau2ImportResult:
    """Build an env package in `out` from the tau2-bench domain folder `source`.

    The package is built in a temporary folder beside `out` and moved into place only when it
    loads and its tasks are converted; `check` also runs the per-task checker and leaves out the
    tasks that fail it. `env_id` is the CamelCase name in the gym id (default: Tau2Airline or
    Tau2Retail), registered as `envfactory/<env_id>-v0` when `out` is under `envs/`.
    """
    from envfactory_gym.package import EnvPackage
    from envfactory_gym.tasks import write_tasks

    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise Tau2ImportError(f"{source} is not a folder")
    if not out.name.isidentifier():
        raise Tau2ImportError(f"--out {out}: the folder name must be a Python identifier")
    db = load_db(source)
    domain = detect_domain(db)
    tasks_path = source / "tasks.json"
    tasks = json.loads(tasks_path.read_text(encoding="utf-8")) if tasks_path.is_file() else []
    policy_path = source / "policy.md"
    policy = policy_path.read_text(encoding="utf-8") if policy_path.is_file() else ""
    rows = airline_rows(db) if domain == "airline" else retail_rows(db)
    env_id = env_id or f"Tau2{domain.capitalize()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent)) / out.name
    try:
        staging.mkdir()
        _write_package(staging, domain, env_id, rows, policy)
        try:
            package = EnvPackage(staging)
            package.template  # noqa: B018 - build it now: a record that does not fit fails here
        except (sqlite3.IntegrityError, ValueError) as exc:
            schema = (staging / "schema.sql").read_text(encoding="utf-8")
            raise Tau2ImportError(
                f"tau2's data does not fit the tables: {exc}{_first_misfit(schema, rows)}"
            ) from exc
        converted, skipped, scenarios = convert_tasks(package, domain, tasks, load_splits(source))
        write_tasks(staging / "tasks.jsonl", converted)
        notes = [
            f"task {s['tau2_id']}: left out an action that fails here (as tau2's replay skips "
            f"it): {call}"
            for s in scenarios.values()
            for call in s["dropped_calls"]
        ]
        if check and converted:
            converted, failed = _checked(staging, converted)
            skipped += failed
            write_tasks(staging / "tasks.jsonl", converted)
        scenarios = {k: v for k, v in scenarios.items() if k in {t.id for t in converted}}
        (staging / SCENARIOS_FILE).write_text(
            json.dumps(scenarios, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if not policy:
            notes.append("no policy.md in the domain folder: the package's policy is empty")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
    return Tau2ImportResult(
        folder=out,
        domain=domain,
        gym_id=f"envfactory/{env_id}-v0",
        rows={table: len(table_rows) for table, table_rows in rows.items()},
        tasks=len(converted),
        skipped=skipped,
        notes=notes,
    )


def _first_misfit(schema: str, rows: Rows) -> str:
    """Where the rows first break the schema: '; first at <table> <row>', or ''."""
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executescript(schema)
    try:
        for table, table_rows in rows.items():
            for row in table_rows:
                columns = ", ".join(row)
                marks = ", ".join("?" * len(row))
                try:
                    conn.execute(
                        f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values())
                    )
                except sqlite3.IntegrityError as exc:
                    return f"; first at {table} {json.dumps(row)} ({exc})"
    finally:
        conn.close()
    return ""


def _checked(folder: Path, tasks: list[Any]) -> tuple[list[Any], list[str]]:
    """The tasks that pass the per-task checker, and why each other one failed."""
    from envfactory_gym.checker import check_package
    from envfactory_gym.package import EnvPackage

    report = check_package(EnvPackage(folder))
    failed: dict[str, list[str]] = {}
    for problem in report.problems:
        if problem.task_id != "*":
            failed.setdefault(problem.task_id, []).append(f"[{problem.check}] {problem.detail}")
    kept = [task for task in tasks if task.id not in failed]
    reasons = [
        f"{task_id.rsplit('-', 1)[-1]}: fails the checker: {'; '.join(why)}"
        for task_id, why in failed.items()
    ]
    return kept, reasons


def _write_package(folder: Path, domain: str, env_id: str, rows: Rows, policy: str) -> None:
    description = {
        "airline": "An airline imported from a tau2-bench airline domain: you help members look "
        "up, book, change and cancel flights.",
        "retail": "An online store imported from a tau2-bench retail domain: you help customers "
        "with their orders and their account.",
    }[domain]
    (folder / "env.toml").write_text(
        f'id = "{env_id}"\nversion = 0\ndomain = "{DOMAIN_OF[domain]}"\n'
        f'description = "{description}"\nmax_turns = 30\nmax_user_replies = 3\n',
        encoding="utf-8",
    )
    (folder / "schema.sql").write_text(
        AIRLINE_SCHEMA if domain == "airline" else RETAIL_SCHEMA, encoding="utf-8"
    )
    (folder / "seed.py").write_text(SEED_PY, encoding="utf-8")
    (folder / "tools.py").write_text(
        AIRLINE_TOOLS if domain == "airline" else RETAIL_TOOLS, encoding="utf-8"
    )
    (folder / "policy.md").write_text(policy, encoding="utf-8")
    tables = {
        table: {"columns": list(table_rows[0]), "rows": [list(r.values()) for r in table_rows]}
        for table, table_rows in rows.items()
        if table_rows
    }
    (folder / ROWS_FILE).write_text(
        json.dumps(tables, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    (folder / "tasks.jsonl").write_text("", encoding="utf-8")
    (folder / "__init__.py").write_text("", encoding="utf-8")  # importable when under envs/


# ----- command line --------------------------------------------------------------------------
def add_tau2_parser(import_subparsers: Any) -> argparse.ArgumentParser:
    """`tau2 DOMAIN_DIR --out DIR [--env-id NAME] [--no-check]` under an `import` subcommand
    built with subparsers; `cmd_import_tau2` runs it."""
    parser = import_subparsers.add_parser(
        "tau2", help="an env package from a tau2-bench airline or retail domain folder"
    )
    add_tau2_arguments(parser)
    parser.set_defaults(fn=cmd_import_tau2)
    return parser


def add_tau2_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="DOMAIN_DIR", help="e.g. data/tau2/domains/airline")
    parser.add_argument("--out", required=True, metavar="DIR", help="the package folder")
    parser.add_argument("--env-id", dest="env_id", help="gym name (default Tau2Airline/Retail)")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="keep tasks without running the per-task checker")  # fmt: skip


def cmd_import_tau2(args: argparse.Namespace) -> int:
    """Run the import from parsed arguments (`source`, `out`, optional `env_id`, `check`)."""
    result = import_tau2(
        args.source,
        args.out,
        env_id=getattr(args, "env_id", None),
        check=getattr(args, "check", True),
    )
    rows = sum(result.rows.values())
    print(f"wrote {result.folder} ({result.gym_id}, tau2 {result.domain}): {rows:,} rows in "
          f"{len(result.rows)} tables, {result.tasks} tasks")  # fmt: skip
    for line in [*result.notes, *(f"left out task {s}" for s in result.skipped)]:
        print(f"  {line}")
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m envfactory_gym.generators.importers.tau2",
        description=__doc__.split("\n")[0],
    )
    add_tau2_arguments(parser)
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        return cmd_import_tau2(args)
    except (Tau2ImportError, FileNotFoundError) as exc:
        print(f"envfactory import tau2: {exc}", file=sys.stderr)
        return 2


# ----- emitted files -------------------------------------------------------------------------
SEED_PY = '''"""Seed rows: a tau2-bench db converted to this package's tables by
`envfactory import tau2`, kept in rows.json as {table: {"columns": [...], "rows": [...]}})."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

ROWS = Path(__file__).with_name("rows.json")


def seed(conn: sqlite3.Connection) -> None:
    for table, data in json.loads(ROWS.read_text(encoding="utf-8")).items():
        columns = ", ".join(data["columns"])
        marks = ", ".join("?" * len(data["columns"]))
        conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", data["rows"])
'''

AIRLINE_SCHEMA = """-- An airline imported from tau2-bench: Airline-v0's tables
-- (envs/airline/schema.sql), widened to hold tau2's data as it is. Money is in whole dollars,
-- as in tau2.

CREATE TABLE airports (
    iata TEXT PRIMARY KEY CHECK (length(iata) = 3),
    city TEXT NOT NULL
);

CREATE TABLE flights (
    flight_number TEXT PRIMARY KEY,
    origin TEXT NOT NULL REFERENCES airports (iata),
    destination TEXT NOT NULL REFERENCES airports (iata),
    departure_time TEXT NOT NULL CHECK (departure_time GLOB '[0-2][0-9]:[0-5][0-9]:[0-5][0-9]*'),
    -- HH:MM:SS, US Eastern; an overnight flight lands the next day: '01:30:00+1', as tau2 writes
    arrival_time TEXT NOT NULL CHECK (arrival_time GLOB '[0-2][0-9]:[0-5][0-9]:[0-5][0-9]*'),
    CHECK (origin <> destination)
);
CREATE INDEX flights_by_route ON flights (origin, destination);

-- A flight on a date. Only an 'available' one can be booked, and only it has seats and prices;
-- one that is about to fly or flew has estimated and actual times instead (tau2's fields).
CREATE TABLE flight_dates (
    flight_number TEXT NOT NULL REFERENCES flights (flight_number),
    date TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('available', 'on time', 'delayed', 'flying', 'landed', 'cancelled')),
    seats_basic_economy INTEGER CHECK (seats_basic_economy >= 0),
    seats_economy INTEGER CHECK (seats_economy >= 0),
    seats_business INTEGER CHECK (seats_business >= 0),
    price_basic_economy INTEGER CHECK (price_basic_economy > 0),
    price_economy INTEGER CHECK (price_economy > 0),
    price_business INTEGER CHECK (price_business > 0),
    estimated_departure TEXT,
    estimated_arrival TEXT,
    actual_departure TEXT,
    actual_arrival TEXT,
    CHECK (status <> 'available' OR (seats_basic_economy IS NOT NULL
        AND seats_economy IS NOT NULL AND seats_business IS NOT NULL
        AND price_basic_economy IS NOT NULL AND price_economy IS NOT NULL
        AND price_business IS NOT NULL)),
    CHECK (status NOT IN ('on time', 'delayed')
        OR (estimated_departure IS NOT NULL AND estimated_arrival IS NOT NULL)),
    CHECK (status <> 'flying' OR (actual_departure IS NOT NULL AND estimated_arrival IS NOT NULL)),
    CHECK (status <> 'landed' OR (actual_departure IS NOT NULL AND actual_arrival IS NOT NULL)),
    PRIMARY KEY (flight_number, date)
) WITHOUT ROWID;

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL,
    dob TEXT NOT NULL,
    membership TEXT NOT NULL CHECK (membership IN ('regular', 'silver', 'gold')),
    address1 TEXT,
    address2 TEXT,  -- the optional second line
    city TEXT,
    state TEXT,
    country TEXT,
    zip TEXT
);

-- A user's payment methods in the order tau2 lists them (rowid order); gift cards and
-- certificates keep tau2's amount, a credit card its brand and last four digits.
CREATE TABLE payment_methods (
    payment_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    source TEXT NOT NULL CHECK (source IN ('credit_card', 'gift_card', 'certificate')),
    brand TEXT,
    last_four TEXT,
    balance REAL CHECK (balance IS NULL OR balance >= 0),
    CHECK ((source = 'credit_card') = (balance IS NULL)),
    CHECK ((source = 'credit_card') = (last_four IS NOT NULL))
);
CREATE INDEX payment_methods_by_user ON payment_methods (user_id, payment_id);

-- Saved passengers in the order the user saved them (names may repeat).
CREATE TABLE saved_passengers (
    user_id TEXT NOT NULL REFERENCES users (user_id),
    position INTEGER NOT NULL CHECK (position >= 0),
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    dob TEXT NOT NULL,
    PRIMARY KEY (user_id, position)
) WITHOUT ROWID;

-- tau2's status is null for a live reservation: 'active' here, as in Airline-v0.
CREATE TABLE reservations (
    reservation_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    origin TEXT NOT NULL REFERENCES airports (iata),
    destination TEXT NOT NULL REFERENCES airports (iata),
    flight_type TEXT NOT NULL CHECK (flight_type IN ('one_way', 'round_trip')),
    cabin TEXT NOT NULL CHECK (cabin IN ('basic_economy', 'economy', 'business')),
    insurance INTEGER NOT NULL CHECK (insurance IN (0, 1)),
    total_baggages INTEGER NOT NULL CHECK (total_baggages >= 0),
    nonfree_baggages INTEGER NOT NULL CHECK (nonfree_baggages >= 0),
    created_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled'))
);
CREATE INDEX reservations_by_user ON reservations (user_id);

CREATE TABLE reservation_flights (
    reservation_id TEXT NOT NULL REFERENCES reservations (reservation_id),
    position INTEGER NOT NULL CHECK (position >= 0),
    flight_number TEXT NOT NULL,
    date TEXT NOT NULL,
    price INTEGER NOT NULL CHECK (price >= 0),
    PRIMARY KEY (reservation_id, position),
    FOREIGN KEY (flight_number, date) REFERENCES flight_dates (flight_number, date)
) WITHOUT ROWID;

CREATE TABLE reservation_passengers (
    reservation_id TEXT NOT NULL REFERENCES reservations (reservation_id),
    position INTEGER NOT NULL CHECK (position >= 0),
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    dob TEXT NOT NULL,
    PRIMARY KEY (reservation_id, position)
) WITHOUT ROWID;

CREATE TABLE payments (
    payment_seq INTEGER PRIMARY KEY,
    reservation_id TEXT NOT NULL REFERENCES reservations (reservation_id),
    payment_id TEXT NOT NULL,  -- tau2 keeps a spent certificate's payments after removing it
    amount INTEGER NOT NULL
);
CREATE INDEX payments_by_reservation ON payments (reservation_id);
"""

RETAIL_SCHEMA = """-- A store imported from tau2-bench: Retail-v0's tables
-- (envs/retail/schema.sql), widened to hold tau2's data as it is. Money is in US cents
-- (integers); the tools show dollars.

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    first_name TEXT NOT NULL COLLATE NOCASE,
    last_name TEXT NOT NULL COLLATE NOCASE,
    email TEXT NOT NULL COLLATE NOCASE UNIQUE,
    address1 TEXT NOT NULL,
    address2 TEXT NOT NULL DEFAULT '',
    city TEXT NOT NULL,
    state TEXT NOT NULL,
    country TEXT NOT NULL,
    zip TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX users_by_name_zip ON users (zip, last_name, first_name);

-- A user's payment methods in the order tau2 lists them.
CREATE TABLE payment_methods (
    payment_method_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    position INTEGER NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('credit_card', 'paypal', 'gift_card')),
    brand TEXT,
    last_four TEXT,
    balance INTEGER CHECK (balance IS NULL OR balance >= 0),  -- cents, gift cards only
    CHECK ((source = 'gift_card') = (balance IS NOT NULL)),
    CHECK ((source = 'credit_card') = (brand IS NOT NULL AND last_four IS NOT NULL))
) WITHOUT ROWID;
CREATE INDEX payment_methods_by_user ON payment_methods (user_id, position);

CREATE TABLE products (
    product_id TEXT PRIMARY KEY,
    name TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE product_options (
    product_id TEXT NOT NULL REFERENCES products (product_id),
    position INTEGER NOT NULL CHECK (position >= 0),
    name TEXT NOT NULL,
    PRIMARY KEY (product_id, position),
    UNIQUE (product_id, name)
) WITHOUT ROWID;

CREATE TABLE items (
    item_id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (product_id),
    price INTEGER NOT NULL CHECK (price > 0),
    available INTEGER NOT NULL CHECK (available IN (0, 1))
) WITHOUT ROWID;
CREATE INDEX items_by_product ON items (product_id, item_id);

CREATE TABLE item_options (
    item_id TEXT NOT NULL REFERENCES items (item_id),
    position INTEGER NOT NULL CHECK (position >= 0),
    value TEXT NOT NULL,
    PRIMARY KEY (item_id, position)
) WITHOUT ROWID;

-- tau2's orders have '#W...' ids, no creation time, and a cancelled one may have no reason.
-- user_position: the order's place in its user's list of orders.
CREATE TABLE orders (
    order_id TEXT PRIMARY KEY CHECK (order_id GLOB '#*'),
    user_id TEXT NOT NULL REFERENCES users (user_id),
    user_position INTEGER,
    created_at TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'pending (item modified)', 'processed',
        'delivered', 'cancelled', 'return requested', 'exchange requested')),
    address1 TEXT NOT NULL,
    address2 TEXT NOT NULL DEFAULT '',
    city TEXT NOT NULL,
    state TEXT NOT NULL,
    country TEXT NOT NULL,
    zip TEXT NOT NULL,
    cancel_reason TEXT CHECK (cancel_reason IN ('no longer needed', 'ordered by mistake'))
) WITHOUT ROWID;
CREATE INDEX orders_by_user ON orders (user_id, user_position);

-- A tracking number; the numbers of one tau2 fulfillment share its position in the order.
CREATE TABLE fulfillments (
    tracking_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    position INTEGER NOT NULL,
    carrier TEXT,
    shipped_at TEXT,
    delivered_at TEXT
);
CREATE INDEX fulfillments_by_order ON fulfillments (order_id, position);

CREATE TABLE order_items (
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    position INTEGER NOT NULL CHECK (position >= 0),
    item_id TEXT NOT NULL REFERENCES items (item_id),
    price INTEGER NOT NULL CHECK (price >= 0),
    tracking_id TEXT REFERENCES fulfillments (tracking_id),
    PRIMARY KEY (order_id, position)
) WITHOUT ROWID;

CREATE TABLE payments (
    payment_seq INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    payment_method_id TEXT NOT NULL REFERENCES payment_methods (payment_method_id),
    transaction_type TEXT NOT NULL CHECK (transaction_type IN ('payment', 'refund')),
    amount INTEGER NOT NULL CHECK (amount >= 0)
);
CREATE INDEX payments_by_order ON payments (order_id, payment_seq);

CREATE TABLE order_requests (
    order_id TEXT PRIMARY KEY REFERENCES orders (order_id),
    kind TEXT NOT NULL CHECK (kind IN ('return', 'exchange')),
    payment_method_id TEXT NOT NULL REFERENCES payment_methods (payment_method_id),
    amount INTEGER NOT NULL,
    requested_at TEXT
) WITHOUT ROWID;

CREATE TABLE request_items (
    order_id TEXT NOT NULL REFERENCES order_requests (order_id),
    position INTEGER NOT NULL,
    new_item_id TEXT REFERENCES items (item_id),
    PRIMARY KEY (order_id, position),
    FOREIGN KEY (order_id, position) REFERENCES order_items (order_id, position)
) WITHOUT ROWID;
"""

AIRLINE_TOOLS = '''"""Tools of an airline imported from tau2-bench: Airline-v0's tools
(envs/airline/tools.py), unchanged, with two of them replaced so that they show tau2's data as
it is: the user's details (full address, payment methods and saved passengers in their order,
tau2's field names) and the one-stop search, whose second flight leaves the next day after an
overnight first flight."""

from __future__ import annotations

import json
from datetime import date as calendar_date
from datetime import timedelta

from envfactory_gym import Database, ToolError, tool
from envfactory_gym.envs.airline import tools as airline
from envfactory_gym.envs.airline.tools import (  # noqa: F401 - the package's tools
    book_reservation,
    calculate,
    cancel_reservation,
    get_flight_status,
    get_reservation_details,
    list_all_airports,
    search_direct_flight,
    send_certificate,
    transfer_to_human_agents,
    update_reservation_baggages,
    update_reservation_flights,
    update_reservation_passengers,
)


@tool
def get_user_details(db: Database, user_id: str) -> str:
    """Get the details of a user: profile, membership, payment methods, saved passengers and
    reservation ids.

    Args:
        user_id: The user ID, such as 'sara_doe_496'.
    """
    user = db.row("SELECT * FROM users WHERE user_id = ?", (user_id,))
    if user is None:
        raise ToolError(f"user {user_id!r} not found")
    methods = {}
    for method in db.rows(
        "SELECT * FROM payment_methods WHERE user_id = ? ORDER BY rowid", (user_id,)
    ):
        view = {"source": method["source"], "id": method["payment_id"]}
        if method["source"] == "credit_card":
            view.update(brand=method["brand"], last_four=method["last_four"])
        else:
            view["amount"] = method["balance"]
        methods[method["payment_id"]] = view
    passengers = db.rows(
        "SELECT first_name, last_name, dob FROM saved_passengers WHERE user_id = ? "
        "ORDER BY position",
        (user_id,),
    )
    reservations = db.rows(
        "SELECT reservation_id FROM reservations WHERE user_id = ? ORDER BY rowid", (user_id,)
    )
    address = ("address1", "address2", "city", "country", "state", "zip")
    return json.dumps({
        "user_id": user_id,
        "name": {"first_name": user["first_name"], "last_name": user["last_name"]},
        "address": {key: user[key] for key in address},
        "email": user["email"],
        "dob": user["dob"],
        "payment_methods": methods,
        "saved_passengers": passengers,
        "membership": user["membership"],
        "reservations": [row["reservation_id"] for row in reservations],
    })  # fmt: skip


@tool
def search_onestop_flight(db: Database, origin: str, destination: str, date: str) -> list[list]:
    """Search bookable one-stop connections between two airports on a date. After an overnight
    first flight (arrival '01:30:00+1'), the second flight leaves the next day.

    Args:
        origin: The origin airport IATA code, such as 'JFK'.
        destination: The destination airport IATA code, such as 'LAX'.
        date: The date of the first flight in the format 'YYYY-MM-DD', such as '2024-05-20'.
    """
    try:
        day = calendar_date.fromisoformat(date)
    except ValueError:
        raise ToolError(f"date {date!r} is not in the format YYYY-MM-DD") from None
    pairs = []
    for first in airline._search(db, origin, None, date):
        if first["destination"] == destination:
            continue
        clock, _, days = first["scheduled_arrival_time_est"].partition("+")
        next_date = (day + timedelta(days=int(days or 0))).isoformat()
        for second in airline._search(db, first["destination"], destination, next_date, clock):
            pairs.append([dict(first, date=date), dict(second, date=next_date)])
    return pairs
'''

RETAIL_TOOLS = '''"""Tools of a store imported from tau2-bench: Retail-v0's tools
(envs/retail/tools.py), unchanged in what they check and write, showing users and orders as
tau2 does: payment methods and orders in the user's order, each order's parcels with their
tracking numbers, and the items of a return or exchange."""

from __future__ import annotations

import functools
from typing import Any

from envfactory_gym import Database, ToolError, tool
from envfactory_gym.envs.retail import tools as retail
from envfactory_gym.envs.retail.tools import (  # noqa: F401 - the package's tools
    calculate,
    find_user_id_by_email,
    find_user_id_by_name_zip,
    get_item_details,
    get_product_details,
    list_all_product_types,
    transfer_to_human_agents,
)
from envfactory_gym.tools import Tool

ADDRESS = ("address1", "address2", "city", "country", "state", "zip")


def _dollars(cents: int) -> int | float:
    return cents // 100 if cents % 100 == 0 else round(cents / 100, 2)


def _user_view(db: Database, user_id: str) -> dict[str, Any]:
    user = db.row("SELECT * FROM users WHERE user_id = ?", (user_id,))
    if user is None:
        raise ToolError(f"user {user_id!r} not found; find the user id by email or by name and zip")
    methods = {}
    for method in db.rows(
        "SELECT * FROM payment_methods WHERE user_id = ? ORDER BY position", (user_id,)
    ):
        view: dict[str, Any] = {"source": method["source"], "id": method["payment_method_id"]}
        if method["source"] == "credit_card":
            view.update(brand=method["brand"], last_four=method["last_four"])
        if method["balance"] is not None:
            view["balance"] = _dollars(method["balance"])
        methods[method["payment_method_id"]] = view
    orders = db.rows(
        "SELECT order_id FROM orders WHERE user_id = ? ORDER BY user_position IS NULL, "
        "user_position, order_id",
        (user_id,),
    )
    return {
        "user_id": user_id,
        "name": {"first_name": user["first_name"], "last_name": user["last_name"]},
        "address": {key: user[key] for key in ADDRESS},
        "email": user["email"],
        "payment_methods": methods,
        "orders": [row["order_id"] for row in orders],
    }


def _order_view(db: Database, order_id: str) -> dict[str, Any]:
    order = retail._order(db, order_id)
    order_id = order["order_id"]
    lines = retail._lines(db, order_id)
    parcels: dict[int, dict[str, list[str]]] = {}
    for parcel in db.rows(
        "SELECT tracking_id, position FROM fulfillments WHERE order_id = ? ORDER BY position",
        (order_id,),
    ):
        view = parcels.setdefault(parcel["position"], {"tracking_id": [], "item_ids": []})
        view["tracking_id"].append(parcel["tracking_id"])
        tracking_id = parcel["tracking_id"]
        view["item_ids"] += [x["item_id"] for x in lines if x["tracking_id"] == tracking_id]
    payments = db.rows(
        "SELECT * FROM payments WHERE order_id = ? ORDER BY payment_seq", (order_id,)
    )
    result: dict[str, Any] = {
        "order_id": order_id,
        "user_id": order["user_id"],
        "address": {key: order[key] for key in ADDRESS},
        "items": [
            {"name": x["name"], "product_id": x["product_id"], "item_id": x["item_id"],
             "price": _dollars(x["price"]), "options": retail._options(db, x["item_id"])}
            for x in lines
        ],
        "status": order["status"],
        "fulfillments": list(parcels.values()),
        "payment_history": [
            {"transaction_type": p["transaction_type"], "amount": _dollars(p["amount"]),
             "payment_method_id": p["payment_method_id"]}
            for p in payments
        ],
    }  # fmt: skip
    if order["cancel_reason"]:
        result["cancel_reason"] = order["cancel_reason"]
    request = db.row("SELECT * FROM order_requests WHERE order_id = ?", (order_id,))
    if request is not None:
        kind = request["kind"]
        covered = db.rows(
            "SELECT oi.item_id, r.new_item_id FROM request_items r JOIN order_items oi "
            "ON oi.order_id = r.order_id AND oi.position = r.position WHERE r.order_id = ?",
            (order_id,),
        )
        result[f"{kind}_items"] = sorted(row["item_id"] for row in covered)
        if kind == "exchange":
            result["exchange_new_items"] = sorted(row["new_item_id"] for row in covered)
        result[f"{kind}_payment_method_id"] = request["payment_method_id"]
        if kind == "exchange":
            result["exchange_price_difference"] = _dollars(request["amount"])
    return result


def _showing_tau2(base: Tool) -> Tool:
    """Retail-v0's write tool `base`, returning the order (or user) as tau2 shows it."""

    @functools.wraps(base.fn)
    def call(db: Database, **arguments: Any) -> dict[str, Any]:
        result = base.fn(db, **arguments)
        if "order_id" in result:
            return _order_view(db, result["order_id"])
        return _user_view(db, result["user_id"])

    call.__module__ = __name__
    return Tool(call, kind=base.kind)


@tool
def get_user_details(db: Database, user_id: str) -> dict:
    """Get a customer's details: name, email, default address, payment methods (gift cards with
    their balance) and the ids of their orders.

    Args:
        user_id: The user id, such as 'sara_doe_4961'.
    """
    return _user_view(db, user_id)


@tool
def get_order_details(db: Database, order_id: str) -> dict:
    """Get an order: status, shipping address, items (with their options and the price paid),
    fulfillments with tracking numbers, payment history, and any return or exchange.

    Args:
        order_id: The order id, such as '#W1234567'. It starts with a '#'.
    """
    return _order_view(db, order_id)


cancel_pending_order = _showing_tau2(retail.cancel_pending_order)
modify_pending_order_address = _showing_tau2(retail.modify_pending_order_address)
modify_pending_order_items = _showing_tau2(retail.modify_pending_order_items)
modify_pending_order_payment = _showing_tau2(retail.modify_pending_order_payment)
modify_user_address = _showing_tau2(retail.modify_user_address)
return_delivered_order_items = _showing_tau2(retail.return_delivered_order_items)
exchange_delivered_order_items = _showing_tau2(retail.exchange_delivered_order_items)
'''


if __name__ == "__main__":
    sys.exit(main())
