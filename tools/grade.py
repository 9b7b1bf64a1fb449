"""Grade an exercise notebook without nbgrader, with the scores nbgrader's autograde gives.

    python tools/grade.py NOTEBOOK [--json] [--timeout SECONDS]

NOTEBOOK is an exercise notebook written by tools/make_exercises.py (a learner's copy of the
release notebook, or the source notebook). Its check cells are first replaced, by grade_id,
with the source notebook's (which hold the hidden tests), as nbgrader autograde does. Then
each exercise is graded on its own, in a fresh kernel: the notebook's cells up to that
exercise's check cell run in order (the other exercises' check cells skipped), then the check
cell. The exercise scores its points when the check cell raises nothing. An exception, a
check that fails, an infinite loop (TIMEOUT seconds per exercise, 60 by default) or a crashed
kernel costs that exercise only (nbgrader runs one kernel for the whole notebook, so there a
crash costs every later exercise too; otherwise the scores are the same). One row per exercise — id, points, max points, a message —
then "total: X / Y"; with --json the same as {"exercises": [{"id", "points", "max_points",
"message"}], "total", "max_total"}.
"""
import argparse
import json
import os
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_exercises  # noqa: E402


def with_hidden_tests(nb):
    """nb with every check cell's source replaced by the source notebook's cell of the same
    grade_id (hidden tests included), as nbgrader autograde restores locked test cells.
    Returns (notebook, {grade_id: (cell index, points)})."""
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
    checks = {}
    for i, cell in enumerate(nb.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in reference:
            cell.source = reference[grade_id].source
            cell.metadata["nbgrader"] = dict(reference[grade_id].metadata["nbgrader"])
            checks[grade_id] = (i, cell.metadata["nbgrader"]["points"])
    missing = sorted(set(reference) - set(checks))
    if missing:
        raise SystemExit(f"grade.py: the notebook lacks the check cells {missing}; grade a "
                         "notebook written by make_exercises.py without deleting its cells.")
    return nb, checks


def _error_message(cell):
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            if output["ename"] == "AssertionError" and output["evalue"]:
                return output["evalue"]
            return f"{output['ename']}: {output['evalue']}"
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
    message = _error_message(cells[-1])
    if message is not None:
        own = [c for c in cells[:-1] if c.metadata.get("nbgrader", {}).get("grade_id")
               == nb.cells[index].metadata["nbgrader"]["grade_id"].removeprefix("check_")]
        own_error = _error_message(own[0]) if own else None
        if own_error:                         # the learner's cell itself did not run
            return False, f"the cell of this exercise failed: {own_error}"
        return False, message
    return True, _last_printed_line(cells[-1])


def grade(path, timeout=60):
    """{"exercises": [...], "total", "max_total"} for the notebook at path."""
    nb, checks = with_hidden_tests(nbformat.read(path, as_version=4))
    folder = os.path.dirname(os.path.abspath(path))
    rows = []
    for grade_id, (index, max_points) in checks.items():
        passed, message = grade_exercise(nb, index, folder, timeout)
        rows.append({"id": grade_id.removeprefix("check_"),
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
        width = max(len(r["id"]) for r in result["exercises"])
        for r in result["exercises"]:
            message = r["message"].replace("\n", "\n" + " " * (width + 11))
            print(f"{r['id']:<{width}}  {r['points']:>2} / {r['max_points']:<2}  {message}")
        print(f"total: {result['total']} / {result['max_total']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
