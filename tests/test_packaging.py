"""Packaging: the core installs without the optional packages, and works without them.

How this is checked without downloading torch into a fresh venv (a multi-GB step CI cannot afford per
run): (1) pyproject.toml, which is what `pip install .` reads, is parsed and its core dependencies must
not name fastapi, uvicorn, matplotlib or vadersentiment, while the extras bring each of them; (2) in
a fresh interpreter whose import system refuses those packages (a ``sys.meta_path`` blocker, i.e. the
situation after `pip install serac-edit` with no extras), serac imports, `serac edit list` runs, and
the features that need an extra fail with one line naming it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from serac.extras import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OPTIONAL = ("fastapi", "uvicorn", "matplotlib", "vadersentiment")
# importable module -> distribution name on PyPI
DISTRIBUTIONS = {"fastapi": "fastapi", "uvicorn": "uvicorn", "matplotlib": "matplotlib", "vaderSentiment": "vadersentiment",
                 "psycopg": "psycopg"}


def names(requirements):
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_core_dependencies_exclude_the_optional_packages():
    assert names(PROJECT["dependencies"]) & set(OPTIONAL) == set()


def test_each_extra_brings_its_modules():
    extras = PROJECT["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        assert {DISTRIBUTIONS[m] for m in modules} <= names(extras[extra]), extra
    assert set(OPTIONAL) <= set().union(*(names(extras[e]) for e in EXTRAS))
    assert extras["all"] == [f"serac-edit[{','.join(EXTRAS)}]"]
    assert "ruff" in names(extras["test"])


def test_license_and_typing_marker_ship():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert PROJECT["license"] == "Apache-2.0"
    assert (ROOT / "serac" / "py.typed").exists()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["serac"]


_BLOCKED = (
    "import sys\n"
    "BLOCKED = {'fastapi', 'uvicorn', 'starlette', 'matplotlib', 'vaderSentiment'}\n"
    "class Blocker:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in BLOCKED:\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Blocker())\n"
)


def run_without_extras(code: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCKED + code, *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                                                      "HOME": tempfile.gettempdir()})


def test_the_blocker_blocks():
    proc = run_without_extras("import fastapi")
    assert proc.returncode == 1 and "No module named 'fastapi'" in proc.stderr


def test_core_library_and_store_cli_work_without_extras(tmp_path):
    store = tmp_path / "edits.db"
    code = (
        "import serac\n"
        "from serac import EditStore\n"
        f"EditStore({str(store)!r}).add_many([('q1', 'a1'), ('q2', 'a2')])\n"
        "from serac.cli import app\n"
        "app(prog_name='serac')\n"
    )
    proc = run_without_extras(code, "edit", "list", "--json", "--store", str(store))
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["target"] for line in proc.stdout.splitlines()] == ["a1", "a2"]


@pytest.mark.parametrize("argv, extra", [(("serve",), "server"), (("serve", "--port", "9"), "server")])
def test_commands_needing_an_extra_say_which(argv, extra):
    proc = run_without_extras("from serac.cli import app\napp(prog_name='serac')\n", *argv)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"pip install 'serac-edit[{extra}]'" in " ".join(proc.stderr.split())


def test_help_of_a_command_whose_extra_is_missing_names_the_extra():
    proc = run_without_extras("from serac.cli import app\napp(prog_name='serac')\n", "serve", "--help")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "pipinstall'serac-edit[server]'" in "".join(proc.stdout.split())  # help wraps at the hyphen


def test_help_still_lists_commands_whose_extra_is_missing():
    proc = run_without_extras("from serac.cli import app\napp(prog_name='serac')\n", "--help")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"serve\s+\(not installed\)", proc.stdout)


@pytest.mark.parametrize("code, extra", [
    ("import serac.server", "server"),
    ("from serac.eval.report import plot_run\nplot_run(None, 'x.png')", "eval"),
    ("from serac.train.artifacts import plot_losses\nplot_losses('x.png', 't', {})", "train"),
    ("from serac.tasks.sentiment.data import VaderJudge\nVaderJudge()", "tasks"),
])
def test_library_imports_name_the_extra(code, extra):
    wrapped = f"from serac.errors import MissingExtraError\ntry:\n    exec({code!r})\nexcept MissingExtraError as e:\n    print('MISSING', e)\n"
    proc = run_without_extras(wrapped)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("MISSING") and f"pip install 'serac-edit[{extra}]'" in proc.stdout


def test_trained_defaults_ship_small_and_load_as_an_artifact():
    from serac.deltas import is_delta_dir
    from serac.editor import DEFAULT_ARTIFACT, load_artifact_config

    files = [f for f in DEFAULT_ARTIFACT.rglob("*") if f.is_file() and "__pycache__" not in f.parts]
    assert sum(f.stat().st_size for f in files) <= 5 * 2**20  # issue 14: <= 5 MB in all, small enough for git
    config = load_artifact_config(DEFAULT_ARTIFACT)
    assert is_delta_dir(config.scope.encoder) and config.counterfactual.prompt == "trained"
    assert (Path(config.counterfactual.adapter) / "adapter_model.safetensors").is_file()
    assert config.scope.threshold > 0.5  # calibrated by serac train, not the untrained default
    # the wheel carries them: every shipped file matches a package-data pattern
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["serac"]
    for file in files:
        relative = file.relative_to(DEFAULT_ARTIFACT.parent)
        assert any(relative.match(p) for p in patterns), relative
