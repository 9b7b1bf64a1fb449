"""Turn every chapter into an assignment: nbgrader source and release notebooks, from the lesson.

    python tools/make_exercises.py --out DIR [CHAPTER ...]

For each chapter (default: all of them) this writes

    DIR/source/<chapter>/<chapter>.ipynb    the nbgrader *source* notebook: the lesson's text and
                                            definitions (its demonstrations and experiments left
                                            out), each exercise between ### BEGIN SOLUTION and
                                            ### END SOLUTION, and after it an autograded check
                                            cell with points, a stable grade_id and hidden tests;
    DIR/release/<chapter>/<chapter>.ipynb   the student version: the cell sources nbgrader's
                                            generate_assignment writes (solutions replaced by
                                            "# YOUR CODE HERE / raise NotImplementedError()",
                                            hidden tests removed, outputs cleared);

and beside each notebook what it imports: lesson_support.py, exercise_checks.py, the reference
values its checks compare with (reference_values.npz), and the *solution* modules of the
earlier chapters (a chapter-2 learner has done chapter 1).

A release notebook edited since this tool wrote it (a learner's work) is never overwritten:
the tool then writes nothing and says which notebooks and how to keep them; --force overwrites
them.

Each chapter names its exercises in its EXERCISES tuple: a function ("rnn_forward_loop"), a
method ("SimpleRNN._recurrence"), or a part of a function marked in the lesson by the two
comment lines "# exercise NAME begins" and "# exercise NAME ends". The lesson holds the one
copy of every solution; this tool only marks it.
"""
import argparse
import ast
import copy
import hashlib
import importlib
import json
import os
import re
import shutil
import sys
import textwrap

import jupytext
import nbformat
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))
from exercise_cells import CHECKS, check_code  # noqa: E402
from lesson_support import slipped  # noqa: E402
from sync_notebook import LESSONS  # noqa: E402

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"   # nbgrader's default for python
PART = re.compile(r"^(\s*)# exercise (\w+) (begins|ends)$")
EXERCISE_TEXT = re.compile(r"<!-- exercises: (.*?) -->.*?<!-- /exercises -->", re.S)
SUPPORT_FILES = ("lesson_support.py", "exercise_checks.py")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
# The cell tag that lets Run All (JupyterLab, Notebook 7, nbclient) go on past a cell that
# raises: on every exercise and check cell, so one unwritten exercise hides no other verdict
RUN_PAST = "raises-exception"


def exercises(chapter):
    """The chapter's own list of exercises (its EXERCISES tuple), in the lesson's order."""
    return tuple(importlib.import_module(chapter).EXERCISES)


def exercise_id(name):
    """A stable identifier: "SimpleRNN._recurrence" -> "SimpleRNN__recurrence"."""
    return name.replace(".", "_")


# -- nbgrader's two rewrites of a cell, as nbgrader 0.9 does them ---------------------------------
def clear_solutions(source):
    """nbgrader's ClearSolutions on one code cell's source: each region from a line holding
    "BEGIN SOLUTION" to a line holding "END SOLUTION" becomes the code stub, indented like the
    BEGIN line. Returns (new source, whether a region was replaced)."""
    new_lines, in_solution, replaced = [], False, False
    for line in source.split("\n"):
        if "BEGIN SOLUTION" in line:
            if in_solution:
                raise RuntimeError("encountered nested begin solution statements")
            in_solution = replaced = True
            indent = re.match(r"\s*", line).group(0)
            new_lines += [indent + stub for stub in CODE_STUB.split("\n")]
        elif "END SOLUTION" in line:
            in_solution = False
        elif not in_solution:
            new_lines.append(line)
    if in_solution:
        raise RuntimeError("no end solution statement found")
    return "\n".join(new_lines), replaced


def clear_hidden_tests(source):
    """nbgrader's ClearHiddenTests on one cell's source: the lines from one holding "BEGIN
    HIDDEN TESTS" to one holding "END HIDDEN TESTS" are dropped, both included. Returns (new
    source, whether a region was removed)."""
    new_lines, in_test, removed = [], False, False
    for line in source.split("\n"):
        if "BEGIN HIDDEN TESTS" in line:
            if in_test:
                raise RuntimeError("Encountered nested begin hidden tests statements")
            in_test = removed = True
        elif "END HIDDEN TESTS" in line:
            in_test = False
        elif not in_test:
            new_lines.append(line)
    if in_test:
        raise RuntimeError("No end hidden tests statement found")
    return "\n".join(new_lines), removed


# -- marking the solutions in the lesson's cells --------------------------------------------------
def _function_node(tree, name):
    """The def of a top-level function "f" or of a method "Class.f" (in the class, or added
    to it by a top-level @add_to_class(Class)), or None."""
    *owner, func = name.split(".")
    body = tree.body
    if owner:
        classes = [n for n in body if isinstance(n, ast.ClassDef) and n.name == owner[0]]
        added = [n for n in body if isinstance(n, ast.FunctionDef) and n.name == func
                 and any(isinstance(d, ast.Call) and getattr(d.func, "id", "") == "add_to_class"
                         and getattr(d.args[0], "id", "") == owner[0]
                         for d in n.decorator_list)]
        if added:                   # a method added later with @add_to_class(Owner)
            return added[0]
        body = classes[0].body if classes else []
    found = [n for n in body if isinstance(n, ast.FunctionDef) and n.name == func]
    return found[0] if found else None


def mark_function_body(source, name):
    """The cell source with the body of function or method `name` (after its docstring)
    between BEGIN/END SOLUTION lines at the body's indentation; None when the cell does not
    define it."""
    node = _function_node(ast.parse(source), name)
    if node is None:
        return None
    body = node.body
    has_docstring = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                     and isinstance(body[0].value.value, str))
    first = body[1] if has_docstring else body[0]
    lines = source.split("\n")
    start, end = first.lineno - 1, node.end_lineno    # 0-based [start, end)
    indent = re.match(r"\s*", lines[start]).group(0)
    return "\n".join(lines[:start] + [indent + BEGIN_SOLUTION] + lines[start:end]
                     + [indent + END_SOLUTION] + lines[end:])


CALL = re.compile(r"(?<![\w.])(self\.)?([A-Za-z_]\w*)\(")


def given_helpers(marked, module):
    """The given functions and classes a marked solution calls, in the order of their first
    call: the chapter module's own callables and what it imports (by plain name), and the
    layer's methods (self.name)."""
    solution = marked.split(BEGIN_SOLUTION, 1)[1].split(END_SOLUTION, 1)[0]
    found = []
    for self_dot, name in CALL.findall(solution):
        label = f"self.{name}" if self_dot else name
        if (self_dot or callable(getattr(module, name, None))) and label not in found:
            found.append(label)
    return found


HELPERS_NOTE = "# For you to call: "   # starts the line that names them, one line


def with_given_helpers(marked, module, names):
    """The marked cell with one comment line above the solution naming what the solution
    calls that the notebook gives, and the earlier exercises (among names) it calls: the
    learner may call them too. Unchanged when it calls none."""
    helpers = given_helpers(marked, module)
    if not helpers:
        return marked
    given = [h for h in helpers if h not in names]
    own = [h for h in helpers if h in names]
    parts = ([f"{', '.join(given)} (given in this notebook)"] if given else []) + (
        [f"{', '.join(own)} (your earlier exercises)"] if own else [])
    lines = marked.split("\n")
    at = next(i for i, line in enumerate(lines) if line.strip() == BEGIN_SOLUTION)
    indent = re.match(r"\s*", lines[at]).group(0)
    note = indent + HELPERS_NOTE + "; ".join(parts) + "."
    return "\n".join(lines[:at] + [note] + lines[at:])


def mark_part(source, name):
    """The cell source with the lesson's "# exercise NAME begins/ends" comment lines turned
    into BEGIN/END SOLUTION lines; None when the cell has no such pair."""
    lines, marked = source.split("\n"), False
    for i, line in enumerate(lines):
        match = PART.match(line)
        if match and match.group(2) == name:
            lines[i] = match.group(1) + (BEGIN_SOLUTION if match.group(3) == "begins"
                                         else END_SOLUTION)
            marked = True
    return "\n".join(lines) if marked else None


def without_demos(source):
    """The cell source without its top-level `if __name__ == "__main__":` blocks (the
    lesson's demonstrations and experiments); "" when nothing but comments is left."""
    tree = ast.parse(source)
    lines = source.split("\n")
    for node in reversed(tree.body):
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"):
            del lines[node.lineno - 1:node.end_lineno]
    kept = "\n".join(lines).strip("\n")
    return kept if ast.parse(kept).body else ""


def _part_owner(tree, source, name):
    """The top-level def of the cell whose body holds the marked part `name`, or None."""
    owners = [n for n in tree.body if isinstance(n, ast.FunctionDef)
              and mark_part(ast.get_source_segment(source, n), name) is not None]
    return owners[0] if owners else None


def defines(source, name):
    """Whether the cell defines the function, method or marked part `name`."""
    tree = ast.parse(source)
    return (_function_node(tree, name) is not None
            or _part_owner(tree, source, name) is not None)


# Cells left out of an exercise notebook because they compute what an exercise computes in
# another form, or quote its lines: chapter 1's masked layer and its gallery of slips, chapter
# 2's fast layers (and each chapter's registry of cells, which names them), chapter 5's loop form
# of the scan's backward. (Chapter 3's vectorised output layer stays: the model whose sampling is
# an exercise is built on it. Chapter 5's run_scan, the form its layers call, stays: the layers
# need it; so does linear_scan_loop, the recurrence the doubling scan must compute.)
LEFT_OUT = {"rnn_scratch": ("BPTT_SLIPS", "MaskedRNN", "CELLS"),
            "gated_rnn_scratch": ("LSTM_BPTT", "GRU_BPTT", "FastLSTM", "FastGRU", "CELLS"),
            "linear_rnn_scratch": ("linear_scan_backward_loop",)}
LEFT_OUT_NOTE = ("*(A code cell of the lesson is left out here: it computes what an exercise "
                 "computes, in another form, or quotes its lines. The lesson notebook shows "
                 "it.)*")


# -- the check cells ------------------------------------------------------------------------------
# Each exercise's check is a function in tools/exercise_cells.py, with its points, where its cell
# goes, what its hidden tests add and the slip the grader's tests make. Every check reads reference
# values through exercise_checks (`checks`); tests/test_make_exercises.py verifies each of them
# independently.


def check_cell_source(name):
    """The source of exercise `name`'s autograded check cell: its check's code
    (exercise_cells.check_code), the hidden part between nbgrader's markers."""
    visible, hidden = check_code(name)
    indent = lambda text: textwrap.indent(text, "    ")  # noqa: E731
    return (f"# Check {name} ({CHECKS[name].points} points). Run it after writing {name}.\n"
            "import numpy as np\n"
            "import exercise_checks as checks\n\n"
            f"with checks.exercise({name!r}):\n"
            + f"    checks.case({CHECKS[name].shows!r})\n" + indent(visible)
            + f"    {BEGIN_HIDDEN}\n"
            + f"    checks.case({CHECKS[name].hidden_adds!r}, hidden=True)\n"
            + indent(hidden) + f"    {END_HIDDEN}")


def nbgrader_metadata(grade_id, solution=False, grade=False, points=0):
    """The cell metadata nbgrader 0.9 reads (schema version 3)."""
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution,
            "schema_version": 3, "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return meta


def intro_cell(chapter, names):
    """The markdown cell that opens an exercise notebook."""
    rows = "\n".join(f"| `{name}` | {CHECKS[name].points} | {CHECKS[name].hidden_adds} |"
                     for name in names)
    total = sum(CHECKS[name].points for name in names)
    return nbformat.v4.new_markdown_cell(f"""\
# `{chapter}` as an assignment

This is the lesson with its demonstrations and experiments left out (the lesson notebook of
the same name, in the course's repository, shows them and their output; text below that
speaks of a printed result refers to it) and with {len(names)} exercises to write. Each
exercise is a function, or part of one, in a cell of its own that reads `# YOUR CODE HERE` /
`raise NotImplementedError()`: replace those two lines with your code. A check cell follows
each exercise and prints its verdict: a line that says it passed, or what is off.

**Where to work.** In a copy of this notebook in this same folder, beside
`exercise_checks.py` and `reference_values.npz` (the checks import the one and read the
other), for example `mine.ipynb`; open it with JupyterLab (`python -m pip install
jupyterlab`, then `jupyter lab exercises/release/{chapter}/mine.ipynb`, from the
course's repository). `tools/make_exercises.py` never overwrites this notebook once edited
(unless told `--force`), but a copy keeps your work apart from what it writes.

**Run All runs to the end.** The check cells (and the exercises' cells) carry the cell tag
`raises-exception`, which JupyterLab, Notebook 7 and nbclient honour: a check that fails shows
its message, and the run goes on to the next cell, so every exercise gets its verdict even
while one is unwritten. The tag changes nothing in grading: a failing check still raises.

Each exercise is graded on its own: most checks compare with reference values in
`reference_values.npz`, the sampling and beam-search checks with what the given code
computes. The grader also runs hidden checks, listed below:

    python tools/grade.py exercises/release/{chapter}/mine.ipynb   (in the repository)

| exercise | points | hidden checks |
|---|---|---|
{rows}
| **total** | **{total}** | |
""")


def _span(lines, node):
    """0-based [start, end) of a def with its decorators and the comment lines right above."""
    start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    while start > 0 and lines[start - 1].strip().startswith("#"):
        start -= 1
    return start, node.end_lineno


def split_exercises(source, names):
    """The cell source cut so that each exercise's function stands in a code cell of its
    own, where a mistake in it (even a syntax error) cannot undo the code the learner is
    given. Returns [(piece, exercise or None, moved)]: a method "Class.f" is taken out of its
    class and becomes `@add_to_class(Class) def f` (moved=True, to be placed before its check);
    a part of a function brings its whole function into its own piece."""
    tree, lines = ast.parse(source), source.split("\n")
    cuts, moved = [], []        # cuts: (start, end, name) of top-level defs
    for name in names:
        node = _function_node(tree, name) or _part_owner(tree, source, name)
        if node is None:
            continue
        start, end = _span(lines, node)
        if "." in name:
            owner = name.split(".")[0]
            method = textwrap.dedent("\n".join(lines[start:end]))
            moved.append((f"@add_to_class({owner})\n{method}", name))
            lines[start:end] = [None] * (end - start)
        else:
            cuts.append((start, end, name))
    pieces, at = [], 0
    for start, end, name in sorted(cuts):
        pieces += [("\n".join(x for x in lines[at:start] if x is not None), None, False),
                   ("\n".join(lines[start:end]), name, False)]
        at = end
    pieces.append(("\n".join(x for x in lines[at:] if x is not None), None, False))
    pieces = [(piece.strip("\n"), name, False) for piece, name, _ in pieces
              if piece.strip()]
    return pieces + [(piece, name, True) for piece, name in moved]


def for_exercises(markdown):
    """The lesson's markdown as the exercise notebook words it: each span between
    "<!-- exercises: TEXT -->" and "<!-- /exercises -->" (text that describes the lesson's
    own code, which the exercise notebook replaces by a stub) becomes TEXT. The lesson
    shows the span and hides TEXT, an HTML comment."""
    return EXERCISE_TEXT.sub(lambda m: m.group(1), markdown)


def leaves_out(source, names):
    """Whether the cell defines one of names at its top level (assigns it, defines a class
    or function of that name, or adds a method to it with @add_to_class)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in names
                                                for t in node.targets):
            return True
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in names:
            return True
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Call) and getattr(d.func, "id", "") == "add_to_class"
                and getattr(d.args[0], "id", "") in names for d in node.decorator_list):
            return True
    return False


def source_notebook(chapter, names=None):
    """The lesson as an nbgrader source notebook: demonstrations dropped, each exercise in a
    solution cell of its own with its solution region marked, its check cell after it.
    Raises when an exercise is not found exactly once."""
    names = exercises(chapter) if names is None else tuple(names)
    unchecked = [name for name in names if name not in CHECKS]
    if unchecked:
        raise ValueError(f"{chapter}: exercises without a check in tools/exercise_cells.py: "
                         f"{unchecked}")
    lesson = jupytext.read(os.path.join(ROOT, f"{chapter}.py"))
    found = {name: 0 for name in names}
    cells, waiting = [intro_cell(chapter, names)], {}

    module = importlib.import_module(chapter)

    def solution_cell(piece, name):
        marked = mark_function_body(piece, name.split(".")[-1]) or mark_part(piece, name)
        marked = with_given_helpers(marked, module, names)
        found[name] += 1
        code = nbformat.v4.new_code_cell(marked)
        code.metadata["nbgrader"] = nbgrader_metadata(exercise_id(name), solution=True)
        code.metadata["tags"] = [RUN_PAST]
        return code

    for cell in lesson.cells:
        if cell.cell_type == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(for_exercises(cell.source)))
            continue
        source = without_demos(cell.source)
        if not source:
            continue
        if leaves_out(source, LEFT_OUT.get(chapter, ())):
            cells.append(nbformat.v4.new_markdown_cell(LEFT_OUT_NOTE))
            continue
        for piece, name, moved in split_exercises(source, names):
            if moved:
                waiting[name] = solution_cell(piece, name)
            else:
                cells.append(solution_cell(piece, name) if name
                             else nbformat.v4.new_code_cell(piece))
        for name in names:
            if defines(cell.source, CHECKS[name].after):
                if name in waiting:              # a method: just before its check
                    cells.append(waiting.pop(name))
                check = nbformat.v4.new_code_cell(check_cell_source(name))
                check.metadata["nbgrader"] = nbgrader_metadata(
                    "check_" + exercise_id(name), grade=True, points=CHECKS[name].points)
                check.metadata["tags"] = [RUN_PAST]
                cells.append(check)
    missing = [name for name, n in found.items() if n != 1]
    if missing or waiting:
        raise ValueError(f"{chapter}: exercises not found exactly once: "
                         f"{missing or list(waiting)}")
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["rnn_exercises"] = {"chapter": chapter,
                                    "grading_version": grading_version(chapter, names)}
    return nb


def grading_version(chapter, names=None):
    """What grading a chapter's notebook depends on, as 12 hex digits: a hash of its check
    cells' text (hidden tests included) and of the names and shapes of the reference values
    they read. Values themselves are left out: their last bits may differ between machines,
    and the checks' tolerances allow for that."""
    names = exercises(chapter) if names is None else tuple(names)
    digest = hashlib.sha256()
    for name in names:
        digest.update(check_cell_source(name).encode())
    for key, value in sorted(reference_values(chapter).items()):
        digest.update(f"{key}:{np.shape(value)}:{np.asarray(value).dtype};".encode())
    return digest.hexdigest()[:12]


def release_notebook(source_nb):
    """What nbgrader generate_assignment writes, as far as cell sources go: solutions
    cleared, hidden tests removed, outputs cleared."""
    nb = copy.deepcopy(source_nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.source, replaced = clear_solutions(cell.source)
        if cell.metadata.get("nbgrader", {}).get("solution") and not replaced:
            cell.source = CODE_STUB
        cell.source, _ = clear_hidden_tests(cell.source)
        cell.outputs, cell.execution_count = [], None
    nb.metadata["rnn_exercises"] = {**nb.metadata["rnn_exercises"],
                                    "written": cells_digest(nb)}
    return nb


def cells_digest(nb):
    """12 hex digits hashing nb's cells (their kinds and sources, not their outputs): what a
    learner edits."""
    cells = [[cell.cell_type, cell.source] for cell in nb.cells]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()[:12]


def edited_since_written(path, source_nb):
    """Whether the release notebook at path (if any) holds edits: its cells differ from the
    digest stamped when this tool wrote it (a notebook without a stamp: from the release
    notebook of source_nb, made only then)."""
    if not os.path.exists(path):
        return False
    old = nbformat.read(path, as_version=4)
    written = (old.metadata.get("rnn_exercises", {}).get("written")
               or cells_digest(release_notebook(source_nb)))
    return cells_digest(old) != written


def test_cells(nb):
    """{grade_id: (cell index, points)} of the autograded check cells, in notebook order."""
    return {c.metadata["nbgrader"]["grade_id"]: (i, c.metadata["nbgrader"]["points"])
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}


# -- reference values -----------------------------------------------------------------------------
def _rnn_case(rng, batch_size, n_sequences, n_features, n_nodes, k=1, n_biases=1):
    """Random float64 inputs, weights and states for a cell with k blocks of n_nodes."""
    return {"x": rng.normal(size=(batch_size, n_sequences, n_features)),
            "w_x": rng.normal(0, 0.5, (n_features, k * n_nodes)),
            "w_h": rng.normal(0, 0.5, (n_nodes, k * n_nodes)),
            **{name: rng.normal(0, 0.5, k * n_nodes)
               for name in (("b",) if n_biases == 1 else ("b_x", "b_h"))},
            "h0": rng.normal(size=(batch_size, n_nodes)),
            "c0": rng.normal(size=(batch_size, n_nodes))}


def _direct(rng, case, many_to_many):
    batch_size, n_sequences = case["x"].shape[:2]
    n_nodes = case["h0"].shape[1]
    return rng.normal(size=(batch_size, n_sequences, n_nodes) if many_to_many
                      else (batch_size, n_nodes))


def _rnn_references(rs):
    out = {"problem1.h_T": rs.PROBLEM1_EXPECTED_H_T}
    rng = np.random.default_rng(1)
    case = _rnn_case(rng, 3, 5, 2, 4)
    del case["c0"]
    case["hs"] = rs.rnn_forward_loop(case["x"], case["w_x"], case["w_h"], case["b"],
                                     case["h0"])[1]
    out.update({f"rnn_forward.case.{k}": v for k, v in case.items()})
    for label, many in (("m2o", False), ("m2m", True)):
        rng = np.random.default_rng({"m2o": 2, "m2m": 3}[label])
        case = _rnn_case(rng, *((4, 6, 3, 5) if many else (3, 5, 3, 4)))
        del case["c0"]
        case["hs"] = rs.rnn_forward_loop(case["x"], case["w_x"], case["w_h"], case["b"],
                                         case["h0"])[1]
        case["dh"] = _direct(rng, case, many)
        args = (case["x"], case["h0"], case["hs"], case["dh"], case["w_x"], case["w_h"])
        grads = rs.rnn_backward_loop(*args)
        case.update({k: grads[k] for k in ("dw_x", "dw_h", "db", "dx", "dh0", "g")})
        prefix = f"rnn_backward_loop.{label}"
        out.update({f"{prefix}.{k}": v for k, v in case.items()})
        slips = []
        for description, right, wrong in rs.BPTT_SLIPS:   # chapter 1's gallery of slips
            broken = slipped(rs.rnn_backward_loop, right, wrong)
            try:
                slips.append((description, broken(*args)))
            except ValueError:     # a slip NumPy's shapes stop here (W_h for W_x when F != N)
                continue
        for i, (description, slip_grads) in enumerate(slips):
            out[f"{prefix}.slip{i}.description"] = np.array(description)
            for k in ("dw_x", "dw_h", "db", "dx", "dh0", "g"):
                out[f"{prefix}.slip{i}.{k}"] = slip_grads[k]
    rng = np.random.default_rng(4)
    for label, offset in (("small", 0.0), ("large_logits", 1000.0)):
        z = rng.normal(size=(5, 3)) + offset
        y = rng.integers(0, 3, 5)
        loss, dz = rs.cross_entropy_and_gradient(z, y)
        out.update({f"cross_entropy.{label}.z": z, f"cross_entropy.{label}.y": y,
                    f"cross_entropy.{label}.loss": np.array(loss),
                    f"cross_entropy.{label}.dz": dz})
    a, b = rng.normal(size=(3, 2)), rng.normal(size=4)
    grads = {"a": a.copy(), "b": b.copy()}
    norm = rs.clip_by_global_norm(grads, 1.0)
    out.update({"clip.a": a, "clip.b": b, "clip.norm": np.array(norm),
                "clip.a_clipped": grads["a"], "clip.b_clipped": grads["b"]})
    g = rng.normal(size=(3, 4))
    for key, betas in (("updates", {}), ("updates_other_betas", dict(beta1=0.5, beta2=0.9))):
        state = rs.adam_state({"w": g[0]})
        out[f"adam.{key}"] = np.array([rs.adam_updates({"w": g[k]}, state, 0.1, **betas)["w"]
                                       for k in range(3)])
    out["adam.g"] = g
    w, grad, update = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    out.update({"training_step.w": w, "training_step.g": grad,
                "training_step.w_sgd": w - 0.1 * grad, "training_step.adam_update": update,
                "training_step.w_adam": w - update})
    return out


def _gated_references(gr):
    out = {}
    for cell, forward, backward in (("lstm", gr.lstm_forward_loop, gr.lstm_backward_loop),
                                    ("gru", gr.gru_forward_loop, gr.gru_backward_loop)):
        for label, many in (("m2o", False), ("m2m", True)):
            rng = np.random.default_rng({"m2o": 5, "m2m": 6}[label])
            sizes = (4, 6, 3, 5) if many else (3, 4, 3, 4)
            k, n_biases = (4, 1) if cell == "lstm" else (3, 2)
            case = _rnn_case(rng, *sizes, k=k, n_biases=n_biases)
            if many:                     # the hidden check starts from zeros (None)
                case["h0"], case["c0"] = 0 * case["h0"], 0 * case["c0"]
            biases = (case["b"],) if cell == "lstm" else (case["b_x"], case["b_h"])
            if cell == "lstm":
                _, case["hs"], case["cs"] = forward(case["x"], case["w_x"], case["w_h"],
                                                    *biases, case["h0"], case["c0"])
                states = (case["h0"], case["c0"], case["hs"], case["cs"])
            else:
                del case["c0"]
                _, case["hs"] = forward(case["x"], case["w_x"], case["w_h"], *biases,
                                        case["h0"])
                states = (case["h0"], case["hs"])
            case["dh"] = _direct(rng, case, many)
            grads = backward(case["x"], *states, case["dh"], case["w_x"], case["w_h"], *biases)
            case.update(grads)                    # with g (and the LSTM's g_c)
            out.update({f"{cell}.{label}.{k}": v for k, v in case.items()})
    return out


def _language_model_references(lm):
    out = {}
    for label, lengths in (("full", None), ("padded", np.array([5, 2, 4]))):
        rng = np.random.default_rng({"full": 7, "padded": 8}[label])
        hs = rng.normal(size=(3, 5, 4))
        if lengths is not None:
            hs[~lm.real_positions(5, lengths).T] = 0.0
        y = rng.integers(0, 6, (3, 5))
        w_y, b_y = rng.normal(0, 0.5, (4, 6)), rng.normal(0, 0.5, 6)
        loss, dw_y, db_y, dh = lm.output_layer_loop(hs, y, w_y, b_y, lengths)
        case = {"hs": hs, "y": y, "w_y": w_y, "b_y": b_y, "loss": np.array(loss),
                "dw_y": dw_y, "db_y": db_y, "dh": dh}
        if lengths is not None:
            case["lengths"] = lengths
        out.update({f"output_layer.{label}.{k}": v for k, v in case.items()})
    return out


def _seq2seq_references(s2s):
    out = {}
    for label, lengths in (("full", None), ("padded", np.array([4, 2, 3]))):
        rng = np.random.default_rng({"full": 9, "padded": 10}[label])
        batch_size, n_source, d_h, d_s, d_a = 3, 4, 5, 3, 4
        memory = rng.normal(size=(batch_size, n_source, d_h))
        pad = None
        if lengths is not None:
            pad = ~s2s.real_positions(n_source, lengths).T
            memory[pad] = 0.0
        case = {"s_prev": rng.normal(size=(batch_size, d_s)), "memory": memory,
                "keys": rng.normal(size=(batch_size, n_source, d_a)),
                "w_q": rng.normal(0, 0.5, (d_s, d_a)), "v": rng.normal(0, 0.5, d_a),
                "d_context": rng.normal(size=(batch_size, d_h))}
        _, _, cache = s2s.attend(case["s_prev"], memory, case["keys"], pad, case["w_q"],
                                 case["v"])
        grads = s2s.attend_backward(case["d_context"], cache, memory, case["w_q"], case["v"])
        case.update(zip(("ds_prev", "d_keys", "d_memory", "dw_q", "dv"), grads))
        if pad is not None:
            case["pad"] = pad
        out.update({f"attend.{label}.{k}": v for k, v in case.items()})
    return out


def _linear_references(lr):
    out = {}
    for label, (sizes, given_h0) in {"full": ((3, 9, 4), True),
                                     "long": ((2, 37, 3), False)}.items():
        rng = np.random.default_rng({"full": 11, "long": 12}[label])
        batch_size, n_sequences, n_nodes = sizes
        case = {"decay": rng.uniform(0, 1, sizes), "inputs": rng.normal(size=sizes),
                "h0": rng.normal(size=(batch_size, n_nodes)) if given_h0
                else np.zeros((batch_size, n_nodes)),
                "dhs": rng.normal(size=sizes)}
        case["hs"] = lr.linear_scan_loop(case["decay"], case["inputs"], case["h0"])
        case.update(lr.linear_scan_backward_loop(case["decay"], case["hs"], case["dhs"],
                                                 case["h0"]))
        out.update({f"scan.{label}.{k}": v for k, v in case.items()})
    for label, many in (("m2m", True), ("m2o_padded", False)):
        rng = np.random.default_rng({"m2m": 13, "m2o_padded": 14}[label])
        layer = lr.random_layer(lr.MinGRU, 3, 4, rng)
        case = {"w_x": layer.w_x, "b": layer.b, "x": rng.normal(size=(3, 6, 3)),
                "h0": rng.normal(size=(3, 4))}
        case["dh"] = rng.normal(size=(3, 6, 4) if many else (3, 4))
        # the forward's cache, from the equations: z (1 at padded steps) and n~, then the
        # states by the plain loop
        a = case["x"] @ case["w_x"] + case["b"]
        z, n = 1 / (1 + np.exp(-a[..., :4])), a[..., 4:]
        pad = None if many else np.arange(6)[:, None] >= np.array([6, 2, 4])[None, :]
        if pad is not None:
            z[pad.T] = 1
            case.update({"lengths": np.array([6, 2, 4]), "pad": pad})
        hs = lr.linear_scan_loop(z, (1 - z) * n, case["h0"])
        case.update({"z": z.transpose(1, 0, 2).copy(), "n": n.transpose(1, 0, 2).copy(),
                     "h": hs.transpose(1, 0, 2).copy()})          # time-major, as the cache
        cache = lr.MinCache(case["x"].transpose(1, 0, 2).copy(), case["h0"],
                            (case["z"], case["n"]), case["z"], case["h"], pad)
        case.update(layer.backward(case["dh"], cache=cache))
        out.update({f"mingru.{label}.{k}": v for k, v in case.items()})
    return out


REFERENCES = {"rnn_scratch": _rnn_references, "gated_rnn_scratch": _gated_references,
              "language_model_scratch": _language_model_references,
              "seq2seq_scratch": _seq2seq_references,
              "linear_rnn_scratch": _linear_references}


def reference_values(chapter):
    """{key: array} of every reference value chapter's checks read (computed with the lesson's
    own functions; tests/test_make_exercises.py verifies each independently)."""
    return REFERENCES[chapter](importlib.import_module(chapter))


def support_files(chapter):
    """The modules an exercise notebook of chapter imports: the support modules and the
    solution modules of the earlier chapters."""
    earlier = list(LESSONS)[:list(LESSONS).index(chapter)]
    return [*SUPPORT_FILES, *(f"{name}.py" for name in earlier)]


def notebook_path(out, kind, chapter):
    """Where write_chapter writes chapter's notebook of kind "source" or "release"."""
    return os.path.join(out, kind, chapter, f"{chapter}.ipynb")


def write_chapter(chapter, out, source=None):
    """Write chapter's source and release folders under out (source: its source notebook,
    None: made here); returns the two notebook paths."""
    source = source_notebook(chapter) if source is None else source
    references = reference_values(chapter)
    paths = []
    for kind, nb in (("source", source), ("release", release_notebook(source))):
        paths.append(notebook_path(out, kind, chapter))
        folder = os.path.dirname(paths[-1])
        os.makedirs(folder, exist_ok=True)
        nbformat.write(nb, paths[-1])
        for name in support_files(chapter):
            shutil.copy(os.path.join(ROOT, name), folder)
        np.savez(os.path.join(folder, "reference_values.npz"), **references)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the folder to write source/ and release/ to")
    parser.add_argument("chapters", nargs="*", help=f"default: all of {list(LESSONS)}")
    parser.add_argument("--force", action="store_true",
                        help="overwrite release notebooks even where they were edited")
    args = parser.parse_args(argv)
    unknown = [c for c in args.chapters if c not in LESSONS]
    if unknown:
        parser.error(f"unknown chapters {unknown}; expected some of {list(LESSONS)}")
    sources = {chapter: source_notebook(chapter) for chapter in args.chapters or LESSONS}
    edited = [notebook_path(args.out, "release", chapter) for chapter, nb in sources.items()
              if edited_since_written(notebook_path(args.out, "release", chapter), nb)]
    if edited and not args.force:
        print("make_exercises.py: wrote nothing. These release notebooks were edited since "
              "they were written, and writing would overwrite the edits:\n  "
              + "\n  ".join(edited) + "\nTo keep your work, rename each (mv) to a new name in "
              "its own folder, beside exercise_checks.py and reference_values.npz (a "
              "notebook there is graded by its path: python tools/grade.py NOTEBOOK), then "
              "run this again; or run again with --force to overwrite them.",
              file=sys.stderr)
        return 1
    for chapter, source in sources.items():
        write_chapter(chapter, args.out, source)
        names = exercises(chapter)
        print(f"{chapter}: {len(names)} exercises, "
              f"{sum(CHECKS[n].points for n in names)} points -> "
              f"{os.path.join(args.out, '{source,release}', chapter)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
