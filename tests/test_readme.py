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
    commands = re.findall(r"```bash\n(pip install torch==2\.13\.0 && [^\n]*)\n```", README)
    assert len(commands) == 2
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert commands[1] in ci
