"""Third-party backends written outside the project, installed through the ``perfkit.backends`` entry point.

A small distribution (its own ``pyproject.toml``) is built and installed with pip into a temporary
directory (``pip install --no-deps --no-build-isolation --target``: no network, nothing installed
globally); every command runs in a subprocess with that directory on ``PYTHONPATH``. One plugin is
good; the others break in every way a plugin can: an import error, a malformed class, a name that
does not match its entry point, an option that cannot be spelled, a runner with stage names of its
own, a raising constructor, a raising availability check. Each broken one must be reported with its
reason, and the others must keep working.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from importlib.metadata import EntryPoint, distributions
from pathlib import Path

import pytest

from perfkit import registry
from perfkit.store import load_runs, result_files

_COMMON = '''
import numpy as np
from perfkit.interface import Backend, VocoderRunner


class PassRunner(VocoderRunner):
    """Computes nothing: every stage hands its input on."""

    def upload_codes(self, codes):
        return np.asarray(codes)

    def run_stage(self, stage, x, state):
        return x


class Base(Backend):
    option_choices = {"mode": ("plain", "other")}

    def to_host(self, x):
        return np.asarray(x)

    def load_vocoder(self, model):
        return PassRunner(model.config)
'''

PLUGINS = {
    "common.py": _COMMON,
    "good.py": "from .common import Base\n\nclass Good(Base):\n    name = 'extgood'\n",
    "importerror.py": "import perfkit_plugin_missing_dependency  # noqa: F401\n",
    "malformed.py": ("from perfkit.interface import Backend\n\n"
                     "class Malformed(Backend):\n    name = 'extmalformed'\n"),
    "wrongname.py": "from .common import Base\n\nclass WrongName(Base):\n    name = 'somethingelse'\n",
    "badoption.py": ("from .common import Base\n\n"
                     "class BadOption(Base):\n    name = 'extoption'\n"
                     "    option_choices = {'mode': ('a,b',)}\n"),
    "badstages.py": textwrap.dedent('''
        from .common import Base, PassRunner

        class OwnStages(PassRunner):
            @property
            def stages(self):
                return ("rvq_decode", "my_secret_stage")

        class BadStages(Base):
            name = "extstages"

            def load_vocoder(self, model):
                return OwnStages(model.config)
    '''),
    "raising.py": textwrap.dedent('''
        from .common import Base

        class Raising(Base):
            name = "extctor"

            def __init__(self, **options):
                raise RuntimeError("constructor exploded")
    '''),
    "checkraises.py": textwrap.dedent('''
        from .common import Base

        class CheckRaises(Base):
            name = "extcheck"

            @classmethod
            def check_available(cls, options):
                raise KeyError("licence server")
    '''),
}

ENTRY_POINTS = {
    "extgood": "pkplugins.good:Good",
    "extimport": "pkplugins.importerror:Backend",
    "extmalformed": "pkplugins.malformed:Malformed",
    "extname": "pkplugins.wrongname:WrongName",
    "extoption": "pkplugins.badoption:BadOption",
    "extstages": "pkplugins.badstages:BadStages",
    "extctor": "pkplugins.raising:Raising",
    "extcheck": "pkplugins.checkraises:CheckRaises",
}

QUICK = ("--suite", "stages", "--preset", "tiny", "--frames", "1", "--min-samples", "3", "--max-samples", "3",
         "--round-samples", "3", "--warmup", "0", "--no-memory", "--timeout", "60")


def write_distribution(root: Path) -> Path:
    """The plugin distribution's source tree: ``pyproject.toml`` and the ``pkplugins`` package."""
    src = root / "src"
    package = src / "pkplugins"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name, text in PLUGINS.items():
        (package / name).write_text(text)
    eps = "\n".join(f'{name} = "{target}"' for name, target in ENTRY_POINTS.items())
    (src / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "perfkit-test-plugins"
        version = "0.1"

        [tool.setuptools]
        packages = ["pkplugins"]

        [project.entry-points."perfkit.backends"]
    ''') + eps + "\n")
    return src


@dataclass(frozen=True)
class Installed:
    """Where pip put the plugin distribution, and an environment with it on ``PYTHONPATH``."""

    target: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The plugin distribution installed into a temporary directory (nothing global)."""
    root = tmp_path_factory.mktemp("plugins")
    target = root / "site"
    src = write_distribution(root)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--disable-pip-version-check", "--target", str(target), str(src)],
                         capture_output=True, text=True, timeout=300, cwd=root)
    if pip.returncode != 0:
        pytest.skip(f"cannot build the plugin distribution here: {pip.stderr.strip()[-300:]}")
    assert list(target.glob("perfkit_test_plugins-0.1.dist-info/entry_points.txt"))
    env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}
    env["PYTHONPATH"] = os.pathsep.join([str(target), *filter(None, [os.environ.get("PYTHONPATH")])])
    return Installed(target, env)


@pytest.fixture
def plugin_env(installed: Installed) -> dict[str, str]:
    return installed.env


@pytest.fixture
def in_process(installed: Installed, monkeypatch: pytest.MonkeyPatch):
    """The registry of this process sees the installed plugins (from their dist-info) and NumPy only,
    so listing does not import every in-tree backend; undone afterwards."""
    found = [ep for dist in distributions(path=[str(installed.target)]) for ep in dist.entry_points
             if ep.group == registry.GROUP]
    assert sorted(ep.name for ep in found) == sorted(ENTRY_POINTS)
    numpy = EntryPoint("numpy", "perfkit.backends.numpy:NumpyBackend", registry.GROUP)
    monkeypatch.syspath_prepend(str(installed.target))
    monkeypatch.setattr(registry, "_entry_points", lambda: sorted([numpy, *found], key=lambda ep: ep.name))
    monkeypatch.setenv("COLUMNS", "400")
    registry.clear_cache()
    yield
    registry.clear_cache()
    for name in [m for m in sys.modules if m == "pkplugins" or m.startswith("pkplugins.")]:
        del sys.modules[name]


def perfkit(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perfkit.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def rows(text: str) -> dict[str, str]:
    """``perfkit backends`` table rows keyed by backend name (the variant cell up to ``:``); a folded
    continuation line (empty first cell) belongs to the row above."""
    out: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.startswith(("│", "┃", "|")):
            continue
        cells = [c.strip() for c in line.strip("│┃|").split("│")]
        if cells[0]:
            key = cells[0].split(":", 1)[0]
        if key:
            out[key] = out.get(key, "") + " ".join(cells) + "\n"
    return out


def test_backends_lists_broken_plugins_with_their_reasons(cli, in_process):
    code, out, err = cli("backends")
    assert code == 0, err
    table = rows(out)
    assert "yes" in table["extgood"] and "mode=plain" in table["extgood"]
    assert "yes" in table["numpy"]  # the in-tree backends are unaffected
    expected = {
        "extimport": "cannot import: No module named 'perfkit_plugin_missing_dependency'",
        "extmalformed": "does not implement load_vocoder, to_host",
        "extname": "declares name 'somethingelse', registered as 'extname'",
        "extoption": "option 'mode' has value(s) ['a,b'] that a variant cannot spell",
        "extcheck": "KeyError: 'licence server'",
    }
    for name, reason in expected.items():
        assert "no" in table[name].split() and reason in table[name], (name, table[name])


def test_run_with_misbehaving_plugins_finishes_the_others(plugin_env, tmp_path):
    backends = [a for name in ("extgood", "extctor", "extstages", "extcheck", "extimport", "extmalformed",
                               "numpy")
                for a in ("--backend", name)]
    done = perfkit(plugin_env, "run", *backends, *QUICK, "--results", tmp_path)
    assert done.returncode == 1, done.stderr  # some measurements failed; the run itself completed
    assert "Traceback" not in done.stderr
    [path] = result_files(tmp_path)
    [run] = load_runs(path).runs
    assert run.status == "complete"
    by = {c.backend: c for c in run.cases}
    assert by["extgood"].status == by["numpy"].status == "ok"
    assert all(s.n == 3 for name in ("extgood", "numpy") for s in by[name].series)
    ctor, stages = by["extctor"].failures[0], by["extstages"].failures[0]
    assert by["extctor"].status == "failed" and ctor.phase == "setup" and "constructor exploded" in ctor.message
    assert by["extstages"].status == "failed" and stages.phase == "setup"
    assert "not the canonical stages" in stages.message and "unknown my_secret_stage" in stages.message
    assert by["extstages"].series == ()  # no foreign stage name reaches the results
    skipped = {s.variant: s.reason for s in run.skipped}
    assert set(skipped) == {"extcheck", "extimport", "extmalformed"}
    assert "check_available failed: KeyError" in skipped["extcheck"]
    assert "cannot import" in skipped["extimport"] and "does not implement" in skipped["extmalformed"]
    for name in ("extcheck", "extimport", "extmalformed"):
        assert f"skipped {name}:" in done.stderr


def test_a_single_broken_plugin_is_a_one_line_error(plugin_env, tmp_path):
    done = perfkit(plugin_env, "vocode", "--backend", "extctor", "--preset", "tiny", "--frames", "1",
                   "--out", tmp_path / "o.wav")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "constructor failed: RuntimeError" in done.stderr
    done = perfkit(plugin_env, "vocode", "--backend", "extstages", "--preset", "tiny", "--frames", "1",
                   "--out", tmp_path / "o.wav")
    assert done.returncode == 2 and "not the canonical stages" in done.stderr
    assert not (tmp_path / "o.wav").exists()
    good = perfkit(plugin_env, "vocode", "--backend", "extgood", "--preset", "tiny", "--frames", "1",
                   "--out", tmp_path / "o.npy")
    assert good.returncode == 0, good.stderr
