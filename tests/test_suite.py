"""The shipped suite: breadth a user can count on, held by every package in the registry."""

from __future__ import annotations

from collections import Counter

import pytest

import envfactory_gym
from envfactory_gym.database import quote_name, user_tables
from envfactory_gym.package import load_package
from envfactory_gym.registry import package_name

PACKAGES = {env_id: load_package(package_name(env_id)) for env_id in envfactory_gym.ENV_IDS}
KINDS = {"read", "write", "multi_write", "refusal"}


def test_at_least_100_packages_in_at_least_7_domains_of_at_least_5() -> None:
    domains = Counter(p.config.domain for p in PACKAGES.values())
    assert len(PACKAGES) >= 100, f"{len(PACKAGES)} packages"
    assert len(domains) >= 7, domains
    assert min(domains.values()) >= 5, domains


@pytest.mark.parametrize("env_id", sorted(PACKAGES))
def test_every_package_is_big_enough_to_train_on(env_id: str) -> None:
    package = PACKAGES[env_id]
    tools = package.tools.values()
    assert len(package.tools) >= 6 and sum(t.kind == "write" for t in tools) >= 2
    assert len(package.tasks) >= 50
    assert {t.kind for t in package.tasks} >= KINDS or package.config.members
    assert {t.split for t in package.tasks} == {"train", "test"}
    rules = [line for line in package.policy.splitlines() if line.startswith("- ")]
    assert len(rules) >= 3, "a policy with at least 3 rules an agent can break"
    rows = sum(
        conn.execute(f"SELECT count(*) FROM {quote_name(table)}").fetchone()[0]
        for conn in package.member_templates().values()
        for table in user_tables(conn)
    )
    assert rows >= 500, f"{rows} rows: too few for search to matter"


def test_generated_tasks_test_on_held_out_templates() -> None:
    """A generated package's test tasks are phrased with templates its train tasks never use:
    every test instruction differs from every train instruction."""
    for package in PACKAGES.values():
        if not (package.folder / "spec.yaml").is_file():
            continue
        train = {t.instruction for t in package.tasks_for("train")}
        assert not train & {t.instruction for t in package.tasks_for("test")}, package.name
