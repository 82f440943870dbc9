"""The `envfactory` command: list, eval (with its JSON report), bench, clear errors."""

import json
import subprocess
import sys

import pytest

from envfactory_gym.cli import main
from envfactory_gym.package import load_package


def test_list_groups_by_domain_with_tools_writes_and_tasks(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(row for row in lines if "Airline-v0" in row)
    assert line.split()[:5] == ["travel", "envfactory/Airline-v0", "14", "6", "79"]
    domains = [row.split()[0] for row in lines[1:-1]]
    assert domains == sorted(domains)
    assert main(["list", "--domain", "finance", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed and {row["domain"] for row in listed} == {"finance"}
    assert main(["list", "--domain", "astrology"]) == 2


def test_eval_oracle_writes_full_report(tmp_path):
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, "-m", "envfactory_gym.cli", "eval", "--env", "envfactory/Airline-v0",
         "--agent", "oracle", "--split", "all", "--json", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "it/s" in done.stderr  # the progress bar goes to stderr
    report = json.loads(out.read_text())
    assert {"env", "agent", "tasks", "success_rate", "mean_reward", "per_task"} <= report.keys()
    assert report["tasks"] == 79 and report["success_rate"] == 1.0 and report["mean_reward"] == 1.0
    assert {"trace", "state", "outputs", "penalty"} <= report["per_task"][0]["breakdown"].keys()


def test_eval_random_scores_near_zero(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["eval", "--agent", "random", "--split", "all", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["mean_reward"] < 0.05


def test_eval_over_a_pattern_plays_every_matching_env(tmp_path, capsys):
    import fnmatch

    import envfactory_gym

    pattern = "envfactory/[CW]*"
    out = tmp_path / "suite.json"
    assert main(["eval", "--env", pattern, "--split", "test", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    expected = fnmatch.filter(envfactory_gym.ENV_IDS, pattern)
    assert [r["env"] for r in report["reports"]] == sorted(expected)
    assert report["envs"] == len(expected) and report["success_rate"] == 1.0
    assert report["tasks"] == sum(r["tasks"] for r in report["reports"])
    assert f"{len(expected)} envs, oracle" in capsys.readouterr().out
    assert main(["eval", "--env", "envfactory/Zzz*"]) == 2
    assert "no registered env matches" in capsys.readouterr().err


def test_bench_json_reports_every_metric(capsys):
    assert main(["bench", "--repeats", "20", "--episodes", "5", "--rounds", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("read_step_us", "write_step_us", "reset_us", "reward_us",
                "episodes_per_s_10_calls", "memory_per_instance_bytes", "db_bytes"):  # fmt: skip
        assert result[key] > 0
    # every tool is timed, the ones no task calls too (they borrow covering arguments)
    assert {"search_onestop_flight", "list_all_airports", "book_reservation"} <= set(
        result["tools"]
    )
    assert all(t["step_us"] > 0 and t["tool_alone_us"] > 0 for t in result["tools"].values())
    assert all(t["sql_alone_us"] > 0 for t in result["tools"].values())
    assert result["tools"]["get_user_details"]["statements"] == 1


@pytest.mark.parametrize("name", ["cancel_reservation", "book_reservation"])
def test_the_sql_floor_replays_exactly_the_statements_a_tool_runs(name):
    from envfactory_gym.bench import tool_statements, workload
    from envfactory_gym.database import Database

    package = load_package("airline")
    db = Database(package.template)
    tool = package.tools[name]
    arguments = tool.validate(workload(package)[2][name].arguments)
    statements = tool_statements(db, tool, arguments)
    assert db.changes() == []  # recording left the database as it was
    texts = [sql for _, sql, _ in statements]
    assert not any(t.lstrip().startswith(("SAVEPOINT", "RELEASE")) for t in texts)
    with db.call():
        for method, sql, params in statements:
            getattr(db.conn, method)(sql, params)
    replayed = db.diff()
    db.reset()
    with db.call():
        tool(db, **arguments)
    assert replayed == db.diff() != {}  # the statements alone make the tool's changes
    if name == "book_reservation":  # its passengers and flights go in with executemany
        assert "executemany" in {method for method, _, _ in statements}


def test_bench_table_and_chart_over_scales_and_vector_mode(capsys, tmp_path):
    args = ["bench", "--scale", "1", "2", "--repeats", "5", "--episodes", "4", "--rounds", "1"]
    chart = tmp_path / "bench.png"
    assert main([*args, "--no-memory", "--png", str(chart)]) == 0
    table = capsys.readouterr().out
    assert "1x (21,847 rows)" in table and "2x (" in table and "step search_direct_flight" in table
    assert f"chart: {chart}" in table and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["bench", "--vector", "sync", "--png", str(chart)]) == 2  # a chart of scales only
    assert "--png draws the scale table" in capsys.readouterr().err
    assert main(["bench", "--vector", "sync", "--num-envs", "2", "--episodes", "4", "--json"]) == 0
    vector = json.loads(capsys.readouterr().out)
    assert vector["mode"] == "sync" and vector["speedup"] > 0
    airline = load_package("airline")  # measuring at 2x left the shipped package at 1x
    assert airline.template.execute("SELECT count(*) FROM users").fetchone()[0] == 500


def test_unknown_env_and_agent_are_clear_errors(capsys):
    assert main(["eval", "--env", "envfactory/Nope-v0"]) == 2
    assert "unknown env" in capsys.readouterr().err
    assert main(["eval", "--agent", "genius"]) == 2
    assert "unknown agent 'genius'" in capsys.readouterr().err


def test_verify_all_samples_the_suite_in_parallel_and_reports(tmp_path):
    report = tmp_path / "verify.json"
    assert main(["verify", "--all", "--sample", "2", "--seed", "1", "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["packages"] == data["passed"] >= 2 and not data["failed"]  # + their composites
    assert all(r["passed"] for r in data["reports"])
    assert main(["verify"]) == 2  # nothing named: a clear error


def test_bench_suite_makes_one_instance_of_every_env_in_a_fresh_process():
    import envfactory_gym
    from envfactory_gym.bench import bench_suite

    result = bench_suite(repeats=1)
    assert result["envs"] == len(envfactory_gym.ENV_IDS)
    assert result["import_s"] > 0 and result["make_and_reset_all_s"] > 0
    assert result["rss_with_every_env_mib"] > result["rss_after_import_mib"] > 0
