"""`envfactory import tau2`: a tau2-bench airline or retail domain folder becomes an env package
whose database holds tau2's data as it is (every record and field of the fixture comes back out),
whose tasks replay and pass the per-task checker, and which loads, plays and `gym.make`s.

The fixtures (tests/fixtures/tau2/{airline,retail}) are small domains of our own in tau2's
format, with the cases that do not fit Airline-v0's and Retail-v0's own tables: flight dates that
cannot be booked, overnight flights, estimated and actual times, full addresses, saved passengers
and payment methods in their order, '#W' orders with several tracking numbers, cancelled orders
without a reason, returns and exchanges already requested.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from envfactory_gym.actions import format_tool_call
from envfactory_gym.checker import check_package, oracle_answer
from envfactory_gym.env import ToolUseEnv
from envfactory_gym.generators.importers.tau2 import (
    SCENARIOS_FILE,
    Tau2ImportError,
    Tau2ImportResult,
    detect_domain,
    export_tau2_db,
    first_person,
    import_tau2,
    load_db,
    main,
    user_facts,
)
from envfactory_gym.package import EnvPackage, load_package

FIXTURES = Path(__file__).parent / "fixtures" / "tau2"
DOMAINS = ("airline", "retail")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tau2ImportResult]:
    out = tmp_path_factory.mktemp("tau2")
    return {domain: import_tau2(FIXTURES / domain, out / f"tau2_{domain}") for domain in DOMAINS}


def _package(imported: dict[str, Tau2ImportResult], domain: str) -> EnvPackage:
    return load_package(str(imported[domain].folder))


def _fixture_db(domain: str) -> dict[str, Any]:
    return json.loads((FIXTURES / domain / "db.json").read_text(encoding="utf-8"))


def _without_nulls(value: Any) -> Any:
    """tau2 writes an unset optional field as null or leaves it out: the same record."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _call(package: EnvPackage, name: str, **arguments: Any) -> Any:
    db = package.new_database()
    tool = package.tools[name]
    result = tool(db, **tool.validate(arguments))
    return json.loads(result) if isinstance(result, str) and result[:1] in "[{" else result


# ----- the data -----------------------------------------------------------------------------
@pytest.mark.parametrize("domain", DOMAINS)
def test_every_record_and_field_round_trips(imported, domain):
    package = _package(imported, domain)
    source = _fixture_db(domain)
    exported = export_tau2_db(package.template, domain)
    assert _without_nulls(exported) == _without_nulls(source)
    for user_id, user in source["users"].items():  # dicts in tau2's order, not sorted
        assert list(exported["users"][user_id]["payment_methods"]) == list(user["payment_methods"])


def test_airline_rows_and_counts(imported):
    result = imported["airline"]
    assert result.domain == "airline" and result.gym_id == "envfactory/Tau2Airline-v0"
    assert result.rows["flight_dates"] == 17 and result.rows["reservations"] == 4


def test_flight_dates_that_cannot_be_booked(imported):
    db = _package(imported, "airline").new_database()
    rows = {
        (r["flight_number"], r["date"]): r
        for r in db.rows("SELECT * FROM flight_dates WHERE status <> 'available'")
    }
    cancelled = rows["QK102", "2024-05-18"]
    assert cancelled["status"] == "cancelled"
    assert all(cancelled[f"{k}_{c}"] is None for k in ("seats", "price") for c in ("economy",))
    landed = rows["QK101", "2024-05-14"]
    assert (landed["actual_departure"], landed["actual_arrival"]) == (
        "2024-05-14T08:04:00",
        "2024-05-14T10:01:00",
    )
    delayed = rows["QK101", "2024-05-15"]
    assert (
        delayed["estimated_arrival"] == "2024-05-15T11:45:00"
        and delayed["actual_departure"] is None
    )
    flying = rows["QK104", "2024-05-15"]
    assert (
        flying["actual_departure"] and flying["estimated_arrival"] and not flying["actual_arrival"]
    )
    overnight_landing = rows["QK102", "2024-05-14"]
    assert overnight_landing["actual_arrival"] == "2024-05-15T01:09:00"
    package = _package(imported, "airline")
    assert (
        _call(package, "get_flight_status", flight_number="QK102", date="2024-05-15") == "on time"
    )
    assert (
        _call(package, "search_direct_flight", origin="ORD", destination="SFO", date="2024-05-18")
        == []
    )


def test_overnight_flights_and_one_stop_across_midnight(imported):
    package = _package(imported, "airline")
    (direct,) = _call(
        package, "search_direct_flight", origin="LAX", destination="JFK", date="2024-05-16"
    )
    assert direct["scheduled_arrival_time_est"] == "08:05:00+1"
    pairs = _call(
        package, "search_onestop_flight", origin="ORD", destination="LAX", date="2024-05-16"
    )
    assert [[(f["flight_number"], f["date"]) for f in pair] for pair in pairs] == [
        [("QK102", "2024-05-16"), ("QK103", "2024-05-17")]
    ]
    assert pairs[0][0]["scheduled_arrival_time_est"] == "01:15:00+1"
    assert pairs[0][1]["prices"]["economy"] == 90  # the next day's fare, not the first day's
    # the connection is bookable: the task that books it replays (checked below)
    assert "tau2_airline-2" in {t.id for t in package.tasks}


def test_users_addresses_passengers_and_payment_methods(imported):
    package = _package(imported, "airline")
    mara = _call(package, "get_user_details", user_id="mara_quill_1024")
    assert mara["address"] == {
        "address1": "48 Linden Court", "address2": "Apt 4B", "city": "Brooklyn",
        "country": "USA", "state": "NY", "zip": "11215",
    }  # fmt: skip
    assert [p["first_name"] for p in mara["saved_passengers"]] == ["Zed", "Ana"]
    assert list(mara["payment_methods"]) == [
        "credit_card_5550101", "gift_card_5550102", "certificate_5550103",
    ]  # fmt: skip
    assert mara["payment_methods"]["certificate_5550103"] == {
        "source": "certificate", "id": "certificate_5550103", "amount": 150.0,
    }  # fmt: skip
    assert mara["reservations"] == ["RQ7T2A", "KB3M9Z"]
    tomas = _call(package, "get_user_details", user_id="tomas_reyes_2048")
    assert tomas["address"]["address2"] is None and tomas["address"]["country"] == "Canada"
    assert list(tomas["payment_methods"]) == ["certificate_7770202", "credit_card_7770201"]
    cancelled = _call(package, "get_reservation_details", reservation_id="P4ZX8C")
    assert cancelled["status"] == "cancelled"
    assert [p["amount"] for p in cancelled["payment_history"]] == [225, -225]


def test_retail_orders_as_tau2_keeps_them(imported):
    package = _package(imported, "retail")
    source = _fixture_db("retail")
    for order_id, order in source["orders"].items():
        assert _call(package, "get_order_details", order_id=order_id) == order
    ines = _call(package, "get_user_details", user_id="ines_moreau_3301")
    assert ines["orders"] == ["#W6600202", "#W6600201", "#W6600204"]
    assert list(ines["payment_methods"]) == ["paypal_6600101", "credit_card_6600102",
                                             "gift_card_6600103"]  # fmt: skip
    assert ines["payment_methods"]["gift_card_6600103"]["balance"] == 60.25
    kofi = _call(package, "get_user_details", user_id="kofi_mensah_4402")
    assert kofi["address"]["country"] == "Canada" and kofi["address"]["address2"] == ""
    db = package.new_database()
    assert db.value("SELECT cancel_reason FROM orders WHERE order_id = '#W6600204'") is None
    assert db.value("SELECT count(*) FROM fulfillments WHERE order_id = '#W7700201'") == 2


# ----- the tasks ----------------------------------------------------------------------------
@pytest.mark.parametrize("domain", DOMAINS)
def test_tasks_replay_and_pass_the_checker(imported, domain):
    package = _package(imported, domain)
    report = check_package(package)
    assert report.ok, [p.model_dump() for p in report.problems]
    assert report.checks_run["oracle"] == len(package.tasks) == imported[domain].tasks


def test_left_out_tasks_say_why(imported):
    skipped = imported["airline"].skipped
    assert any(s.startswith("7: every action fails here: cancel_reservation") for s in skipped)
    assert any(s.startswith("1: fails the checker: [listing]") for s in skipped)
    assert imported["retail"].skipped == []


def test_task_conversion(imported):
    package = _package(imported, "airline")
    tasks = {task.id.rsplit("-", 1)[1]: task for task in package.tasks}
    assert (
        tasks["0"].instruction == "I want to cancel my reservation RQ7T2A because my plans changed."
    )
    assert tasks["0"].user_facts["user_id"] == "mara_quill_1024" and tasks["0"].kind == "write"
    assert tasks["0"].split == "train" and tasks["3"].split == "test"  # split_tasks.json
    # no action list: the look-up of the user is the ground truth, so doing nothing scores 0
    assert [c.name for c in tasks["3"].calls] == ["get_user_details"]
    assert tasks["3"].kind == "refusal"
    assert tasks["4"].kind == "handoff" and tasks["4"].calls[0].masked == ["summary"]
    # communicate_info: kept when a tool output holds it, else left to the LLM user's judge
    assert tasks["2"].outputs == ["2024-05-17"] and tasks["2"].kind == "write"
    assert tasks["6"].outputs == ["120"] and "150" in tasks["6"].distractors
    scenarios = json.loads((package.folder / SCENARIOS_FILE).read_text(encoding="utf-8"))
    two = scenarios["tau2_airline-2"]
    assert two["communicate_info_not_in_tool_outputs"] == ["270"]
    assert two["user_scenario"]["instructions"]["known_info"].startswith("You are Tomas Reyes")
    assert scenarios["tau2_airline-3"]["ground_truth_added"] is True
    # an action that fails (a mistyped id) is left out, as tau2's own replay skips it
    assert [c.name for c in tasks["5"].calls] == [
        "get_reservation_details", "update_reservation_baggages",
    ]  # fmt: skip
    assert tasks["5"].calls[0].arguments == {"reservation_id": "KB3M9Z"}
    assert scenarios["tau2_airline-5"]["dropped_calls"][0].startswith(
        'get_reservation_details({"reservation_id": "KB3M9Y"})'
    )
    assert any(n.startswith("task 5: left out an action") for n in imported["airline"].notes)
    assert scenarios["tau2_airline-3"]["nl_assertions"] == ["Agent should not send a certificate."]
    if (
        "persona" in type(tasks["0"]).model_fields
    ):  # the Task's user-profile fields, for an LLM user
        six = tasks["6"]
        assert six.persona == "You are Mara Quill. Your user id is mara_quill_1024."
        assert (
            six.reason_for_contact == "You want to know how much money is left on your gift card."
        )
        assert six.user_unknowns == ["You do not know your gift card id."]
        assert six.user_reactions.guidance.startswith("Answer the agent's questions")
    retail = {t.id.rsplit("-", 1)[1]: t for t in _package(imported, "retail").tasks}
    assert retail["0"].user_facts == {"name": "Ines Moreau", "first_name": "Ines",
                                      "last_name": "Moreau", "zip_code": "97205"}  # fmt: skip
    assert [c.name for c in retail["5"].calls] == ["find_user_id_by_email"]
    assert retail["6"].kind == "write" and retail["6"].outputs == ["69.5"]


def test_scripted_user_opens_with_the_reason_and_answers_from_known_info(imported):
    package = _package(imported, "airline")
    task = package.task("tau2_airline-0")
    env = ToolUseEnv(package, split="all")
    obs, _ = env.reset_to(task)
    assert obs == task.instruction
    obs, *_ = env.step("Could you tell me your user id?")
    assert "mara_quill_1024" in obs
    for call in task.calls:
        env.step(format_tool_call(call.name, call.arguments))
    *_, terminated, _, info = env.step(oracle_answer(task.outputs))
    assert terminated and info["reward_breakdown"]["total"] == 1.0
    env.close()


def test_gym_make(imported):
    folder = imported["retail"].folder
    gym.register(id="envfactory-test/Tau2Retail-v0", entry_point="envfactory_gym.env:ToolUseEnv",
                 kwargs={"package": str(folder)})  # fmt: skip
    env = gym.make("envfactory-test/Tau2Retail-v0", split="all")
    obs, info = env.reset(options={"task_id": "tau2_retail-3"})
    assert "white desk lamp" in obs
    assert {t["function"]["name"] for t in info["tools"]} >= {"get_order_details", "calculate"}
    obs, *_ = env.step(
        format_tool_call("find_user_id_by_email", {"email": "kofi.mensah@example.net"})
    )
    assert "kofi_mensah_4402" in obs
    env.close()


# ----- the command line and the reading ----------------------------------------------------
def test_command_line(tmp_path, capsys):
    assert main([str(FIXTURES / "retail"), "--out", str(tmp_path / "store"), "--no-check"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert EnvPackage(tmp_path / "store").config.gym_id == "envfactory/Tau2Retail-v0"
    assert main([str(FIXTURES), "--out", str(tmp_path / "nothing")]) == 2
    assert not (tmp_path / "nothing").exists()
    assert "no db.json or db.toml" in capsys.readouterr().err


def test_db_toml_and_domain_detection(tmp_path):
    (tmp_path / "db.toml").write_text(
        '[products.p1]\nname = "Kite"\nproduct_id = "p1"\n[products.p1.variants]\n'
        "[users]\n[orders]\n",
        encoding="utf-8",
    )
    assert detect_domain(load_db(tmp_path)) == "retail"
    with pytest.raises(Tau2ImportError, match="expected tau2's airline"):
        detect_domain({"customers": {}})


def test_a_record_that_does_not_fit_is_refused(tmp_path):
    source = tmp_path / "domain"
    shutil.copytree(FIXTURES / "retail", source)
    db = json.loads((source / "db.json").read_text(encoding="utf-8"))
    db["orders"]["#W6600201"]["items"][0]["price"] = 45.505
    (source / "db.json").write_text(json.dumps(db), encoding="utf-8")
    with pytest.raises(Tau2ImportError, match="more than two decimals"):
        import_tau2(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    db["orders"]["#W6600201"]["items"][0]["price"] = 45.5
    db["orders"]["#W6600201"]["status"] = "lost"
    (source / "db.json").write_text(json.dumps(db), encoding="utf-8")
    with pytest.raises(
        Tau2ImportError,
        match=r"(?s)CHECK constraint failed.*first at orders .*\"status\": \"lost\"",
    ):
        import_tau2(source, tmp_path / "out")


def test_first_person_and_user_facts():
    assert first_person(
        "You want to cancel your trip. If the agent asks, you are flying alone and you'd "
        "rather talk to a human agent."
    ) == ("I want to cancel my trip. If you ask, I'm flying alone and I'd rather talk to a "
          "human agent.")  # fmt: skip
    assert user_facts("Your name is Omar Rossi.\n\nYour user id is omar_rossi_1241.") == {
        "name": "Omar Rossi", "first_name": "Omar", "last_name": "Rossi",
        "user_id": "omar_rossi_1241",
    }  # fmt: skip
    assert user_facts("You are mia_garcia_4516 (mia.garcia2723@example.com).") == {
        "user_id": "mia_garcia_4516", "email": "mia.garcia2723@example.com",
    }  # fmt: skip
