"""tools/grade.py on the generated exercise notebooks: the solutions get full marks, the untouched
release notebooks 0, a submission with one exercise broken loses that exercise's points and no
others, and the grader survives an exception, an infinite loop and a crashed kernel.

Each grading starts one kernel per exercise, so these tests take a few minutes: they run with
RUN_NOTEBOOKS=1 (CI always sets it), like the notebook re-runs.
"""
import os
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import RUN_NOTEBOOKS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import grade  # noqa: E402
import make_exercises as mx  # noqa: E402

pytestmark = pytest.mark.skipif(
    not RUN_NOTEBOOKS, reason="grading the exercise notebooks (fresh kernels, a few minutes) is "
    "off: run RUN_NOTEBOOKS=1 python -m pytest to include it (CI always does)")

# One slip per exercise, beside its check in tools/exercise_cells.py: the text `right` of the
# solution, and what replaces it.
SLIPS = {name: check.slip for name, check in mx.CHECKS.items()}
CHAPTER_OF = {name: chapter for chapter in mx.LESSONS for name in mx.exercises(chapter)}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("exercises")
    for chapter in mx.LESSONS:
        mx.write_chapter(chapter, str(out))
    return out


def submission(written, chapter, edit, name="submission.ipynb"):
    """A copy of chapter's source notebook, edited by edit(cell sources) -> None, written beside
    the chapter's modules; returns its path."""
    folder = written / "source" / chapter
    nb = nbformat.read(str(folder / f"{chapter}.ipynb"), as_version=4)
    edit(nb)
    path = folder / name
    nbformat.write(nb, str(path))
    return str(path)


def with_slip(nb, right, wrong):
    """Replace the one occurrence of right, which must lie in a solution cell."""
    hits = [c for c in nb.cells if right in c.source]
    assert len(hits) == 1 and hits[0].source.count(right) == 1, f"{right!r}: {len(hits)} cells"
    assert hits[0].metadata["nbgrader"]["solution"]
    hits[0].source = hits[0].source.replace(right, wrong)


def scores(result):
    return {row["id"]: row["points"] for row in result["exercises"]}


@pytest.mark.parametrize("chapter", list(mx.LESSONS))
def test_the_solutions_get_full_marks_and_the_release_zero(written, chapter):
    source = grade.grade(str(written / "source" / chapter / f"{chapter}.ipynb"))
    assert source["total"] == source["max_total"] > 0, source
    assert [row["id"] for row in source["exercises"]] == [
        mx.exercise_id(name) for name in mx.exercises(chapter)]
    release = grade.grade(str(written / "release" / chapter / f"{chapter}.ipynb"))
    assert release["total"] == 0 and release["max_total"] == source["max_total"]
    assert all("not written yet" in row["message"] for row in release["exercises"]), release


@pytest.mark.parametrize("chapter", list(mx.LESSONS))
def test_the_release_notebook_runs_top_to_bottom_failing_only_in_its_checks(written, chapter):
    """Run All as a learner runs it, errors not allowed: the raises-exception tags carry the
    run past every failing check to the last cell, and only the check cells fail, each
    saying in one line that its exercise is not written yet."""
    folder = written / "release" / chapter
    nb = nbformat.read(str(folder / f"{chapter}.ipynb"), as_version=4)
    NotebookClient(nb, timeout=120, allow_errors=False, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert nb.cells[code[-1]].execution_count is not None          # it reached the end
    failed = [i for i in code if any(o.output_type == "error" for o in nb.cells[i].outputs)]
    assert failed == [index for index, _ in mx.test_cells(nb).values()]
    for i in failed:
        error = [o for o in nb.cells[i].outputs if o.output_type == "error"][0]
        assert error.ename == "CheckFailed" and "not written yet" in error.evalue
        assert error.traceback == [f"CheckFailed: {error.evalue}"]   # no frames, one message


def test_without_its_tags_run_all_would_stop_at_the_first_check(written):
    """The control: the same notebook with the tags taken off stops at its first check."""
    from nbclient.exceptions import CellExecutionError
    folder = written / "release" / "rnn_scratch"
    nb = nbformat.read(str(folder / "rnn_scratch.ipynb"), as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("tags", None)
    with pytest.raises(CellExecutionError, match="not written yet"):
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(folder)}}).execute()


@pytest.mark.parametrize("name", list(SLIPS))
def test_one_broken_exercise_costs_its_points_and_no_others(written, name):
    assert set(SLIPS) == set(CHAPTER_OF)
    chapter = CHAPTER_OF[name]
    path = submission(written, chapter, lambda nb: with_slip(nb, *SLIPS[name]),
                      f"broken_{mx.exercise_id(name)}.ipynb")
    result = grade.grade(path)
    got = scores(result)
    for row in result["exercises"]:
        if row["id"] == mx.exercise_id(name):
            assert row["points"] == 0, row
        else:
            assert row["points"] == row["max_points"], (name, row)
    if name == "rnn_backward_loop":     # the message names the slip it recognises
        message = [r["message"] for r in result["exercises"] if r["id"] == name][0]
        assert "tanh' taken as 1 - h instead of 1 - h**2" in message, message
    assert sum(got.values()) == result["max_total"] - mx.CHECKS[name].points


@pytest.mark.parametrize("trouble, words", [
    ("raise ValueError('a mistake')", "output_layer_loop raised ValueError: a mistake"),
    ("raise ValueError('a mistake')", "of output_layer_loop, in its cell: `raise ValueError("
     "'a mistake')`)"),
    ("while True:\n        pass", "did not finish within 8 s"),
    ("import os\n    os._exit(1)", "the kernel died"),
    ("x = (", "the cell of this exercise failed: SyntaxError: '(' was never closed (line "),
])
def test_the_grader_survives_an_exception_an_infinite_loop_and_a_crash(written, trouble, words):
    """(And a syntax error.) The trouble is put first in output_layer_loop's body: that exercise scores 0 with a
    message that says what happened, and the chapter's other exercise still scores."""
    def edit(nb):
        cell = [c for c in nb.cells if "def output_layer_loop" in c.source][0]
        first = "    batch_size, n_sequences, _ = hs.shape\n"
        assert cell.source.count(first) == 1
        cell.source = cell.source.replace(first, "    " + trouble + "\n" + first)
    path = submission(written, "language_model_scratch", edit)
    result = grade.grade(path, timeout=8)
    rows = {row["id"]: row for row in result["exercises"]}
    assert rows["output_layer_loop"]["points"] == 0
    assert words in rows["output_layer_loop"]["message"], rows
    assert rows["sample_temperature"]["points"] == rows["sample_temperature"]["max_points"]


def test_an_edited_check_cell_is_graded_as_written_and_the_row_says_so(written):
    def edit(nb):
        check = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                 == "check_SimpleRNN__recurrence"][0]
        check.source = "pass  # a check that checks nothing"
    result = grade.grade(submission(written, "rnn_scratch", edit))
    rows = {row["id"]: row for row in result["exercises"]}
    row = rows["SimpleRNN__recurrence"]
    assert row["name"] == "SimpleRNN._recurrence" and row["points"] == row["max_points"]
    assert row["message"].startswith("(its check cell had been edited: graded with the "
                                     "original) SimpleRNN._recurrence: passed"), row
    assert not any("edited" in r["message"] for r in result["exercises"] if r is not row)


def test_a_wrong_number_of_returned_values_names_the_expected_form(written):
    def edit(nb):
        cell = [c for c in nb.cells if c.source.startswith("def rnn_forward_loop")][0]
        assert cell.source.count("    return h, hs") == 1
        cell.source = cell.source.replace("    return h, hs", "    return hs")
    result = grade.grade(submission(written, "rnn_scratch", edit))
    message = [r["message"] for r in result["exercises"] if r["id"] == "rnn_forward_loop"][0]
    assert "expects the exercise to return (h_T, hs)" in message, message


def test_grade_command_line_prints_rows_and_total_and_json(written, capsys):
    path = str(written / "source" / "seq2seq_scratch" / "seq2seq_scratch.ipynb")
    assert grade.main([path]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    assert lines[-1] == "total: 8 / 8" and lines[0].startswith("attend_backward")
    assert grade.main([path, "--json"]) == 0
    import json
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"exercises", "total", "max_total"}
    assert set(result["exercises"][0]) == {"id", "name", "points", "max_points", "message"}
    names = list(mx.exercises("seq2seq_scratch"))
    assert [row["name"] for row in result["exercises"]] == names
    assert [row["id"] for row in result["exercises"]] == [mx.exercise_id(n) for n in names]
    assert [line.split()[0] for line in lines[:-1]] == names    # the rows: the notebook's names
    with pytest.raises(SystemExit):
        grade.main([path, "--timeout", "0"])


@pytest.mark.parametrize("chapter, name, right, wrong, words", [
    ("rnn_scratch", "rnn_backward_loop", "g[:, t] = g_t", "g[:, t] = delta_t", "g is off"),
    ("rnn_scratch", "rnn_backward_loop", "dx = dx if input_gradient else None", "dx = dx",
     "the type of dx with input_gradient=False is 'ndarray'; expected 'NoneType'"),
    ("gated_rnn_scratch", "lstm_backward_loop", "g[:, t], g_c[:, t] = g_t, gamma_t",
     "g[:, t], g_c[:, t] = g_t, along_cell", "g_c is off"),
])
def test_what_a_backward_loop_docstring_promises_is_graded(written, chapter, name, right, wrong,
                                                           words):
    """The total gradients g (and the LSTM's g_c) and input_gradient=False: a solution that
    gets only these wrong loses the exercise."""
    path = submission(written, chapter, lambda nb: with_slip(nb, right, wrong))
    rows = {row["name"]: row for row in grade.grade(path)["exercises"]}
    assert rows[name]["points"] == 0 and words in rows[name]["message"], rows[name]
