"""Task synthesis follows the spec's rules: a multi-write task never asks for a second write that
its first write makes a policy rule forbid; a boolean column's new value is true/false; a row
that names the actor directly (a review assignment's reviewer) is that actor's to ask about.

Each test compiles a small spec (written inline) into a package without tasks and synthesizes
from it directly, so that only the synthesizer is under test."""

from __future__ import annotations

from pathlib import Path

import yaml

from envfactory_gym.generators.emit import package_files
from envfactory_gym.generators.spec import Spec
from envfactory_gym.generators.synth import SynthesisConfig, Synthesizer
from envfactory_gym.package import EnvPackage
from envfactory_gym.replay import replay
from envfactory_gym.tasks import Task


def _synthesizer(tmp_path: Path, text: str, kind: str) -> Synthesizer:
    """A synthesizer for the spec in `text`, over its compiled package, making only `kind`."""
    spec = Spec.model_validate(yaml.safe_load(text))
    folder = tmp_path / spec.name
    folder.mkdir()
    for name, body in package_files(spec).items():
        (folder / name).write_text(body, encoding="utf-8")
    (folder / "tasks.jsonl").write_text("", encoding="utf-8")
    config = SynthesisConfig(mix={kind: 1.0})
    return Synthesizer(spec, EnvPackage(folder), seed=0, config=config)


def _person(synth: Synthesizer, person_id: str) -> dict:
    row = synth.db.row("SELECT * FROM people WHERE person_id = ?", (person_id,))
    assert row is not None, person_id
    return row


# ----- 1. an earlier write that makes a rule forbid a later one ---------------------------------

TIMESHEETS = """
name: lockbook
id: Lockbook
domain: office
description: Lockbook, a small time tracking tool.
now: "2025-11-13T17:00:00"
seed: 5
actor: {entity: users, knows: [email, name]}
entities:
  - name: users
    singular: user
    key: user_id
    id_prefix: USR
    count: 30
    describe: "{name}"
    columns:
      - {name: user_id}
      - {name: name, seed: {kind: full_name}}
      - {name: email, unique: true, seed: {kind: email, domain: lockbook.test}}
  - name: timesheets
    singular: timesheet
    key: timesheet_id
    id_prefix: TSH
    per: {column: user_id, min: 1, max: 1}
    describe: "my timesheet for the week of {week_start|date}"
    columns:
      - {name: timesheet_id}
      - {name: user_id, references: users}
      - {name: week_start, type: date, seed: {kind: choice, values: ["2025-11-10"]}}
      - {name: status, enum: [open, submitted], seed: {kind: choice, values: [open]}}
  - name: time_entries
    singular: time entry
    key: entry_id
    id_prefix: TEN
    per: {column: timesheet_id, min: 2, max: 3}
    describe: "my {task} entry"
    unique_together: [[timesheet_id, task]]
    columns:
      - {name: entry_id}
      - {name: timesheet_id, references: timesheets}
      - name: task
        enum: [design, development, meetings, research]
        seed: {kind: choice, values: [design, development, meetings, research]}
      - {name: hours, type: real, seed: {kind: choice, values: [1.5, 2.5, 4.0]}}
tools:
  - {name: find_user, pattern: get, entity: users, by: email, description: Look up a user.}
  - name: list_timesheets
    pattern: list
    entity: timesheets
    filters: [{column: user_id, required: true}]
    description: List a user's weekly timesheets.
  - name: list_time_entries
    pattern: list
    entity: time_entries
    filters: [{column: timesheet_id, required: true}]
    description: List the entries of a timesheet.
  - name: submit_timesheet
    pattern: transition
    entity: timesheets
    from_states: [open]
    to_state: submitted
    description: Submit a timesheet for approval (it is locked from then on).
  - {name: delete_time_entry, pattern: delete, entity: time_entries, description: Delete one.}
policy:
  - id: locked_weeks
    text: Submitted timesheets are locked. Do not delete their entries.
    tool: delete_time_entry
    forbids: >-
      (SELECT t.status FROM timesheets t WHERE t.timesheet_id = time_entries.timesheet_id)
      = 'submitted'
intents:
  - id: submit_week
    kind: write
    tool: submit_timesheet
    where: "status = 'open'"
    templates: ["Please submit {describe}."]
    held_out: ["Send {describe} in for approval, please."]
  - id: drop_entry
    kind: write
    tool: delete_time_entry
    templates: ["Please delete {describe} from {timesheet.describe}."]
    held_out: ["Take {describe} off {timesheet.describe}."]
"""

LOCKED = (
    "SELECT 1 FROM time_entries WHERE entry_id = ? AND (SELECT t.status FROM timesheets t "
    "WHERE t.timesheet_id = time_entries.timesheet_id) = 'submitted'"
)


def test_multi_write_never_asks_for_a_write_its_first_write_forbids(tmp_path: Path) -> None:
    synth = _synthesizer(tmp_path, TIMESHEETS, "multi_write")
    tasks = synth.synthesize(40)
    assert len(tasks) >= 5, synth.rejected
    assert all(t.kind == "multi_write" for t in tasks)
    checked = 0
    db = synth.package.new_database()
    try:
        for task in tasks:
            for index, call in enumerate(task.calls):
                if call.name != "delete_time_entry":
                    continue
                replay(synth.package, task.calls[:index], db)  # the state the agent deletes in
                entry = call.arguments["entry_id"]
                assert db.value(LOCKED, (entry,)) is None, (
                    f"{task.id} deletes {entry} after its week was submitted: {task.instruction}"
                )
                checked += 1
    finally:
        db.close()
    assert checked > 0
    # Every user has one open week, so its submission and the deletion of one of its entries
    # pair up in both orders: delete-then-submit is kept, submit-then-delete is dropped.
    names = [[c.name for c in t.calls] for t in tasks]
    assert any(n.index("delete_time_entry") < n.index("submit_timesheet") for n in names)
    assert synth.rejected.get("an earlier write makes a rule forbid a later one", 0) > 0


# ----- 2. a boolean column's new value is true/false ----------------------------------------

MEMBERSHIPS = """
name: renewals
id: Renewals
domain: retail
description: Renewals, a small membership service.
now: "2025-06-01T12:00:00"
seed: 11
actor: {entity: members, knows: [email, name]}
entities:
  - name: members
    singular: member
    key: member_id
    id_prefix: MBR
    count: 30
    describe: "{name}"
    columns:
      - {name: member_id}
      - {name: name, seed: {kind: full_name}}
      - {name: email, unique: true, seed: {kind: email, domain: renewals.test}}
  - name: plans
    singular: plan
    key: plan_id
    id_prefix: PLN
    per: {column: member_id, min: 1, max: 2}
    describe: "my {tier} plan"
    unique_together: [[member_id, tier]]
    columns:
      - {name: plan_id}
      - {name: member_id, references: members}
      - name: tier
        enum: [basic, plus, family]
        seed: {kind: choice, values: [basic, plus, family]}
      - {name: auto_renew, type: boolean, default: 0, seed: {kind: bool, p: 0.5}}
tools:
  - {name: find_member, pattern: get, entity: members, by: email, description: Look one up.}
  - name: list_plans
    pattern: list
    entity: plans
    filters: [{column: member_id, required: true}]
    description: List a member's plans.
  - name: set_auto_renew
    pattern: update
    entity: plans
    fields: [auto_renew]
    description: Turn a plan's automatic renewal on or off.
intents:
  - id: renewal_off
    kind: write
    tool: set_auto_renew
    where: "auto_renew = 1"
    change: {auto_renew: {kind: choice, values: [0]}}
    templates: ["Please turn off automatic renewal for {describe}."]
    held_out: ["I don't want {describe} to renew by itself any more."]
  - id: renewal_on
    kind: write
    tool: set_auto_renew
    where: "auto_renew = 0"
    change: {auto_renew: {kind: choice, values: [1]}}
    templates: ["Please make {describe} renew automatically."]
    held_out: ["Could {describe} just renew itself from now on?"]
"""


def test_boolean_change_is_passed_as_true_or_false_and_replays(tmp_path: Path) -> None:
    synth = _synthesizer(tmp_path, MEMBERSHIPS, "write")
    tasks = synth.synthesize(12)
    assert len(tasks) >= 8, synth.rejected  # 0/1 for a bool argument: the goal call fails
    seen = set()
    for task in tasks:
        goal = task.calls[-1]
        assert goal.name == "set_auto_renew"
        flag = goal.arguments["auto_renew"]
        assert type(flag) is bool, f"{task.id}: auto_renew={flag!r}, not true/false"
        assert flag is ("renewal_on" in task.id), task.id
        seen.add(flag)
        # The JSON a task is stored as says false/true, and it reads back and replays the same.
        assert f'"auto_renew":{str(flag).lower()}' in task.model_dump_json()
        again = Task.model_validate_json(task.model_dump_json())
        result = replay(synth.package, again.calls)
        (changed,) = result.diff["plans"]["changed"]
        assert changed["fields"]["auto_renew"] == [int(not flag), int(flag)]
        assert result.diff == task.expected_diff
    assert seen == {False, True}


# ----- 3. a row that names the actor directly is that actor's -------------------------------

REVIEWS = """
name: reviewdesk
id: Reviewdesk
domain: academia
description: Reviewdesk, a small conference review system.
now: "2025-04-01T09:00:00"
seed: 3
actor: {entity: people, knows: [email, name]}
entities:
  - name: people
    singular: person
    key: person_id
    id_prefix: PER
    count: 30
    describe: "{name}"
    columns:
      - {name: person_id}
      - {name: name, seed: {kind: full_name}}
      - {name: email, unique: true, seed: {kind: email, domain: reviewdesk.test}}
  - name: submissions
    singular: submission
    key: submission_id
    id_prefix: SUB
    count: 30
    describe: "\\"{title}\\""
    columns:
      - {name: submission_id}
      - {name: author_id, references: people}
      - name: title
        unique: true
        seed:
          kind: template
          template: "{adjective} {topic}"
          lists:
            adjective: [Robust, Scalable, Sparse, Efficient, Private, Causal, Neural, Adaptive]
            topic: [Graph Search, Query Planning, Type Inference, Log Compaction, Cache Design]
  - name: assignments
    singular: review
    key: assignment_id
    id_prefix: ASG
    per: {column: submission_id, min: 2, max: 3}
    describe: "my review of \\"{submission_title}\\""
    unique_together: [[submission_id, reviewer_id]]
    columns:
      - {name: assignment_id}
      - {name: submission_id, references: submissions}
      - {name: reviewer_id, references: people}
      - {name: submission_title, seed: {kind: copy, via: submission_id, column: title}}
      - {name: score, type: integer, nullable: true, min: 1, max: 5}
tools:
  - {name: find_person, pattern: get, entity: people, by: email, description: Look one up.}
  - name: list_my_reviews
    pattern: list
    entity: assignments
    filters: [{column: reviewer_id, required: true}]
    description: List the reviews assigned to a reviewer.
  - name: score_review
    pattern: update
    entity: assignments
    fields: [score]
    description: Record a review's score (1 to 5).
intents:
  - id: give_score
    kind: write
    tool: score_review
    where: "score IS NULL"
    change: {score: {kind: choice, values: [1, 2, 3, 4, 5]}}
    templates: ["Please record a score of {new.score} for {describe}."]
    held_out: ["I'd give {describe} a {new.score}; please enter it."]
"""


def test_a_review_belongs_to_its_reviewer_not_the_papers_author(tmp_path: Path) -> None:
    synth = _synthesizer(tmp_path, REVIEWS, "write")
    tasks = synth.synthesize(10)
    assert len(tasks) >= 8, synth.rejected
    for task in tasks:
        goal = task.calls[-1]
        assert goal.name == "score_review"
        review = synth.db.row(
            "SELECT a.reviewer_id, s.author_id FROM assignments a JOIN submissions s "
            "ON s.submission_id = a.submission_id WHERE a.assignment_id = ?",
            (goal.arguments["assignment_id"],),
        )
        assert review is not None
        reviewer = _person(synth, review["reviewer_id"])
        author = _person(synth, review["author_id"])
        # The person talking is the reviewer: the greeting names them, their facts are theirs,
        # and the agent looks up that same person.
        assert reviewer["name"] in task.instruction, task.instruction
        assert reviewer["email"] in task.instruction, task.instruction
        if author["name"] != reviewer["name"]:
            assert author["name"] not in task.instruction, task.instruction
        assert task.user_facts == {"email": reviewer["email"], "name": reviewer["name"]}
        lookup = next(c for c in task.calls if c.name == "find_person")
        assert lookup.arguments == {"email": reviewer["email"]}


def test_refusal_candidates_take_every_rule_before_any_rule_twice() -> None:
    """A rule that few rows break still gets its refusal task: candidates come one per rule in
    rounds, so with 12 refusals in a 60-task set most rules are tested (library: 10 of 11)."""
    from pathlib import Path

    from envfactory_gym.generators.spec import load_spec
    from envfactory_gym.generators.synth import Synthesizer
    from envfactory_gym.package import EnvPackage

    folder = Path(__file__).resolve().parent.parent / "envs" / "library"
    synthesizer = Synthesizer(load_spec(folder / "spec.yaml"), EnvPackage(folder), seed=0)
    rules = [drafts[0].rule.id for drafts, _ in synthesizer._candidates("refusal")]
    breakable = len(set(rules))
    assert breakable >= 8
    assert len(set(rules[:breakable])) == breakable  # the first round names every rule once
