"""Each chapter's notebook: in sync with its script, runs in a fresh kernel (once per test run, when
RUN_NOTEBOOKS=1), committed with real outputs; and its markdown and code render well."""
import copy
import difflib
import html
import importlib
import json
import os
import re
import sys

import cmarkgfm
import jupytext
import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from sync_notebook import KEPT_METADATA, LESSONS, execute_notebook  # noqa: E402

from conftest import RUN_NOTEBOOKS  # noqa: E402

FIX = "python tools/sync_notebook.py"
CELL_TIMEOUT = 600  # seconds for any one cell; a whole chapter takes a minute or two


def paths(name):
    return os.path.join(ROOT, f"{name}.py"), os.path.join(ROOT, f"{name}.ipynb")


def cells_as_text(nb):
    """Each cell as '# <type>' followed by its source, for a readable diff."""
    lines = []
    for i, cell in enumerate(nb.cells):
        lines.append(f"# --- cell {i} [{cell.cell_type}]")
        lines.extend(cell.source.splitlines())
    return lines


@pytest.fixture(scope="module", params=LESSONS)
def lesson(request):
    return request.param


@pytest.fixture(scope="module")
def committed(lesson):
    return nbformat.read(paths(lesson)[1], as_version=4)


# Re-executing every notebook takes several minutes on 2 cores, more than the rest of the suite
# together, so it runs only when asked for (conftest.RUN_NOTEBOOKS); without it the two tests that
# need a fresh run are reported as skipped, with this reason.
NOT_RUN = ("the fresh-kernel run of each notebook is off: run RUN_NOTEBOOKS=1 python -m pytest "
           "to execute them and compare their output with the committed one (CI always does)")


@pytest.fixture(scope="module")
def fresh_run(committed, tmp_path_factory):
    """The committed notebook, outputs cleared, run top to bottom in a temporary folder."""
    if not RUN_NOTEBOOKS:
        pytest.skip(NOT_RUN)
    workdir = tmp_path_factory.mktemp("notebook_run")
    nb = copy.deepcopy(committed)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    execute_notebook(nb, str(workdir), timeout=CELL_TIMEOUT)
    return nb, workdir


def test_notebook_cells_equal_the_script_cells(lesson, committed):
    from_script = jupytext.read(paths(lesson)[0])
    ours, theirs = cells_as_text(from_script), cells_as_text(committed)
    if ours != theirs:
        diff = "\n".join(difflib.unified_diff(ours, theirs, f"{lesson}.py", f"{lesson}.ipynb", lineterm=""))
        pytest.fail(f"{lesson}.ipynb and {lesson}.py differ:\n{diff}\n\nTo bring them back in sync, run:\n"
                    f"    {FIX} {lesson}")


def test_notebook_runs_top_to_bottom_in_a_fresh_kernel(lesson, fresh_run):
    nb, workdir = fresh_run
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert (workdir / "plots" / checks_of(lesson, "first_plot")).is_file()  # plots went to the temporary folder
    # and every figure saved is also shown on the page
    shown = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                for o in c.outputs)
    assert shown == len(list((workdir / "plots").glob("*.png"))), shown


# What each chapter says of its own notebook (its NOTEBOOK_CHECKS): the figure it first saves;
# the cells whose printed numbers depend on the CPU's BLAS kernels (chapter 1's "Why your numbers
# may differ from these"), training runs near the edge of what they can learn, whose numbers are
# not compared (their text is, and so are the yes/no lines they print, which state the claims of
# the prose in a form that held on every kernel tried: OpenBLAS SkylakeX, Haswell and Prescott);
# cells printing generated text, of which only the header lines ("--- temperature 0.2:") are
# compared; and cells printing rounding-level numbers (gradient-check errors, fast-against-plain
# differences), where a number below ROUNDING_LEVEL need only stay below it. Everywhere else
# (chapter 1's 4.1 tiny gradient norms, for instance) every printed number must match. Cells are
# found by a line of their source.
def checks_of(lesson, kind):
    """The chapter's NOTEBOOK_CHECKS[kind] (() where it has none)."""
    return importlib.import_module(lesson).NOTEBOOK_CHECKS.get(kind, ())


NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?%?")
TIMING = re.compile(r"\d+(?:\.\d+)? s\b")       # "in 1.2 s": wall-clock time, never compared
ROUNDING_LEVEL = 1e-6  # gradient-check errors and fast-vs-plain differences: rounding, machine-specific


def printed_text(cell):
    """What a code cell printed (its stream outputs), with timings masked."""
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    return TIMING.sub("<time> s", text)


def as_number(token):
    return float(token[:-1]) / 100 if token.endswith("%") else float(token)


# "5.6e-10 (dw_h)": which gradient's error is largest is itself rounding when the error is; on
# another BLAS kernel the same cell printed "4.9e-10 (dc0)". In rounding cells the name that
# follows a rounding-level number is not compared.
WHICH = re.compile(r"(?P<number>" + NUMBER.pattern + r")\s*\((?P<name>\w+)\)")


def without_rounding_names(line):
    return WHICH.sub(lambda m: (m["number"] + " (·)" if as_number(m["number"]) < ROUNDING_LEVEL
                                else m[0]), line)


def compare_printed_text(fresh, committed, cpu_dependent, rounding_level=False):
    """A list of the lines on which fresh and committed differ beyond what the rules allow."""
    problems = []
    if rounding_level:
        fresh, committed = without_rounding_names(fresh), without_rounding_names(committed)
    fresh_lines, committed_lines = fresh.splitlines(), committed.splitlines()
    if len(fresh_lines) != len(committed_lines):
        return [f"{len(committed_lines)} lines committed, {len(fresh_lines)} printed now"]
    for new, old in zip(fresh_lines, committed_lines):
        # The words must match; the spaces between them may not, where a table's column
        # widens because one of its numbers has another width.
        if NUMBER.sub("#", new).split() != NUMBER.sub("#", old).split():
            problems.append(f"text differs:\n  committed: {old}\n  fresh:     {new}")
            continue
        if cpu_dependent:
            continue
        for a, b in zip(NUMBER.findall(new), NUMBER.findall(old)):
            x, y = as_number(a), as_number(b)
            if a != b and not (rounding_level and max(abs(x), abs(y)) < ROUNDING_LEVEL):
                problems.append(f"number {b} is now {a}:\n  committed: {old}\n  fresh:     {new}")
    return problems


def test_compare_printed_text_catches_a_stale_number_and_allows_rounding_noise():
    # The rule below must be able to fail.
    assert compare_printed_text("loss 0.0123, error 3.1e-10", "loss 0.0123, error 8.0e-11", False, True) == []
    # outside the marked cells a tiny number is a measurement like any other
    assert compare_printed_text("ratio 5.70e-19", "ratio 5.71e-19", False) != []
    assert compare_printed_text("loss 0.0124", "loss 0.0123", False) != []
    # which gradient is worst may change with the kernel, when its error is rounding
    assert compare_printed_text("LSTM  4.9e-10 (dc0)", "LSTM  5.6e-10 (dw_h)", False, True) == []
    assert compare_printed_text("LSTM  4.9e-10 (dc0)", "LSTM  5.6e-10 (dw_h)", False) != []
    assert compare_printed_text("LSTM  0.5 (dc0)", "LSTM  0.5 (dw_h)", False, True) != []
    assert compare_printed_text("accuracy 0.84  True", "accuracy 0.27  True", True) == []
    assert compare_printed_text("accuracy 0.84  True", "accuracy 0.27  False", True) != []
    assert compare_printed_text("LSTM  0.23  1, 15, 1", "LSTM  0.99   1, 6, 1", True) == []
    assert compare_printed_text("LSTM  0.23  1, 15, 1", "GRU   0.99   1, 6, 1", True) != []
    assert compare_printed_text(TIMING.sub("<time> s", "in 1.2 s"), TIMING.sub("<time> s", "in 3.4 s"), False) == []


def test_committed_notebook_prints_what_a_fresh_run_prints(lesson, committed, fresh_run):
    nb, _ = fresh_run
    assert len(nb.cells) == len(committed.cells), f"out of sync: run {FIX}"
    for i, (fresh, old) in enumerate(zip(nb.cells, committed.cells)):
        if fresh.cell_type != "code":
            continue
        fresh_kinds = {o.output_type for o in fresh.outputs} | {k for o in fresh.outputs for k in o.get("data", {})}
        old_kinds = {o.output_type for o in old.outputs} | {k for o in old.outputs for k in o.get("data", {})}
        assert old_kinds == fresh_kinds, (
            f"cell {i} gives outputs {sorted(fresh_kinds)} when run, but the committed notebook holds "
            f"{sorted(old_kinds)}: run {FIX}\n{old.source[:300]}")
        cpu_dependent = any(marker in old.source for marker in checks_of(lesson, "cpu_dependent"))
        fresh_text, old_text = printed_text(fresh), printed_text(old)
        if any(marker in old.source for marker in checks_of(lesson, "generated_text")):
            fresh_text, old_text = (headers_only(t) for t in (fresh_text, old_text))
        rounding = any(marker in old.source for marker in checks_of(lesson, "rounding"))
        problems = compare_printed_text(fresh_text, old_text, cpu_dependent, rounding)
        assert not problems, (f"cell {i} prints other text than the committed notebook holds "
                              f"(run {FIX}):\n" + "\n".join(problems[:10]) + f"\n--- cell source:\n{old.source[:300]}")


def headers_only(text):
    """The lines of generated-text output that the lesson itself writes: those starting '---'."""
    return "\n".join(line for line in text.splitlines() if line.startswith("---"))


def test_every_cpu_dependent_cell_is_still_in_the_lesson(lesson, committed):
    # (the cell that lists the markers holds them too; it is not one of them)
    sources = [c.source for c in committed.cells
               if c.cell_type == "code" and "NOTEBOOK_CHECKS = {" not in c.source]
    for marker in (checks_of(lesson, "cpu_dependent") + checks_of(lesson, "generated_text")
                   + checks_of(lesson, "rounding")):
        assert sum(marker in s for s in sources) == 1, f"no single cell holds {marker!r}"


def test_committed_notebook_is_one_clean_run(committed):
    counts = [c.execution_count for c in committed.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"not one top-to-bottom run: {counts}; run {FIX}"
    for i, cell in enumerate(committed.cells):
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"cell {i} holds an error: {output.get('ename')}"
            text = output.get("text", "") + json.dumps(output.get("data", {}).get("text/plain", ""))
            assert "Traceback" not in text, f"cell {i} holds a traceback"


def test_committed_notebook_metadata_is_clean(lesson, committed):
    assert set(committed.metadata) <= set(KEPT_METADATA), sorted(committed.metadata)
    assert committed.metadata["kernelspec"]["name"] == "python3"
    for i, cell in enumerate(committed.cells):
        assert "execution" not in cell.metadata and "widgets" not in cell.metadata, (i, cell.metadata)
    with open(paths(lesson)[1], encoding="utf-8") as f:
        raw = f.read()
    for path in ("/tmp/", "/root/", "/home/", "/work/", "site-packages"):
        assert path not in raw, f"machine-specific path {path!r} in the notebook"


MATH = re.compile(r"\$\$.+?\$\$|\$[^$]+?\$", re.S)


@pytest.mark.parametrize("name", LESSONS)
def test_math_survives_github_flavoured_markdown(name):
    # A notebook's markdown goes through a markdown renderer before MathJax sees it. GitHub's
    # (cmark-gfm) turns _a_ into emphasis, \{ into {, \, into , and a line starting with + into a
    # list item, which breaks the math. Every math span must come out of it unchanged.
    broken = []
    for cell in jupytext.read(paths(name)[0]).cells:
        if cell.cell_type != "markdown":
            continue
        rendered = " ".join(html.unescape(cmarkgfm.github_flavored_markdown_to_html(cell.source)).split())
        for span in MATH.findall(cell.source):
            if " ".join(span.split()) not in rendered:
                broken.append(span)
    assert not broken, "math spans changed by GitHub-flavoured markdown:\n" + "\n".join(broken)


def test_math_check_catches_what_markdown_breaks():
    for bad in [r"$\{0, 1\}$", r"$a\, b$", "$x_{1}}_a + b_{2}_$", "$$a\n+ b$$"]:
        rendered = " ".join(html.unescape(cmarkgfm.github_flavored_markdown_to_html(bad)).split())
        assert " ".join(MATH.findall(bad)[0].split()) not in rendered, bad


@pytest.mark.parametrize("name", LESSONS)
def test_code_lines_fit_a_notebook_column(name):
    # Longer lines are cut off at the right edge of a rendered notebook (about 85 characters at 800 px).
    long_lines = [line for cell in jupytext.read(paths(name)[0]).cells if cell.cell_type == "code"
                  for line in cell.source.splitlines() if len(line) > 88]
    assert not long_lines, "\n".join(long_lines)


@pytest.mark.parametrize("name", LESSONS)
def test_first_code_cell_is_math_and_no_cell_runs_over_80_lines(name):
    # The reading path: the first code cell defines the chapter's first piece of math (after a few
    # imports), no cell needs more than about a screen and a half, and no chapter parses its
    # command line itself (lesson_support.lesson_options does, from a declaration of options).
    code = [c.source for c in jupytext.read(paths(name)[0]).cells if c.cell_type == "code"]
    first = code[0]
    assert re.search(r"^def \w+\(", first, re.M), f"{name}'s first code cell defines no function"
    assert "lesson_options" not in first and "argparse" not in first
    long_cells = [(i, len(c.splitlines())) for i, c in enumerate(code) if len(c.splitlines()) > 80]
    assert not long_cells, f"{name}: code cells over 80 lines (cell index, lines): {long_cells}"
    with open(paths(name)[0], encoding="utf-8") as f:
        source = f.read()
    assert not re.search(r"^\s*(import argparse|from argparse)|sys\.argv|parse_(known_)?args", source, re.M)


PRINTED_WIDTH = 80   # a notebook column at 800 px shows about 87 characters of output


def test_printed_lines_fit_a_notebook_column(lesson, committed):
    # Wider lines wrap in the middle of a number or a word when the page is narrow.
    wide = [f"cell {i}: {line}" for i, cell in enumerate(committed.cells) if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "stream"
            for line in output["text"].splitlines() if len(line) > PRINTED_WIDTH]
    assert not wide, f"printed lines over {PRINTED_WIDTH} characters:\n" + "\n".join(wide)


def test_notebooks_print_no_script_leftovers(lesson, committed):
    # "saved plots/..." and "finished in N s" belong to the script; a notebook shows its figures.
    text = "".join(output.get("text", "") for cell in committed.cells if cell.cell_type == "code"
                   for output in cell.get("outputs", []))
    assert not re.search(r"^saved \S+\.png$|finished in [\d.]+ s", text, re.M)
