"""Deterministic seed data for EF Airlines: 20 airports, 300 flights over 30 days, 500 members,
2,000 reservations. Same seed, same rows, on every machine.

`seed(conn, scale=N)` adds N - 1 more networks of the same size (airports of their own, their
flights, members and reservations) beside the first, which stays the same row for row: the
benchmark's 10x and 100x databases, where the tasks still replay and every search returns as
many flights as at 1x, so only the size of the tables changes."""

from __future__ import annotations

import random
import sqlite3
import string
from datetime import date, datetime, timedelta

SEED = 20240515
NOW = datetime(2024, 5, 15, 15, 0, 0)
FIRST_DATE = date(2024, 5, 1)
DAYS = 30
CABINS = ("basic_economy", "economy", "business")
FREE_BAGS = {
    "regular": {"basic_economy": 0, "economy": 1, "business": 2},
    "silver": {"basic_economy": 1, "economy": 2, "business": 3},
    "gold": {"basic_economy": 2, "economy": 3, "business": 4},
}

AIRPORTS = [
    ("ATL", "Atlanta"), ("BOS", "Boston"), ("CLT", "Charlotte"), ("DEN", "Denver"),
    ("DFW", "Dallas"), ("DTW", "Detroit"), ("EWR", "Newark"), ("IAH", "Houston"),
    ("JFK", "New York"), ("LAS", "Las Vegas"), ("LAX", "Los Angeles"), ("LGA", "New York"),
    ("MCO", "Orlando"), ("MIA", "Miami"), ("MSP", "Minneapolis"), ("ORD", "Chicago"),
    ("PHL", "Philadelphia"), ("PHX", "Phoenix"), ("SEA", "Seattle"), ("SFO", "San Francisco"),
]  # fmt: skip

FIRST_NAMES = [
    "Ava",
    "Liam",
    "Mia",
    "Noah",
    "Emma",
    "Omar",
    "Sofia",
    "Lucas",
    "Amara",
    "Ethan",
    "Chloe",
    "Mateo",
    "Priya",
    "Daniel",
    "Yuki",
    "Hannah",
    "Diego",
    "Leila",
    "Samuel",
    "Grace",
    "Ivan",
    "Nora",
    "Kofi",
    "Elena",
    "Jonah",
    "Aisha",
    "Felix",
    "Maya",
    "Tomas",
    "Zoe",
    "Arjun",
    "Lena",
    "Marcus",
    "Ines",
    "Caleb",
    "Hana",
    "Rafael",
    "Julia",
    "Kenji",
    "Olivia",
    "Ahmed",
    "Clara",
    "Mason",
    "Fatima",
    "Leo",
    "Rosa",
    "Victor",
    "Anya",
    "Isaac",
    "Layla",
]
LAST_NAMES = [
    "Smith",
    "Garcia",
    "Chen",
    "Patel",
    "Johnson",
    "Kim",
    "Nguyen",
    "Rossi",
    "Muller",
    "Silva",
    "Brown",
    "Cohen",
    "Ito",
    "Lopez",
    "Okafor",
    "Novak",
    "Walker",
    "Haddad",
    "Larsen",
    "Moreau",
    "Singh",
    "Davis",
    "Tanaka",
    "Ortiz",
    "Wright",
    "Kowalski",
    "Ahmed",
    "Fischer",
    "Reyes",
    "Murphy",
    "Costa",
    "Yamamoto",
    "Hughes",
    "Santos",
    "Bauer",
    "Ali",
    "Jensen",
    "Rivera",
    "Park",
    "Evans",
]
STREETS = [
    "Oak",
    "Maple",
    "Cedar",
    "Pine",
    "Elm",
    "Lake",
    "Hill",
    "River",
    "Park",
    "Sunset",
    "Main",
    "Church",
]
CITIES = [
    ("Austin", "TX", "787"),
    ("Portland", "OR", "972"),
    ("Columbus", "OH", "432"),
    ("Denver", "CO", "802"),
    ("Charlotte", "NC", "282"),
    ("Phoenix", "AZ", "850"),
    ("Boston", "MA", "021"),
    ("Seattle", "WA", "981"),
    ("Miami", "FL", "331"),
    ("Chicago", "IL", "606"),
]


def seed(conn: sqlite3.Connection, scale: int = 1) -> None:
    """Fill an empty database created from schema.sql (`scale` networks, at most 100; see the
    module doc)."""
    taken: dict[str, set] = {"users": set(), "cards": set(), "codes": set()}
    for network in range(scale):
        rng = random.Random(SEED if network == 0 else f"{SEED}:{network}")
        airports = AIRPORTS if network == 0 else _more_airports(network)
        _network(conn, rng, airports, 100 if network == 0 else 1000 * network, taken)


def _network(conn, rng, airports, first_number, taken) -> None:  # noqa: PLR0913
    conn.executemany("INSERT INTO airports VALUES (?, ?)", airports)
    flights = _flights(rng, airports, first_number)
    conn.executemany("INSERT INTO flights VALUES (?, ?, ?, ?, ?)", flights)
    flight_dates = _flight_dates(rng, flights)
    conn.executemany(
        "INSERT INTO flight_dates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [tuple(fd.values()) for fd in flight_dates.values()],
    )
    users, methods, saved = _users(rng, taken["users"], taken["cards"])
    conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", users)
    conn.executemany("INSERT INTO payment_methods VALUES (?, ?, ?, ?, ?, ?)", methods)
    conn.executemany("INSERT INTO saved_passengers VALUES (?, ?, ?, ?)", saved)
    _reservations(conn, rng, flights, flight_dates, users, methods, saved, taken["codes"])
    conn.executemany(
        "UPDATE flight_dates SET seats_basic_economy = ?, seats_economy = ?, "
        "seats_business = ? WHERE flight_number = ? AND date = ?",
        [(fd["seats_basic_economy"], fd["seats_economy"], fd["seats_business"],
          fd["flight_number"], fd["date"]) for fd in flight_dates.values()],
    )  # fmt: skip


def _more_airports(network: int) -> list[tuple[str, str]]:
    """20 airports of another network: a letter and two digits (no real code has a digit), and
    the first network's cities with a number."""
    if not 0 < network < 100:
        raise ValueError("scale goes up to 100 networks")
    return [
        (f"{string.ascii_uppercase[i]}{network:02d}", f"{city} {network}")
        for i, (_, city) in enumerate(AIRPORTS)
    ]


def _flights(
    rng: random.Random, airports: list[tuple[str, str]], number: int
) -> list[tuple[str, str, str, str, str]]:
    """75 city pairs, two flights each way: 300 flight numbers."""
    codes = [code for code, _ in airports]
    pairs = [(a, b) for i, a in enumerate(codes) for b in codes[i + 1 :]]
    rng.shuffle(pairs)
    flights = []
    for a, b in sorted(pairs[:75]):
        hours = rng.randint(1, 5)
        for origin, destination in ((a, b), (b, a)):
            for start in (rng.randint(5, 11), rng.randint(12, 18)):
                minute = rng.choice((0, 30))
                depart = f"{start:02d}:{minute:02d}:00"
                arrive = f"{start + hours:02d}:{minute:02d}:00"
                flights.append((f"EF{number}", origin, destination, depart, arrive))
                number += 1
    return flights


def _status(rng: random.Random, day: date, depart: str, arrive: str) -> str:
    today = NOW.date()
    clock = NOW.strftime("%H:%M:%S")
    roll = rng.random()
    if day < today:
        return "cancelled" if roll < 0.02 else "landed"
    if day == today:
        if arrive <= clock:
            return "cancelled" if roll < 0.03 else "landed"
        if depart <= clock:
            return "flying"
        return "cancelled" if roll < 0.08 else "delayed" if roll < 0.25 else "on time"
    if day == today + timedelta(days=1):
        return "cancelled" if roll < 0.06 else "delayed" if roll < 0.15 else "on time"
    return "cancelled" if roll < 0.04 else "available"


def _flight_dates(rng: random.Random, flights: list[tuple]) -> dict[tuple[str, str], dict]:
    rows = {}
    for number, _origin, _dest, depart, arrive in flights:
        base = rng.randint(90, 420)
        for offset in range(DAYS):
            day = FIRST_DATE + timedelta(days=offset)
            factor = rng.uniform(0.8, 1.25)
            rows[(number, day.isoformat())] = {
                "flight_number": number,
                "date": day.isoformat(),
                "status": _status(rng, day, depart, arrive),
                "seats_basic_economy": rng.randint(20, 40),
                "seats_economy": rng.randint(40, 90),
                "seats_business": rng.randint(8, 20),
                "price_basic_economy": round(base * factor * 0.6),
                "price_economy": round(base * factor),
                "price_business": round(base * factor * rng.uniform(2.5, 3.5)),
            }
    return rows


def _dob(rng: random.Random, first_year: int = 1950, last_year: int = 2005) -> str:
    return date(
        rng.randint(first_year, last_year), rng.randint(1, 12), rng.randint(1, 28)
    ).isoformat()


def _users(
    rng: random.Random, ids: set[str], card_numbers: set[int]
) -> tuple[list[tuple], list[tuple], list[tuple]]:
    users, methods, saved = [], [], []

    def new_method_id(kind: str) -> str:
        while True:
            n = rng.randint(1_000_000, 9_999_999)
            if n not in card_numbers:
                card_numbers.add(n)
                return f"{kind}_{n}"

    while len(users) < 500:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        user_id = f"{first.lower()}_{last.lower()}_{rng.randint(100, 9999)}"
        if user_id in ids:
            continue
        ids.add(user_id)
        city, state, zip_prefix = rng.choice(CITIES)
        membership = rng.choices(("regular", "silver", "gold"), (5, 3, 2))[0]
        users.append((
            user_id, first, last, f"{user_id.replace('_', '.')}@example.com", _dob(rng),
            membership, f"{rng.randint(10, 9999)} {rng.choice(STREETS)} Street", city, state,
            f"{zip_prefix}{rng.randint(10, 99)}",
        ))  # fmt: skip
        for _ in range(rng.choice((1, 1, 2))):
            methods.append((
                new_method_id("credit_card"), user_id, "credit_card",
                rng.choice(("visa", "mastercard", "amex")), f"{rng.randint(0, 9999):04d}", None,
            ))  # fmt: skip
        if rng.random() < 0.5:
            methods.append((new_method_id("gift_card"), user_id, "gift_card", None, None,
                            rng.randint(0, 60) * 10))  # fmt: skip
        for _ in range(rng.choice((0, 0, 1, 2))):
            methods.append((new_method_id("certificate"), user_id, "certificate", None, None,
                            rng.choice((100, 150, 200, 250, 500))))  # fmt: skip
        names: set[tuple[str, str]] = set()
        for _ in range(rng.choice((0, 1, 2, 3))):
            name = (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
            if name not in names:
                names.add(name)
                saved.append((user_id, *name, _dob(rng, 1945, 2020)))
    return users, methods, saved


def _reservation_code(rng: random.Random, taken: set[str]) -> str:
    while True:
        code = "".join(rng.choices(string.ascii_uppercase + string.digits, k=6))
        if code not in taken:
            taken.add(code)
            return code


def _reservations(conn, rng, flights, flight_dates, users, methods, saved, taken) -> None:  # noqa: PLR0913
    by_origin: dict[str, list[tuple]] = {}
    for flight in flights:
        by_origin.setdefault(flight[1], []).append(flight)
    methods_by_user: dict[str, list[list]] = {}
    for method in methods:
        methods_by_user.setdefault(method[1], []).append(list(method))
    saved_by_user: dict[str, list[tuple]] = {}
    for row in saved:
        saved_by_user.setdefault(row[0], []).append(row)
    made = 0
    while made < 2000:
        user = rng.choice(users)
        user_id, membership = user[0], user[5]
        if rng.random() < 0.06:
            created = NOW - timedelta(minutes=rng.randint(30, 23 * 60))
        else:
            created = NOW - timedelta(minutes=rng.randint(25 * 60, 45 * 24 * 60))
        first_day = max(FIRST_DATE, created.date() + timedelta(days=1))
        last_day = FIRST_DATE + timedelta(days=DAYS - 1)
        if first_day > last_day:
            continue
        day = first_day + timedelta(days=rng.randint(0, (last_day - first_day).days))
        first = rng.choice(flights)
        segments = [(first, day)]
        flight_type = rng.choices(("one_way", "round_trip"), (6, 4))[0]
        origin, destination = first[1], first[2]
        if flight_type == "one_way" and rng.random() < 0.25:
            connections = [f for f in by_origin[first[2]] if f[3] >= first[4] and f[2] != first[1]]
            if connections:
                second = rng.choice(connections)
                segments.append((second, day))
                destination = second[2]
        if flight_type == "round_trip":
            back_day = day + timedelta(days=rng.randint(1, 7))
            if back_day > last_day:
                continue
            returns = [f for f in by_origin[first[2]] if f[2] == first[1]]
            segments.append((rng.choice(returns), back_day))
        cabin = rng.choices(CABINS, (3, 5, 2))[0]
        count = rng.choices((1, 2, 3), (6, 3, 1))[0]
        instances = [flight_dates[(f[0], d.isoformat())] for f, d in segments]
        if any(fd["seats_" + cabin] < count for fd in instances):
            continue
        companions = saved_by_user.get(user_id, [])
        passengers = [(user[1], user[2], user[4])] + [
            (c[1], c[2], c[3]) for c in companions[: count - 1]
        ]
        while len(passengers) < count:
            passengers.append((rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), _dob(rng)))
        insurance = int(rng.random() < 0.35)
        total_bags = rng.randint(0, 2 * count)
        nonfree = max(0, total_bags - FREE_BAGS[membership][cabin] * count)
        prices = [fd["price_" + cabin] for fd in instances]
        total = sum(prices) * count + 30 * count * insurance + 50 * nonfree
        payment = _choose_payment(rng, methods_by_user[user_id], total)
        for fd in instances:
            fd["seats_" + cabin] -= count
        code = _reservation_code(rng, taken)
        cancelled = rng.random() < 0.04 and day > NOW.date()
        conn.execute(
            "INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (code, user_id, origin, destination, flight_type, cabin, insurance, total_bags,
             nonfree, created.isoformat(timespec="seconds"),
             "cancelled" if cancelled else "active"),
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO reservation_flights VALUES (?, ?, ?, ?, ?)",
            [
                (code, i, f[0], d.isoformat(), p)
                for i, ((f, d), p) in enumerate(zip(segments, prices, strict=True))
            ],
        )
        conn.executemany(
            "INSERT INTO reservation_passengers VALUES (?, ?, ?, ?, ?)",
            [(code, i, *p) for i, p in enumerate(passengers)],
        )
        conn.execute(
            "INSERT INTO payments (reservation_id, payment_id, amount) VALUES (?, ?, ?)",
            (code, payment[0], total),
        )
        if cancelled:
            conn.execute(
                "INSERT INTO payments (reservation_id, payment_id, amount) VALUES (?, ?, ?)",
                (code, payment[0], -total),
            )
            for fd in instances:
                fd["seats_" + cabin] += count
        made += 1
    conn.executemany(
        "UPDATE payment_methods SET balance = ? WHERE payment_id = ?",
        [(m[5], m[0]) for ms in methods_by_user.values() for m in ms if m[2] != "credit_card"],
    )


def _choose_payment(rng: random.Random, methods: list[list], total: int) -> list:
    gift = [m for m in methods if m[2] == "gift_card" and m[5] >= total]
    if gift and rng.random() < 0.3:
        gift[0][5] -= total
        return gift[0]
    return rng.choice([m for m in methods if m[2] == "credit_card"])
