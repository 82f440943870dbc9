"""Task synthesis over the tool graph: pick a goal (an intent and a target row), find the calls
that get from what the user knows to every argument the goal needs (walking the graph back from
the goal tool), execute them for ground truth, and write the instruction from the intent's
templates. Every task passes the grounding checker (`grounding.check_task`) or is dropped.

Kinds: read (answer from a row), write (one change), multi_write (two changes for one user),
refusal (a change a policy rule forbids: the ground truth is the reads that establish it).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from envfactory_gym.database import Database
from envfactory_gym.distractors import find_distractors, leaves
from envfactory_gym.generators.graph import build_graph, producers, value_type
from envfactory_gym.generators.grounding import GroundingError, check_task, key_values, spoken
from envfactory_gym.generators.seeding import make_value
from envfactory_gym.generators.spec import (
    PLACEHOLDER,
    Entity,
    Intent,
    PolicyRule,
    Spec,
    ToolSpec,
    create_anchor,
)
from envfactory_gym.package import EnvPackage
from envfactory_gym.replay import replay
from envfactory_gym.reward import number_value
from envfactory_gym.tasks import Task, ToolCall

REFUSAL_LOOKAHEAD = 400
"""Drafts read ahead per refusal intent, so that rules few rows break are found early."""
KIND_SHARES = {"read": 0.35, "write": 0.3, "multi_write": 0.15, "refusal": 0.2}


class SynthesisConfig(BaseModel):
    """The knobs of task synthesis."""

    model_config = ConfigDict(extra="forbid")

    mix: dict[Literal["read", "write", "multi_write", "refusal"], float] = Field(
        default_factory=lambda: dict(KIND_SHARES),
        description="Share of each task kind (normalized; a kind the spec cannot make is "
        "left out, e.g. refusal without machine-checkable rules).",
    )
    max_calls: int = Field(8, ge=1, description="Longest ground truth kept (calls per task).")
    max_depth: int = Field(
        3, ge=0, description="How many producer steps the graph walk may take back from a goal."
    )
    test_every: int = Field(
        4, ge=2, description="Every n-th task of a kind goes to the test split."
    )

    @classmethod
    def parse_mix(cls, text: str) -> dict[str, float]:
        """'read=0.5,write=0.5' -> {'read': 0.5, 'write': 0.5} (for the command line)."""
        try:
            pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
            return {kind.strip(): float(share) for kind, share in pairs}
        except ValueError:
            raise ValueError(
                f"--mix {text!r}: expected kind=share pairs, e.g. read=0.5,write=0.5"
            ) from None


PERSON_NAMES = ("name", "full_name", "first_name", "display_name")
GREETINGS = (
    "Hi, this is {name} ({known}).",
    "Hello! My name is {name}; my account is under {known}.",
    "Hi there, {name} here, {known}.",
    "Good morning. I'm {name}, {known}.",
)


@dataclass
class Plan:
    """Calls that end with a row's key in some output, the facts the user needed, and the rows
    the agent had to pick out of a list (so the instruction must describe them)."""

    calls: list[ToolCall] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    described: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def then(self, other: Plan) -> Plan:
        calls = list(self.calls)
        calls += [c for c in other.calls if c not in calls]
        return Plan(calls, {**self.facts, **other.facts}, [*self.described, *other.described])


@dataclass
class Draft:
    """A task before its instruction is final: the goal's target rows and ground truth."""

    intent: Intent
    kind: str
    target: dict[str, Any]
    actor: dict[str, Any]
    plan: Plan
    new: dict[str, Any]
    context: dict[str, tuple[Entity, dict[str, Any]]]
    rule: PolicyRule | None = None
    goal: ToolCall | None = None
    """A refusal's forbidden call: the tool itself must allow it (only the policy forbids)."""


class Synthesizer:
    """Synthesizes tasks for one spec over its compiled package."""

    def __init__(
        self,
        spec: Spec,
        package: EnvPackage,
        seed: int = 0,
        rewriter: Callable[[Task, list[Any], list[str]], Task | None] | None = None,
        config: SynthesisConfig | None = None,
    ) -> None:
        """`rewriter` (optional, e.g. `generators.llm.make_rewriter`) may reword each finished
        task's instruction; it returns the task with a checked new instruction, or None to
        keep the template's."""
        self.spec = spec
        self.package = package
        self.graph: nx.DiGraph = build_graph(spec)
        self.db = Database(package.template)
        self.seed = seed
        self.actor_entity = spec.entity(spec.actor.entity)
        self.rejected: dict[str, int] = {}
        self.keys = key_values(package)
        self.rewriter = rewriter
        self.config = config or SynthesisConfig()
        self._per_intent: dict[str, int] = {}
        self._offsets: dict[str, int] = {}

    # ----- reading the start state ---------------------------------------------------------
    def row(self, entity: Entity, key: Any) -> dict[str, Any] | None:
        return self.db.row(f"SELECT * FROM {entity.name} WHERE {entity.key} = ?", (key,))

    def rows(self, entity: Entity, where: str | None, rng: random.Random) -> list[dict]:
        sql = f"SELECT * FROM {entity.name}"
        params = {"now": self.spec.now, "today": self.spec.now[:10]}
        found = self.db.rows(sql + (f" WHERE {where}" if where else ""), params)
        rng.shuffle(found)
        return found

    def holds(
        self, entity: Entity, row: dict, condition: str, arguments: dict, db: Any = None
    ) -> bool:
        """Whether `condition` holds for `row` and a call with `arguments` (an argument the call
        leaves out is NULL, as in the tool), on the start state or on `db`."""
        params = {
            **dict.fromkeys(re.findall(r"(?<!:):(\w+)", condition)),
            **arguments,
            "now": self.spec.now,
            "today": self.spec.now[:10],
            "_key": row[entity.key],
        }
        sql = f"SELECT 1 FROM {entity.name} WHERE {entity.key} = :_key AND ({condition})"
        return (db or self.db).value(sql, params) is not None

    def actor_of(self, entity: Entity, row: dict, depth: int = 0) -> dict | None:
        """The actor row a row belongs to, following foreign keys (a direct reference to the
        actor first: a review assignment belongs to its reviewer, not to the paper's author)."""
        if entity.name == self.actor_entity.name:
            return row
        if depth > self.config.max_depth:
            return None
        direct_first = sorted(entity.columns, key=lambda c: c.references != self.actor_entity.name)
        for column in direct_first:
            if column.references and row.get(column.name) is not None:
                parent = self.spec.entity(column.references)
                parent_row = self.row(parent, row[column.name])
                if parent_row is not None:
                    found = self.actor_of(parent, parent_row, depth + 1)
                    if found is not None:
                        return found
        return None

    def _any_actor(self, rng: random.Random) -> dict:
        """A customer asking about a row no one owns (a product in the catalog)."""
        count = self.db.value(f"SELECT count(*) FROM {self.actor_entity.name}")
        return self.db.rows(
            f"SELECT * FROM {self.actor_entity.name} ORDER BY {self.actor_entity.key} "
            "LIMIT 1 OFFSET ?",
            (rng.randrange(count),),
        )[0]

    # ----- finding a row from what the user knows -------------------------------------------
    def locate(self, entity: Entity, row: dict, depth: int = 0) -> Plan | None:
        """The calls that produce `row`'s key from facts the user knows, shortest first."""
        key = row[entity.key]
        if entity.user_knows_key:
            return Plan(facts={f"{entity.label} number": str(key)})
        if depth > self.config.max_depth:
            return None
        for name in producers(self.graph, value_type(self.spec, entity, entity.key)):
            tool = self.spec.tool(name)
            if tool.writes or tool.entity != entity.name:
                continue
            plan = self._by_get(tool, entity, row) if tool.pattern == "get" else None
            if tool.pattern == "list":
                plan = self._by_list(tool, entity, row, depth)
            if plan is not None:
                return plan
        return None

    def _by_get(self, tool: ToolSpec, entity: Entity, row: dict) -> Plan | None:
        by = tool.by or entity.key
        column = entity.column(by)
        if by == entity.key or column.references or not column.known_to_user:
            return None
        return Plan([ToolCall(name=tool.name, arguments={by: row[by]})], {by: str(row[by])})

    def _by_list(self, tool: ToolSpec, entity: Entity, row: dict, depth: int) -> Plan | None:
        options = []
        for filt in tool.filters:
            value = row.get(filt.column)
            if value is None:
                continue
            column = entity.column(filt.column)
            if filt.op == "eq" and column.references:
                parent = self.spec.entity(column.references)
                parent_row = self.row(parent, value)
                sub = None if parent_row is None else self.locate(parent, parent_row, depth + 1)
                if sub is not None:
                    options.append((filt, value, sub))
            elif filt.op == "eq" and _said_plainly(entity, filt.column):
                options.append((filt, value, Plan()))
            elif filt.op == "contains" and _said_plainly(entity, filt.column):
                options += [(filt, words, Plan()) for words in _search_words(str(value))]
        required = {f.argument for f in tool.filters if f.required}
        for size in (1, 2):
            for chosen in _subsets(options, size):
                names = {f.argument for f, _, _ in chosen}
                if not required <= names:
                    continue
                plan = self._try_list(tool, entity, row, chosen)
                if plan is not None:
                    return plan
        return None

    def _try_list(self, tool: ToolSpec, entity: Entity, row: dict, chosen: list) -> Plan | None:
        arguments = {f.argument: value for f, value, _ in chosen}
        call = ToolCall(name=tool.name, arguments=arguments)
        try:
            result = self.package.tools[tool.name](
                self.db, **self.package.tools[tool.name].validate(arguments)
            )
        except Exception:  # noqa: BLE001 - a call that fails is not a way to find the row
            return None
        keys = [r[entity.key] for r in result]
        if row[entity.key] not in keys:
            return None
        plan = Plan()
        for _, _, sub in chosen:
            plan = plan.then(sub)
        plan = plan.then(Plan(calls=[call]))
        if len(result) > 1:
            if not entity.describe:
                return None
            mine = describe(self.spec, entity, row)
            if sum(describe(self.spec, entity, r) == mine for r in result) != 1:
                return None
            plan.described.append((entity.name, row))
        return plan

    # ----- drafting tasks ------------------------------------------------------------------------
    def _later_write_forbidden(self, drafts: list[Draft], plan: Plan) -> bool:
        """Whether a policy rule forbids a later write of a multi-write task once the earlier
        ones ran (submitting a timesheet locks its entries: deleting one after is refused)."""
        db = self.package.new_database()
        try:
            for draft in drafts[1:]:
                tool = self.spec.tool(draft.intent.tool)
                rules = [r for r in self.spec.policy if r.tool == tool.name and r.forbids]
                if not rules or not draft.plan.calls:
                    continue
                goal = draft.plan.calls[-1]
                before = plan.calls[: len(plan.calls) - plan.calls[::-1].index(goal) - 1]
                replay(self.package, before, db)
                entity = self._target_entity(tool)[0]
                if any(self.holds(entity, draft.target, r.forbids or "", goal.arguments, db)
                       for r in rules):  # fmt: skip
                    return True
        finally:
            db.close()
        return False

    def drafts(self, intent: Intent, kind: str, rng: random.Random) -> Iterator[Draft]:
        tool = self.spec.tool(intent.tool)
        entity, fk = self._target_entity(tool)
        rules = [r for r in self.spec.policy if r.tool == tool.name and r.forbids]
        columns = self.spec.entity(tool.entity).columns if tool.entity else []
        booleans = {c.name for c in columns if c.type == "boolean"}
        for target in self.rows(entity, intent.where, rng):
            new: dict[str, Any] = {}
            for arg, gen in intent.change.items():  # in order: `after` may follow a new start
                new[arg] = make_value(gen, rng, new, f"intent {intent.id}")
                if arg in booleans and isinstance(new[arg], int):
                    new[arg] = bool(new[arg])  # a flag the tool takes as true/false, not 0/1
            actor = self.actor_of(entity, target) or self._any_actor(rng)
            others = self._other_rows(tool, entity, target, actor, set(new), fk, rng)
            if others is None:
                continue
            arguments = self._goal_arguments(tool, entity, target, new, fk, others)
            if arguments is None:
                continue
            broken = [r for r in rules if self.holds(entity, target, r.forbids or "", arguments)]
            if kind == "refusal" and len(broken) != 1:
                continue
            if kind != "refusal" and broken:
                continue
            plan = self._plan(tool, entity, target, arguments, kind)
            for other_entity, other_row in others.values():
                located = None if plan is None else self.locate(other_entity, other_row)
                plan = None if located is None or plan is None else located.then(plan)
            if plan is None:
                continue
            context = self._context(entity, target)
            if tool.pattern == "transfer":
                context |= {"from": (entity, target), "to": next(iter(others.values()))}
            else:
                context |= {_label(e): (e, row) for e, row in others.values()}
            rule = broken[0] if broken else None
            goal = ToolCall(name=tool.name, arguments=arguments) if rule else None
            yield Draft(intent, kind, target, actor, plan, new, context, rule, goal)

    def _target_entity(self, tool: ToolSpec) -> tuple[Entity, str | None]:
        """The entity whose rows a goal is about, and for a create tool its anchor argument."""
        if tool.pattern == "transfer":
            assert tool.transfer is not None
            return self.spec.entity(tool.transfer.entity), None
        entity = self.spec.entity(tool.entity or "")
        if tool.pattern == "create":
            anchor = create_anchor(entity, tool)
            if anchor is None:
                return self.actor_entity, None
            return self.spec.entity(entity.column(anchor).references or ""), anchor
        return entity, None

    def _goal_arguments(
        self,
        tool: ToolSpec,
        entity: Entity,
        target: dict,
        new: dict,
        fk: str | None,
        others: dict[str, tuple[Entity, dict]],
    ) -> dict | None:
        """The goal call's arguments: keys of the target and the other rows, new values."""
        keys = {name: row[e.key] for name, (e, row) in others.items()}
        if tool.pattern == "transfer":
            move = tool.transfer
            assert move is not None
            if move.amount_arg not in new:
                return None  # the intent must say how much
            return {move.from_arg: target[entity.key], **keys, **new}
        if tool.pattern == "get":
            by = tool.by or entity.key
            return {by: target[by]}
        if tool.pattern == "list":
            return {}  # the list call that finds the target is the goal (see `_plan`)
        if tool.pattern in ("update", "transition", "delete"):
            arguments = {entity.key: target[entity.key], **new}
            if tool.pattern == "update" and all(target.get(k) == v for k, v in new.items()):
                return None  # already so: the goal would be pre-satisfied
            return arguments
        if tool.pattern == "create":
            arguments = {}
            for name in tool.fields:
                if name == fk:
                    arguments[name] = target[entity.key]
                elif name in keys:
                    arguments[name] = keys[name]
                elif name in new:
                    arguments[name] = new[name]
                else:
                    return None  # a field the intent does not say how to fill
            arguments |= {name: new[name] for name in tool.optional if name in new}
            return arguments
        return None

    def _plan(
        self,
        tool: ToolSpec,
        entity: Entity,
        target: dict,
        arguments: dict,
        kind: str,
    ) -> Plan | None:
        if tool.pattern == "list":  # a read answered from a list: the call that lists the row
            return self._by_list(tool, entity, target, 0) if kind == "read" else None
        located = self.locate(entity, target)
        if located is None:
            return None
        if tool.pattern == "get" and (tool.by or entity.key) != entity.key:
            located = Plan(facts={tool.by or "": str(target[tool.by or ""])})
        goal = ToolCall(name=tool.name, arguments=arguments)
        if kind != "refusal":
            return located.then(Plan(calls=[goal]))
        getter = next(
            (
                t
                for t in self.spec.tools
                if t.pattern == "get" and t.entity == entity.name and not t.by
            ),
            None,
        )
        if getter is not None:
            located = located.then(
                Plan(calls=[ToolCall(name=getter.name, arguments={entity.key: target[entity.key]})])
            )
        return located

    def _other_rows(
        self,
        tool: ToolSpec,
        entity: Entity,
        target: dict,
        actor: dict,
        given: set[str],
        fk: str | None,
        rng: random.Random,
    ) -> dict[str, tuple[Entity, dict]] | None:
        """Rows besides the target that the goal names, by argument: a transfer's destination
        (another row of the same owner), a create tool's other foreign keys (a row of the
        user's own, else any row: the product a review is for). None if one cannot be found."""
        wanted: dict[str, Entity] = {}
        if tool.pattern == "transfer":
            assert tool.transfer is not None
            wanted[tool.transfer.to_arg] = entity
        elif tool.pattern == "create":
            created = self.spec.entity(tool.entity or "")
            for name in tool.fields:
                target_name = created.column(name).references
                if target_name and name != fk and name not in given:
                    wanted[name] = self.spec.entity(target_name)
        found: dict[str, tuple[Entity, dict]] = {}
        for name, other in wanted.items():
            row = self._owned_row(other, actor, target, rng)
            if row is None:
                return None
            found[name] = (other, row)
        return found

    def _owned_row(
        self, entity: Entity, actor: dict, exclude: dict, rng: random.Random
    ) -> dict | None:
        """A row of `entity` the actor owns (other than `exclude`), the actor itself when the
        entity is the actor's (a bid placed by the person asking), or any row if the entity has
        no owner."""
        if entity.name == self.actor_entity.name and exclude.get(entity.key) is None:
            return actor
        column = next(
            (c.name for c in entity.columns if c.references == self.actor_entity.name), None
        )
        where, params = "1", []
        if exclude.get(entity.key) is not None:  # another row of the same table as the target
            where, params = f"{entity.key} != ?", [exclude[entity.key]]
        if column is not None:
            where += f" AND {column} = ?"
            params.append(actor[self.actor_entity.key])
        candidates = self.db.rows(
            f"SELECT * FROM {entity.name} WHERE {where} ORDER BY {entity.key}", params
        )
        return rng.choice(candidates) if candidates else None

    def _context(self, entity: Entity, target: dict) -> dict[str, tuple[Entity, dict]]:
        """Rows a template may name: the target and its parents, by label ('order')."""
        context: dict[str, tuple[Entity, dict]] = {_label(entity): (entity, target)}
        frontier = [(entity, target)]
        while frontier:
            current, row = frontier.pop()
            for column in current.columns:
                if column.references and row.get(column.name) is not None:
                    parent = self.spec.entity(column.references)
                    parent_row = self.row(parent, row[column.name])
                    if parent_row is not None and _label(parent) not in context:
                        context[_label(parent)] = (parent, parent_row)
                        frontier.append((parent, parent_row))
        return context

    # ----- from draft to task ------------------------------------------------------------------
    def greeting(self, actor: dict, rng: random.Random) -> str:
        """How the user introduces themselves: name and email for a person; for an actor that
        is not a person (the notebook of a notes app), which one the request is about."""
        knows = self.spec.actor.knows
        person = any(k in PERSON_NAMES for k in knows) and any(
            "email" in k or "phone" in k for k in knows
        )
        if person:
            name = next(k for k in knows if k in PERSON_NAMES)
            known = next(k for k in knows if k != name)
            return rng.choice(GREETINGS).format(name=actor[name], known=actor[known])
        if any(
            "email" in k or "phone" in k or k in ("username", self.actor_entity.key) for k in knows
        ):
            return (
                "Hi, my "
                + " and my ".join(f"{k.replace('_', ' ')} is {actor[k]}" for k in knows)
                + "."
            )
        values = ", ".join(f'"{actor[k]}"' for k in knows)
        return f"Hi. This is about my {self.actor_entity.label} {values}."

    def instruction(
        self, drafts: list[Draft], templates: list[str], rng: random.Random
    ) -> tuple[str, dict[str, str]]:
        actor = drafts[0].actor
        knows = self.spec.actor.knows
        facts = {name: str(actor[name]) for name in knows}
        greeting = self.greeting(actor, rng)
        requests = []
        for draft, template in zip(drafts, templates, strict=True):
            request = render(self.spec, template, draft)
            requests.append(_capitalized(request))  # "{describe} ..." starts lower
            facts.update(draft.plan.facts)
        text = " One more thing: ".join(requests)
        return f"{greeting} {text}", facts

    def to_task(
        self, drafts: list[Draft], task_id: str, split: str, rng: random.Random
    ) -> Task | None:
        intents = [d.intent for d in drafts]
        pool = [i.held_out if split == "test" else i.templates for i in intents]
        templates = [rng.choice(p) for p in pool]
        instruction, facts = self.instruction(drafts, templates, rng)
        plan = Plan()
        for draft in drafts:
            plan = plan.then(draft.plan)
        kind = drafts[0].kind if len(drafts) == 1 else "multi_write"
        if len(plan.calls) > self.config.max_calls:
            return self._reject("chain too long")
        try:
            result = replay(self.package, plan.calls)
        except Exception:  # noqa: BLE001 - a chain that errors is discarded
            return self._reject("does not replay")
        for draft in drafts:
            if draft.goal is not None:
                try:
                    replay(self.package, [*plan.calls, draft.goal])
                except Exception:  # noqa: BLE001 - the tool refuses too: not a policy refusal
                    return self._reject("the tool itself refuses")
        if kind in ("write", "multi_write") and not result.diff:
            return self._reject("pre-satisfied")
        if kind == "multi_write" and self._later_write_forbidden(drafts, plan):
            return self._reject("an earlier write makes a rule forbid a later one")
        outputs = []
        for draft in drafts:
            if draft.intent.kind == "read" and kind != "refusal":
                final = result.results[plan.calls.index(draft.plan.calls[-1])]
                if isinstance(final, list):  # a list goal: the target's row in it
                    entity = self._target_entity(self.spec.tool(draft.intent.tool))[0]
                    key = draft.target[entity.key]
                    final = next(row for row in final if row[entity.key] == key)
                outputs += [str(final[column]) for column in draft.intent.ask]
        said = " ".join([instruction, *facts.values()])
        distractors = find_distractors(outputs, result.results, self.package.template, said)
        if outputs and not _among(distractors, result.results):
            return self._reject("answer not discriminated")
        task = Task(
            id=task_id,
            split=split,
            kind=kind,
            instruction=instruction,
            user_facts=facts,
            calls=plan.calls,
            outputs=outputs,
            distractors=distractors,
            expected_diff=result.diff,
            allowed_writes=result.written,
        )
        try:
            described = [describe(self.spec, self.spec.entity(n), r) for n, r in plan.described]
            check_task(self.package, task, result.results, described, self.keys)
        except GroundingError as exc:
            return self._reject(str(exc).split(":")[0])
        if self.rewriter is not None:
            task = self.rewriter(task, result.results, described) or task
        return task

    def _reject(self, why: str) -> None:
        self.rejected[why] = self.rejected.get(why, 0) + 1
        return None

    # ----- the whole set -------------------------------------------------------------------------
    def synthesize(self, n: int) -> list[Task]:
        """About `n` tasks, mixing the kinds by `config.mix`, every `config.test_every`-th of a
        kind in the test split (written only from held-out templates)."""
        tasks: list[Task] = []
        seen: set[str] = set()
        quotas = self._quotas(n)
        for kind, quota in quotas.items():
            made = 0
            for drafts, task_id in self._candidates(kind):
                if made >= quota:
                    break
                rng = random.Random(f"{self.seed}:{task_id}")
                split = self._split(drafts)
                task = self.to_task(drafts, task_id, split, rng)
                if task is None:
                    continue
                signature = task.instruction
                calls = repr([c.model_dump() for c in task.calls])
                if signature in seen or calls in seen:
                    self._reject("duplicate")
                    continue
                seen |= {signature, calls}
                tasks.append(task)
                made += 1
        return tasks

    def _split(self, drafts: list[Draft]) -> str:
        """Every `test_every`-th task of each intent (or pair of intents) goes to test, the
        intents staggered so that each reaches the test split early."""
        every = self.config.test_every
        key = f"{len(drafts)}:{drafts[0].kind}:{drafts[0].intent.id}"
        if key not in self._offsets:  # 1 .. every-1: an intent with that many tasks has a test one
            self._offsets[key] = len(self._offsets) % (every - 1) + 1
        count = self._per_intent[key] = self._per_intent.get(key, 0) + 1
        return "test" if (count + self._offsets[key]) % every == 0 else "train"

    def _quotas(self, n: int) -> dict[str, int]:
        writes = [i for i in self.spec.intents if i.kind == "write"]
        shares = {kind: share for kind, share in self.config.mix.items() if share > 0}
        if not any(r.tool in {i.tool for i in writes} and r.forbids for r in self.spec.policy):
            shares.pop("refusal", None)
        if len(writes) < 2:
            shares.pop("multi_write", None)
        if not writes:
            shares.pop("write", None)
        if not shares:
            raise ValueError(f"{self.spec.name}: the mix {self.config.mix} leaves no kind to make")
        total = sum(shares.values())
        quotas = {kind: round(n * share / total) for kind, share in shares.items()}
        first = next(iter(quotas))
        quotas[first] += n - sum(quotas.values())
        return quotas

    def _candidates(self, kind: str) -> Iterator[tuple[list[Draft], str]]:
        """Candidate drafts for a kind, round-robin over its intents so that all are used."""
        base = "read" if kind == "read" else "write"
        intents = [i for i in self.spec.intents if i.kind == base]
        if kind == "refusal":
            ruled = {r.tool for r in self.spec.policy if r.forbids}
            intents = [i for i in intents if i.tool in ruled]
        streams = {}
        for intent in intents:
            rng = random.Random(f"{self.seed}:{kind}:{intent.id}")
            streams[intent.id] = self.drafts(intent, "refusal" if kind == "refusal" else base, rng)
        counters: dict[str, int] = {}
        partners: dict[Any, list[Draft]] = {}
        if kind == "refusal":
            yield from self._by_rule(streams, counters)
            return
        while streams:
            for intent_id in list(streams):
                draft = next(streams[intent_id], None)
                if draft is None:
                    del streams[intent_id]
                    continue
                number = counters[intent_id] = counters.get(intent_id, 0) + 1
                if kind != "multi_write":
                    suffix = f"-{draft.rule.id}" if draft.rule else ""
                    yield [draft], f"{self.spec.name}-{intent_id}{suffix}-{number:03d}"
                    continue
                actor_key = draft.actor[self.actor_entity.key]
                waiting = partners.setdefault(actor_key, [])
                other = next(
                    (d for d in waiting if d.intent.id != intent_id and d.target != draft.target),
                    None,
                )
                if other is None:
                    waiting.append(draft)
                    continue
                waiting.remove(other)
                yield [other, draft], f"{self.spec.name}-{other.intent.id}+{intent_id}-{number:03d}"

    def _by_rule(
        self, streams: dict[str, Iterator[Draft]], counters: dict[str, int]
    ) -> Iterator[tuple[list[Draft], str]]:
        """Refusal candidates balanced over the policy's rules: the drafts of every intent (up
        to `REFUSAL_LOOKAHEAD` each, drafting is cheap) sorted by the rule they break, then
        offered one per rule in rounds, so a rule that few rows break still gets its refusal
        task before a common rule gets its second."""
        buffers: dict[str, list[Draft]] = {}
        for stream in streams.values():
            for draft in itertools.islice(stream, REFUSAL_LOOKAHEAD):
                if draft.rule is not None:
                    buffers.setdefault(draft.rule.id, []).append(draft)
        for drafts in buffers.values():
            drafts.reverse()  # pop() from the end takes them in stream order
        while any(buffers.values()):
            for rule_id, drafts in buffers.items():
                if not drafts:
                    continue
                draft = drafts.pop()
                intent_id = draft.intent.id
                number = counters[intent_id] = counters.get(intent_id, 0) + 1
                yield [draft], f"{self.spec.name}-{intent_id}-{rule_id}-{number:03d}"


def _among(distractors: list[str], results: list[Any]) -> bool:
    """Whether some distractor is a value the tool outputs hold (so listing every value seen
    states a wrong answer); numbers compare by value (5000.0 is 5000)."""
    seen = {str(value) for _, value in leaves(results)}
    numbers = {float(v) for _, v in leaves(results) if isinstance(v, int | float)}
    return any(d in seen or number_value(d) in numbers for d in distractors)


def _subsets(options: list, size: int) -> Iterator[list]:
    from itertools import combinations

    for chosen in combinations(options, size):
        if len({f.argument for f, _, _ in chosen}) == size:
            yield list(chosen)


def _search_words(text: str) -> list[str]:
    """What a person types to search for a named thing: its last word, its last two, all of it
    (a search that returns a few candidates, not just the one, is tried first)."""
    words = text.split()
    found = [" ".join(words[-n:]) for n in (1, 2) if len(words) > n]
    return [*found, text]


def _said_plainly(entity: Entity, column: str) -> bool:
    """Whether the entity's description names the column's value as stored (so a filter on it
    uses only what the instruction says)."""
    return bool(re.search(rf"\{{{column}\}}", entity.describe))


def _label(entity: Entity) -> str:
    return entity.label.replace(" ", "_")


def describe(spec: Spec, entity: Entity, row: dict[str, Any]) -> str:
    """How a user refers to a row: the entity's `describe` template, filled in."""
    return PLACEHOLDER.sub(lambda m: spoken(row.get(m.group(1)), m.group(2)), entity.describe)


def render(spec: Spec, template: str, draft: Draft) -> str:
    """Fill an intent template: `{column}`, `{describe}`, `{label.column}`, `{label.describe}`,
    `{user.column}`, `{new.argument}`, each with an optional `|format`."""
    target_label = next(iter(draft.context))

    def fill(match: re.Match[str]) -> str:
        path, style = match.group(1), match.group(2)
        owner, _, name = path.rpartition(".")
        if owner == "new":
            return spoken(draft.new[name], style)
        if owner == "user":
            entity, row = spec.entity(spec.actor.entity), draft.actor
        elif (owner or target_label) in draft.context:
            entity, row = draft.context[owner or target_label]
        else:
            raise KeyError(f"intent {draft.intent.id}: no {owner!r} row for {{{path}}}")
        if name == "describe":
            return describe(spec, entity, row)
        return spoken(row[name], style)

    return PLACEHOLDER.sub(fill, template)


def _capitalized(sentence: str) -> str:
    """The sentence with a capital first letter, unless it starts with an address or handle
    ('mira.patel@example.com wants...'), which the user would type as it is."""
    first = sentence.split(" ", 1)[0]
    if "@" in first or first.startswith(("#", "http")):
        return sentence
    return sentence[:1].upper() + sentence[1:]
