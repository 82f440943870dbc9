-- EF Airlines: flights per date with seats and prices per cabin, members, payment methods and
-- reservations. Money is in whole US dollars.

CREATE TABLE airports (
    iata TEXT PRIMARY KEY CHECK (length(iata) = 3),
    city TEXT NOT NULL
);

CREATE TABLE flights (
    flight_number TEXT PRIMARY KEY,
    origin TEXT NOT NULL REFERENCES airports (iata),
    destination TEXT NOT NULL REFERENCES airports (iata),
    departure_time TEXT NOT NULL,  -- HH:MM:SS, US Eastern
    arrival_time TEXT NOT NULL,
    CHECK (origin <> destination),
    CHECK (arrival_time > departure_time)
);
CREATE INDEX flights_by_route ON flights (origin, destination);  -- the searches

CREATE TABLE flight_dates (
    flight_number TEXT NOT NULL REFERENCES flights (flight_number),
    date TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('available', 'on time', 'delayed', 'flying', 'landed', 'cancelled')),
    seats_basic_economy INTEGER NOT NULL CHECK (seats_basic_economy >= 0),
    seats_economy INTEGER NOT NULL CHECK (seats_economy >= 0),
    seats_business INTEGER NOT NULL CHECK (seats_business >= 0),
    price_basic_economy INTEGER NOT NULL CHECK (price_basic_economy > 0),
    price_economy INTEGER NOT NULL CHECK (price_economy > 0),
    price_business INTEGER NOT NULL CHECK (price_business > 0),
    PRIMARY KEY (flight_number, date)
) WITHOUT ROWID;

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    dob TEXT NOT NULL,
    membership TEXT NOT NULL CHECK (membership IN ('regular', 'silver', 'gold')),
    address TEXT NOT NULL,
    city TEXT NOT NULL,
    state TEXT NOT NULL,
    zip TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE payment_methods (
    payment_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    source TEXT NOT NULL CHECK (source IN ('credit_card', 'gift_card', 'certificate')),
    brand TEXT,
    last_four TEXT,
    balance INTEGER CHECK (balance IS NULL OR balance >= 0),
    CHECK ((source = 'credit_card') = (balance IS NULL)),
    CHECK ((source = 'credit_card') = (last_four IS NOT NULL))
);
CREATE INDEX payment_methods_by_user ON payment_methods (user_id, payment_id);

CREATE TABLE saved_passengers (
    user_id TEXT NOT NULL REFERENCES users (user_id),
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    dob TEXT NOT NULL,
    PRIMARY KEY (user_id, first_name, last_name)
) WITHOUT ROWID;

CREATE TABLE reservations (
    reservation_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    origin TEXT NOT NULL REFERENCES airports (iata),
    destination TEXT NOT NULL REFERENCES airports (iata),
    flight_type TEXT NOT NULL CHECK (flight_type IN ('one_way', 'round_trip')),
    cabin TEXT NOT NULL CHECK (cabin IN ('basic_economy', 'economy', 'business')),
    insurance INTEGER NOT NULL CHECK (insurance IN (0, 1)),
    total_baggages INTEGER NOT NULL CHECK (total_baggages >= 0),
    nonfree_baggages INTEGER NOT NULL
        CHECK (nonfree_baggages >= 0 AND nonfree_baggages <= total_baggages),
    created_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled'))
);
CREATE INDEX reservations_by_user ON reservations (user_id);

CREATE TABLE reservation_flights (
    reservation_id TEXT NOT NULL REFERENCES reservations (reservation_id),
    position INTEGER NOT NULL CHECK (position >= 0),
    flight_number TEXT NOT NULL,
    date TEXT NOT NULL,
    price INTEGER NOT NULL CHECK (price > 0),
    PRIMARY KEY (reservation_id, position),
    FOREIGN KEY (flight_number, date) REFERENCES flight_dates (flight_number, date)
) WITHOUT ROWID;

CREATE TABLE reservation_passengers (
    reservation_id TEXT NOT NULL REFERENCES reservations (reservation_id),
    position INTEGER NOT NULL CHECK (position >= 0 AND position < 5),
    first_name TEXT NOT NULL CHECK (length(first_name) > 0),
    last_name TEXT NOT NULL CHECK (length(last_name) > 0),
    dob TEXT NOT NULL,
    PRIMARY KEY (reservation_id, position)
) WITHOUT ROWID;

CREATE TABLE payments (
    payment_seq INTEGER PRIMARY KEY,
    reservation_id TEXT NOT NULL REFERENCES reservations (reservation_id),
    payment_id TEXT NOT NULL REFERENCES payment_methods (payment_id),
    amount INTEGER NOT NULL
);
CREATE INDEX payments_by_reservation ON payments (reservation_id);
