"""The wheel installs into a fresh virtual environment under the envfactory_gym namespace only."""

import fnmatch
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from envfactory_gym.package import read_config

ROOT = Path(__file__).resolve().parent.parent
# folder in the repository -> its place in the wheel (setup.py maps the same folders)
MAPPED = {
    "envfactory_gym": "envfactory_gym",
    "envs": "envfactory_gym/envs",
    "agents": "envfactory_gym/agents",
    "training": "envfactory_gym/training",
    "generators": "envfactory_gym/generators",
}
ENV_FILES = ("env.toml", "tasks.jsonl", "schema.sql", "policy.md", "seed.py", "tools.py")
COMPOSITE_FILES = ("env.toml", "tasks.jsonl", "policy.md", "link.py")
ENV_DATA = ("*.toml", "*.sql", "*.md", "*.jsonl", "*.yaml", "*.json", "*.csv")
HEAVY = ("torch", "transformers", "trl", "accelerate", "peft", "datasets")


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    """Run `cmd`; on failure, the assertion shows its stdout and stderr."""
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {done.returncode}\n"
        f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
    )
    return done


def _skip_artifacts(folder: str, names: list[str]) -> set[str]:
    """Leave out what earlier builds and runs left behind: stale build/ and *.egg-info (its
    SOURCES.txt) would otherwise put files into the wheel that the config no longer selects."""
    skip = {n for n in names if n.startswith(".") or n == "__pycache__"}
    if Path(folder) == ROOT:
        skip |= {n for n in names if n in {"build", "dist", "runs", "outputs"}}
        skip |= {n for n in names if n.endswith(".egg-info") or (ROOT / n / "pyvenv.cfg").exists()}
    return skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a clean copy of the working tree."""
    src = tmp_path_factory.mktemp("src") / "envfactory-gym"
    shutil.copytree(ROOT, src, ignore=_skip_artifacts)
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, src])
    return next(out.glob("envfactory_gym-*.whl"))


def test_wheel_holds_only_the_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"envfactory_gym"}
    for data in ("schema.sql", "tasks.jsonl", "policy.md", "env.toml", "seed.py"):
        assert f"envfactory_gym/envs/airline/{data}" in names
    assert "envfactory_gym/agents/oracle.py" in names


def source_packages() -> dict[Path, str]:
    """Every folder with an __init__.py under the mapped folders -> its folder in the wheel."""
    found = {}
    for folder, target in MAPPED.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            if not any(p == "__pycache__" or p.startswith(".") for p in rel.parts):
                found[init.parent] = "/".join((target, *rel.parts))
    return found


def test_every_env_and_package_is_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    envs = sorted(p.parent for p in (ROOT / "envs").glob("*/env.toml"))
    assert ROOT / "envs" / "airline" in envs
    missing = [
        f"envs/{env.name}/{f}"
        for env in envs
        for f in (COMPOSITE_FILES if read_config(env).members else ENV_FILES)
        if f"envfactory_gym/envs/{env.name}/{f}" not in names
    ]
    packages = source_packages()
    assert set(packages.values()) >= {"envfactory_gym", "envfactory_gym/envs/airline"}
    for folder, target in packages.items():
        patterns = ("*.py", *ENV_DATA) if folder.is_relative_to(ROOT / "envs") else ("*.py",)
        missing += [
            str(path.relative_to(ROOT))
            for path in sorted(folder.iterdir())
            if path.is_file()
            and any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)
            and f"{target}/{path.name}" not in names
        ]
    assert not missing, f"in the tree but not in {wheel.name}: {sorted(set(missing))}"


class _Builder(venv.EnvBuilder):
    def post_setup(self, context):
        self.context = context


def test_gym_make_from_wheel_in_fresh_venv(wheel, tmp_path):
    builder = _Builder(with_pip=True)
    builder.create(tmp_path / "venv")
    python, scripts = builder.context.env_exe, Path(builder.context.bin_path)
    # Install before the running environment is visible, or pip would see its envfactory-gym.
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel])
    # The wheel's dependencies come from the environment running this test (not the base
    # interpreter's, which system_site_packages would expose). Plain path lines: the .pth files
    # in those folders, such as an editable install of envfactory-gym, are not processed.
    paths = sysconfig.get_paths()
    ours = [paths["purelib"], paths["platlib"], *site.getsitepackages()]
    ours += [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    (Path(purelib.stdout.strip()) / "_running_env.pth").write_text(
        "".join(f"{p}\n" for p in dict.fromkeys(ours) if os.path.isdir(p))
    )
    code = (
        "import gymnasium as gym, envfactory_gym, sys\n"
        "assert envfactory_gym.__file__.startswith(sys.prefix), envfactory_gym.__file__\n"
        "env = gym.make('envfactory/Airline-v0'); obs, info = env.reset(seed=0)\n"
        "obs, r, term, trunc, info = env.step('bye')\n"
        "import importlib.util as u\n"
        "print(term, [m for m in ('envs', 'agents', 'training') if u.find_spec(m)])\n"
    )
    done = run([python, "-c", code], cwd=tmp_path)
    assert done.stdout.split("\n")[0] == "True []"
    cli = run([scripts / "envfactory", "list"], cwd=tmp_path)
    assert "envfactory/Airline-v0" in cli.stdout


def test_core_runs_without_torch(tmp_path):
    """Making an env and evaluating the oracle (as `envfactory eval` does) imports no ML stack."""
    code = (
        "import sys\n"
        "import gymnasium as gym\n"
        "import envfactory_gym, envfactory_gym.cli\n"
        "from envfactory_gym.agents import make_agent\n"
        "from envfactory_gym.evaluation import evaluate\n"
        "env = gym.make('envfactory/Airline-v0'); env.reset(seed=0); env.step('bye')\n"
        "report = evaluate('envfactory/Airline-v0', make_agent('oracle'), 'oracle',\n"
        "                  split='test', progress=False)\n"
        "assert report['tasks'] > 0 and report['success_rate'] == 1.0, report\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    done = run([sys.executable, "-c", code], cwd=tmp_path)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
