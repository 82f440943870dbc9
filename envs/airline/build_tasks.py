"""Build envs/airline/tasks.jsonl from the seeded database.

Run `python -m envfactory_gym.envs.airline.build_tasks`.

Each task kind picks real rows that fit it (a fixed random seed), writes the user's instruction in
their own words (intent, not steps: no tool names, no ids the agent can look up), then replays the
ground-truth calls to record the expected diff and the facts the answer must state.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from envfactory_gym.database import Database
from envfactory_gym.package import load_package
from envfactory_gym.replay import task_from_calls
from envfactory_gym.tasks import Task, ToolCall, write_tasks

TODAY = "2024-05-15"
NOW = "2024-05-15T15:00:00"
YESTERDAY = "2024-05-14T15:00:00"
FREE_BAGS = {
    "regular": {"basic_economy": 0, "economy": 1, "business": 2},
    "silver": {"basic_economy": 1, "economy": 2, "business": 3},
    "gold": {"basic_economy": 2, "economy": 3, "business": 4},
}
CABIN_WORDS = {"basic_economy": "basic economy", "economy": "economy", "business": "business class"}

Draft = tuple[str, list[ToolCall], Callable[[list], list[str]], dict[str, str]]


def spoken_date(iso: str) -> str:
    return f"May {int(iso[8:])}"


class Catalog:
    """Read-only questions about the seeded database that the task kinds need."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.city = {r["iata"]: r["city"] for r in db.rows("SELECT * FROM airports")}

    def place(self, code: str) -> str:
        return f"{self.city[code]} ({code})"

    def trips(self) -> list[dict]:
        """Single-flight one-way reservations that their route and date identify uniquely."""
        rows = self.db.rows(
            "SELECT r.*, u.membership, rf.flight_number, rf.date, d.status AS flight_status, "
            "(SELECT count(*) FROM reservation_passengers p WHERE p.reservation_id = "
            "r.reservation_id) AS passengers, "
            "(SELECT count(*) FROM reservations o WHERE o.user_id = r.user_id) AS user_trips "
            "FROM reservations r JOIN users u USING (user_id) "
            "JOIN reservation_flights rf USING (reservation_id) "
            "JOIN flight_dates d ON d.flight_number = rf.flight_number AND d.date = rf.date "
            "WHERE r.flight_type = 'one_way' AND (SELECT count(*) FROM reservation_flights x "
            "WHERE x.reservation_id = r.reservation_id) = 1 ORDER BY r.reservation_id"
        )
        key = Counter((r["user_id"], r["origin"], r["destination"], r["date"]) for r in rows)
        return [
            r
            for r in rows
            if key[(r["user_id"], r["origin"], r["destination"], r["date"])] == 1
            and r["user_trips"] <= 6
        ]

    def card(self, user_id: str) -> dict | None:
        return self.db.row(
            "SELECT * FROM payment_methods WHERE user_id = ? AND source = 'credit_card' "
            "ORDER BY payment_id LIMIT 1",
            (user_id,),
        )

    def net_paid(self, reservation_id: str) -> int:
        return self.db.value(
            "SELECT sum(amount) FROM payments WHERE reservation_id = ?", (reservation_id,)
        )


def _lookup(trip: dict) -> list[ToolCall]:
    return [
        ToolCall(name="get_user_details", arguments={"user_id": trip["user_id"]}),
        ToolCall(
            name="get_reservation_details", arguments={"reservation_id": trip["reservation_id"]}
        ),
    ]


def _trip_words(cat: Catalog, trip: dict) -> str:
    return (
        f"my trip from {cat.place(trip['origin'])} to {cat.place(trip['destination'])} "
        f"on {spoken_date(trip['date'])}"
    )


def _future(trip: dict) -> bool:
    return (
        trip["status"] == "active" and trip["date"] > TODAY and trip["flight_status"] == "available"
    )


# ----- task kinds: each yields drafts (instruction, calls, outputs-from-results, user facts) -----
def flight_status(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for trip in cat.trips():
        if trip["status"] == "active" and trip["date"] in (TODAY, "2024-05-16"):
            yield (
                f"Hi, this is {trip['user_id']}. I'm flying from {cat.place(trip['origin'])} to "
                f"{cat.place(trip['destination'])} on {spoken_date(trip['date'])}. "
                "What is the status of that flight right now?",
                [*_lookup(trip), ToolCall(name="get_flight_status", arguments={
                    "flight_number": trip["flight_number"], "date": trip["date"]})],
                lambda results: [results[-1]],
                {"user_id": trip["user_id"]},
            )  # fmt: skip


def gift_card_balance(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    """Users with one gift card and a certificate too: the agent must read the right balance."""
    for user in cat.db.rows(
        "SELECT * FROM (SELECT user_id, max(balance) AS balance FROM payment_methods "
        "WHERE source = 'gift_card' GROUP BY user_id HAVING count(*) = 1 AND max(balance) > 0) g "
        "WHERE EXISTS (SELECT 1 FROM payment_methods c WHERE c.user_id = g.user_id "
        "AND c.source = 'certificate' AND c.balance != g.balance) ORDER BY user_id"
    ):
        yield (
            f"Hello, my user id is {user['user_id']}. How much money is left on my gift card?",
            [ToolCall(name="get_user_details", arguments={"user_id": user["user_id"]})],
            lambda results, b=user["balance"]: [str(b)],
            {"user_id": user["user_id"]},
        )


def bag_count(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for trip in cat.trips():
        if trip["total_baggages"] > 0 and trip["status"] == "active":
            yield (
                f"Hi, I'm {trip['user_id']}. For {_trip_words(cat, trip)}, how many checked bags "
                "are on the booking, and how many of them did we pay for?",
                _lookup(trip),
                lambda results, t=trip: [str(t["total_baggages"]), str(t["nonfree_baggages"])],
                {"user_id": trip["user_id"]},
            )


def cheapest_direct(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    routes = cat.db.rows(
        "SELECT f.origin, f.destination, d.date, min(d.price_economy) AS best, count(*) AS n "
        "FROM flights f JOIN flight_dates d USING (flight_number) "
        "WHERE d.status = 'available' GROUP BY f.origin, f.destination, d.date "
        "HAVING n >= 2 ORDER BY f.origin, f.destination, d.date"
    )
    rng.shuffle(routes)
    for route in routes:
        args = {k: route[k] for k in ("origin", "destination", "date")}
        yield (
            f"I'm planning a trip from {cat.place(route['origin'])} to "
            f"{cat.place(route['destination'])} on {spoken_date(route['date'])}. Which nonstop "
            "flight has the cheapest economy fare that day, and how much is it?",
            [ToolCall(name="search_direct_flight", arguments=args)],
            _cheapest_outputs,
            {},
        )


def _cheapest_outputs(results: list) -> list[str]:
    fares = sorted(results[-1], key=lambda f: f["prices"]["economy"])
    if fares[0]["prices"]["economy"] == fares[1]["prices"]["economy"]:
        raise ValueError("two flights share the cheapest fare")
    return [fares[0]["flight_number"], str(fares[0]["prices"]["economy"])]


def cancel_allowed(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for trip in cat.trips():
        if not _future(trip):
            continue
        if trip["created_at"] >= YESTERDAY:
            reason = "I only booked it yesterday, but I've changed my mind."
            facts = {"reason": "changed my mind; booked it yesterday"}
        elif trip["insurance"]:
            reason = "I've come down with a bad flu and my doctor says I can't travel."
            facts = {"reason": "I am sick and cannot travel", "insurance": "yes"}
        elif trip["cabin"] == "business":
            reason = "My plans have changed."
            facts = {"reason": "change of plans"}
        else:
            continue
        yield (
            f"Hi, I'm {trip['user_id']}. Please cancel {_trip_words(cat, trip)} and refund me. "
            + reason,
            [*_lookup(trip), ToolCall(name="cancel_reservation",
                                      arguments={"reservation_id": trip["reservation_id"]})],
            lambda results, t=trip: [str(cat.net_paid(t["reservation_id"]))],
            {"user_id": trip["user_id"], **facts},
        )  # fmt: skip


def cancel_refused(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for trip in cat.trips():
        if (
            _future(trip)
            and trip["created_at"] < YESTERDAY
            and not trip["insurance"]
            and trip["cabin"] != "business"
        ):
            yield (
                f"Hi, I'm {trip['user_id']}. My plans changed, so I'd like to cancel "
                f"{_trip_words(cat, trip)} and get my money back.",
                _lookup(trip),
                lambda results: [],
                {"user_id": trip["user_id"], "reason": "change of plans"},
            )


def add_bags(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for trip in cat.trips():
        card = cat.card(trip["user_id"])
        if not _future(trip) or card is None:
            continue
        extra = rng.choice((1, 2))
        total = trip["total_baggages"] + extra
        free = FREE_BAGS[trip["membership"]][trip["cabin"]] * trip["passengers"]
        nonfree = max(0, total - free)
        if nonfree == trip["nonfree_baggages"]:
            continue
        bags = "a checked bag" if extra == 1 else "two checked bags"
        yield (
            f"Hi, I'm {trip['user_id']}. I need to add {bags} to {_trip_words(cat, trip)}. "
            f"Please charge whatever is due to my {card['brand']} card ending in "
            f"{card['last_four']}.",
            [*_lookup(trip), ToolCall(name="update_reservation_baggages", arguments={
                "reservation_id": trip["reservation_id"], "total_baggages": total,
                "nonfree_baggages": nonfree, "payment_id": card["payment_id"]})],
            lambda results, n=nonfree, t=trip: [str(50 * (n - t["nonfree_baggages"]))],
            {"user_id": trip["user_id"]},
        )  # fmt: skip


def change_passenger(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for trip in cat.trips():
        if not _future(trip):
            continue
        people = cat.db.rows(
            "SELECT first_name, last_name, dob FROM reservation_passengers "
            "WHERE reservation_id = ? ORDER BY position",
            (trip["reservation_id"],),
        )
        leaving = people[-1]
        newcomer = {
            "first_name": "Noor",
            "last_name": rng.choice(("Haddad", "Lindqvist", "Osei")),
            "dob": f"19{rng.randint(60, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        }
        people[-1] = newcomer
        yield (
            f"Hi, I'm {trip['user_id']}. On {_trip_words(cat, trip)}, {leaving['first_name']} "
            f"{leaving['last_name']} can't travel anymore. Please put {newcomer['first_name']} "
            f"{newcomer['last_name']}, born {newcomer['dob']}, on the booking in their place.",
            [*_lookup(trip), ToolCall(name="update_reservation_passengers", arguments={
                "reservation_id": trip["reservation_id"], "passengers": people})],
            lambda results: [],
            {"user_id": trip["user_id"]},
        )  # fmt: skip


def change_flight(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for trip in cat.trips():
        card = cat.card(trip["user_id"])
        if not _future(trip) or trip["cabin"] == "basic_economy" or card is None:
            continue
        new_date = f"2024-05-{int(trip['date'][8:]) + rng.randint(1, 3):02d}"
        if new_date > "2024-05-30":
            continue
        options = cat.db.rows(
            "SELECT d.flight_number FROM flights f JOIN flight_dates d USING (flight_number) "
            "WHERE f.origin = ? AND f.destination = ? AND d.date = ? AND d.status = 'available' "
            f"AND d.seats_{trip['cabin']} >= ? ORDER BY f.departure_time, f.flight_number",
            (trip["origin"], trip["destination"], new_date, trip["passengers"]),
        )
        if not options:
            continue
        flight = options[0]["flight_number"]
        yield (
            f"Hi, I'm {trip['user_id']}. Please move {_trip_words(cat, trip)} to "
            f"{spoken_date(new_date)}, on the earliest nonstop flight that day, same cabin. Any "
            f"fare difference goes on my card ending in {card['last_four']}.",
            [*_lookup(trip),
             ToolCall(name="search_direct_flight", arguments={
                 "origin": trip["origin"], "destination": trip["destination"], "date": new_date}),
             ToolCall(name="update_reservation_flights", arguments={
                 "reservation_id": trip["reservation_id"], "cabin": trip["cabin"],
                 "flights": [{"flight_number": flight, "date": new_date}],
                 "payment_id": card["payment_id"]})],
            lambda results, f=flight: [f],
            {"user_id": trip["user_id"]},
        )  # fmt: skip


def change_refused(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for trip in cat.trips():
        if _future(trip) and trip["cabin"] == "basic_economy" and trip["date"] < "2024-05-28":
            new_date = f"2024-05-{int(trip['date'][8:]) + 2:02d}"
            yield (
                f"Hi, I'm {trip['user_id']}. Can you move {_trip_words(cat, trip)} to "
                f"{spoken_date(new_date)}? Same route, any flight that day is fine.",
                _lookup(trip),
                lambda results: [],
                {"user_id": trip["user_id"]},
            )


def book_one_way(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    users = cat.db.rows("SELECT * FROM users ORDER BY user_id")
    rng.shuffle(users)
    routes = cat.db.rows("SELECT DISTINCT origin, destination FROM flights ORDER BY 1, 2")
    for user in users:
        card = cat.card(user["user_id"])
        origin, destination = rng.choice(routes).values()
        day = f"2024-05-{rng.randint(18, 30):02d}"
        cabin = rng.choice(("economy", "business", "basic_economy"))
        options = cat.db.rows(
            f"SELECT d.flight_number, d.price_{cabin} AS price FROM flights f "
            "JOIN flight_dates d USING (flight_number) WHERE f.origin = ? AND f.destination = ? "
            f"AND d.date = ? AND d.status = 'available' AND d.seats_{cabin} > 0 ORDER BY price",
            (origin, destination, day),
        )
        if (
            card is None
            or not options
            or (len(options) > 1 and options[0]["price"] == options[1]["price"])
        ):
            continue
        best = options[0]
        me = {k: user[k] for k in ("first_name", "last_name", "dob")}
        yield (
            f"Hi, I'm {user['user_id']}. I'd like to book a one-way {CABIN_WORDS[cabin]} trip for "
            f"just myself from {cat.place(origin)} to {cat.place(destination)} on "
            f"{spoken_date(day)}, on the cheapest nonstop flight. No checked bags and no "
            f"insurance, please. Put it on my card ending in {card['last_four']}.",
            [ToolCall(name="get_user_details", arguments={"user_id": user["user_id"]}),
             ToolCall(name="search_direct_flight", arguments={
                 "origin": origin, "destination": destination, "date": day}),
             ToolCall(name="book_reservation", arguments={
                 "user_id": user["user_id"], "origin": origin, "destination": destination,
                 "flight_type": "one_way", "cabin": cabin,
                 "flights": [{"flight_number": best["flight_number"], "date": day}],
                 "passengers": [me],
                 "payment_methods": [{"payment_id": card["payment_id"], "amount": best["price"]}],
                 "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no"})],
            lambda results, p=best["price"]: [str(p)],
            {"user_id": user["user_id"]},
        )  # fmt: skip


def _compensation(cat: Catalog, eligible: bool) -> Iterator[Draft]:
    for trip in cat.trips():
        if trip["status"] != "active" or trip["flight_status"] != "cancelled":
            continue
        is_eligible = (
            trip["membership"] != "regular" or trip["insurance"] or trip["cabin"] == "business"
        )
        if is_eligible != eligible:
            continue
        calls = [*_lookup(trip), ToolCall(name="get_flight_status", arguments={
            "flight_number": trip["flight_number"], "date": trip["date"]})]  # fmt: skip
        amount = 100 * trip["passengers"]
        if eligible:
            calls.append(
                ToolCall(name="send_certificate",
                         arguments={"user_id": trip["user_id"], "amount": amount})
            )  # fmt: skip
        yield (
            f"Hi, I'm {trip['user_id']}. You cancelled my flight from "
            f"{cat.place(trip['origin'])} to {cat.place(trip['destination'])} on "
            f"{spoken_date(trip['date'])} and it wrecked my plans. I want some compensation.",
            calls,
            (lambda results, a=amount: [str(a)]) if eligible else (lambda results: []),
            {"user_id": trip["user_id"]},
        )


def compensation(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    return _compensation(cat, eligible=True)


def compensation_refused(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    return _compensation(cat, eligible=False)


COMPLAINTS = [
    "how the gate staff treated me in Denver",
    "a damaged suitcase from my last trip",
    "a refund I was promised on the phone last month",
    "the service on board my last flight",
    "a billing dispute with my credit card company",
    "my lost frequent-flyer paperwork",
]


def human_handoff(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    users = cat.db.rows("SELECT user_id FROM users ORDER BY user_id")
    rng.shuffle(users)
    for user, complaint in zip(users, COMPLAINTS, strict=False):
        yield (
            f"Hi, I'm {user['user_id']}. I want to talk about {complaint}. Please connect me with "
            "a human agent.",
            [ToolCall(name="transfer_to_human_agents",
                      arguments={"summary": f"User asks for a human about: {complaint}."},
                      masked=["summary"])],
            lambda results: [],
            {"user_id": user["user_id"]},
        )  # fmt: skip


def cancel_and_add_bag(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    cancels = {}
    for instruction, calls, _, facts in cancel_allowed(cat, rng):
        cancels.setdefault(facts["user_id"], (instruction, calls, facts))
    for instruction, calls, outputs, facts in add_bags(cat, rng):
        user_id = facts["user_id"]
        if user_id not in cancels or cancels[user_id][1][1] == calls[1]:
            continue
        cancel_text, cancel_calls, cancel_facts = cancels.pop(user_id)
        second = instruction.split(". ", 1)[1]
        yield (
            f"{cancel_text} Also, {second}",
            [*cancel_calls, calls[1], calls[2]],
            lambda results, o=outputs: [
                str(
                    -sum(
                        p["amount"]
                        for p in json.loads(results[2])["payment_history"]
                        if p["amount"] < 0
                    )
                ),
                *o(results),
            ],
            {**cancel_facts},
        )


KINDS: list[tuple[str, str, Callable[[Catalog, random.Random], Iterator[Draft]], int]] = [
    ("flight_status", "read", flight_status, 6),
    ("gift_card_balance", "read", gift_card_balance, 5),
    ("bag_count", "read", bag_count, 5),
    ("cheapest_direct", "read", cheapest_direct, 6),
    ("cancel", "write", cancel_allowed, 8),
    ("cancel_refused", "refusal", cancel_refused, 6),
    ("add_bags", "write", add_bags, 6),
    ("change_passenger", "write", change_passenger, 5),
    ("change_flight", "multi_write", change_flight, 6),
    ("change_flight_refused", "refusal", change_refused, 4),
    ("book", "multi_write", book_one_way, 6),
    ("compensation", "write", compensation, 4),
    ("compensation_refused", "refusal", compensation_refused, 3),
    ("cancel_and_add_bag", "multi_write", cancel_and_add_bag, 5),
    ("human_handoff", "handoff", human_handoff, 4),
]


def build(seed: int = 7) -> list[Task]:
    package = load_package("airline")
    db = Database(package.template)
    cat = Catalog(db)
    tasks: list[Task] = []
    for name, kind, make, count in KINDS:
        rng = random.Random(f"{seed}:{name}")
        drafts = list(make(cat, rng))
        rng.shuffle(drafts)
        made = 0
        for instruction, calls, outputs, facts in drafts:
            if made == count:
                break
            try:
                task = task_from_calls(
                    package,
                    calls,
                    outputs,
                    id=f"airline-{name}-{made:02d}",
                    split="test" if made % 4 == 3 else "train",
                    kind=kind,
                    instruction=instruction,
                    user_facts=facts,
                )
            except ValueError:
                continue
            tasks.append(task)
            made += 1
        if made < count:
            raise RuntimeError(f"only {made} of {count} {name} tasks could be built")
    return tasks


def main() -> None:
    tasks = build()
    path = Path(__file__).with_name("tasks.jsonl")
    write_tasks(path, tasks)
    print(f"wrote {len(tasks)} tasks to {path}")


if __name__ == "__main__":
    main()
