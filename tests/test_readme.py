"""The README's Python examples run as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_python_snippet_runs(index, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SNIPPETS[index]], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr


def test_readme_has_exactly_two_setup_commands():
    setup = README.split("## Set up and go", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n([^\n]*)\n```", setup)
    assert len(commands) == 2
    evaluate, test = commands
    assert evaluate.startswith("pip install -e . && envfactory eval ")
    assert "torch" not in evaluate, "the evaluation must not install torch"
    assert test.startswith("pip install torch==2.13.0 && ")  # CPU torch before the train extra
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert test in ci


def test_readme_envs_table_is_the_registry():
    import envfactory_gym
    from envfactory_gym.cli import markdown_suite

    start = "<!-- envs table: made by `envfactory list --markdown`; tests/test_readme.py keeps it "
    block = README.split(start, 1)[1].split("-->\n", 1)[1].split("\n<!-- end of envs table -->")[0]
    assert block == markdown_suite(envfactory_gym.ENV_IDS), "run `envfactory list --markdown`"
