"""An optional LLM backend: any OpenAI-compatible chat endpoint may help, never judge.

Deterministic by default: nothing in the factory needs a model. Where one is configured it may
rewrite task instructions in other words (`make_rewriter`), draft the body of a custom tool
(`draft_tool_body`) and fill what an importer flagged in `needs_review` (`fill_gaps`).
Whatever it drafts goes through the same checks as hand-written input: a rewritten instruction
must pass `grounding.check_task` (else the template instruction stays), a drafted body must
parse and use only the runtime's tool API (and the package is verified as usual), a filled gap
must re-validate as a `Spec`.

Completions are requested at temperature 0 with a fixed seed and cached on disk by a hash of
the request, so a rerun is deterministic and needs no endpoint. The `openai` client is the
`llm` extra; it is imported only when a completion is actually requested.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from envfactory_gym.distractors import find_distractors, leaves
from envfactory_gym.generators.grounding import (
    GroundingError,
    check_task,
    key_values,
    renderings,
)
from envfactory_gym.generators.spec import Entity, Intent, PolicyRule, Spec, ToolSpec
from envfactory_gym.package import EnvPackage
from envfactory_gym.reward import fold, mentions
from envfactory_gym.tasks import Task

CACHE_OFF = "off"
STYLES = {"date", "time", "datetime", "money", "words"}
"""The `|format` styles templates may use (`grounding.spoken`)."""
PLACEHOLDER = re.compile(r"\{([a-z_]+(?:\.[a-z_]+)?)(?:\|(\w+))?\}")
DB_API = {"get", "rows", "row", "value", "insert", "update", "delete", "next_key"}
"""The `db` methods a custom tool body may call: the runtime's tool API."""
FORBIDDEN_NAMES = {
    "open", "exec", "eval", "compile", "__import__", "globals", "locals", "vars", "getattr",
    "setattr", "delattr", "input", "breakpoint", "exit", "quit", "os", "sys", "socket",
    "subprocess", "shutil", "pathlib", "importlib", "builtins",
}  # fmt: skip
"""Names a drafted tool body may not use: no files, processes, network or dynamic code."""
FORBIDDEN_SQL = re.compile(r"\b(attach|detach|pragma|load_extension|vacuum)\b", re.IGNORECASE)
RUNTIME_API = """\
Available inside the body (nothing else; no imports):
- db.get(table, key_column, key, label) -> dict: the row (a ToolError names it if missing)
- db.rows(sql, params) -> list[dict]; db.row(sql, params) -> dict | None; db.value(sql, params)
  (parameterized SQLite: `?` with a tuple, or `:name` with a dict)
- db.insert(table, row: dict); db.update(table, key_column, key, changes: dict);
  db.delete(table, key_column, key)
- db.next_key(table, key_column, prefix, digits) -> the key for a new row
- raise ToolError("message the agent reads") for a request that cannot be done
- NOW: the service's clock, ISO datetime text; TODAY: NOW[:10]
- Python builtins (len, sum, min, max, round, sorted, dict, list, str, int, float, ...)"""


class LLMError(RuntimeError):
    """The LLM backend failed or answered something unusable; the message names the endpoint
    (or the draft) and the fix."""


def default_cache_dir() -> Path:
    """Where completions are cached: `$ENVFACTORY_CACHE/llm`, else ~/.cache/envfactory_gym/llm."""
    root = os.environ.get("ENVFACTORY_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "envfactory_gym"
    return base / "llm"


@dataclass
class LLMBackend:
    """An OpenAI-compatible chat endpoint, called deterministically and cached on disk.

    `cache_dir` is where completions are kept (by default `$ENVFACTORY_CACHE/llm` or
    ~/.cache/envfactory_gym/llm); "off" disables the cache.
    """

    base_url: str
    model: str
    api_key: str = field(
        default_factory=lambda: os.environ.get("OPENAI_API_KEY") or "not-needed", repr=False
    )
    temperature: float = 0.0
    seed: int = 0
    timeout_s: float = 60.0
    max_retries: int = 2
    cache_dir: Path | str = field(default_factory=default_cache_dir)
    _client: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def cache_path(self) -> Path | None:
        """The cache folder, or None when caching is off."""
        if str(self.cache_dir) == CACHE_OFF:
            return None
        return Path(self.cache_dir).expanduser()

    def cache_key(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        """The sha256 of everything that decides a completion."""
        request = {
            "base_url": self.base_url.rstrip("/"),
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "seed": self.seed,
            "max_tokens": max_tokens,
        }
        text = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int = 512) -> str:
        """The assistant's reply to `messages`, from the cache if this exact request was made
        before (so reruns are deterministic and offline), else from the endpoint."""
        key = self.cache_key(messages, max_tokens)
        cached = self._cached(key)
        if cached is not None:
            return cached
        content = self._request(messages, max_tokens)
        self._store(key, messages, max_tokens, content)
        return content

    def _client_for(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError:
                raise LLMError(
                    "the LLM backend needs the `openai` client: pip install 'envfactory-gym[llm]'"
                ) from None
            self._client = openai.OpenAI(
                base_url=self.base_url,
                api_key=self.api_key,
                timeout=self.timeout_s,
                max_retries=self.max_retries,
            )
        return self._client

    def _request(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        client = self._client_for()
        import openai

        where = f"the LLM endpoint {self.base_url} (model {self.model!r})"
        try:
            response = client.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=self.temperature,
                seed=self.seed,
                max_tokens=max_tokens,
            )
        except openai.APIConnectionError as exc:
            raise LLMError(
                f"cannot reach {where}: {exc}; start the server or point base_url at a running "
                "OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1)"
            ) from None
        except openai.APIStatusError as exc:
            raise LLMError(
                f"{where} answered HTTP {exc.status_code}: {exc.message}; check the model name, "
                "the API key (OPENAI_API_KEY) and that base_url ends in /v1"
            ) from None
        except openai.OpenAIError as exc:
            raise LLMError(f"{where} failed: {exc}; check that it speaks the OpenAI API") from None
        choices = getattr(response, "choices", None) or []
        content = choices[0].message.content if choices else None
        if not content or not content.strip():
            raise LLMError(
                f"{where} returned no content; check that the model serves chat completions "
                "and that max_tokens leaves room for an answer"
            )
        return content

    def _cached(self, key: str) -> str | None:
        folder = self.cache_path
        if folder is None:
            return None
        try:
            data = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        content = data.get("content") if isinstance(data, dict) else None
        return content if isinstance(content, str) and content.strip() else None

    def _store(self, key: str, messages: list[dict[str, str]], max_tokens: int, text: str) -> None:
        folder = self.cache_path
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            "base_url": self.base_url,
            "model": self.model,
            "temperature": self.temperature,
            "seed": self.seed,
            "max_tokens": max_tokens,
            "messages": messages,
            "content": text,
        }
        handle, temporary = tempfile.mkstemp(prefix=f".{key}.", dir=folder)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(record, out, ensure_ascii=False, indent=1)
        os.replace(temporary, folder / f"{key}.json")


# ----- instructions ---------------------------------------------------------------------------
REWRITE_SYSTEM = """\
You rewrite the opening message a customer sends to a customer-service agent. Write the same \
request in different, natural words, as that customer would type it: you may reorder, merge or \
rephrase sentences and change the greeting.
Rules:
- Copy every fact listed by the user character for character (dates, amounts, names, emails, \
addresses, descriptions): same spelling, same format.
- Add nothing new: no ids, numbers, dates or details that are not in the message.
- Never use these words: {forbidden}.
- Reply with the rewritten message only: one paragraph, no quotes, no preamble."""


def rewrite_instruction(
    backend: LLMBackend, instruction: str, facts: dict[str, str], *, forbidden: Sequence[str]
) -> str:
    """The model's rewrite of a customer's message keeping `facts` verbatim and never using
    the `forbidden` words (tool names); the caller checks it (see `make_rewriter`)."""
    listed = "\n".join(f"- {label}: {value}" for label, value in facts.items()) or "- (none)"
    messages = [
        {
            "role": "system",
            "content": REWRITE_SYSTEM.format(forbidden=", ".join(forbidden) or "(none)"),
        },
        {
            "role": "user",
            "content": f"Message:\n{instruction}\n\nFacts to keep verbatim:\n{listed}",
        },
    ]
    return _clean_message(backend.complete(messages, max_tokens=400))


def _clean_message(text: str) -> str:
    """One line of text without a 'Rewritten message:' label or wrapping quotes."""
    text = " ".join(text.split())
    text = re.sub(r"^(?:rewritten(?: message)?|rewrite|message)\s*:\s*", "", text, flags=re.I)
    pairs = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "`": "`"}
    while len(text) >= 2 and pairs.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text


class InstructionRewriter(Protocol):
    """The synthesizer's extension point for instructions, called on each finished task.

    `results` are the outputs of the task's ground-truth calls and `described` the phrases the
    instruction must keep (the rows the agent picks out of a list). It returns a copy of the
    task with a new instruction that passes every grounding check, or None: the caller then
    keeps the template instruction.
    """

    def __call__(self, task: Task, results: list[Any], described: Sequence[str]) -> Task | None:
        """The task with its instruction rewritten, or None to keep the template one."""
        ...


class Rewriter:
    """An `InstructionRewriter` backed by an LLM; `rejected` counts its rejections by reason.

    A rewrite is accepted only if it keeps every fact of the template instruction verbatim
    (the user's facts it states, the described rows, the ground truth's argument values),
    does not state a required answer the template did not, passes `grounding.check_task` (no
    tool names, no leaked ids, every argument grounded, every described row described) and
    states none of the task's distractors (wrong answers: a value the user says is not one);
    the distractors are recomputed for the new wording, a superset of the template's. An
    `LLMError` propagates: an unusable endpoint is not a bad rewrite.
    """

    def __init__(self, backend: LLMBackend, package: EnvPackage) -> None:
        self.backend = backend
        self.package = package
        self.keys = key_values(package)
        self.rejected: dict[str, int] = {}

    def __call__(self, task: Task, results: list[Any], described: Sequence[str]) -> Task | None:
        """The task with its instruction rewritten, or None to keep the template one."""
        facts = instruction_facts(task, described)
        text = rewrite_instruction(
            self.backend, task.instruction, facts, forbidden=sorted(self.package.tools)
        )
        if not text or text == task.instruction:
            return self._reject("unchanged")
        folded = text.casefold()
        if any(value.casefold() not in folded for value in facts.values()):
            return self._reject("drops a fact")
        original = fold(task.instruction)
        if any(mentions(fold(text), o) and not mentions(original, o) for o in task.outputs):
            return self._reject("states the answer")
        rewritten = task.model_copy(update={"instruction": text})
        try:
            check_task(self.package, rewritten, results, list(described), self.keys)
        except GroundingError as exc:
            return self._reject(str(exc).split(":")[0])
        if task.outputs:
            said = " ".join([text, *task.user_facts.values()])
            distractors = find_distractors(task.outputs, results, self.package.template, said)
            if not set(task.distractors) <= set(distractors):
                return self._reject("states a wrong answer")
            rewritten = rewritten.model_copy(update={"distractors": distractors})
        return rewritten

    def _reject(self, why: str) -> None:
        self.rejected[why] = self.rejected.get(why, 0) + 1
        return None


def make_rewriter(backend: LLMBackend, package: EnvPackage) -> Rewriter:
    """The `InstructionRewriter` for one package (see `Rewriter` for what it accepts)."""
    return Rewriter(backend, package)


def instruction_facts(task: Task, described: Sequence[str]) -> dict[str, str]:
    """What a rewrite of the task's instruction must keep verbatim, by label: the user's facts
    it states, the described rows and the argument values it spells out (as it spells them)."""
    text = task.instruction
    folded = text.casefold()
    found: dict[str, str] = {}

    def add(label: str, value: str) -> None:
        name, number = label.replace("_", " "), 2
        while name in found:
            name, number = f"{label.replace('_', ' ')} {number}", number + 1
        found[name] = value

    for label, value in task.user_facts.items():
        if value and value.casefold() in folded:
            add(label, value)
    for index, phrase in enumerate(described, 1):
        add("row description" if len(described) == 1 else f"row description {index}", phrase)
    for call in task.calls:
        for argument, value in call.arguments.items():
            if argument in call.masked:
                continue
            for _, leaf in leaves([value]):
                forms = sorted(renderings(leaf), key=len, reverse=True)
                form = next((f for f in forms if f in folded), None)
                if form is not None:
                    start = folded.index(form)
                    same = len(folded) == len(text)
                    add(argument, text[start : start + len(form)] if same else form)
    unique: dict[str, str] = {}
    for label, value in found.items():
        if value.casefold() not in {v.casefold() for v in unique.values()}:
            unique[label] = value
    return {
        label: value
        for label, value in unique.items()
        if not any(
            value.casefold() in other.casefold() and len(other) > len(value)
            for other in unique.values()
        )
    }


# ----- custom tool bodies ---------------------------------------------------------------------
BODY_SYSTEM = """\
You write the body of one Python tool function for a customer-service environment backed by \
SQLite. The function's signature and docstring are generated; you write only the statements \
inside it, at indentation zero.
{api}
Validate what the agent asks (raise ToolError with a clear message), read and write only \
through `db`, and return what the agent should see (a dict or a list of dicts). Reply with \
one ```python block holding the body only."""


def draft_tool_body(backend: LLMBackend, spec: Spec, tool: ToolSpec) -> str:
    """The model's draft of a custom tool's body, checked to parse and to use only the runtime's
    tool API (no imports, files, processes or dynamic code); the caller puts it in the spec and
    the package is verified as usual. Raises `LLMError` for a draft that fails the checks."""
    if tool.pattern != "custom":
        raise ValueError(
            f"tool {tool.name} is a {tool.pattern} tool; only custom tools have bodies"
        )
    arguments = [
        f"- {a.name}: {a.type}{'' if a.required else ' (optional, None when omitted)'}"
        + (f" - {a.description}" if a.description else "")
        for a in tool.arguments
    ]
    tables = [_table_text(entity) for entity in spec.entities]
    user = "\n".join(
        [
            f"Service: {spec.description}",
            f"Tool: {tool.name} ({'writes' if tool.writes else 'reads only'})",
            f"Description: {tool.description}",
            "Arguments (already parsed and typed; dates are 'YYYY-MM-DD' text):",
            *(arguments or ["- (none)"]),
            "",
            "Tables:",
            *tables,
            "",
            f"NOW = {spec.now!r}",
        ]
    )
    messages = [
        {"role": "system", "content": BODY_SYSTEM.format(api=RUNTIME_API)},
        {"role": "user", "content": user},
    ]
    reply = backend.complete(messages, max_tokens=1200)
    return check_tool_body(tool, extract_body(reply, tool.name))


def _table_text(entity: Entity) -> str:
    """One table for a prompt: its columns with types, keys, enums and references."""
    example = f"{entity.id_prefix}{1:0{entity.id_digits}d}"
    columns = []
    for column in entity.columns:
        notes = [column.type]
        if column.name == entity.key:
            notes.append(f"primary key, like {example!r}" if entity.id_prefix else "primary key")
        if column.references:
            notes.append(f"references {column.references}")
        if column.enum:
            notes.append("one of " + "/".join(column.enum))
        if column.nullable:
            notes.append("nullable")
        columns.append(f"{column.name} ({', '.join(notes)})")
    return f"- {entity.name}: " + "; ".join(columns)


def extract_body(reply: str, name: str = "") -> str:
    """The code in a reply: the first ```python (or bare ```) block, else the whole reply; a
    whole function definition is reduced to its body, without its docstring."""
    fence = re.search(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", reply, re.DOTALL | re.I)
    code = textwrap.dedent(fence.group(1) if fence else reply).strip("\n")
    try:
        module = ast.parse(code)
    except SyntaxError:
        return code
    if len(module.body) != 1 or not isinstance(module.body[0], ast.FunctionDef):
        return code
    function = module.body[0]
    statements = function.body
    if (
        isinstance(statements[0], ast.Expr)
        and isinstance(statements[0].value, ast.Constant)
        and isinstance(statements[0].value.value, str)
        and len(statements) > 1
    ):
        statements = statements[1:]
    lines = code.splitlines()
    first = statements[0].lineno - 1
    return textwrap.dedent("\n".join(lines[first : function.end_lineno])).strip("\n")


def check_tool_body(tool: ToolSpec, body: str) -> str:
    """`body` if it is a usable tool body: it parses inside the tool's function, returns a
    value, imports nothing, uses no forbidden name, calls only `db`'s tool API and runs no
    database-level SQL; else `LLMError` says what is wrong."""
    where = f"the drafted body of {tool.name}"
    if not body.strip():
        raise LLMError(f"{where} is empty; ask again or write the body in the spec")
    params = ", ".join(["db", *(a.name for a in tool.arguments)])
    source = f"def {tool.name}({params}):\n" + textwrap.indent(body, "    ") + "\n"
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        line = (exc.lineno or 1) - 1
        raise LLMError(f"{where} does not parse: {exc.msg} (line {line})") from None
    function = tree.body[0]
    forbidden = FORBIDDEN_NAMES - {a.name for a in tool.arguments}
    problems = []
    for node in ast.walk(function):
        if isinstance(node, ast.Import | ast.ImportFrom):
            problems.append("imports a module")
        elif isinstance(node, ast.Global | ast.Nonlocal):
            problems.append("declares a global")
        elif isinstance(node, ast.Name) and node.id in forbidden:
            problems.append(f"uses {node.id}")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("__"):
                problems.append(f"touches {node.attr}")
            elif (
                isinstance(node.value, ast.Name)
                and node.value.id == "db"
                and node.attr not in DB_API
            ):
                problems.append(f"calls db.{node.attr}, which is not the tool API")
        elif _db_sql(node) and any(
            isinstance(part, ast.Constant)
            and isinstance(part.value, str)
            and FORBIDDEN_SQL.search(part.value)
            for part in ast.walk(node.args[0])
        ):
            problems.append("runs database-level SQL (ATTACH, PRAGMA, ...)")
    if not any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(function)):
        problems.append("returns nothing")
    if problems:
        unique = ", ".join(dict.fromkeys(problems))
        raise LLMError(f"{where} is rejected: it {unique}; ask again or write the body yourself")
    return body


def _db_sql(node: ast.AST) -> TypeGuard[ast.Call]:
    """Whether a node is a `db.rows/row/value(sql, ...)` call (its first argument is SQL)."""
    return (
        isinstance(node, ast.Call)
        and bool(node.args)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "db"
        and node.func.attr in ("rows", "row", "value")
    )


# ----- gaps an importer flagged ---------------------------------------------------------------
GAPS_SYSTEM = """\
You help complete a service spec for a tool-use environment generator. Fill exactly the one \
gap you are asked about. Reply with one JSON object in the shape asked for, nothing else."""

Filler = Callable[[LLMBackend, Spec, str, str], dict[str, Any] | None]


def fill_gaps(backend: LLMBackend, spec: Spec) -> tuple[Spec, list[str]]:
    """Ask the model to fill what `spec.needs_review` flags; return the new spec and what was
    filled ('path: value'). Filled items leave needs_review; the rest stay for a person.

    Supported items (by path, the text before ': '):
    - `entities.<name>.describe`: the entity's describe template (its own columns only, no
      ids or references);
    - `intents.<id or tool>`: new `templates` and `held_out` wordings for an existing intent,
      each with exactly the placeholders of one of its current templates and no tool name;
    - `policy` (when the policy is empty): text-only rules (no `tool`/`forbids`: a
      machine-checked rule is a judgment left to a person);
    - `policy.<id>`: the text of a rule whose text is empty.
    Each patch must re-validate as a `Spec` (`Spec.model_validate`), else the item stays.
    Anything else (a missing intent, a dropped tool, a defaulted key) stays as it is.
    """
    fillers: dict[str, Filler] = {
        "entities": _fill_describe,
        "intents": _fill_templates,
        "policy": _fill_policy,
    }
    filled: list[str] = []
    done: set[str] = set()
    for item in spec.needs_review:
        path, _, message = item.partition(": ")
        if path in done:
            continue
        filler = fillers.get(path.split(".")[0])
        data = None if filler is None else filler(backend, spec, path, message)
        if data is None:
            continue
        try:
            candidate = Spec.model_validate(data)
        except ValueError:
            continue
        spec = candidate
        done.add(path)
        filled.append(f"{path}: {_summary(spec, path)}")
    remaining = [i for i in spec.needs_review if i.partition(": ")[0] not in done]
    spec = spec.model_copy(update={"needs_review": remaining})
    return spec, filled


def _ask_json(backend: LLMBackend, prompt: str) -> dict[str, Any] | None:
    """The JSON object in the model's reply, or None if there is none."""
    messages = [
        {"role": "system", "content": GAPS_SYSTEM},
        {"role": "user", "content": prompt},
    ]
    reply = backend.complete(messages, max_tokens=800)
    fence = re.search(r"```(?:json)?\s*\n(.*?)```", reply, re.DOTALL | re.I)
    text = fence.group(1) if fence else reply
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        found = json.loads(text[start : end + 1])
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _pick(data: dict[str, Any] | None, *path: str) -> Any:
    """data[path[0]][path[1]]..., or None where a step is missing."""
    for step in path:
        if not isinstance(data, dict):
            return None
        data = data.get(step)
    return data


def _fill_describe(
    backend: LLMBackend, spec: Spec, path: str, message: str
) -> dict[str, Any] | None:
    parts = path.split(".")
    if len(parts) != 3 or parts[2] != "describe":
        return None
    names = [e.name for e in spec.entities]
    if parts[1] not in names:
        return None
    entity = spec.entity(parts[1])
    examples = [
        f"- {e.name}: {e.describe!r}" for e in spec.entities if e.describe and e is not entity
    ]
    prompt = "\n".join(
        [
            f"Service: {spec.description}",
            f"Flagged: {path}: {message}",
            "",
            f"Write how a customer refers to one row of {entity.name} ({entity.label}): a short "
            "phrase over the row's columns, each written {column}, optionally formatted as "
            "{column|date}, {column|time}, {column|datetime}, {column|money} or {column|words}. "
            "Use only columns a customer knows: no ids, no references.",
            f"Columns: {_table_text(entity)[2:]}",
            *(["Examples from this spec:", *examples] if examples else []),
            "",
            f'Reply as {{"entities": {{"{entity.name}": {{"describe": "..."}}}}}}',
        ]
    )
    describe = _pick(_ask_json(backend, prompt), "entities", entity.name, "describe")
    if not isinstance(describe, str) or not describe.strip():
        return None
    spoken = {
        c.name
        for c in entity.columns
        if c.name != entity.key and not c.references and c.known_to_user
    }
    if entity.user_knows_key:
        spoken.add(entity.key)
    found = PLACEHOLDER.findall(describe)
    if not found or len(found) != describe.count("{"):
        return None
    if any(name not in spoken or (style and style not in STYLES) for name, style in found):
        return None
    data = spec.model_dump()
    index = names.index(entity.name)
    data["entities"][index]["describe"] = describe.strip()
    return data


def _find_intent(spec: Spec, name: str) -> Intent | None:
    """The intent with id `name`, else the only intent whose goal tool is `name`."""
    for intent in spec.intents:
        if intent.id == name:
            return intent
    by_tool = [i for i in spec.intents if i.tool == name]
    return by_tool[0] if len(by_tool) == 1 else None


def _fill_templates(
    backend: LLMBackend, spec: Spec, path: str, message: str
) -> dict[str, Any] | None:
    parts = path.split(".")
    intent = _find_intent(spec, parts[1]) if len(parts) == 2 else None
    if intent is None:
        return None
    tool = spec.tool(intent.tool)
    prompt = "\n".join(
        [
            f"Service: {spec.description}",
            f"Flagged: {path}: {message}",
            "",
            f"Intent {intent.id} ({intent.kind}): a customer wants what the tool described as "
            f"{tool.description!r} does"
            + (f"; the answer states {', '.join(intent.ask)}" if intent.ask else "")
            + ".",
            "Its templates (the customer's own words; {...} are placeholders filled in later):",
            *(f"- {t}" for t in intent.templates),
            "Held-out templates (other wordings, used only for testing):",
            *(f"- {t}" for t in intent.held_out),
            "",
            "Write 2 new templates and 1 new held-out template in other natural words. Each "
            "must use exactly the placeholders of one existing template, written the same way; "
            "never name a tool or an id.",
            'Reply as {"intents": {"' + intent.id + '": {"templates": ["..."], '
            '"held_out": ["..."]}}}',
        ]
    )
    patch = _pick(_ask_json(backend, prompt), "intents", intent.id)
    if not isinstance(patch, dict):
        return None
    shapes = [_placeholders(t) for t in [*intent.templates, *intent.held_out]]
    existing = {t.casefold() for t in [*intent.templates, *intent.held_out]}
    tools = [t.name for t in spec.tools]
    added: dict[str, list[str]] = {}
    for key in ("templates", "held_out"):
        new = patch.get(key)
        if not isinstance(new, list):
            continue
        for text in new:
            if not isinstance(text, str):
                continue
            text = " ".join(text.split())
            if (
                text
                and text.casefold() not in existing
                and _placeholders(text) in shapes
                and all(style in STYLES for _, style in PLACEHOLDER.findall(text) if style)
                and text.count("{") == len(PLACEHOLDER.findall(text))
                and not any(re.search(rf"\b{re.escape(t)}\b", text, re.I) for t in tools)
            ):
                existing.add(text.casefold())
                added.setdefault(key, []).append(text)
    if not added:
        return None
    data = spec.model_dump()
    index = [i.id for i in spec.intents].index(intent.id)
    for key, texts in added.items():
        data["intents"][index][key] = [*data["intents"][index][key], *texts]
    return data


def _placeholders(template: str) -> frozenset[str]:
    """The placeholder paths a template fills, without their formats."""
    return frozenset(name for name, _ in PLACEHOLDER.findall(template))


def _fill_policy(backend: LLMBackend, spec: Spec, path: str, message: str) -> dict[str, Any] | None:
    parts = path.split(".")
    if parts == ["policy"] and not spec.policy:
        return _draft_policy(backend, spec, message)
    if len(parts) != 2:
        return None
    rules = [r.id for r in spec.policy]
    if parts[1] not in rules or spec.policy[rules.index(parts[1])].text.strip():
        return None
    rule = spec.policy[rules.index(parts[1])]
    prompt = "\n".join(
        [
            f"Service: {spec.description}",
            f"Flagged: {path}: {message}",
            "",
            f"Write the text of policy rule {rule.id}, one or two sentences the agent reads"
            + (f"; it governs the tool {rule.tool}" if rule.tool else "")
            + (f" and forbids it where {rule.forbids} holds" if rule.forbids else "")
            + ".",
            f'Reply as {{"policy": {{"{rule.id}": {{"text": "..."}}}}}}',
        ]
    )
    text = _pick(_ask_json(backend, prompt), "policy", rule.id, "text")
    if not isinstance(text, str) or not text.strip():
        return None
    data = spec.model_dump()
    data["policy"][rules.index(rule.id)]["text"] = " ".join(text.split())
    return data


def _draft_policy(backend: LLMBackend, spec: Spec, message: str) -> dict[str, Any] | None:
    """Text-only rules for a spec with an empty policy."""
    prompt = "\n".join(
        [
            f"Service: {spec.description}",
            f"Flagged: policy: {message}",
            "",
            "Write 1 to 3 policy rules a customer-service agent of this service must follow, "
            "each one or two sentences, about what the tools below may do. Each rule has an id "
            "(lower_snake_case) and a text.",
            "Tools:",
            *(f"- {t.name}: {t.description}" for t in spec.tools),
            "",
            'Reply as {"policy": [{"id": "...", "text": "..."}]}',
        ]
    )
    drafted = _pick(_ask_json(backend, prompt), "policy")
    if not isinstance(drafted, list):
        return None
    rules: list[dict[str, Any]] = []
    for entry in drafted[:3]:
        if not isinstance(entry, dict):
            continue
        try:
            rule = PolicyRule(id=str(entry.get("id", "")), text=str(entry.get("text", "")))
        except ValueError:
            continue
        text = " ".join(rule.text.split())
        if text and rule.id not in {r["id"] for r in rules}:
            rules.append({"id": rule.id, "text": text})
    if not rules:
        return None
    data = spec.model_dump()
    data["policy"] = rules
    return data


def _summary(spec: Spec, path: str) -> str:
    """What now stands at a filled path, short, for the report."""
    parts = path.split(".")
    if parts[0] == "entities":
        return repr(spec.entity(parts[1]).describe)
    if parts[0] == "intents":
        intent = _find_intent(spec, parts[1])
        assert intent is not None
        return f"{len(intent.templates)} templates, {len(intent.held_out)} held out"
    if len(parts) == 1:
        return "; ".join(f"{r.id}: {r.text}" for r in spec.policy)
    return repr(next(r.text for r in spec.policy if r.id == parts[1]))
