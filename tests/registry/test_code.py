"""The project's own modules in a model bundle: which are stored, and loading them back."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import sklearn
from sklearn.linear_model import LogisticRegression

from shipyard.registry.code import importing_from, project_code


def test_installed_packages_are_never_stored_even_inside_the_project_directory() -> None:
    # A virtualenv inside the project directory puts scikit-learn's files under it.
    venv_like = Path(sklearn.__file__).resolve().parents[2]
    data = pickle.dumps(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))

    assert project_code(data, venv_like) == {}


def test_a_project_module_and_the_project_modules_it_imports_are_stored_and_loaded(
    tmp_path: Path,
) -> None:
    name = f"own_{tmp_path.name.replace('-', '_')}"
    helper = f"{name}_helper"
    (tmp_path / f"{helper}.py").write_text("FACTOR = 3\n")
    (tmp_path / f"{name}.py").write_text(
        f"from {helper} import FACTOR\n\n\nclass Scaled:\n"
        "    def __init__(self, x):\n        self.x = x * FACTOR\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        module = __import__(name)
        data = pickle.dumps(module.Scaled(2))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name)
        sys.modules.pop(helper)

    code = project_code_from(data, tmp_path, name)
    sys.modules.pop(name)  # as in a server that never imported them
    sys.modules.pop(helper)
    assert sorted(code) == sorted([name, helper])
    assert code[name][0] == f"code/{name}.py"

    for file in tmp_path.iterdir():
        file.unlink()  # loading uses the stored source, not the files
    try:
        with importing_from(code):
            loaded = pickle.loads(data)
        assert loaded.x == 6
        assert sys.modules[name].__file__ == f"<model bundle>/code/{name}.py"
        assert not any(type(f).__name__ == "_BundleFinder" for f in sys.meta_path)
    finally:
        sys.modules.pop(name, None)
        sys.modules.pop(helper, None)


def project_code_from(data: bytes, root: Path, name: str) -> dict[str, tuple[str, bytes]]:
    """`project_code` needs the modules imported, as they are when a model is registered."""
    sys.path.insert(0, str(root))
    try:
        __import__(name)
        return project_code(data, root)
    finally:
        sys.path.remove(str(root))
