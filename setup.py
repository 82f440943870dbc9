"""Map the top-level folders into the `envfactory_gym` namespace; the metadata is in pyproject.toml.

setuptools' `packages.find` cannot put several folders under one namespace, so the packages are
computed here: every folder with an `__init__.py` under a mapped root, plus each env package's
data files. A root that does not exist yet (e.g. `generators/`) is skipped.
"""

import os
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
NAMESPACE = "envfactory_gym"
# installed package name -> folder next to this file
ROOTS = {
    NAMESPACE: "envfactory_gym",
    f"{NAMESPACE}.envs": "envs",
    f"{NAMESPACE}.agents": "agents",
    f"{NAMESPACE}.training": "training",
    f"{NAMESPACE}.generators": "generators",
}
ENVS = f"{NAMESPACE}.envs"
ENV_DATA = ["*.toml", "*.sql", "*.md", "*.jsonl", "*.yaml", "*.json", "*.csv"]


def find(name: str, folder: str) -> list[str]:
    """`name` and every package below `folder`, named under `name`."""
    found = []
    for path, dirs, files in os.walk(HERE / folder):
        dirs[:] = sorted(d for d in dirs if d.isidentifier() and d != "__pycache__")
        if "__init__.py" in files:
            rel = Path(path).relative_to(HERE / folder).parts
            found.append(".".join((name, *rel)))
    return found


packages = []
package_dir = {}
for name, folder in ROOTS.items():
    if (HERE / folder / "__init__.py").is_file():
        package_dir[name] = folder
        packages += find(name, folder)

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={p: ENV_DATA for p in packages if p == ENVS or p.startswith(ENVS + ".")},
)
