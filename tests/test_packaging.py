"""The wheel installs into a fresh virtual environment under the envfactory_gym namespace only."""

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
    )
    return next(out.glob("envfactory_gym-*.whl"))


def test_wheel_holds_only_the_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"envfactory_gym"}
    for data in ("schema.sql", "tasks.jsonl", "policy.md", "env.toml", "seed.py"):
        assert f"envfactory_gym/envs/airline/{data}" in names
    assert "envfactory_gym/agents/oracle.py" in names


def test_gym_make_from_wheel_in_fresh_venv(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
    )
    code = (
        "import gymnasium as gym, envfactory_gym, sys\n"
        "assert envfactory_gym.__file__.startswith(sys.prefix), envfactory_gym.__file__\n"
        "env = gym.make('envfactory/Airline-v0'); obs, info = env.reset(seed=0)\n"
        "obs, r, term, trunc, info = env.step('bye')\n"
        "import importlib.util as u\n"
        "print(term, [m for m in ('envs', 'agents', 'training') if u.find_spec(m)])\n"
    )
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert done.stdout.split("\n")[0] == "True []"
    cli = subprocess.run([str(env_dir / "bin" / "envfactory"), "list"], capture_output=True,
                         text=True, cwd=tmp_path, check=True)  # fmt: skip
    assert "envfactory/Airline-v0" in cli.stdout
