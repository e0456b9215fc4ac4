"""Another source tree of perfkit (a git worktree of another commit), for workers that run *its* code.

``perfkit compare --base-source DIR`` measures every variant twice in one engine run: once from this
tree and once from ``DIR``. A worker for ``DIR`` is the same ``python -m perfkit.run.worker``, started
with an environment that makes every ``perfkit…`` import (``perfkit``, ``perfkit.backends``,
``perfkit.suites`` and everything under them) come from ``DIR``:

- the packages are mapped the way ``DIR``'s ``pyproject.toml`` maps them
  (``[tool.setuptools.package-dir]``: ``perfkit.backends`` lives in ``backends/``), so putting ``DIR``
  on ``PYTHONPATH`` would not do — the editable install of *this* tree would still answer for
  ``perfkit.backends`` and ``perfkit.suites``;
- a ``sitecustomize`` module (written once into a temporary directory, first on the worker's
  ``PYTHONPATH``) puts a finder for that map first on ``sys.meta_path`` before anything is imported.
  It shadows any other ``sitecustomize`` in the worker (harmless there). Every Python process the
  worker's environment reaches (a parity child too) imports from ``DIR``.

The engine checks it: a worker that knows the ``hello`` request says where its modules came from.
:meth:`SourceTree.source_hash` hashes ``DIR``'s files the way
:func:`perfkit.measure.environment.source_hash` hashes this tree's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..measure.environment import git_state

#: The environment variable that carries the package map to the worker's ``sitecustomize``.
MAP_VAR = "PERFKIT_SOURCE_MAP"

SITECUSTOMIZE = '''\
"""perfkit: import the packages named in $PERFKIT_SOURCE_MAP from another source tree (perfkit.run.source_tree)."""
import importlib.machinery
import importlib.util
import json
import os
import sys


def _perfkit_source_finder(mapping):
    class SourceTreeFinder:
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name in mapping:
                init = os.path.join(mapping[name], "__init__.py")
                if not os.path.isfile(init):
                    raise ModuleNotFoundError(f"no package {name!r} in the source tree ({init})", name=name)
                return importlib.util.spec_from_file_location(name, init,
                                                              submodule_search_locations=[mapping[name]])
            parent = name.rpartition(".")[0]
            if parent in mapping:  # never let another installation answer for a mapped package's child
                spec = importlib.machinery.PathFinder.find_spec(name, [mapping[parent]])
                if spec is None:
                    raise ModuleNotFoundError(f"No module named {name!r} in the source tree", name=name)
                return spec
            return None

    return SourceTreeFinder


_map = json.loads(os.environ.get("PERFKIT_SOURCE_MAP") or "{}")
if _map:
    sys.meta_path.insert(0, _perfkit_source_finder(_map))
'''


def package_map(root: Path) -> dict[str, str]:
    """Package -> directory (absolute) for the tree at ``root``, from its ``pyproject.toml``
    (``[tool.setuptools.package-dir]``); ``perfkit`` -> ``root/perfkit`` when it says nothing."""
    mapping = {"perfkit": "perfkit"}
    try:
        doc = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        dirs = doc.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        dirs = {}
    if isinstance(dirs, dict):
        mapping.update({str(k): str(v) for k, v in dirs.items() if k and str(k).split(".")[0] == "perfkit"})
    return {name: str((root / rel).resolve()) for name, rel in mapping.items()}


def sitecustomize_dir() -> str:
    """A directory holding only :data:`SITECUSTOMIZE` as ``sitecustomize.py`` (named by its content's
    hash, under the temporary directory; written atomically when missing or changed, checked at every
    call: a temporary-file cleaner may have removed it)."""
    digest = hashlib.sha256(SITECUSTOMIZE.encode()).hexdigest()[:12]
    where = Path(tempfile.gettempdir()) / f"perfkit-source-site-{digest}-{os.getuid()}"
    target = where / "sitecustomize.py"
    if not target.is_file() or target.read_text(encoding="utf-8") != SITECUSTOMIZE:
        where.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=where, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(SITECUSTOMIZE)
        os.replace(tmp, target)
    return str(where)


@dataclass(frozen=True)
class SourceTree:
    """The tree at ``root`` and its package map (see the module docstring)."""

    root: Path
    packages: Mapping[str, str] = field(default_factory=dict)

    def worker_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with this tree's ``sitecustomize`` first on ``PYTHONPATH`` and the package map set."""
        out = dict(env)
        rest = out.get("PYTHONPATH", "")
        out["PYTHONPATH"] = sitecustomize_dir() + (os.pathsep + rest if rest else "")
        out[MAP_VAR] = json.dumps(dict(self.packages))
        return out

    def module_path(self, module: str) -> tuple[Path, bool] | None:
        """``(file, is_package)`` of ``module`` in this tree, found without importing it; ``None`` if absent."""
        prefix = max((p for p in self.packages if module == p or module.startswith(p + ".")), key=len,
                     default=None)
        if prefix is None:
            return None
        base = Path(self.packages[prefix]).joinpath(*module[len(prefix):].lstrip(".").split(".")) \
            if module != prefix else Path(self.packages[prefix])
        if (base / "__init__.py").is_file():
            return base / "__init__.py", True
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py"), False
        return None

    def owns(self, module: str, file: str) -> bool:
        """Whether ``file`` (a module's ``__file__``) lies in this tree where ``module`` should come from."""
        found = self.module_path(module)
        return found is not None and Path(file).resolve() == found[0].resolve()

    def source_hash(self, module: str) -> str | None:
        """Like :func:`perfkit.measure.environment.source_hash`, for ``module`` as this tree has it."""
        found = self.module_path(module)
        if found is None:
            return None
        origin, package = found
        root = origin.parent
        files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts) if package else [origin]
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.relative_to(root).as_posix().encode() + b"\0")
            digest.update(f.read_bytes())
        return digest.hexdigest()[:16]

    @contextmanager
    def environ(self) -> Iterator[None]:
        """``os.environ`` as :meth:`worker_env` makes it, while the block runs: for suites that start
        their own child processes (the parity suite), which inherit it."""
        saved = {k: os.environ.get(k) for k in ("PYTHONPATH", MAP_VAR)}
        os.environ.update(self.worker_env(os.environ))
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def git_state(self) -> tuple[str | None, bool | None]:
        """``(commit, dirty)`` of this tree."""
        return git_state(self.root)


@functools.cache
def source_tree(root: str) -> SourceTree:
    """The tree at ``root``; :class:`InputError` unless it holds a ``perfkit`` package."""
    path = Path(root).resolve()
    packages = package_map(path)
    if not (Path(packages["perfkit"]) / "__init__.py").is_file():
        raise InputError(f"{root}: not a perfkit source tree (no {Path(packages['perfkit']) / '__init__.py'})")
    return SourceTree(path, packages)
