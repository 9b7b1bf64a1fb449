"""The optional nbgrader step of CI: real nbgrader 0.9.6 on the exercise notebooks.

Run in a venv holding requirements.txt and nbgrader==0.9.6 (.ci/run makes it). In a throwaway
course directory it puts the source notebooks of tools/make_exercises.py, runs `nbgrader
generate_assignment` and checks that nbgrader's release notebooks have the same cell sources
as ours, then `nbgrader autograde` on three submissions per chapter — the solutions, the
untouched release notebook, and the solutions with one exercise broken — and reads the scores
from nbgrader's gradebook: full marks, zero, and exactly the broken exercise's points lost.
tools/grade.py must give every exercise the same score as nbgrader.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import nbformat
from nbgrader.api import Gradebook

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tools"), os.path.join(ROOT, "tests")]
import grade  # noqa: E402
import make_exercises as mx  # noqa: E402
from test_grade import SLIPS, with_slip  # noqa: E402

# Per chapter, the exercise this check breaks: the first of those worth the most points (a
# new chapter needs no entry here).
BROKEN = {chapter: max(mx.exercises(chapter), key=lambda name: mx.CHECKS[name].points)
          for chapter in mx.LESSONS}


def nbgrader(*args, cwd):
    print("$ nbgrader", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"], cwd=cwd,
                   check=True)


def main():
    # nbgrader runs its venv's `alembic` by name: that venv's bin must be on PATH, activated or not
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    work = tempfile.mkdtemp()
    ours, course = os.path.join(work, "ours"), os.path.join(work, "course")
    os.makedirs(course)
    with open(os.path.join(course, "nbgrader_config.py"), "w") as f:
        # nbgrader's default time limit per cell (Execute.timeout, 30 s) is kept: it is what
        # a teacher gets, and the slowest check cell takes well under a second
        f.write("c = get_config()\nc.CourseDirectory.course_id = 'rnn-scratch'\n")
    failures = []
    for chapter in mx.LESSONS:
        mx.write_chapter(chapter, ours)
        shutil.copytree(os.path.join(ours, "source", chapter),
                        os.path.join(course, "source", chapter))
        nbgrader("generate_assignment", chapter, "--force", cwd=course)
        theirs = nbformat.read(os.path.join(course, "release", chapter, f"{chapter}.ipynb"), 4)
        mine = nbformat.read(os.path.join(ours, "release", chapter, f"{chapter}.ipynb"), 4)
        if [c.source for c in theirs.cells] != [c.source for c in mine.cells]:
            failures.append(f"{chapter}: nbgrader's release cell sources differ from ours")
        source = nbformat.read(os.path.join(ours, "source", chapter, f"{chapter}.ipynb"), 4)
        broken = nbformat.read(os.path.join(ours, "source", chapter, f"{chapter}.ipynb"), 4)
        with_slip(broken, *SLIPS[BROKEN[chapter]])
        for student, nb in (("solutions", source), ("untouched", theirs), ("broken", broken)):
            folder = os.path.join(course, "submitted", student, chapter)
            shutil.copytree(os.path.join(course, "release", chapter), folder)
            nbformat.write(nb, os.path.join(folder, f"{chapter}.ipynb"))
        nbgrader("autograde", chapter, cwd=course)
        checks = mx.test_cells(source)
        max_total = sum(points for _, points in checks.values())
        broken_id = "check_" + mx.exercise_id(BROKEN[chapter])
        with Gradebook(f"sqlite:///{os.path.join(course, 'gradebook.db')}") as gb:
            for student in ("solutions", "untouched", "broken"):
                theirs_by_id = {g: gb.find_grade(g, chapter, chapter, student).score
                                for g in checks}
                total = gb.find_submission(chapter, student).score
                expected = {"solutions": max_total, "untouched": 0,
                            "broken": max_total - checks[broken_id][1]}[student]
                print(f"{chapter} / {student}: nbgrader {total} / {max_total}", flush=True)
                if total != expected:
                    failures.append(f"{chapter} / {student}: nbgrader gave {total}, "
                                    f"expected {expected}")
                if student == "broken" and theirs_by_id[broken_id] != 0:
                    failures.append(f"{chapter}: the broken exercise scored in nbgrader")
                path = os.path.join(course, "submitted", student, chapter, f"{chapter}.ipynb")
                ours_by_id = {"check_" + row["id"]: row["points"]
                              for row in grade.grade(path)["exercises"]}
                if ours_by_id != theirs_by_id:
                    failures.append(f"{chapter} / {student}: grade.py {ours_by_id} but "
                                    f"nbgrader {theirs_by_id}")
    shutil.rmtree(work)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("nbgrader agrees: release cell sources identical; solutions full marks, untouched 0, "
          "one broken exercise loses exactly its points; grade.py gives the same scores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
