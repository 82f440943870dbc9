"""The factory: a spec compiles to the same bytes every time, atomically, into a package whose
code is ruff clean, whose tasks pass the per-task checker and the grounding checker."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from envfactory_gym.checker import check_package
from envfactory_gym.cli import main
from envfactory_gym.generators.emit import GenerationError, generate_package
from envfactory_gym.generators.graph import build_graph, producers, tool_edges
from envfactory_gym.generators.grounding import GroundingError, check_task, check_task_set
from envfactory_gym.generators.spec import SpecError, load_spec
from envfactory_gym.package import EnvPackage
from envfactory_gym.registry import registrable

SHOP = Path(__file__).resolve().parent.parent / "envs" / "shop" / "spec.yaml"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "shop"
    generate_package(SHOP, out, tasks=60, verify=False)
    return out


def test_same_spec_same_bytes(shop: Path, tmp_path: Path) -> None:
    again = tmp_path / "shop"
    generate_package(SHOP, again, tasks=60, verify=False)
    names = sorted(p.name for p in shop.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (shop / name).read_bytes() == (again / name).read_bytes(), name


def test_package_has_every_file_and_the_spec_verbatim(shop: Path) -> None:
    for name in ("env.toml", "schema.sql", "seed.py", "tools.py", "policy.md", "tasks.jsonl"):
        assert (shop / name).is_file(), name
    assert (shop / "spec.yaml").read_bytes() == SHOP.read_bytes()
    assert (shop / "orders.csv").read_text().count("\n") > 300  # search has to matter


def test_failed_generation_leaves_nothing(tmp_path: Path) -> None:
    data = yaml.safe_load(SHOP.read_text())
    for intent in data["intents"]:
        intent["where"] = "0"  # no row fits any intent: too few tasks
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(data))
    out = tmp_path / "out" / "shop"
    with pytest.raises(GenerationError, match="tasks could be synthesized"):
        generate_package(broken, out, tasks=60, verify=False)
    assert list((tmp_path / "out").iterdir()) == []
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(GenerationError):
        generate_package(broken, out, tasks=60, verify=False)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["shop"]
    assert (out / "keep.txt").read_text() == "mine"


def test_generated_code_is_ruff_clean(shop: Path) -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    config = str(Path(__file__).resolve().parent.parent / "pyproject.toml")
    files = [str(shop / "tools.py"), str(shop / "seed.py")]
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run([ruff, *command, "--config", config, *files], capture_output=True)
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_generated_tasks_pass_the_checker_and_mix_kinds(shop: Path) -> None:
    package = EnvPackage(shop)
    report = check_package(package)
    assert report.ok, [p.model_dump() for p in report.problems]
    assert len(package.tasks) >= 50
    kinds = {task.kind for task in package.tasks}
    assert kinds == {"read", "write", "multi_write", "refusal"}
    assert check_task_set(package.tasks) == []
    refusals = [t for t in package.tasks if t.kind == "refusal"]
    assert all(not t.expected_diff for t in refusals)


def test_test_split_is_written_from_held_out_templates(shop: Path) -> None:
    spec = load_spec(SHOP)
    package = EnvPackage(shop)
    train_only = [t.split(" {")[0] for i in spec.intents for t in i.templates]
    for task in package.tasks_for("test"):
        assert task.kind == "refusal" or not any(
            stem and stem in task.instruction for stem in train_only if len(stem) > 12
        ), task.instruction


def test_grounding_rejects_tool_names_leaked_ids_and_unsourced_arguments(shop: Path) -> None:
    package = EnvPackage(shop)
    task = next(t for t in package.tasks if t.kind == "write" and len(t.calls) >= 3)
    check_task(package, task)  # the real one passes
    with pytest.raises(GroundingError, match="names a tool"):
        check_task(package, task.model_copy(update={"instruction": task.instruction + " Use "
                                                    f"{task.calls[-1].name} for it."}))  # fmt: skip
    order_id = next(v for v in task.calls[-1].arguments.values() if str(v).startswith("ORD"))
    leaked = task.instruction + f" It is order {order_id}."
    with pytest.raises(GroundingError, match="leaks an id"):
        check_task(package, task.model_copy(update={"instruction": leaked}))
    email = task.calls[0].arguments["email"]
    hidden = task.model_copy(
        update={
            "instruction": task.instruction.replace(email, "my usual address"),
            "user_facts": {k: v for k, v in task.user_facts.items() if v != email},
        }
    )
    with pytest.raises(GroundingError, match="ungrounded argument: find_customer.email"):
        check_task(package, hidden)


def test_tool_graph_links_outputs_to_inputs() -> None:
    graph = build_graph(load_spec(SHOP))
    assert set(producers(graph, "orders.order_id")) >= {"list_orders", "get_order"}
    edges = tool_edges(graph)
    assert ("find_customer", "list_orders", "customers.customer_id") in edges
    assert ("list_orders", "cancel_order", "orders.order_id") in edges


def test_cli_generate_graph_and_tasks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "shop"
    assert main(["generate", str(SHOP), "--out", str(out), "--tasks", "50", "--no-verify"]) == 0
    assert main(["graph", str(out), "--json", str(tmp_path / "g.json")]) == 0
    graph = json.loads((tmp_path / "g.json").read_text())
    assert graph["summary"]["tools"] == 10
    assert main(["synthesize", str(out), "--n", "120"]) == 0
    assert len((out / "tasks.jsonl").read_text().splitlines()) == 120
    assert "wrote 120 tasks" in capsys.readouterr().out


def test_unverified_generated_packages_are_not_registered(shop: Path, tmp_path: Path) -> None:
    assert not registrable(shop)  # generated without verification
    copy = tmp_path / "shop"
    shutil.copytree(shop, copy)
    (copy / "verified.json").write_text("{}")
    assert registrable(copy)
    assert registrable(Path(__file__).resolve().parent.parent / "envs" / "airline")


def test_bad_spec_names_the_field(tmp_path: Path) -> None:
    data = yaml.safe_load(SHOP.read_text())
    data["tools"][0]["entity"] = "shoppers"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="find_customer: unknown entity 'shoppers'"):
        load_spec(path)
    data = yaml.safe_load(SHOP.read_text())
    data["tools"][8]["fields"] = ["order_id"]  # request_return without its NOT NULL reason
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="returns.reason is NOT NULL without a default"):
        load_spec(path)
    path.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_generate_with_verification_marks_the_package_registrable(tmp_path: Path) -> None:
    out = tmp_path / "shop"
    report = generate_package(SHOP, out, tasks=50, verify=True)
    assert report.verified is True
    assert registrable(out)


def test_shipped_generated_packages_match_what_was_verified() -> None:
    from envfactory_gym.generators.emit import VERIFIED, package_hash

    envs = Path(__file__).resolve().parent.parent / "envs"
    for folder in sorted(p for p in envs.iterdir() if (p / "spec.yaml").is_file()):
        marker = json.loads((folder / VERIFIED).read_text())
        assert marker["hash"] == package_hash(folder), (
            f"{folder.name} changed since it was verified: run `envfactory verify envs/"
            f"{folder.name}` (or regenerate it)"
        )


def test_a_template_placeholder_that_cannot_be_filled_is_a_spec_error(tmp_path: Path) -> None:
    data = yaml.safe_load(SHOP.read_text())
    data["intents"][0]["templates"].append("Is {describe|shouting} here yet?")
    data["intents"][1]["templates"].append("Send it to {new.address}.")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"\{describe\|shouting\} is not a placeholder") as caught:
        load_spec(path)
    assert "{new.address} has no generator" in str(caught.value)


def test_cli_import_then_generate_unattended(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fixture = Path(__file__).resolve().parent / "fixtures" / "importers" / "payments_mcp.json"
    spec = tmp_path / "payments.yaml"
    assert main(["import", "mcp", str(fixture), "--out", str(spec)]) == 0
    printed = capsys.readouterr().out
    assert "needs review:" in printed
    assert spec.read_text().startswith("#")  # the review list heads the file
    out = tmp_path / "payments"
    assert main(["generate", str(spec), "--out", str(out), "--tasks", "50"]) == 0
    assert registrable(out)
    printed = capsys.readouterr().out
    assert "inferred transfer_funds: transfer" in printed
    marker = json.loads((out / "verified.json").read_text())
    assert marker["tools_inferred"] and marker["defaulted"]  # what passed, and what to check


def test_synthesis_knobs_set_the_mix_and_the_chain_length(shop: Path, tmp_path: Path) -> None:
    copy = tmp_path / "shop"
    shutil.copytree(shop, copy)
    assert main(["synthesize", str(copy), "--n", "40", "--mix", "read=1", "--max-calls", "3"]) == 0
    tasks = EnvPackage(copy).tasks
    assert {task.kind for task in tasks} == {"read"}
    assert max(len(task.calls) for task in tasks) <= 3
    assert main(["synthesize", str(copy), "--n", "40", "--mix", "refusal=1,write=1"]) == 0
    kinds = {task.kind for task in EnvPackage(copy).tasks}
    assert kinds == {"refusal", "write"}
    assert main(["synthesize", str(copy), "--mix", "read"]) == 2  # a share is missing: clear error


def test_tasks_on_airline_adds_generated_tasks_beside_the_hand_written(tmp_path: Path) -> None:
    airline = Path(__file__).resolve().parent.parent / "envs" / "airline"
    copy = tmp_path / "airline"
    shutil.copytree(airline, copy)
    hand_written = [t.model_dump() for t in EnvPackage(airline).tasks]
    assert main(["synthesize", str(copy), "--n", "30"]) == 0
    package = EnvPackage(copy)
    generated = [t for t in package.tasks if t.id.startswith("airline-gen-")]
    assert [t.model_dump() for t in package.tasks[: len(hand_written)]] == hand_written
    assert len(generated) >= 15 and {t.kind for t in generated} == {"write", "refusal"}
    assert check_package(package).ok
    assert main(["synthesize", str(copy), "--n", "30"]) == 0  # a rerun replaces the generated ones
    assert len(EnvPackage(copy).tasks) == len(hand_written) + len(generated)


@pytest.fixture(scope="module")
def extended_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Shop spec plus what it does not use: a create tool with two foreign keys into
    different tables, a read answered from a list, an update that stamps a fixed value, and a
    sequence-seeded column."""
    data = yaml.safe_load(SHOP.read_text())
    data["entities"].append({
        "name": "reviews", "singular": "review", "key": "review_id", "id_prefix": "REV",
        "count": 40, "columns": [
            {"name": "review_id"},
            {"name": "customer_id", "references": "customers"},
            {"name": "product_id", "references": "products"},
            {"name": "rating", "type": "integer", "min": 1, "max": 5,
             "seed": {"kind": "int", "min": 1, "max": 5}},
            {"name": "number", "type": "integer", "default": 0,
             "seed": {"kind": "sequence", "start": 100}},
        ],
    })  # fmt: skip
    data["entities"][0]["columns"].append({"name": "phone_changed", "nullable": True})
    data["tools"] += [
        {"name": "write_review", "pattern": "create", "entity": "reviews",
         "fields": ["customer_id", "product_id", "rating"], "description": "Review a product."},
    ]  # fmt: skip
    phone = next(t for t in data["tools"] if t["name"] == "update_phone")
    phone["set"] = {"phone_changed": "today"}
    data["intents"] += [
        {"id": "review", "kind": "write", "tool": "write_review",
         "change": {"rating": {"kind": "int", "min": 1, "max": 5}},
         "templates": ["I'd like to give the {product.name} {new.rating} stars.",
                       "Please post a {new.rating}-star review of the {product.name} for me."],
         "held_out": ["Rate the {product.name} {new.rating} out of 5 from me, please."]},
        {"id": "order_total_listed", "kind": "read", "tool": "list_orders", "ask": ["total"],
         "templates": ["How much was {describe}?", "What did {describe} cost me?"],
         "held_out": ["Remind me of the total for {describe}."]},
    ]  # fmt: skip
    path = tmp_path_factory.mktemp("spec") / "shop.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = path.parent / "shop"
    generate_package(path, out, tasks=80, verify=False)
    return out


def test_extended_patterns_make_tasks_that_pass_the_checker(extended_shop: Path) -> None:
    package = EnvPackage(extended_shop)
    assert check_package(package).ok
    reviews = [t for t in package.tasks if t.kind == "write" and "review" in t.id]
    assert reviews and all(t.calls[-1].arguments["product_id"].startswith("PRD") for t in reviews)
    listed = [t for t in package.tasks if "order_total_listed" in t.id]
    assert listed and all(t.calls[-1].name == "list_orders" for t in listed)
    numbers = package.template.execute("SELECT number FROM reviews ORDER BY review_id").fetchall()
    assert [n for (n,) in numbers[:3]] == [100, 101, 102]


def test_update_stamps_its_fixed_values(extended_shop: Path) -> None:
    from envfactory_gym.database import Database

    package = EnvPackage(extended_shop)
    db = Database(package.template)
    package.tools["update_phone"](db, customer_id="CUS00001", phone="+1-555-0100")
    row = db.get("customers", "customer_id", "CUS00001")
    assert (row["phone"], row["phone_changed"]) == ("+1-555-0100", "2025-06-02")


def _shop_variant(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(SHOP.read_text())
    change(data)
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_an_entity_named_by_a_python_keyword_still_compiles(tmp_path: Path) -> None:
    def add_get_return(data: dict) -> None:  # `returns` is singular `return`, a keyword
        data["tools"].append(
            {"name": "get_return", "pattern": "get", "entity": "returns",
             "description": "Get a return request by its id."}
        )  # fmt: skip

    out = tmp_path / "shop"
    generate_package(_shop_variant(tmp_path, add_get_return), out, tasks=60, verify=False)
    package = EnvPackage(out)
    db = package.new_database()
    first = db.value("SELECT return_id FROM returns ORDER BY return_id")
    assert package.tools["get_return"](db, return_id=first)["return_id"] == first


def test_seed_sql_may_delete_parents_first_and_a_failing_statement_is_named(
    tmp_path: Path,
) -> None:
    def delete_an_order(data: dict) -> None:
        data["seed_sql"] += [
            "CREATE TEMP TABLE gone AS SELECT min(order_id) AS order_id FROM orders",
            "DELETE FROM orders WHERE order_id IN (SELECT order_id FROM gone)",
            "DELETE FROM returns WHERE order_id IN (SELECT order_id FROM gone)",
            "DELETE FROM order_items WHERE order_id IN (SELECT order_id FROM gone)",
        ]

    generate_package(_shop_variant(tmp_path, delete_an_order), tmp_path / "a", tasks=60,
                     verify=False)  # fmt: skip

    def break_a_statement(data: dict) -> None:
        data["seed_sql"].append("UPDATE no_such_table SET x = 1")

    count = len(yaml.safe_load(SHOP.read_text())["seed_sql"]) + 1
    with pytest.raises(GenerationError, match=f"seed_sql statement {count} fails.*no_such_table"):
        generate_package(_shop_variant(tmp_path, break_a_statement), tmp_path / "b", verify=False)

    def orphan_orders(data: dict) -> None:
        data["seed_sql"].append(
            "DELETE FROM orders WHERE order_id = (SELECT min(order_id) FROM orders)"
        )

    with pytest.raises(GenerationError, match="rows point at missing rows"):
        generate_package(_shop_variant(tmp_path, orphan_orders), tmp_path / "c", verify=False)


def test_an_optional_create_field_must_be_nullable_or_defaulted(tmp_path: Path) -> None:
    data = yaml.safe_load(SHOP.read_text())
    create = next(t for t in data["tools"] if t.get("pattern") == "create")
    entity = next(e for e in data["entities"] if e["name"] == create["entity"])
    column = next(
        c for c in entity["columns"]
        if c["name"] in create.get("fields", []) and not c.get("references")
        and not c.get("nullable") and "default" not in c
    )  # fmt: skip
    create["fields"].remove(column["name"])
    create.setdefault("optional", []).append(column["name"])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SpecError, match=f"{column['name']} is NOT NULL without a default, so it "
                       "cannot be optional"):  # fmt: skip
        load_spec(path)


def test_an_instruction_keeps_a_leading_address_as_typed() -> None:
    from envfactory_gym.generators.synth import _capitalized

    assert _capitalized("mira.patel@example.com wants in.") == "mira.patel@example.com wants in."
    assert _capitalized("the blue lamp, please.") == "The blue lamp, please."
