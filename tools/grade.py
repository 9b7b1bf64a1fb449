"""Grade an exercise notebook without nbgrader, with the scores nbgrader's autograde gives.

    python tools/grade.py NOTEBOOK [--json] [--timeout SECONDS]

NOTEBOOK is an exercise notebook written by tools/make_exercises.py (a learner's copy of the
release notebook, or the source notebook), in the folder make_exercises.py wrote it to, beside
the files its checks import and read (exercise_checks.py, reference_values.npz, ...): a
notebook without them gets one message naming them. grade.py itself runs from the course's
repository: it rebuilds the source notebook (the hidden tests) from the lessons, through
tools/make_exercises.py. Its check cells are first replaced, by grade_id,
with the source notebook's (which hold the hidden tests), as nbgrader autograde does. Then
each exercise is graded on its own, in a fresh kernel: the notebook's cells up to that
exercise's check cell run in order (the other exercises' check cells skipped), then the check
cell. The exercise scores its points when the check cell raises nothing. An exception, a
check that fails, an infinite loop (TIMEOUT seconds per exercise, 60 by default) or a crashed
kernel costs that exercise only (nbgrader runs one kernel for the whole notebook, so there a
crash costs every later exercise too; otherwise the scores are the same). A check cell the
learner edited is graded in its original form, and the message says so. One row per exercise
— its name as the notebook writes it (SimpleRNN._recurrence), points, max points, a message —
then "total: X / Y"; with --json the same as {"exercises": [{"id", "name", "points",
"max_points", "message"}], "total", "max_total"}, where "id" is the exercise's stable
identifier (SimpleRNN__recurrence: its check cell's nbgrader grade_id is "check_" + id).
"""
import argparse
import json
import os
import re
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_exercises  # noqa: E402


def with_hidden_tests(nb, edited=None):
    """nb with every check cell's source replaced by the source notebook's cell of the same
    grade_id (hidden tests included), as nbgrader autograde restores locked test cells.
    Returns (notebook, {grade_id: (cell index, points)}); the grade_ids of check cells that
    had been edited are appended to `edited`, when given."""
    edited = [] if edited is None else edited
    stamp = nb.metadata.get("rnn_exercises", {})
    chapter = stamp.get("chapter")
    if chapter not in make_exercises.LESSONS:
        raise SystemExit(f"grade.py: this notebook was not written by make_exercises.py (its "
                         f"metadata names no chapter; expected one of "
                         f"{list(make_exercises.LESSONS)}).")
    ours = make_exercises.grading_version(chapter)
    if stamp.get("grading_version") != ours:
        raise SystemExit(
            f"grade.py: this notebook was made for grading version "
            f"{stamp.get('grading_version') or '(none: made before versions were stamped)'} "
            f"of {chapter}, and this course's checks and reference values are version {ours}. "
            "Its hidden checks and the reference_values.npz beside it may not fit: grade it "
            "with the course version it was made from, or hand out a notebook made by this "
            "version (python tools/make_exercises.py).")
    source = make_exercises.source_notebook(chapter)
    reference = {c.metadata["nbgrader"]["grade_id"]: c
                 for c in source.cells if c.metadata.get("nbgrader", {}).get("grade")}
    released = {c.metadata["nbgrader"]["grade_id"]: c.source
                for c in make_exercises.release_notebook(source).cells
                if c.metadata.get("nbgrader", {}).get("grade")}
    checks = {}
    for i, cell in enumerate(nb.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in reference:
            if cell.source.strip() not in (released[grade_id].strip(),
                                           reference[grade_id].source.strip()):
                edited.append(grade_id)
            cell.source = reference[grade_id].source
            cell.metadata["nbgrader"] = dict(reference[grade_id].metadata["nbgrader"])
            checks[grade_id] = (i, cell.metadata["nbgrader"]["points"])
    missing = sorted(set(reference) - set(checks))
    if missing:
        raise SystemExit(f"grade.py: the notebook lacks the check cells {missing}; grade a "
                         "notebook written by make_exercises.py without deleting its cells.")
    return nb, checks


def error_message(cell):
    """The error a cell's run printed, as one message: a failed check's own words; for a
    syntax error, the line of the cell (not the kernel's file name for it)."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            if output["ename"] in ("AssertionError", "CheckFailed") and output["evalue"]:
                return output["evalue"]
            value = output["evalue"]
            if output["ename"] in ("SyntaxError", "IndentationError", "TabError"):
                value = re.sub(r"\(\S*, line (\d+)\)$", r"(line \1 of the cell)", value)
            return f"{output['ename']}: {value}"
    return None


def _last_printed_line(cell):
    text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "passed"


def grade_exercise(nb, index, folder, timeout):
    """Run nb's cells up to check cell `index` (other check cells skipped) in a fresh kernel;
    returns (passed, message)."""
    cells = [nbformat.from_dict(dict(c)) for i, c in enumerate(nb.cells[:index + 1])
             if c.cell_type == "code"
             and (i == index or not c.metadata.get("nbgrader", {}).get("grade"))]
    for cell in cells:
        cell.outputs = []
    run = nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)
    client = NotebookClient(run, timeout=timeout, allow_errors=True, kernel_name="python3",
                            extra_arguments=["--log-level=ERROR"], resources={"metadata": {"path": folder}})
    deadline = time.monotonic() + timeout
    try:
        with client.setup_kernel():
            for i, cell in enumerate(cells):
                client.timeout = max(1, int(deadline - time.monotonic()))
                client.execute_cell(cell, i)
    except CellTimeoutError:
        return False, (f"did not finish within {timeout:g} s, its cells and its check "
                       "together (an infinite loop, or far too slow?)")
    except DeadKernelError:
        return False, "the kernel died while running this exercise (a crash in the code?)"
    message = error_message(cells[-1])
    if message is not None:
        own = [c for c in cells[:-1] if c.metadata.get("nbgrader", {}).get("grade_id")
               == nb.cells[index].metadata["nbgrader"]["grade_id"].removeprefix("check_")]
        own_error = error_message(own[0]) if own else None
        if own_error:                         # the learner's cell itself did not run
            return False, f"the cell of this exercise failed: {own_error}"
        return False, message
    return True, _last_printed_line(cells[-1])


def files_missing_beside(path, chapter):
    """What a notebook of chapter at path imports and reads but lacks in its folder:
    make_exercises' support files for the chapter and reference_values.npz."""
    folder = os.path.dirname(os.path.abspath(path))
    needed = [*make_exercises.support_files(chapter), "reference_values.npz"]
    return [name for name in needed if not os.path.isfile(os.path.join(folder, name))]


def grade(path, timeout=60):
    """{"exercises": [...], "total", "max_total"} for the notebook at path."""
    edited = []
    nb, checks = with_hidden_tests(nbformat.read(path, as_version=4), edited)
    folder = os.path.dirname(os.path.abspath(path))
    chapter = nb.metadata["rnn_exercises"]["chapter"]
    missing = files_missing_beside(path, chapter)
    if missing:
        raise SystemExit(
            f"grade.py: {path} must sit beside the files its checks import and read, as "
            f"make_exercises.py writes them into exercises/release/{chapter}/; missing in "
            f"{folder}: {', '.join(missing)}. Work on a copy inside that release folder "
            "(or copy those files beside your notebook), and grade it there.")
    names = {make_exercises.exercise_id(name): name
             for name in make_exercises.exercises(chapter)}
    rows = []
    for grade_id, (index, max_points) in checks.items():
        passed, message = grade_exercise(nb, index, folder, timeout)
        if grade_id in edited:
            message = ("(its check cell had been edited: graded with the original) "
                       + message)
        exercise = grade_id.removeprefix("check_")
        rows.append({"id": exercise, "name": names[exercise],
                     "points": max_points if passed else 0,
                     "max_points": max_points, "message": message})
    return {"exercises": rows, "total": sum(r["points"] for r in rows),
            "max_total": sum(r["max_points"] for r in rows)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebook", help="an exercise notebook written by make_exercises.py")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--timeout", type=float, default=60,
                        help="seconds each exercise may take (default 60)")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.notebook):
        parser.error(f"no notebook at {args.notebook!r}")
    if not args.timeout > 0:
        parser.error(f"--timeout must be a positive number of seconds; got {args.timeout}")
    result = grade(args.notebook, args.timeout)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        width = max(len(r["name"]) for r in result["exercises"])
        for r in result["exercises"]:
            message = r["message"].replace("\n", "\n" + " " * (width + 11))
            print(f"{r['name']:<{width}}  {r['points']:>2} / {r['max_points']:<2}  {message}")
        print(f"total: {result['total']} / {result['max_total']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
