"""The optional LLM backend against a real local OpenAI-compatible endpoint with canned replies:
the client path, the cache, and that whatever the model drafts is checked before it is used."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from envfactory_gym.database import Database
from envfactory_gym.generators.emit import generate_package
from envfactory_gym.generators.llm import (
    LLMBackend,
    LLMError,
    check_tool_body,
    default_cache_dir,
    draft_tool_body,
    extract_body,
    fill_gaps,
    instruction_facts,
    make_rewriter,
)
from envfactory_gym.generators.spec import Argument, Spec, ToolSpec, load_spec
from envfactory_gym.package import EnvPackage
from envfactory_gym.replay import replay
from envfactory_gym.tasks import Task

SHOP = Path(__file__).resolve().parents[1] / "envs" / "shop" / "spec.yaml"
DESCRIBED = re.compile(r"the order I placed on [A-Z][a-z]+ \d+")


class Canned:
    """A canned reply: its HTTP status and the completion content (or error message)."""

    def __init__(self, status: int = 200, content: str = "") -> None:
        self.status = status
        self.content = content


class Endpoint:
    """A local OpenAI-compatible chat endpoint: it records each request and answers from the
    canned replies the test set, chosen by what the request asks for."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.rewrites: dict[str, str] = {}
        self.bodies: dict[str, str] = {}
        self.gaps: dict[str, str] = {}
        self.fixed: Canned | None = None
        self.reword_all = False
        self.url = ""

    def answer(self, request: dict[str, Any]) -> Canned:
        if self.fixed is not None:
            return self.fixed
        system = request["messages"][0]["content"]
        user = request["messages"][-1]["content"]
        if system.startswith("You rewrite the opening message"):
            message = user.split("Message:\n", 1)[1].split("\n\nFacts to keep verbatim:")[0]
            if message not in self.rewrites and self.reword_all:
                return Canned(content=f"{message} Thanks a lot for your help.")
            return Canned(content=self.rewrites[message])
        if system.startswith("You write the body of one Python tool"):
            name = re.search(r"^Tool: (\w+)", user, re.M)
            assert name is not None
            return Canned(content=self.bodies[name.group(1)])
        if system.startswith("You help complete a service spec"):
            path = re.search(r"^Flagged: ([\w.]+):", user, re.M)
            assert path is not None
            return Canned(content=self.gaps[path.group(1)])
        return Canned(content=f"echo: {user}")


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-canned",
        "object": "chat.completion",
        "created": 1_750_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            state.requests.append(request)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            reply = state.answer(request)
            if reply.status != 200:
                self._send(reply.status, {"error": {"message": reply.content, "type": "x"}})
            else:
                self._send(200, _completion(request["model"], reply.content))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            """Quiet: the test reads the recorded requests instead."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def backend(
    endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., LLMBackend]:
    """Backends for the local endpoint, caching under tmp_path (via ENVFACTORY_CACHE)."""
    monkeypatch.setenv("ENVFACTORY_CACHE", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")

    def make(**overrides: Any) -> LLMBackend:
        options: dict[str, Any] = {"base_url": endpoint.url, "model": "canned-1", "seed": 7}
        return LLMBackend(**{**options, **overrides})

    return make


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> EnvPackage:
    out = tmp_path_factory.mktemp("llm") / "shop"
    generate_package(SHOP, out, tasks=50, verify=False)
    return EnvPackage(out)


def _task(package: EnvPackage, tool: str, kind: str) -> Task:
    """The first task of `kind` whose goal call is `tool` and that describes an order."""
    for task in package.tasks:
        if task.kind == kind and task.calls[-1].name == tool and DESCRIBED.search(task.instruction):
            return task
    raise AssertionError(f"no {kind} task ending in {tool}")


# ----- the client ------------------------------------------------------------------------------
def test_complete_round_trip_sends_model_temperature_and_seed(endpoint, backend) -> None:
    llm = backend()
    assert llm.complete([{"role": "user", "content": "ping"}], max_tokens=32) == "echo: ping"
    [request] = endpoint.requests
    assert request["model"] == "canned-1"
    assert request["temperature"] == 0.0
    assert request["seed"] == 7
    assert request["max_tokens"] == 32
    assert request["messages"] == [{"role": "user", "content": "ping"}]
    assert endpoint.headers[0]["authorization"] == "Bearer test-key"


def test_completions_are_cached_on_disk(endpoint, backend, tmp_path) -> None:
    messages = [{"role": "user", "content": "same question"}]
    assert backend().complete(messages) == "echo: same question"
    assert backend().complete(messages) == "echo: same question"  # a fresh backend: a rerun
    assert len(endpoint.requests) == 1
    assert len(list((tmp_path / "llm").glob("*.json"))) == 1
    backend().complete(messages, max_tokens=99)  # another request: not a cache hit
    backend(seed=8).complete(messages)
    assert len(endpoint.requests) == 3
    off = backend(cache_dir="off")
    off.complete(messages)
    off.complete(messages)
    assert len(endpoint.requests) == 5


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ENVFACTORY_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache" / "llm"
    monkeypatch.delenv("ENVFACTORY_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "envfactory_gym" / "llm"
    assert LLMBackend(base_url="http://x/v1", model="m", cache_dir="off").cache_path is None


def test_a_closed_port_raises_llm_error_naming_the_url(backend) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    llm = backend(base_url=url, max_retries=0, timeout_s=5)
    with pytest.raises(LLMError, match=re.escape(url)) as caught:
        llm.complete([{"role": "user", "content": "hello"}])
    assert "start the server" in str(caught.value)


def test_api_errors_and_empty_replies_raise_llm_error(endpoint, backend) -> None:
    endpoint.fixed = Canned(404, "model 'canned-1' not found")
    with pytest.raises(LLMError, match="HTTP 404.*check the model name") as caught:
        backend(max_retries=0).complete([{"role": "user", "content": "a"}])
    assert endpoint.url in str(caught.value)
    endpoint.fixed = Canned(200, "   ")
    with pytest.raises(LLMError, match="returned no content"):
        backend(max_retries=0).complete([{"role": "user", "content": "b"}])
    assert not list(backend().cache_path.glob("*.json"))  # failures are not cached


# ----- instructions ----------------------------------------------------------------------------
def test_instruction_facts_are_what_the_template_spells_out(shop) -> None:
    task = _task(shop, "update_shipping_address", "write")
    phrase = DESCRIBED.search(task.instruction).group(0)
    address = task.calls[-1].arguments["shipping_address"]
    facts = instruction_facts(task, [phrase])
    assert facts == {
        "email": task.user_facts["email"],
        "name": task.user_facts["name"],
        "row description": phrase,
        "shipping address": address,
    }


def test_a_rewrite_that_keeps_the_facts_is_applied(endpoint, backend, shop) -> None:
    task = _task(shop, "update_shipping_address", "write")
    phrase = DESCRIBED.search(task.instruction).group(0)
    address = task.calls[-1].arguments["shipping_address"]
    name, email = task.user_facts["name"], task.user_facts["email"]
    paraphrase = (
        f"Hello, {name} writing ({email}). I moved recently, so could you send {phrase} to "
        f"{address} from now on?"
    )
    endpoint.rewrites[task.instruction] = f'  "{paraphrase}"\n'
    results = replay(shop, task.calls).results
    rewriter = make_rewriter(backend(), shop)
    rewritten = rewriter(task, results, [phrase])
    assert rewritten is not None
    assert rewritten.instruction == paraphrase
    assert rewritten.model_dump(exclude={"instruction"}) == task.model_dump(exclude={"instruction"})
    system, user = (m["content"] for m in endpoint.requests[0]["messages"])
    assert "update_shipping_address" in system  # the tool names it must not use
    assert f"- shipping address: {address}" in user
    assert f"- row description: {phrase}" in user


def test_a_read_rewrite_keeps_outputs_and_recomputes_distractors(endpoint, backend, shop) -> None:
    task = _task(shop, "get_order", "read")
    phrase = DESCRIBED.search(task.instruction).group(0)
    name, email = task.user_facts["name"], task.user_facts["email"]
    question = task.instruction.split(phrase)[0].rsplit(".", 1)[-1].strip()
    assert question  # "What's the status of"
    endpoint.rewrites[task.instruction] = (
        f"Hey, {name} here ({email}). {question} {phrase}? Thanks a lot."
    )
    results = replay(shop, task.calls).results
    rewritten = make_rewriter(backend(), shop)(task, results, [phrase])
    assert rewritten is not None
    assert rewritten.outputs == task.outputs
    assert rewritten.distractors == task.distractors


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("drop the address", "drops a fact"),
        ("reword the order", "drops a fact"),
        ("name a tool", "names a tool"),
        ("leak the order id", "leaks an id"),
    ],
)
def test_a_rewrite_that_breaks_grounding_is_rejected(
    endpoint, backend, shop, change: str, reason: str
) -> None:
    task = _task(shop, "update_shipping_address", "write")
    phrase = DESCRIBED.search(task.instruction).group(0)
    address = task.calls[-1].arguments["shipping_address"]
    order_id = task.calls[-1].arguments["order_id"]
    name, email = task.user_facts["name"], task.user_facts["email"]
    greeting = f"Hello, {name} writing ({email})."
    endpoint.rewrites[task.instruction] = {
        "drop the address": f"{greeting} I moved; please send {phrase} to my new place.",
        "reword the order": f"{greeting} Please send my latest order to {address}.",
        "name a tool": f"{greeting} Run update_shipping_address: {phrase} goes to {address}.",
        "leak the order id": f"{greeting} Please send {phrase} ({order_id}) to {address}.",
    }[change]
    rewriter = make_rewriter(backend(), shop)
    assert rewriter(task, replay(shop, task.calls).results, [phrase]) is None
    assert rewriter.rejected == {reason: 1}


@pytest.mark.parametrize(
    ("said", "reason"), [("answer", "states the answer"), ("distractor", "states a wrong answer")]
)
def test_a_rewrite_that_states_an_answer_is_rejected(
    endpoint, backend, shop, said: str, reason: str
) -> None:
    task = _task(shop, "get_order", "read")
    assert task.outputs and task.distractors
    phrase = DESCRIBED.search(task.instruction).group(0)
    name, email = task.user_facts["name"], task.user_facts["email"]
    value = task.outputs[0] if said == "answer" else task.distractors[0]
    endpoint.rewrites[task.instruction] = (
        f"Hi, {name} ({email}). Is {phrase} really {value}? What does it say?"
    )
    rewriter = make_rewriter(backend(), shop)
    assert rewriter(task, replay(shop, task.calls).results, [phrase]) is None
    assert rewriter.rejected == {reason: 1}


# ----- custom tool bodies ----------------------------------------------------------------------
COUNT_BODY = """\
rows = db.rows("SELECT status FROM orders WHERE customer_id = ?", (customer_id,))
if not rows:
    raise ToolError(f"customer {customer_id!r} has no orders")
return {"orders": len(rows), "open": sum(r["status"] in ("pending", "processing") for r in rows)}"""


def _with_count_tool(body: str) -> tuple[Spec, ToolSpec]:
    spec = load_spec(SHOP)
    tool = ToolSpec(
        name="count_orders",
        pattern="custom",
        kind="read",
        description="Count a customer's orders and how many are still open.",
        arguments=[Argument(name="customer_id", description="The customer's id.")],
        body=body,
    )
    return spec.model_copy(update={"tools": [*spec.tools, tool]}), tool


def test_draft_tool_body_extracts_a_fenced_body_that_compiles_and_runs(
    endpoint, backend, tmp_path
) -> None:
    spec, tool = _with_count_tool("return {}")
    endpoint.bodies["count_orders"] = f"Here is the body:\n```python\n{COUNT_BODY}\n```\nDone."
    body = draft_tool_body(backend(), spec, tool)
    assert body == COUNT_BODY
    user = endpoint.requests[0]["messages"][1]["content"]
    assert "- customer_id: text - The customer's id." in user
    assert "- orders: order_id (text, primary key, like 'ORD00001')" in user
    assert "db.next_key" in endpoint.requests[0]["messages"][0]["content"]
    drafted = spec.model_copy(
        update={"tools": [*spec.tools[:-1], tool.model_copy(update={"body": body})]}
    )
    generate_package(drafted, tmp_path / "shop", tasks=50, verify=False)
    package = EnvPackage(tmp_path / "shop")
    db = Database(package.template)
    customer = db.value("SELECT customer_id FROM orders GROUP BY customer_id LIMIT 1")
    count = package.tools["count_orders"]
    result = count(db, **count.validate({"customer_id": customer}))
    expected = db.value("SELECT count(*) FROM orders WHERE customer_id = ?", (customer,))
    assert result["orders"] == expected > 0


def test_a_whole_function_is_reduced_to_its_body() -> None:
    reply = (
        "```python\ndef count_orders(db, customer_id):\n"
        '    """Count them."""\n' + "\n".join("    " + line for line in COUNT_BODY.splitlines())
    ) + "\n```"
    assert extract_body(reply, "count_orders") == COUNT_BODY
    assert extract_body("return 1") == "return 1"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("import os\nreturn os.listdir('.')", "imports a module"),
        ("from subprocess import run\nreturn run(['ls'])", "imports a module"),
        ("return open('/etc/passwd').read()", "uses open"),
        ("return eval(customer_id)", "uses eval"),
        ("return db.conn.execute('DELETE FROM orders')", "db.conn, which is not the tool API"),
        ("return db.rows(\"PRAGMA table_info('orders')\")", "database-level SQL"),
        ("return ().__class__.__subclasses__()", "touches __class__"),
        ("db.rows('SELECT 1')", "returns nothing"),
        ("return {'a': }", "does not parse"),
    ],
)
def test_unsafe_or_broken_bodies_are_rejected(endpoint, backend, body: str, problem: str) -> None:
    spec, tool = _with_count_tool("return {}")
    endpoint.bodies["count_orders"] = f"```python\n{body}\n```"
    with pytest.raises(LLMError, match=re.escape(problem)):
        draft_tool_body(backend(), spec, tool)


def test_an_argument_may_share_a_forbidden_name() -> None:
    tool = ToolSpec(
        name="list_open",
        pattern="custom",
        description="Orders by whether they are open.",
        arguments=[Argument(name="open", type="boolean")],
        body="return []",
    )
    body = "return db.rows('SELECT * FROM orders WHERE (status = ?) = ?', ('pending', open))"
    assert check_tool_body(tool, body) == body


# ----- gaps ------------------------------------------------------------------------------------
def test_fill_gaps_fills_what_validates_and_leaves_the_rest(endpoint, backend) -> None:
    spec = load_spec(SHOP)
    review = [
        "entities.returns.describe: no human-readable column; rows are described by their key",
        "entities.customers.describe: check it",
        "entities.order_items.describe: no human-readable column",
        "intents.order_total: only one held-out wording",
        "policy: no rule is stated in the source's descriptions; the policy is empty",
        "tools.refund: dropped: no entity to map it to",
    ]
    spec = spec.model_copy(update={"policy": [], "needs_review": review})
    spec = Spec.model_validate(spec.model_dump())
    describe = "the {reason|words} return I requested on {requested_at|date}"
    endpoint.gaps = {
        "entities.returns.describe": json.dumps({"entities": {"returns": {"describe": describe}}}),
        "entities.customers.describe": '{"entities": {"customers": {"describe": "{customer_id}"}}}',
        "entities.order_items.describe": "Sorry, I cannot help with that.",
        "intents.order_total": "```json\n"
        + json.dumps(
            {
                "intents": {
                    "order_total": {
                        "templates": [
                            "Could you tell me what {describe} cost me altogether?",
                            "Run get_order and tell me the total of {describe}.",
                            "What is the {total} of my order?",
                        ],
                        "held_out": ["What did {describe} come to, all in all?"],
                    }
                }
            }
        )
        + "\n```",
        "policy": json.dumps(
            {
                "policy": [
                    {"id": "verify_identity", "text": "Confirm the customer's email first."},
                    {"id": "Not An Id", "text": "Dropped: the id is not an identifier."},
                ]
            }
        ),
    }
    filled_spec, filled = fill_gaps(backend(), spec)
    assert filled_spec.entity("returns").describe == describe
    assert filled_spec.entity("customers").describe == "{name}"
    assert filled_spec.entity("order_items").describe == ""
    intent = next(i for i in filled_spec.intents if i.id == "order_total")
    before = next(i for i in spec.intents if i.id == "order_total")
    assert intent.templates == [
        *before.templates,
        "Could you tell me what {describe} cost me altogether?",
    ]
    assert intent.held_out == [*before.held_out, "What did {describe} come to, all in all?"]
    assert [(r.id, r.text, r.tool, r.forbids) for r in filled_spec.policy] == [
        ("verify_identity", "Confirm the customer's email first.", None, None)
    ]
    assert filled_spec.needs_review == [review[1], review[2], review[5]]
    assert [line.split(":")[0] for line in filled] == [
        "entities.returns.describe",
        "intents.order_total",
        "policy",
    ]
    assert len(endpoint.requests) == 5  # the dropped tool is not asked about
    assert spec.needs_review == review  # the input spec is untouched


def test_generate_with_an_llm_rewords_instructions_that_pass_the_checks(
    endpoint, backend, tmp_path
) -> None:
    from envfactory_gym.checker import check_package
    from envfactory_gym.generators.emit import generate_package

    endpoint.reword_all = True
    spec = Path(__file__).resolve().parent.parent / "envs" / "shop" / "spec.yaml"
    report = generate_package(spec, tmp_path / "shop", tasks=50, verify=False, llm=backend())
    package = EnvPackage(tmp_path / "shop")
    reworded = [t for t in package.tasks if t.instruction.endswith("Thanks a lot for your help.")]
    assert len(reworded) > 25
    assert len(endpoint.requests) >= len(reworded)
    assert check_package(package).ok
    assert report.tasks == len(package.tasks)
