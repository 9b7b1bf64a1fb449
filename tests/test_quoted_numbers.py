"""Every number a lesson's prose quotes stands on its page: it appears, at the precision quoted,
in what the notebook's code printed or in its code itself (a setting, a bound); the README's
numbers appear in the notebooks or, for speed, in benchmarks/README.md. A number that a re-run
changed and the prose did not follow fails here."""
import os
import re
import sys

import nbformat
import pytest

from quoted_numbers import matches, printed_numbers, quoted_numbers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from sync_notebook import LESSONS  # noqa: E402  (the chapters, in order)

# Numbers that are not measurements, each with its reason. Years are excepted wholesale below
# (citations); everything else a lesson quotes must be printed or be in its code.
EXCEPTIONS = {
    # (file, as written): why it needs no printed evidence
    ("rnn_scratch", "10^{-11}"): "the scale of a hypothetical estimate in the relative-error "
                                 "example (a true 1e-12 estimated as 1e-11)",
    ("rnn_scratch", "39"): "T - 1 for the 40 steps of 4.1, as an exponent",
    ("rnn_scratch", "110"): "the longest sequence of Hochreiter & Schmidhuber's experiment, "
                            "a citation",
    ("gated_rnn_scratch", "110"): "the same citation",
    ("gated_rnn_scratch", "60"): "the length at which chapter 1 measured the share of the "
                                 "gradient, cited with its section",
    ("rnn_scratch", "0.02"): "the assignment's given input x, which the code writes as "
                             "integers / 100",
    ("rnn_scratch", "0.03"): "the same given input",
    ("language_model_scratch", "26"): "the length of the alphabet in the toy example",
    ("seq2seq_scratch", "1.25"): "a NumPy version (np.add.at is slow before it)",
}
YEAR = re.compile(r"^(19[5-9]\d|20[0-4]\d)$")
LINK_TARGET = re.compile(r"\]\([^)]*\)|https?://\S+")   # a link's address is not a claim


def notebook_evidence(nb):
    """What a notebook's code cells hold and print, as one text."""
    parts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output["text"])
            elif "text/plain" in output.get("data", {}):
                parts.append(output["data"]["text/plain"])
    return "\n".join(parts)


def headings(nb):
    """The section headings of a notebook: "4.1", "section 5" and the like name them."""
    return "\n".join(line for cell in nb.cells if cell.cell_type == "markdown"
                     for line in cell.source.splitlines() if line.startswith("#"))


def unbacked(text, evidence, name):
    """The numbers of text that no number of evidence matches, excepting years and EXCEPTIONS."""
    printed = printed_numbers(evidence)
    text = LINK_TARGET.sub("]", text)
    return [written for written, value, half in quoted_numbers(text)
            if not YEAR.match(written) and (name, written) not in EXCEPTIONS
            and not matches(value, half, printed)]


@pytest.fixture(scope="module")
def notebooks():
    return {name: nbformat.read(os.path.join(ROOT, f"{name}.ipynb"), as_version=4)
            for name in LESSONS}


@pytest.mark.parametrize("name", LESSONS)
def test_every_number_in_the_prose_is_printed_or_in_the_code(name, notebooks):
    all_headings = "\n".join(headings(nb) for nb in notebooks.values())
    evidence = notebook_evidence(notebooks[name]) + "\n" + all_headings
    problems = []
    for i, cell in enumerate(notebooks[name].cells):
        if cell.cell_type == "markdown":
            problems += [f"cell {i}: {w!r}" for w in unbacked(cell.source, evidence, name)]
    assert not problems, (f"{name}: numbers in the prose that nothing on the page prints "
                          "(a stale number, or one that needs its evidence):\n"
                          + "\n".join(problems))


def test_every_number_in_the_readme_is_on_a_page(notebooks):
    with open(os.path.join(ROOT, "benchmarks", "README.md"), encoding="utf-8") as f:
        benchmarks = f.read()
    evidence = "\n".join([benchmarks] + [notebook_evidence(nb) + "\n" + headings(nb)
                                          for nb in notebooks.values()])
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    problems = unbacked(readme, evidence, "README")
    assert not problems, ("numbers in README.md that no notebook prints and "
                          "benchmarks/README.md does not hold:\n" + "\n".join(problems))


def test_the_check_fails_on_a_stale_number_and_reads_the_precision_quoted():
    printed = "val_accuracy 0.990\nrelative error 4.3e-12\nloss 2.284 bits, 193,500 characters"
    assert unbacked("accuracy 0.99, error $4 \\cdot 10^{-12}$, 2.28 bits", printed, "t") == []
    assert unbacked("99% of them; 193,500 characters", printed, "t") == []
    assert unbacked("accuracy 0.97", printed, "t") == ["0.97"]          # stale
    assert unbacked("error $5 \\times 10^{-12}$", printed, "t") != []   # stale exponent form
    assert unbacked("2.285 bits", printed, "t") == ["2.285"]            # more digits than printed
    assert unbacked("in 1997", printed, "t") == []                      # a year
