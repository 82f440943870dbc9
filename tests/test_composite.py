"""Composite envs: several packages' tools at once, each over its own database (Workspace-v0)."""

from __future__ import annotations

import pickle
from pathlib import Path

import gymnasium as gym
import pytest

import envfactory_gym
from envfactory_gym.actions import format_tool_call
from envfactory_gym.checker import check_package, oracle_answer
from envfactory_gym.composite import CompositeDatabase
from envfactory_gym.package import load_package

ENVS = Path(__file__).resolve().parent.parent / "envs"


def oracle_actions(task) -> list[str]:
    return [
        *(format_tool_call(c.name, c.arguments) for c in task.calls),
        oracle_answer(task.outputs),
    ]


def play(env, task, actions: list[str]) -> dict:
    env.reset(options={"task_id": task.id})
    info: dict = {}
    for action in actions:
        *_, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return info


@pytest.fixture(scope="module")
def workspace():
    return load_package("workspace")


def test_workspace_offers_every_member_tool_labelled_with_its_service(workspace) -> None:
    members = [load_package(name) for name in ("calendar", "crm", "mail")]
    assert len(workspace.tools) == sum(len(m.tools) for m in members)
    assert workspace.tools["create_event"].description.startswith("Calendar: ")
    assert workspace.tools["log_activity"].description.startswith("Crm: ")
    assert "## Calendar" in workspace.policy and "## Mail" in workspace.policy


def test_a_tool_name_two_members_share_is_prefixed_with_the_member(tmp_path: Path) -> None:
    folder = tmp_path / "sales_and_bank"
    folder.mkdir()
    (folder / "env.toml").write_text(
        'id = "SalesAndBank"\ndomain = "finance"\ndescription = "CRM and bank."\n'
        'members = ["crm", "bank"]\n'
    )
    (folder / "policy.md").write_text("# Policy\n")
    (folder / "tasks.jsonl").write_text("")
    package = load_package(str(folder))
    assert {"crm_list_accounts", "bank_list_accounts", "find_rep", "find_customer"} <= set(
        package.tools
    )
    assert "list_accounts" not in package.tools
    db = package.new_database()
    rep = package.tools["find_rep"](db, email=db.members["crm"].value("SELECT email FROM reps"))
    accounts = package.tools["crm_list_accounts"](db, owner_rep_id=rep["rep_id"])
    assert accounts and all(a["owner_rep_id"] == rep["rep_id"] for a in accounts)


def test_a_cross_service_episode_scores_from_every_members_database(workspace) -> None:
    task = next(t for t in workspace.tasks if t.id.startswith("workspace-meeting_with_contact"))
    assert set(task.expected_diff) == {"calendar.events", "calendar.attendees", "crm.activities"}
    env = gym.make("envfactory/Workspace-v0")
    start = env.unwrapped.state_digest()
    info = play(env, task, oracle_actions(task))
    assert info["reward_breakdown"]["total"] == 1.0
    assert set(env.unwrapped.diff()) == set(task.expected_diff)
    env.reset(options={"task_id": task.id})
    assert env.unwrapped.state_digest() == start  # reset undid the writes in every member


def test_a_write_in_another_service_voids_the_reward(workspace) -> None:
    task = next(t for t in workspace.tasks if t.id.startswith("workspace-invite_contact-"))
    person = task.user_facts["email"]
    account = (
        workspace.member_templates()["mail"]
        .execute("SELECT account_id FROM accounts WHERE email = ?", (person,))
        .fetchone()[0]
    )
    stray = format_tool_call(
        "create_draft",
        {"account_id": account, "to_address": "x@example.com", "subject": "Hi", "body": "Hi"},
    )
    actions = oracle_actions(task)
    env = gym.make("envfactory/Workspace-v0")
    info = play(env, task, [*actions[:-1], stray, actions[-1]])
    assert info["reward_breakdown"]["total"] == 0.0
    assert any("mail.drafts" in str(v) for v in info["reward_breakdown"]["violations"])


def test_a_failing_call_leaves_no_trace_in_any_member(workspace) -> None:
    db = workspace.new_database()
    assert isinstance(db, CompositeDatabase)
    with pytest.raises(RuntimeError), db.call():
        db.members["crm"].execute("UPDATE reps SET phone = 'x'")
        db.members["mail"].execute("UPDATE accounts SET plan = 'standard'")
        raise RuntimeError("the tool failed after writing in two services")
    assert db.changes() == []


def test_a_composite_env_pickles_mid_episode(workspace) -> None:
    task = next(t for t in workspace.tasks if t.kind == "multi_write")
    env = envfactory_gym.ToolUseEnv("workspace")
    env.reset(options={"task_id": task.id})
    for action in oracle_actions(task)[:-1]:
        env.step(action)
    copy = pickle.loads(pickle.dumps(env))
    assert copy.state_digest() == env.state_digest()
    assert copy.diff() == env.diff() == task.expected_diff


def test_one_person_has_the_same_name_and_address_in_every_service(workspace) -> None:
    templates = workspace.member_templates()
    reps = templates["crm"].execute("SELECT name, email FROM reps").fetchall()
    for name, email in reps:
        for member, table in (("calendar", "users"), ("mail", "accounts")):
            found = (
                templates[member]
                .execute(f"SELECT name FROM {table} WHERE email = ?", (email,))
                .fetchone()
            )
            assert found == (name,), f"{email} is not {name} in {member}"
    assert all(t.execute("SELECT count(*) FROM _changes").fetchone()[0] == 0
               for t in templates.values())  # fmt: skip


def test_workspace_tasks_span_services_and_pass_the_checker(workspace) -> None:
    assert len(workspace.tasks) >= 300
    for task in workspace.tasks:
        members = {workspace.tools[c.name].member for c in task.calls}
        assert len(members) >= 2, f"{task.id} uses only {members}"
    report = check_package(workspace)
    assert report.ok, report.problems[:3]


def test_a_composite_has_no_single_template(workspace) -> None:
    with pytest.raises(TypeError, match="new_database"):
        workspace.template  # noqa: B018
