"""The package keeps the layout docs/architecture.md describes: import rules, module sizes, no jobs in widgets.

The import table is read from docs/architecture.md, so the document and the
code cannot drift apart: change the table when a package gains a dependency.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "napari_resolve"
GUI = {"qtpy", "napari", "magicgui", "superqt", "vispy", "PyQt5", "PyQt6", "PySide2", "PySide6"}
HEAVY = {"scipy", "skimage", "torch", "matplotlib", "psygnal", "zarr", "tifffile", "dask"} | GUI
#: Longest core module, in lines, unless its docstring says it is one algorithm.
MAX_LINES = 650


def _rules() -> dict[str, tuple[set[str], set[str]]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("<!-- import-rules -->", 1)[1].split("<!-- /import-rules -->", 1)[0]
    rules = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        ours = {c.strip() for c in cells[1].split(",") if c.strip()}
        heavy = {c.strip() for c in cells[2].split(",") if c.strip()}
        rules[cells[0]] = (ours, heavy)
    return rules


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        package = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        yield package, rel, ast.parse(path.read_text()), path


def _imports(nodes):
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "napari_resolve":
                yield from (f"napari_resolve.{a.name}" for a in node.names)
            else:
                yield node.module


def _top_level(tree):
    """Imports that run when the module is imported (module body, also under if/try), not inside functions."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def test_every_package_is_in_the_table():
    rules = _rules()
    packages = {package for package, *_ in _modules()}
    assert packages <= set(rules), f"add {sorted(packages - set(rules))} to docs/architecture.md"


def test_module_level_imports_follow_the_table():
    rules = _rules()
    wrong = []
    for package, rel, tree, _ in _modules():
        ours, heavy = rules[package]
        for name in _imports(_top_level(tree)):
            top = name.split(".")[0]
            if top == "napari_resolve":
                sub = name.split(".")[1] if "." in name else "__init__"
                if "every package" not in ours and sub not in ours and sub != "__version__":
                    wrong.append(f"{rel} imports napari_resolve.{sub}")
            elif top in HEAVY and top not in heavy and not (package == "_qt" and "every package" in ours
                                                           and top in heavy):
                wrong.append(f"{rel} imports {top} at module level")
    assert not wrong, "\n".join(wrong)


def test_core_never_imports_a_gui_toolkit_even_inside_functions():
    wrong = []
    for package, rel, tree, _ in _modules():
        if package == "_qt":
            continue
        for name in _imports(ast.walk(tree)):
            if name.split(".")[0] in GUI or name.startswith("napari_resolve._qt"):
                wrong.append(f"{rel} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_core_modules_are_small_or_say_they_are_one_algorithm():
    long = []
    for package, rel, tree, path in _modules():
        if package == "_qt":
            continue
        lines = len(path.read_text().splitlines())
        doc = ast.get_docstring(tree) or ""
        if lines > MAX_LINES and "one algorithm" not in doc.lower():
            long.append(f"{rel}: {lines} lines")
    assert not long, "\n".join(long)


@pytest.mark.parametrize("path", sorted((PACKAGE / "_qt").glob("*_widget.py")), ids=lambda p: p.name)
def test_widgets_define_no_job_or_metric(path):
    tree = ast.parse(path.read_text())
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    jobs = [n for n in names if re.match(r"(iter|plan|run|measure|compute)_", n)]
    assert not jobs, f"{path.name} defines {jobs}: jobs and metrics belong to the core"
