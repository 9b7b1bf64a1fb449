"""rnn_scratch.ipynb: in sync with rnn_scratch.py, runs in a fresh kernel, committed with real outputs."""
import copy
import difflib
import json
import os
import sys

import jupytext
import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from sync_notebook import KEPT_METADATA, execute_notebook  # noqa: E402

SCRIPT = os.path.join(ROOT, "rnn_scratch.py")
NOTEBOOK = os.path.join(ROOT, "rnn_scratch.ipynb")
FIX = "python tools/sync_notebook.py"
CELL_TIMEOUT = 600  # seconds for any one cell; the whole lesson takes seconds


def cells_as_text(nb):
    """Each cell as '# <type>' followed by its source, for a readable diff."""
    lines = []
    for i, cell in enumerate(nb.cells):
        lines.append(f"# --- cell {i} [{cell.cell_type}]")
        lines.extend(cell.source.splitlines())
    return lines


@pytest.fixture(scope="module")
def committed():
    return nbformat.read(NOTEBOOK, as_version=4)


@pytest.fixture(scope="module")
def fresh_run(committed, tmp_path_factory):
    """The committed notebook, outputs cleared, run top to bottom in a temporary folder."""
    workdir = tmp_path_factory.mktemp("notebook_run")
    nb = copy.deepcopy(committed)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    execute_notebook(nb, str(workdir), timeout=CELL_TIMEOUT)
    return nb, workdir


def test_notebook_cells_equal_the_script_cells(committed):
    from_script = jupytext.read(SCRIPT)
    ours, theirs = cells_as_text(from_script), cells_as_text(committed)
    if ours != theirs:
        diff = "\n".join(difflib.unified_diff(ours, theirs, "rnn_scratch.py", "rnn_scratch.ipynb", lineterm=""))
        pytest.fail(f"rnn_scratch.ipynb and rnn_scratch.py differ:\n{diff}\n\nTo bring them back in sync, run:\n    {FIX}")


def test_notebook_runs_top_to_bottom_in_a_fresh_kernel(fresh_run):
    nb, workdir = fresh_run
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert (workdir / "plots" / "training_loss_curve.png").is_file()  # plots went to the temporary folder


def test_committed_notebook_has_the_outputs_a_fresh_run_produces(committed, fresh_run):
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


def test_committed_notebook_is_one_clean_run(committed):
    counts = [c.execution_count for c in committed.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"not one top-to-bottom run: {counts}; run {FIX}"
    for i, cell in enumerate(committed.cells):
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"cell {i} holds an error: {output.get('ename')}"
            text = output.get("text", "") + json.dumps(output.get("data", {}).get("text/plain", ""))
            assert "Traceback" not in text, f"cell {i} holds a traceback"


def test_committed_notebook_metadata_is_clean(committed):
    assert set(committed.metadata) <= set(KEPT_METADATA), sorted(committed.metadata)
    assert committed.metadata["kernelspec"]["name"] == "python3"
    for i, cell in enumerate(committed.cells):
        assert "execution" not in cell.metadata and "widgets" not in cell.metadata, (i, cell.metadata)
    with open(NOTEBOOK, encoding="utf-8") as f:
        raw = f.read()
    for path in ("/tmp/", "/root/", "/home/", "/work/", "site-packages"):
        assert path not in raw, f"machine-specific path {path!r} in the notebook"
