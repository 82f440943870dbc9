"""`envfactory verify`: the shipped package passes; broken tools, pre-satisfied tasks, network
access, writes outside the sandbox, runaway loops and memory hogs fail, each named."""

import json
import shutil
import time
from pathlib import Path

import gymnasium as gym
import pytest

from envfactory_gym.generators.verify import (
    VerifyReport,
    format_report,
    main,
    verify_in_process,
    verify_package,
)
from envfactory_gym.package import builtin_envs_dir

AIRLINE = builtin_envs_dir() / "airline"
KINDS_KEPT = ("read", "write", "multi_write", "refusal")


def airline_copy(tmp_path: Path) -> Path:
    """Airline with one task of each kind: a quick package that passes as it is."""
    folder = tmp_path / "airline"
    shutil.copytree(AIRLINE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    tasks = [json.loads(line) for line in (folder / "tasks.jsonl").read_text().splitlines()]
    kept = [next(t for t in tasks if t["kind"] == kind) for kind in KINDS_KEPT]
    (folder / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in kept))
    return folder


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))


def add_tool(folder: Path, source: str) -> None:
    with (folder / "tools.py").open("a") as handle:
        handle.write("\n\n" + source)


def subjects(report: VerifyReport, stage: str | None = None) -> set[str]:
    return {f.subject for f in report.failures if stage is None or f.stage == stage}


def test_airline_passes_every_stage():
    start = time.perf_counter()
    report = verify_package(AIRLINE)
    elapsed = time.perf_counter() - start
    assert report.passed, format_report(report)
    assert all(report.stages[stage] > 0 for stage in report.stages), report.stages
    assert set(report.tools_valid) == set(report.tools_invalid) == {
        "get_user_details", "get_reservation_details", "list_all_airports",
        "search_direct_flight", "search_onestop_flight", "get_flight_status",
        "book_reservation", "cancel_reservation", "update_reservation_flights",
        "update_reservation_passengers", "update_reservation_baggages", "send_certificate",
        "calculate", "transfer_to_human_agents",
    }  # fmt: skip
    assert all(report.tools_valid.values()) and all(report.tools_invalid.values())
    assert report.stages["tasks"] >= 79 * 3  # replay, oracle and no_tools on every task
    assert elapsed < 60, f"verifying airline took {elapsed:.0f} s"


def test_in_process_runs_the_checks_without_a_sandbox_and_unregisters():
    report = verify_in_process(AIRLINE)
    assert report.passed, format_report(report)
    assert report.stages["sandbox"] == 0 and report.stages["tools"] > 0
    assert any("sandbox not installed" in note for note in report.notes)
    assert not [env_id for env_id in gym.registry if env_id.startswith("envfactory-verify/")]


def test_broken_tools_fail_by_name(tmp_path, capsys):
    folder = airline_copy(tmp_path)
    tools = folder / "tools.py"
    # a read tool whose not-found path raises KeyError instead of ToolError
    edit(
        tools,
        "    found = db.value(_RESERVATION_JSON, (reservation_id,))\n    if found is None:\n"
        '        raise ToolError(f"reservation {reservation_id!r} not found")\n',
        "    found = db.value(_RESERVATION_JSON, (reservation_id,))\n    if found is None:\n"
        "        raise KeyError(reservation_id)\n",
    )
    # a write tool that no longer checks the user, so the foreign key's IntegrityError leaks
    edit(tools, "    _user(db, user_id)\n    payment_id = _new_id(", "    payment_id = _new_id(")
    # a read tool that writes before it fails: the env gives reads no savepoint, so it would stay
    add_tool(
        folder,
        "@tool\n"
        "def find_user_by_city(db: Database, user_id: str) -> str:\n"
        '    """Find a user by city."""\n'
        '    db.execute("UPDATE users SET city = upper(city) WHERE user_id = ?", (user_id,))\n'
        '    raise ToolError("no such city")\n',
    )
    out = tmp_path / "report.json"
    assert main([str(folder), "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    report = VerifyReport.model_validate_json(out.read_text())
    assert not report.passed
    assert subjects(report) == {
        "get_reservation_details", "send_certificate", "find_user_by_city",
    }, printed  # fmt: skip
    details = {f.subject: f.detail for f in report.failures}
    assert "KeyError" in details["get_reservation_details"]
    assert "IntegrityError" in details["send_certificate"]
    assert "kind='read' but changed the database before" in details["find_user_by_city"]
    assert "FAIL [tools] send_certificate: invalid call (nonexistent user_id=" in printed


def test_a_presatisfied_write_task_is_named(tmp_path):
    folder = airline_copy(tmp_path)
    lines = (folder / "tasks.jsonl").read_text().splitlines()
    task = json.loads(lines[1])
    assert task["kind"] == "write" and task["expected_diff"]
    reads = {"get_user_details", "get_reservation_details", "get_flight_status"}
    task["calls"] = [c for c in task["calls"] if c["name"] in reads]
    task["expected_diff"], task["allowed_writes"] = {}, {}
    lines[1] = json.dumps(task)
    (folder / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    report = verify_package(folder)
    assert not report.passed
    assert subjects(report) == {task["id"]}, format_report(report)
    assert any("[not_presatisfied]" in f.detail for f in report.failures if f.stage == "tasks")


def test_a_tool_that_tries_the_network_fails_even_when_it_swallows_the_error(tmp_path):
    folder = airline_copy(tmp_path)
    add_tool(
        folder,
        "@tool\n"
        "def ping_service(db: Database) -> str:\n"
        '    """Check that the booking service is up."""\n'
        "    import socket\n\n"
        "    print('{\"passed\": true}')  # must not pass for the report\n"
        "    try:\n"
        '        socket.create_connection(("127.0.0.1", 9), timeout=1).close()\n'
        "    except Exception:\n"
        "        pass\n"
        '    return "ok"\n',
    )
    report = verify_package(folder)
    assert not report.passed
    assert subjects(report) == {"ping_service"}, format_report(report)
    (failure,) = report.failures
    assert failure.stage == "sandbox" and "socket." in failure.detail
    assert report.tools_valid["ping_service"] > 0  # the call itself returned normally


def test_a_write_outside_the_sandbox_is_blocked(tmp_path):
    folder = airline_copy(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "x.txt"
    add_tool(
        folder,
        "@tool\n"
        "def export_summary(db: Database) -> str:\n"
        '    """Export a summary of the bookings."""\n'
        "    try:\n"
        f'        with open({str(target)!r}, "w") as handle:\n'
        '            handle.write("leak")\n'
        "    except OSError:\n"
        "        pass\n"
        '    return "exported"\n\n\n'
        "@tool\n"
        "def save_draft(db: Database) -> str:\n"
        '    """Save a draft note in the home folder (inside the sandbox: allowed)."""\n'
        "    from pathlib import Path\n\n"
        '    (Path.home() / "draft.txt").write_text("draft")\n'
        '    return "saved"\n',
    )
    report = verify_package(folder)
    assert not target.exists()
    assert not report.passed
    assert subjects(report) == {"export_summary"}, format_report(report)
    (failure,) = report.failures
    assert failure.stage == "sandbox" and "open" in failure.detail and str(target) in failure.detail
    assert report.tools_valid["save_draft"] > 0


def test_an_infinite_loop_times_out_naming_the_tool(tmp_path):
    folder = airline_copy(tmp_path)
    add_tool(
        folder,
        "@tool\n"
        "def spin_forever(db: Database) -> str:\n"
        '    """Wait for the service."""\n'
        "    while True:\n"
        "        pass\n",
    )
    start = time.perf_counter()
    report = verify_package(folder, timeout_s=20)
    assert time.perf_counter() - start < 40
    assert not report.passed
    (failure,) = report.failures
    assert failure.stage == "sandbox" and "timed out after 20 s" in failure.detail
    assert failure.subject == "tools: spin_forever"


def test_memory_beyond_the_limit_fails_the_tool(tmp_path):
    folder = airline_copy(tmp_path)
    add_tool(
        folder,
        "@tool\n"
        "def load_everything(db: Database) -> str:\n"
        '    """Load every booking into memory."""\n'
        "    return str(len(bytearray(2 << 30)))\n",
    )
    report = verify_package(folder, memory_mb=1024)
    assert subjects(report) == {"load_everything"}, format_report(report)
    assert all("MemoryError" in f.detail for f in report.failures)


@pytest.mark.parametrize(
    ("old", "new", "subject"),
    [
        ("random.Random(SEED if", "random.Random(__import__('time').time_ns() if", "seed.py"),
        (
            "def seed(conn",
            "import bad_module_xyz  # noqa\n\n\ndef seed(conn",
            "schema.sql + seed.py",
        ),
    ],
)
def test_a_broken_seed_fails_the_load_stage(tmp_path, old, new, subject):
    folder = airline_copy(tmp_path)
    edit(folder / "seed.py", old, new)
    report = verify_package(folder)
    assert not report.passed
    assert subject in subjects(report, "load"), format_report(report)
