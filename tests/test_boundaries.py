"""The public interface between chapters: each chapter declares what it gives the next (__all__),
a chapter imports only names an earlier chapter exports, and no code outside a class reaches a
private name (obj._name) of another object."""
import ast
import glob
import importlib
import os

import pytest

from lesson_support import CHAPTERS   # the one list of chapters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVERY_FILE = sorted(glob.glob(os.path.join(ROOT, "*.py")) + glob.glob(os.path.join(ROOT, "tests", "*.py"))
                    + glob.glob(os.path.join(ROOT, "benchmarks", "*.py"))
                    + glob.glob(os.path.join(ROOT, "tools", "*.py")))


def parse(path):
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), path)


def imports_from_chapters(tree):
    """(module, name, line) for every `from <chapter> import name` in tree."""
    return [(node.module, alias.name, node.lineno) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module in CHAPTERS for alias in node.names]


def private_reaches(tree):
    """(line, text) of every obj._name whose obj is not self, cls or super()."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and getattr(owner.func, "id", "") == "super":
                continue
            found.append((node.lineno, ast.unparse(node)))
    return found


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_declares_what_it_exports_and_every_export_exists(chapter):
    module = importlib.import_module(chapter)
    assert isinstance(module.__all__, list) and module.__all__, f"{chapter} has no __all__"
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{chapter}.__all__ names what the chapter does not define: {missing}"
    assert not [name for name in module.__all__ if name.startswith("_")]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_chapter_imports_only_what_an_earlier_chapter_exports(chapter):
    later = CHAPTERS.index(chapter)
    for module, name, line in imports_from_chapters(parse(os.path.join(ROOT, f"{chapter}.py"))):
        assert CHAPTERS.index(module) < later, f"{chapter}.py:{line} imports a later chapter ({module})"
        exported = importlib.import_module(module).__all__
        assert name in exported, f"{chapter}.py:{line} imports {name} from {module}, which does not export it"


@pytest.mark.parametrize("path", EVERY_FILE, ids=lambda p: os.path.relpath(p, ROOT))
def test_nothing_outside_a_class_reaches_a_private_name(path):
    reaches = private_reaches(parse(path))
    assert not reaches, "private names reached from outside their class:\n" + "\n".join(
        f"  {os.path.relpath(path, ROOT)}:{line}: {text}" for line, text in reaches)


def names_used_from_support(tree):
    """(name, line) of every `support.name` and `from lesson_support import name` in tree."""
    used = [(node.attr, node.lineno) for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "support"]
    return used + [(alias.name, node.lineno) for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom) and node.module == "lesson_support"
                   for alias in node.names]


@pytest.mark.parametrize("path", EVERY_FILE, ids=lambda p: os.path.relpath(p, ROOT))
def test_what_a_file_uses_of_the_support_module_is_in_its_all(path):
    exported = importlib.import_module("lesson_support").__all__
    missing = [f"{name} (line {line})" for name, line in names_used_from_support(parse(path))
               if name not in exported]
    assert not missing, f"{os.path.relpath(path, ROOT)} uses names lesson_support.__all__ lacks: {missing}"


def test_the_boundary_checks_can_fail():
    tree = ast.parse("from rnn_scratch import _n_features, SimpleRNN\nx = model._params()\n"
                     "y = self._cache\nz = super()._init_layer(1)\n")
    assert [name for _, name, _ in imports_from_chapters(tree)] == ["_n_features", "SimpleRNN"]
    assert "_n_features" not in importlib.import_module("rnn_scratch").__all__
    assert [text for _, text in private_reaches(tree)] == ["model._params"]
    used = names_used_from_support(ast.parse("import lesson_support as support\n"
                                             "support.nonexistent(1)\n"
                                             "from lesson_support import format_table\n"))
    assert [name for name, _ in used] == ["nonexistent", "format_table"]


def test_importing_a_later_chapter_changes_no_earlier_one(tmp_path):
    # A class may grow across the cells of its own chapter (add_to_class), never across
    # chapters: importing a later chapter leaves every earlier chapter's classes, and its
    # module-level dicts (such as its registry of cells, CELLS), as they were.
    import subprocess
    import sys

    code = ("import importlib, inspect\n"
            f"chapters = {list(CHAPTERS)!r}\n"
            "def snapshot(names):\n"
            "    found = {}\n"
            "    for m in map(importlib.import_module, names):\n"
            "        for n, v in vars(m).items():\n"
            "            if inspect.isclass(v) and v.__module__ == m.__name__:\n"
            "                found.update({(m.__name__, n, k): a for k, a in vars(v).items()})\n"
            "            elif isinstance(v, dict) and not n.startswith('__'):\n"
            "                found[m.__name__, n] = [(k, id(a)) for k, a in v.items()]\n"
            "    return found\n"
            "taken = [snapshot(chapters[:i + 1]) for i in range(len(chapters))]\n"
            "same = all(snapshot(chapters[:i + 1]) == taken[i] for i in range(len(chapters)))\n"
            "print(same, len(taken[1]))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": ROOT,
                                            "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr
    same, n_attributes = result.stdout.split()
    assert same == "True" and int(n_attributes) > 20


def test_every_pytorch_cross_check_is_named_so_that_ci_selects_it():
    # CI runs the optional cross-checks with `pytest -k pytorch` once torch is installed: a test
    # that needs torch but lacks "pytorch" in its name would never run anywhere.
    unnamed = []
    for path in glob.glob(os.path.join(ROOT, "tests", "test_*.py")):
        for node in ast.walk(parse(path)):
            if (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
                    and "importorskip(\"torch\"" in ast.unparse(node).replace("'", '"')
                    and "pytorch" not in node.name):
                unnamed.append(f"{os.path.basename(path)}::{node.name}")
    assert not unnamed, unnamed


def methods_replaced(tree):
    """(line, "Class.method") of every @add_to_class(Class) def method in tree whose Class
    already has that method: in its class body (or a base defined in tree) or from an earlier
    add_to_class."""
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    defined = {name: {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
               for name, node in classes.items()}
    replaced = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for d in node.decorator_list:
            if (isinstance(d, ast.Call) and getattr(d.func, "id", "") == "add_to_class"
                    and isinstance(d.args[0], ast.Name)):
                owner = d.args[0].id
                if node.name in defined.setdefault(owner, set()):
                    replaced.append((node.lineno, f"{owner}.{node.name}"))
                defined[owner].add(node.name)
    return replaced


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_add_to_class_only_adds_a_method_never_replaces_one(chapter):
    # d2l's add_to_class grows a class cell by cell; replacing a method would change objects that
    # earlier cells built (chapter 1's Problem 3b once did; it now adds a subclass).
    replaced = methods_replaced(parse(os.path.join(ROOT, f"{chapter}.py")))
    assert not replaced, f"{chapter}: add_to_class replaces {replaced}"


def test_the_replacement_check_can_fail():
    tree = ast.parse("class A:\n    def f(self): pass\n"
                     "@add_to_class(A)\ndef g(self): pass\n"
                     "@add_to_class(A)\ndef f(self): pass\n"
                     "@add_to_class(A)\ndef g(self): pass\n")
    assert [name for _, name in methods_replaced(tree)] == ["A.f", "A.g"]
