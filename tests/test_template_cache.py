"""Built templates are cached on disk by content hash: a second process loads instead of seeding,
a changed seed is rebuilt, and a cache that cannot be written is skipped."""

import shutil
import subprocess
import sys

import pytest

from envfactory_gym.database import table_digest, user_tables
from envfactory_gym.package import EnvPackage, builtin_envs_dir


def digests(conn):
    return {table: table_digest(conn, table) for table in user_tables(conn)}


@pytest.fixture
def airline_copy(tmp_path):
    folder = tmp_path / "pkg" / "airline"
    shutil.copytree(builtin_envs_dir() / "airline", folder, ignore=shutil.ignore_patterns("__py*"))
    return folder


def test_a_second_load_reads_the_cache_and_matches(airline_copy, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ENVFACTORY_CACHE", str(cache))
    built = EnvPackage(airline_copy).template
    (cached,) = cache.glob("airline-*.db")
    assert cached.stat().st_size > 1_000_000
    loaded = EnvPackage(airline_copy)
    loaded_template = loaded.template
    assert digests(loaded_template) == digests(built)
    names = {r[0] for r in loaded_template.execute("SELECT name FROM sqlite_master")}
    assert "_changes" in names and any(n.startswith("_log_") for n in names)
    assert loaded_template.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_a_changed_seed_is_rebuilt(airline_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVFACTORY_CACHE", str(tmp_path / "cache"))
    before = EnvPackage(airline_copy).content_hash()
    seed = airline_copy / "seed.py"
    seed.write_text(seed.read_text().replace("SEED = 20240515", "SEED = 7"))
    assert EnvPackage(airline_copy).content_hash() != before
    (airline_copy / "tasks.jsonl").write_text("")  # tasks and policy do not shape the database
    assert EnvPackage(airline_copy).content_hash() != before


def test_cache_off_or_unwritable_still_works(airline_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVFACTORY_CACHE", "off")
    assert EnvPackage(airline_copy).template.execute("SELECT count(*) FROM users").fetchone()[0]
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("ENVFACTORY_CACHE", str(blocked / "cache"))
    assert EnvPackage(airline_copy).template.execute("SELECT count(*) FROM users").fetchone()[0]


def test_second_process_skips_the_seed(airline_copy, tmp_path):
    code = (
        "import sys, envfactory_gym.package as p\n"
        "seeded = []\n"
        "real = p.build_template\n"
        "p.build_template = lambda *a: seeded.append(1) or real(*a)\n"
        "p.EnvPackage(p.Path(sys.argv[1])).template\n"
        "print(len(seeded))\n"
    )
    env = {"ENVFACTORY_CACHE": str(tmp_path / "cache"), "PATH": ""}
    runs = [
        subprocess.run([sys.executable, "-c", code, str(airline_copy)], capture_output=True,
                       text=True, env=env, check=True).stdout.strip()
        for _ in range(2)
    ]  # fmt: skip
    assert runs == ["1", "0"]
