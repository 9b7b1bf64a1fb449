"""Bring rnn_scratch.ipynb and rnn_scratch.py back in sync, and re-run the notebook.

    python tools/sync_notebook.py

1. `jupytext --sync`: the cells of whichever file was edited last are copied
   to the other, so either file may be edited.
2. The notebook runs top to bottom in a fresh kernel (nbclient + ipykernel),
   in the repository folder, so its plots are saved to plots/ as well.
3. It is written back with those outputs and with only the metadata the lesson
   needs (kernelspec and the jupytext pairing): no timings, no widget state,
   no machine-specific paths.
"""
import os
import sys

import jupytext
from jupytext.cli import jupytext as jupytext_cli
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "rnn_scratch.py")
NOTEBOOK = os.path.join(ROOT, "rnn_scratch.ipynb")
KEPT_METADATA = ("jupytext", "kernelspec")


def execute_notebook(nb, cwd, timeout=600):
    """Run every cell of nb in a fresh python3 kernel whose working folder is cwd.

    timeout: seconds allowed for any one cell. Raises nbclient's
    CellExecutionError on the first cell that fails. Returns nb, with outputs.
    """
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            store_widget_state=False, resources={"metadata": {"path": cwd}})
    # A notebook shows its plots inline: a backend inherited from our own
    # environment (tests set MPLBACKEND=Agg) would hide them.
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    client.execute(env=env)
    return nb


def clean_metadata(nb):
    """Keep only the notebook metadata the lesson needs; drop what the run added."""
    nb.metadata = {key: nb.metadata[key] for key in KEPT_METADATA if key in nb.metadata}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def main():
    status = jupytext_cli(["--sync", SCRIPT])
    if status:
        return status
    nb = jupytext.read(NOTEBOOK)
    print(f"executing {os.path.relpath(NOTEBOOK)} ...", flush=True)
    execute_notebook(nb, ROOT)
    jupytext.write(clean_metadata(nb), NOTEBOOK)
    print(f"wrote {os.path.relpath(NOTEBOOK)} with fresh outputs; {os.path.relpath(SCRIPT)} is in sync")
    return 0


if __name__ == "__main__":
    sys.exit(main())
