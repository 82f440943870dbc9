"""EF Airlines tools. Names, arguments and semantics follow tau2-bench's airline domain."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from envfactory_gym import Database, ToolError, tool
from envfactory_gym.tools import arithmetic

NOW = "2024-05-15T15:00:00"
TODAY = NOW[:10]
INSURANCE_FEE = 30
BAG_FEE = 50
Cabin = Literal["basic_economy", "economy", "business"]


STRICT = ConfigDict(extra="forbid", strict=True)
Amount = Annotated[int, Field(gt=0, le=100_000)]
Count = Annotated[int, Field(ge=0, le=50)]
MAX_SEGMENTS = 6
MAX_PASSENGERS = 5
MAX_PAYMENT_PARTS = 5


class FlightSegment(BaseModel):
    model_config = STRICT
    flight_number: str
    date: str


class Passenger(BaseModel):
    model_config = STRICT
    first_name: str
    last_name: str
    dob: str


class PaymentPart(BaseModel):
    model_config = STRICT
    payment_id: str
    amount: Amount


# ----- helpers (not tools) -------------------------------------------------------------------
def _user(db: Database, user_id: str) -> dict:
    user = db.row("SELECT * FROM users WHERE user_id = ?", (user_id,))
    if user is None:
        raise ToolError(f"user {user_id!r} not found")
    return user


def _reservation(db: Database, reservation_id: str) -> dict:
    found = db.row("SELECT * FROM reservations WHERE reservation_id = ?", (reservation_id,))
    if found is None:
        raise ToolError(f"reservation {reservation_id!r} not found")
    return found


def _flight_date(db: Database, flight_number: str, date: str) -> dict:
    found = db.row(
        "SELECT f.origin, f.destination, f.departure_time, f.arrival_time, d.* "
        "FROM flight_dates d JOIN flights f USING (flight_number) "
        "WHERE d.flight_number = ? AND d.date = ?",
        (flight_number, date),
    )
    if found is None:
        raise ToolError(f"flight {flight_number} does not operate on {date}")
    return found


def _payment_method(db: Database, user_id: str, payment_id: str) -> dict:
    method = db.row(
        "SELECT * FROM payment_methods WHERE payment_id = ? AND user_id = ?", (payment_id, user_id)
    )
    if method is None:
        raise ToolError(f"payment method {payment_id!r} not found in the user's profile")
    return method


def _charge(db: Database, reservation_id: str, method: dict, amount: int) -> None:
    """Record a payment (negative: a refund) and move a gift card's or certificate's balance."""
    if amount == 0:
        return
    if method["source"] == "gift_card":
        if method["balance"] < amount:
            raise ToolError(f"gift card {method['payment_id']} balance is not enough")
        db.execute(
            "UPDATE payment_methods SET balance = balance - ? WHERE payment_id = ?",
            (amount, method["payment_id"]),
        )
    elif method["source"] == "certificate" and amount > 0:
        if method["balance"] < amount:
            raise ToolError(f"certificate {method['payment_id']} balance is not enough")
        db.execute(
            "UPDATE payment_methods SET balance = 0 WHERE payment_id = ?", (method["payment_id"],)
        )
    db.execute(
        "INSERT INTO payments (reservation_id, payment_id, amount) VALUES (?, ?, ?)",
        (reservation_id, method["payment_id"], amount),
    )


def _move_seats(db: Database, segments: list[dict], cabin: str, delta: int) -> None:
    """Take (delta < 0) or give back seats on flights that are still bookable."""
    column = f"seats_{cabin}"
    for segment in segments:
        db.execute(
            f"UPDATE flight_dates SET {column} = {column} + ? "
            "WHERE flight_number = ? AND date = ? AND status = 'available'",
            (delta, segment["flight_number"], segment["date"]),
        )


def _new_id(db: Database, prefix: str, table: str, column: str, digits: bool) -> str:
    """A fresh id derived from the database state, so replays give the same ids. `max(rowid)`
    reads one index entry, where `count(*)` would scan the table."""
    count = db.value(f"SELECT max(rowid) FROM {table}")
    for attempt in range(1000):
        digest = hashlib.sha256(f"{table}:{count}:{attempt}".encode()).hexdigest().upper()
        candidate = prefix + (str(int(digest[:12], 16))[:7] if digits else digest[:6])
        if db.value(f"SELECT 1 FROM {table} WHERE {column} = ?", (candidate,)) is None:
            return candidate
    raise ToolError("could not allocate a new id")


_RESERVATION_JSON = """
SELECT json_object(
    'reservation_id', r.reservation_id, 'user_id', r.user_id, 'origin', r.origin,
    'destination', r.destination, 'flight_type', r.flight_type, 'cabin', r.cabin,
    'insurance', CASE r.insurance WHEN 1 THEN 'yes' ELSE 'no' END,
    'total_baggages', r.total_baggages, 'nonfree_baggages', r.nonfree_baggages,
    'created_at', r.created_at, 'status', r.status,
    'flights', (SELECT json_group_array(json(x)) FROM (
        SELECT json_object('flight_number', rf.flight_number, 'date', rf.date,
                           'origin', f.origin, 'destination', f.destination, 'price', rf.price) AS x
        FROM reservation_flights rf JOIN flights f USING (flight_number)
        WHERE rf.reservation_id = r.reservation_id ORDER BY rf.position)),
    'passengers', (SELECT json_group_array(json(x)) FROM (
        SELECT json_object('first_name', first_name, 'last_name', last_name, 'dob', dob) AS x
        FROM reservation_passengers WHERE reservation_id = r.reservation_id ORDER BY position)),
    'payment_history', (SELECT json_group_array(json(x)) FROM (
        SELECT json_object('payment_id', payment_id, 'amount', amount) AS x
        FROM payments WHERE reservation_id = r.reservation_id ORDER BY payment_seq)))
FROM reservations r WHERE r.reservation_id = ?
"""

_USER_JSON = """
SELECT json_object(
    'user_id', u.user_id, 'first_name', u.first_name, 'last_name', u.last_name,
    'email', u.email, 'dob', u.dob, 'membership', u.membership, 'address', u.address,
    'city', u.city, 'state', u.state, 'zip', u.zip,
    'payment_methods', (SELECT json_group_object(payment_id, json(x)) FROM (
        SELECT payment_id, json_object('source', source, 'brand', brand,
                                       'last_four', last_four, 'balance', balance) AS x
        FROM payment_methods WHERE user_id = u.user_id ORDER BY payment_id)),
    'saved_passengers', (SELECT json_group_array(json(x)) FROM (
        SELECT json_object('first_name', first_name, 'last_name', last_name, 'dob', dob) AS x
        FROM saved_passengers WHERE user_id = u.user_id ORDER BY first_name, last_name)),
    'reservations', (SELECT json_group_array(reservation_id) FROM (
        SELECT reservation_id FROM reservations WHERE user_id = u.user_id ORDER BY rowid)))
FROM users u WHERE u.user_id = ?
"""


def _reservation_view(db: Database, reservation_id: str) -> str:
    """The reservation as a JSON document, built by SQLite in one query."""
    found = db.value(_RESERVATION_JSON, (reservation_id,))
    if found is None:
        raise ToolError(f"reservation {reservation_id!r} not found")
    return found


def _flight_view(found: dict) -> dict:
    return {
        "flight_number": found["flight_number"],
        "origin": found["origin"],
        "destination": found["destination"],
        "date": found["date"],
        "status": found["status"],
        "scheduled_departure_time_est": found["departure_time"],
        "scheduled_arrival_time_est": found["arrival_time"],
        "available_seats": {
            c: found[f"seats_{c}"] for c in ("basic_economy", "economy", "business")
        },
        "prices": {c: found[f"price_{c}"] for c in ("basic_economy", "economy", "business")},
    }


def _search(db: Database, origin: str, destination: str | None, date: str, after: str = "") -> list:
    """Bookable flights, by flight number (tau2-bench's order)."""
    rows = db.rows(
        "SELECT f.origin, f.destination, f.departure_time, f.arrival_time, d.* "
        "FROM flights f JOIN flight_dates d USING (flight_number) "
        "WHERE f.origin = ? AND (? IS NULL OR f.destination = ?) AND d.date = ? "
        "AND d.status = 'available' AND f.departure_time >= ? "
        "ORDER BY f.flight_number",
        (origin, destination, destination, date, after),
    )
    return [_flight_view(row) for row in rows]


def _check_segments(db: Database, segments: list[dict], cabin: str, passengers: int) -> list[dict]:
    found = []
    for segment in segments:
        flight = _flight_date(db, segment["flight_number"], segment["date"])
        if flight["status"] != "available":
            raise ToolError(
                f"flight {flight['flight_number']} on {flight['date']} is not available "
                f"(status: {flight['status']})"
            )
        if flight[f"seats_{cabin}"] < passengers:
            raise ToolError(f"not enough {cabin} seats on flight {flight['flight_number']}")
        found.append(flight)
    return found


def _check_itinerary(db: Database, segments: list[dict], origin: str, destination: str) -> None:
    """The segments are distinct, connect end to end, leave from `origin` and reach
    `destination` (a round trip comes back to `origin`)."""
    if not segments:
        raise ToolError("an itinerary needs at least one flight")
    keys = [(s["flight_number"], s["date"]) for s in segments]
    if len(set(keys)) != len(keys):
        raise ToolError("the same flight appears twice in the itinerary")
    legs = []
    for number, date in keys:
        leg = db.row("SELECT origin, destination FROM flights WHERE flight_number = ?", (number,))
        if leg is None:
            raise ToolError(f"flight {number} does not exist")
        legs.append((leg["origin"], leg["destination"], date))
    for (_, arrives, day), (departs, _, next_day) in zip(legs, legs[1:], strict=False):
        if departs != arrives or next_day < day:
            raise ToolError(
                "the flights do not connect: each must leave from where the last landed"
            )
    if legs[0][0] != origin or destination not in {leg[1] for leg in legs}:
        raise ToolError(f"the flights do not go from {origin} to {destination}")


# ----- read tools ----------------------------------------------------------------------------
@tool
def get_user_details(db: Database, user_id: str) -> str:
    """Get the details of a user: profile, membership, payment methods, saved passengers and
    reservation ids.

    Args:
        user_id: The user ID, such as 'sara_doe_496'.
    """
    found = db.value(_USER_JSON, (user_id,))
    if found is None:
        raise ToolError(f"user {user_id!r} not found")
    return found


@tool
def get_reservation_details(db: Database, reservation_id: str) -> str:
    """Get the details of a reservation: flights, passengers, payments, bags and insurance.

    Args:
        reservation_id: The reservation ID, such as '8JX2WO'.
    """
    return _reservation_view(db, reservation_id)


@tool
def list_all_airports(db: Database) -> list[dict]:
    """List every airport the airline serves, as IATA code and city."""
    return db.rows("SELECT iata, city FROM airports ORDER BY iata")


@tool
def search_direct_flight(db: Database, origin: str, destination: str, date: str) -> list[dict]:
    """Search bookable direct flights between two airports on a date.

    Args:
        origin: The origin airport IATA code, such as 'JFK'.
        destination: The destination airport IATA code, such as 'LAX'.
        date: The date of the flight in the format 'YYYY-MM-DD', such as '2024-05-20'.
    """
    return _search(db, origin, destination, date)


@tool
def search_onestop_flight(db: Database, origin: str, destination: str, date: str) -> list[list]:
    """Search bookable one-stop connections between two airports on a date.

    Args:
        origin: The origin airport IATA code, such as 'JFK'.
        destination: The destination airport IATA code, such as 'LAX'.
        date: The date of the first flight in the format 'YYYY-MM-DD', such as '2024-05-20'.
    """
    pairs = []
    for first in _search(db, origin, None, date):
        if first["destination"] == destination:
            continue
        for second in _search(
            db, first["destination"], destination, date, first["scheduled_arrival_time_est"]
        ):
            pairs.append([first, second])
    return pairs


@tool
def get_flight_status(db: Database, flight_number: str, date: str) -> str:
    """Get the status of a flight on a date: available, on time, delayed, flying, landed or
    cancelled.

    Args:
        flight_number: The flight number, such as 'EF123'.
        date: The date of the flight in the format 'YYYY-MM-DD'.
    """
    return _flight_date(db, flight_number, date)["status"]


# ----- write tools ---------------------------------------------------------------------------
@tool(kind="write")
def book_reservation(
    db: Database,
    user_id: str,
    origin: str,
    destination: str,
    flight_type: Literal["one_way", "round_trip"],
    cabin: Cabin,
    flights: Annotated[list[FlightSegment], Field(max_length=MAX_SEGMENTS)],
    passengers: Annotated[list[Passenger], Field(max_length=MAX_PASSENGERS)],
    payment_methods: Annotated[list[PaymentPart], Field(max_length=MAX_PAYMENT_PARTS)],
    total_baggages: Count,
    nonfree_baggages: Count,
    insurance: Literal["yes", "no"],
) -> str:
    """Book a reservation.

    Args:
        user_id: The ID of the user booking the reservation, such as 'sara_doe_496'.
        origin: The IATA code of the trip's origin, such as 'SFO'.
        destination: The IATA code of the trip's destination, such as 'JFK'.
        flight_type: 'one_way' or 'round_trip'.
        cabin: 'basic_economy', 'economy' or 'business'.
        flights: Every flight of the trip, each with flight_number and date.
        passengers: Every passenger, each with first_name, last_name and dob ('YYYY-MM-DD').
        payment_methods: Payment ids from the user's profile with the amount paid by each.
        total_baggages: The total number of checked bags.
        nonfree_baggages: The number of checked bags that are paid for.
        insurance: Whether to buy travel insurance: 'yes' or 'no'.
    """
    _user(db, user_id)
    _check_itinerary(db, flights, origin, destination)
    ids = [part["payment_id"] for part in payment_methods]
    if len(set(ids)) != len(ids):
        raise ToolError(
            "each payment method may appear only once; put its whole amount on one line"
        )
    if not 1 <= len(passengers) <= 5:
        raise ToolError("a reservation has between one and five passengers")
    found = _check_segments(db, flights, cabin, len(passengers))
    total = sum(f[f"price_{cabin}"] for f in found) * len(passengers)
    total += INSURANCE_FEE * len(passengers) * (insurance == "yes") + BAG_FEE * nonfree_baggages
    paid = sum(part["amount"] for part in payment_methods)
    if paid != total:
        raise ToolError(f"payment does not add up: the total price is {total}, but {paid} is paid")
    methods = [_payment_method(db, user_id, part["payment_id"]) for part in payment_methods]
    reservation_id = _new_id(db, "", "reservations", "reservation_id", digits=False)
    db.execute(
        "INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active')",
        (reservation_id, user_id, origin, destination, flight_type, cabin, int(insurance == "yes"),
         total_baggages, nonfree_baggages, NOW),
    )  # fmt: skip
    db.conn.executemany(
        "INSERT INTO reservation_flights VALUES (?, ?, ?, ?, ?)",
        [(reservation_id, i, f["flight_number"], f["date"], f[f"price_{cabin}"])
         for i, f in enumerate(found)],
    )  # fmt: skip
    db.conn.executemany(
        "INSERT INTO reservation_passengers VALUES (?, ?, ?, ?, ?)",
        [(reservation_id, i, p["first_name"], p["last_name"], p["dob"])
         for i, p in enumerate(passengers)],
    )  # fmt: skip
    for method, part in zip(methods, payment_methods, strict=True):
        _charge(db, reservation_id, method, part["amount"])
    _move_seats(db, flights, cabin, -len(passengers))
    return _reservation_view(db, reservation_id)


@tool(kind="write")
def cancel_reservation(db: Database, reservation_id: str) -> str:
    """Cancel a whole reservation and refund it to the original payment methods.

    Args:
        reservation_id: The reservation ID, such as 'ZFA04Y'.
    """
    reservation = _reservation(db, reservation_id)
    if reservation["status"] == "cancelled":
        raise ToolError(f"reservation {reservation_id} is already cancelled")
    net_paid = db.rows(
        "SELECT m.*, sum(p.amount) AS paid FROM payments p JOIN payment_methods m "
        "USING (payment_id) WHERE p.reservation_id = ? "
        "GROUP BY p.payment_id ORDER BY min(p.payment_seq)",
        (reservation_id,),
    )
    # Refund what the reservation netted, no more: a method that already got money back (a
    # cheaper cabin refunded to a gift card) lowers what the others get back.
    left = sum(method["paid"] for method in net_paid)
    for method in net_paid:
        refund = min(method["paid"], left)
        if refund > 0:
            _charge(db, reservation_id, method, -refund)
            left -= refund
    db.execute(
        "UPDATE reservations SET status = 'cancelled' WHERE reservation_id = ?", (reservation_id,)
    )
    passengers = db.value(
        "SELECT count(*) FROM reservation_passengers WHERE reservation_id = ?", (reservation_id,)
    )
    segments = db.rows(
        "SELECT flight_number, date FROM reservation_flights WHERE reservation_id = ?",
        (reservation_id,),
    )
    _move_seats(db, segments, reservation["cabin"], passengers)
    return _reservation_view(db, reservation_id)


@tool(kind="write")
def update_reservation_flights(
    db: Database,
    reservation_id: str,
    cabin: Cabin,
    flights: Annotated[list[FlightSegment], Field(max_length=MAX_SEGMENTS)],
    payment_id: str,
) -> str:
    """Update the flights and/or cabin of a reservation; the fare difference is charged or
    refunded to the given payment method.

    Args:
        reservation_id: The reservation ID, such as 'ZFA04Y'.
        cabin: The cabin class for the whole reservation.
        flights: Every flight of the ENTIRE new itinerary, unchanged ones included, each with
            flight_number and date.
        payment_id: A credit card or gift card id from the user's profile, such as
            'credit_card_7815826'.
    """
    reservation = _reservation(db, reservation_id)
    if reservation["status"] == "cancelled":
        raise ToolError(f"reservation {reservation_id} is cancelled")
    _check_itinerary(db, flights, reservation["origin"], reservation["destination"])
    method = _payment_method(db, reservation["user_id"], payment_id)
    if method["source"] == "certificate":
        raise ToolError("a certificate cannot pay for a change to a reservation")
    passengers = db.value(
        "SELECT count(*) FROM reservation_passengers WHERE reservation_id = ?", (reservation_id,)
    )
    old = db.rows(
        "SELECT flight_number, date, price FROM reservation_flights WHERE reservation_id = ? "
        "ORDER BY position",
        (reservation_id,),
    )
    kept = {(f["flight_number"], f["date"]): f["price"] for f in old}
    same_cabin = cabin == reservation["cabin"]
    new = []
    for segment in flights:
        key = (segment["flight_number"], segment["date"])
        if same_cabin and key in kept:
            new.append({"flight_number": key[0], "date": key[1], "price": kept[key]})
        else:
            (found,) = _check_segments(db, [segment], cabin, passengers)
            new.append({"flight_number": key[0], "date": key[1], "price": found[f"price_{cabin}"]})
    difference = (sum(f["price"] for f in new) - sum(f["price"] for f in old)) * passengers
    _charge(db, reservation_id, method, difference)
    _move_seats(db, old, reservation["cabin"], passengers)
    _move_seats(db, new, cabin, -passengers)
    db.execute("DELETE FROM reservation_flights WHERE reservation_id = ?", (reservation_id,))
    db.conn.executemany(
        "INSERT INTO reservation_flights VALUES (?, ?, ?, ?, ?)",
        [(reservation_id, i, f["flight_number"], f["date"], f["price"]) for i, f in enumerate(new)],
    )
    db.execute(
        "UPDATE reservations SET cabin = ? WHERE reservation_id = ?", (cabin, reservation_id)
    )
    return _reservation_view(db, reservation_id)


@tool(kind="write")
def update_reservation_passengers(
    db: Database,
    reservation_id: str,
    passengers: Annotated[list[Passenger], Field(max_length=MAX_PASSENGERS)],
) -> str:
    """Replace the passenger details of a reservation; the number of passengers cannot change.

    Args:
        reservation_id: The reservation ID, such as 'ZFA04Y'.
        passengers: Every passenger, in order, each with first_name, last_name and dob.
    """
    if _reservation(db, reservation_id)["status"] == "cancelled":
        raise ToolError(f"reservation {reservation_id} is cancelled")
    count = db.value(
        "SELECT count(*) FROM reservation_passengers WHERE reservation_id = ?", (reservation_id,)
    )
    if len(passengers) != count:
        raise ToolError(f"the reservation has {count} passengers, not {len(passengers)}")
    db.conn.executemany(
        "UPDATE reservation_passengers SET first_name = ?, last_name = ?, dob = ? "
        "WHERE reservation_id = ? AND position = ?",
        [(p["first_name"], p["last_name"], p["dob"], reservation_id, i)
         for i, p in enumerate(passengers)],
    )  # fmt: skip
    return _reservation_view(db, reservation_id)


@tool(kind="write")
def update_reservation_baggages(
    db: Database,
    reservation_id: str,
    total_baggages: Count,
    nonfree_baggages: Count,
    payment_id: str,
) -> str:
    """Update the checked bags of a reservation; new paid bags cost 50 dollars each.

    Args:
        reservation_id: The reservation ID, such as 'ZFA04Y'.
        total_baggages: The updated total number of checked bags.
        nonfree_baggages: The updated number of paid checked bags.
        payment_id: A credit card or gift card id from the user's profile.
    """
    reservation = _reservation(db, reservation_id)
    if reservation["status"] == "cancelled":
        raise ToolError(f"reservation {reservation_id} is cancelled")
    method = _payment_method(db, reservation["user_id"], payment_id)
    if method["source"] == "certificate":
        raise ToolError("a certificate cannot pay for a change to a reservation")
    fee = BAG_FEE * max(0, nonfree_baggages - reservation["nonfree_baggages"])
    _charge(db, reservation_id, method, fee)
    db.execute(
        "UPDATE reservations SET total_baggages = ?, nonfree_baggages = ? WHERE reservation_id = ?",
        (total_baggages, nonfree_baggages, reservation_id),
    )
    return _reservation_view(db, reservation_id)


@tool(kind="write")
def send_certificate(db: Database, user_id: str, amount: Amount) -> str:
    """Send a travel certificate to a user as compensation. Be careful: check the policy first.

    Args:
        user_id: The ID of the user, such as 'sara_doe_496'.
        amount: The amount of the certificate in dollars.
    """
    _user(db, user_id)
    payment_id = _new_id(db, "certificate_", "payment_methods", "payment_id", digits=True)
    db.execute(
        "INSERT INTO payment_methods VALUES (?, ?, 'certificate', NULL, NULL, ?)",
        (payment_id, user_id, amount),
    )
    return f"Certificate {payment_id} added to user {user_id} with amount {amount}."


# ----- generic tools -------------------------------------------------------------------------
@tool
def calculate(db: Database, expression: str) -> str:
    """Calculate the result of an arithmetic expression, rounded to two decimals.

    Args:
        expression: The expression, such as '2 * (150 + 30)'. Numbers, + - * / and parentheses.
    """
    return arithmetic(expression)


@tool
def transfer_to_human_agents(db: Database, summary: str) -> str:
    """Transfer the user to a human agent with a summary of their issue. Only when the user asks
    for a human, or the request cannot be handled with the tools and the policy.

    Args:
        summary: A summary of the user's issue.
    """
    return "Transfer successful"
