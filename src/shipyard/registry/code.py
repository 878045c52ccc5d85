"""The project's own modules that a pickled model needs, carried in its bundle.

A model whose estimator is a class of the project (`mymodels.MyEstimator`, a file next to
shipyard.yaml) is a pickle that refers to that module by name. The bundle stores the source of
every module under the project directory that the pickle refers to, with the project modules
those import, so the model loads wherever it is served: from another working directory, on
another machine, or after the file changed (the model runs the code it was trained with).

    >>> parts = project_code(pickle_bytes, root=Path("."))   # [("code/mymodels.py", b"...")]
    >>> with importing_from({"mymodels": ("code/mymodels.py", b"...")}):
    ...     model = pickle.loads(pickle_bytes)

The source is one more part of the signed bundle: it is executed only after the manifest's
signature and the part's sha256 verify, exactly like the pickle itself.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import io
import pickle
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

PREFIX = "code/"


class _Recorder(pickle.Unpickler):
    """Reads a pickle back only to note the modules its classes and functions come from."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.modules: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.modules.add(module)
        return super().find_class(module, name)


def project_code(data: bytes, root: Path) -> dict[str, tuple[str, bytes]]:
    """`{module: (part name, source)}` for the modules under `root` that pickle `data` needs.

    Followed: the modules the pickle names, their parent packages, and the project modules
    those import (their import statements, and names bound to a module or to a class or
    function defined in one). Modules outside `root` (installed packages, the standard
    library) are left out.
    """
    recorder = _Recorder(data)
    recorder.load()
    base = root.resolve()
    todo = sorted(recorder.modules)
    found: dict[str, tuple[str, bytes]] = {}
    while todo:
        name = todo.pop()
        module = sys.modules.get(name)
        if name in found or module is None:
            continue
        path = _file_under(module, base)
        if path is None:
            continue
        source = path.read_bytes()
        found[name] = (PREFIX + path.relative_to(base).as_posix(), source)
        parent = name.rpartition(".")[0]
        todo += [parent] if parent else []
        todo += _imports(source, module)
        for value in vars(module).values():
            ref = value.__name__ if isinstance(value, ModuleType) else _module_of(value)
            if ref and ref not in found:
                todo.append(ref)
    return found


def _imports(source: bytes, module: ModuleType) -> list[str]:
    """The modules `source` imports (`import a.b`, `from a import b`, relative forms), each with
    the submodule a `from` may name; names that are not modules are skipped by the caller."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    package = module.__package__ or ""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names += [target, *(f"{target}.{alias.name}" for alias in node.names)]
    return [n for n in names if n]


def _module_of(value: Any) -> str | None:
    ref = getattr(value, "__module__", None) if isinstance(value, type) or callable(value) else None
    return ref if isinstance(ref, str) else None


def _file_under(module: ModuleType, base: Path) -> Path | None:
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py"):
        return None
    path = Path(file).resolve()
    if not path.is_relative_to(base) or _installed(path):
        return None
    return path


def _installed(path: Path) -> bool:
    """Part of an installation (a virtualenv kept inside the project directory is common):
    installed packages are never the project's code, and must never be shadowed by a copy."""
    if {"site-packages", "dist-packages"} & set(path.parts):
        return True
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.exec_prefix, sys.base_prefix)}
    return any(path.is_relative_to(prefix) for prefix in prefixes)


class _BundleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports the bundle's modules from their stored source."""

    def __init__(self, modules: Mapping[str, tuple[str, bytes]]) -> None:
        self.modules = modules

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        part, _ = self.modules[fullname]
        package = PurePosixPath(part).name == "__init__.py"
        spec = importlib.util.spec_from_loader(fullname, self, origin=part, is_package=package)
        if spec is not None and package:
            spec.submodule_search_locations = []
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        part, source = self.modules[module.__name__]
        module.__file__ = f"<model bundle>/{part}"
        exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102


@contextmanager
def importing_from(modules: Mapping[str, tuple[str, bytes]]) -> Iterator[None]:
    """Inside the block, `import NAME` of a bundled module runs the bundle's source.

    The bundle's finder goes first (the model runs the code it was trained with, not whatever
    file has that name today) and is removed after the block. A module already imported is
    not imported again, as with any import.
    """
    if not modules:
        yield
        return
    finder = _BundleFinder(modules)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
