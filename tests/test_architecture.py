"""Layers import downward only (DESIGN.md section 3, STYLE.md rule 1).

    interfaces    cli  api  ui  client  (and top-level modules: shipyard/__init__.py, demo)
    loop          loop                              integrations (scale-out, lazily imported)
    capabilities  data  train  evaluate  registry  serve  monitor  security
    foundation    store
                  core                              imports nothing from shipyard but core

Capabilities import each other only along the allowed arrows. Every `shipyard.*` import counts,
also those inside functions, under `if TYPE_CHECKING:`, relative ones and
`importlib.import_module("shipyard....")`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "shipyard"

CAPABILITIES = {"data", "train", "evaluate", "registry", "serve", "monitor", "security"}
INTERFACES = {"cli", "api", "ui", "client", "demo", "__top__"}
RANK: dict[str, int] = {
    "core": 0,
    "store": 1,
    **dict.fromkeys(CAPABILITIES, 2),
    "loop": 3,
    "integrations": 3,
    **dict.fromkeys(INTERFACES, 4),
}
ARROWS = {
    ("train", "data"),
    ("train", "evaluate"),
    ("registry", "evaluate"),
    ("serve", "registry"),
    ("serve", "monitor"),
    ("serve", "security"),
    ("monitor", "data"),
}


@dataclass(frozen=True)
class Import:
    target: str  # absolute dotted name, e.g. shipyard.store.audit
    line: int
    lazy: bool  # inside a function body


def package_of(module: str, top_level_modules: frozenset[str]) -> str:
    """The layer package a dotted `shipyard.*` name belongs to ('__top__' for top-level files)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in top_level_modules:
        return "__top__"
    return parts[1]


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.depth = 0
        self.found: list[Import] = []

    def _add(self, target: str, node: ast.AST) -> None:
        if target == "shipyard" or target.startswith("shipyard."):
            self.found.append(Import(target, getattr(node, "lineno", 0), self.depth > 0))

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = _resolve(self.module, self.is_package, node.level, node.module)
        else:
            base = node.module or ""
        for alias in node.names:
            # `from shipyard import cli` imports the subpackage, not the top-level module.
            self._add(f"{base}.{alias.name}" if base == "shipyard" else base, node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("import_module", "__import__") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                self._add(arg.value, node)
        self.generic_visit(node)


def imports_of(module: str, source: str, *, is_package: bool = False) -> list[Import]:
    collector = _Collector(module, is_package)
    collector.visit(ast.parse(source))
    return collector.found


def rule_broken(source_pkg: str, target_pkg: str, lazy: bool) -> str | None:
    """Why an import from one layer package to another is not allowed, or None."""
    if source_pkg == target_pkg:
        return None
    for pkg in (source_pkg, target_pkg):
        if pkg not in RANK:
            return f"shipyard.{pkg} has no layer; add it to RANK in tests/test_architecture.py"
    if source_pkg == "core":
        return "core imports nothing from shipyard outside core"
    if target_pkg == "integrations" and source_pkg not in INTERFACES:
        # Optional extras (ray, redis, ...): the core must install and import without them.
        return None if lazy else "integrations are imported lazily, inside a function"
    if RANK[target_pkg] > RANK[source_pkg]:
        return (
            f"upward import: {source_pkg} (layer {RANK[source_pkg]}) -> "
            f"{target_pkg} (layer {RANK[target_pkg]})"
        )
    both_capabilities = source_pkg in CAPABILITIES and target_pkg in CAPABILITIES
    if both_capabilities and (source_pkg, target_pkg) not in ARROWS:
        return f"capability {source_pkg} may not import capability {target_pkg}"
    return None


def check(
    module: str,
    source: str,
    *,
    is_package: bool = False,
    top_level_modules: frozenset[str] = frozenset(),
) -> list[str]:
    """Every broken rule in one module's source, as `module:line: target: reason`."""
    own = package_of(module, top_level_modules)
    problems = []
    for imp in imports_of(module, source, is_package=is_package):
        reason = rule_broken(own, package_of(imp.target, top_level_modules), imp.lazy)
        if reason:
            problems.append(f"{module}:{imp.line}: imports {imp.target}: {reason}")
    return problems


# -- the real source tree -----------------------------------------------------------------------


def _modules() -> list[tuple[str, Path, bool]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        is_package = rel.name == "__init__"
        parts = rel.parts[:-1] if is_package else rel.parts
        found.append((".".join(parts), path, is_package))
    return found


MODULES = _modules()
TOP_LEVEL = frozenset(p.stem for p in SRC.glob("*.py") if p.stem != "__init__")


def test_the_walk_finds_the_source_tree() -> None:
    names = {m for m, _, _ in MODULES}
    assert {"shipyard", "shipyard.core.errors", "shipyard.store.db"} <= names
    assert "shipyard.store.migrations.env" in names
    tokens = SRC / "security" / "tokens.py"
    targets = {i.target for i in imports_of("shipyard.security.tokens", tokens.read_text())}
    assert {"shipyard.store", "shipyard.store.workspace", "shipyard.core.errors"} <= targets


def test_every_package_has_a_layer() -> None:
    unknown = {package_of(m, TOP_LEVEL) for m, _, _ in MODULES} - set(RANK)
    assert not unknown, f"packages without a layer: {sorted(unknown)}; add them to RANK"


def test_core_imports_nothing_outside_core() -> None:
    outside = [
        f"{module}:{imp.line}: {imp.target}"
        for module, path, is_package in MODULES
        if module.startswith("shipyard.core")
        for imp in imports_of(module, path.read_text(), is_package=is_package)
        if not imp.target.startswith("shipyard.core")
    ]
    assert outside == []


def test_layers_import_downward_only() -> None:
    problems = [
        problem
        for module, path, is_package in MODULES
        for problem in check(
            module, path.read_text(), is_package=is_package, top_level_modules=TOP_LEVEL
        )
    ]
    assert problems == [], "\n".join(problems)


# The client speaks HTTP to the server and shares only its wire schemas: it imports core and
# shipyard.api.schemas (the modules, which import only core), never the rest of api, the
# server's capabilities, store, loop, cli or the top-level package.
CLIENT_MAY_IMPORT = ("shipyard.core", "shipyard.client", "shipyard.api.schemas")


def client_rule_broken(source: str, target: str) -> str | None:
    if not (source == "shipyard.client" or source.startswith("shipyard.client.")):
        return None
    if any(target == ok or target.startswith(ok + ".") for ok in CLIENT_MAY_IMPORT):
        return None
    return "the client imports only shipyard.core and shipyard.api.schemas (it talks HTTP)"


def test_the_client_imports_only_core_and_the_wire_schemas() -> None:
    problems = [
        f"{module}:{imp.line}: imports {imp.target}: {reason}"
        for module, path, is_package in MODULES
        for imp in imports_of(module, path.read_text(), is_package=is_package)
        if (reason := client_rule_broken(module, imp.target))
    ]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("shipyard.core.errors", True),
        ("shipyard.api.schemas.runs", True),
        ("shipyard.api.schemas", True),
        ("shipyard.api", False),
        ("shipyard.api.routes.runs", False),
        ("shipyard.api.schemasx", False),
        ("shipyard.serve.app", False),
        ("shipyard.store.workspace", False),
        ("shipyard.registry", False),
        ("shipyard.train.tracking", False),
        ("shipyard", False),
    ],
)
def test_client_rule(target: str, allowed: bool) -> None:
    assert (client_rule_broken("shipyard.client.resources", target) is None) is allowed
    assert client_rule_broken("shipyard.cli.app", target) is None


# -- the checker catches what it should ---------------------------------------------------------

BAD = [
    ("shipyard.core.errors", "from shipyard.store import db\n", "core imports nothing"),
    ("shipyard.core.records", "import shipyard\n", "core imports nothing"),
    ("shipyard.core.spec", "def f():\n    from shipyard.security import tokens\n", "core"),
    ("shipyard.core.x", "from ..store import db\n", "core imports nothing"),
    ("shipyard.store.db", "from shipyard.data.ingest import ingest\n", "upward import"),
    ("shipyard.store.db", "def f():\n    import shipyard.serve.app\n", "upward import"),
    ("shipyard.store.db", "from shipyard import cli\n", "upward import"),
    (
        "shipyard.store.db",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from shipyard.loop import policy\n",
        "upward import",
    ),
    ("shipyard.data.ingest", "from shipyard.train import fit\n", "may not import capability"),
    ("shipyard.serve.app", "from shipyard.evaluate import gates\n", "may not import capability"),
    ("shipyard.security.tokens", "from shipyard.serve import app\n", "may not import capability"),
    ("shipyard.serve.app", "from shipyard.api.app import create_app\n", "upward import"),
    ("shipyard.monitor.drift", "from ..registry import models\n", "may not import capability"),
    ("shipyard.data.ingest", "from shipyard.loop import retrain\n", "upward import"),
    (
        "shipyard.loop.retrain",
        "import importlib\nimportlib.import_module('shipyard.api.app')\n",
        "upward import",
    ),
    ("shipyard.integrations.ray", "from shipyard.cli import app\n", "upward import"),
    ("shipyard.train.search", "from shipyard.integrations import ray\n", "imported lazily"),
    ("shipyard.data.ingest", "from shipyard.nowhere import x\n", "has no layer"),
]


@pytest.mark.parametrize(("module", "source", "reason"), BAD, ids=[f"{m}" for m, _, _ in BAD])
def test_checker_catches_a_violation(module: str, source: str, reason: str) -> None:
    problems = check(module, source)
    assert len(problems) == 1, problems
    assert reason in problems[0]
    assert problems[0].startswith(f"{module}:")


GOOD = [
    ("shipyard.core.spec", "from shipyard.core.errors import SpecError\nfrom . import records\n"),
    ("shipyard.store.audit", "from shipyard.core.records import AuditEvent\nimport yaml\n"),
    ("shipyard.train.fit", "from shipyard.data import ingest\nfrom shipyard.evaluate import m\n"),
    ("shipyard.serve.app", "from shipyard.registry import r\nfrom shipyard.security import t\n"),
    ("shipyard.monitor.drift", "from ..data import profile\nfrom ..store import audit\n"),
    ("shipyard.train.search", "def run():\n    from shipyard.integrations import ray\n"),
    ("shipyard.integrations.ray", "from shipyard.loop import x\nfrom shipyard.train import y\n"),
    ("shipyard.cli.app", "from shipyard.integrations import ray\nfrom shipyard.api import a\n"),
    ("shipyard", "from shipyard.cli import app\nfrom . import data\n"),
    ("shipyard.demo", "from shipyard.data import ingest\n"),
]


@pytest.mark.parametrize(("module", "source"), GOOD, ids=[m for m, _ in GOOD])
def test_checker_allows_downward_imports(module: str, source: str) -> None:
    assert check(module, source, is_package=module in ("shipyard", "shipyard.demo")) == []


def test_relative_imports_resolve_against_the_package() -> None:
    found = imports_of("shipyard.data.ingest", "from .. import store\nfrom .sources import x\n")
    assert [i.target for i in found] == ["shipyard.store", "shipyard.data.sources"]
    found = imports_of("shipyard.data", "from . import ingest\n", is_package=True)
    assert [i.target for i in found] == ["shipyard.data"]


def test_top_level_modules_are_interfaces() -> None:
    top = frozenset({"demo"})
    assert package_of("shipyard.demo", top) == "__top__"
    assert check("shipyard.core.x", "import shipyard.demo\n", top_level_modules=top)
    assert check("shipyard.demo", "from shipyard.cli import app\n", top_level_modules=top) == []
