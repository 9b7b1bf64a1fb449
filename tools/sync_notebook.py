"""Bring each lesson's notebook and script back in sync, and re-run the notebook.

    python tools/sync_notebook.py                      # every chapter
    python tools/sync_notebook.py gated_rnn_scratch    # one chapter

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
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from lesson_support import CHAPTERS as LESSONS  # noqa: E402  (the chapters, in order)
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
    # Later chapters import earlier ones: the repository is on the kernel's path wherever it runs.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    client.execute(env=env)
    return nb


def clean_metadata(nb):
    """Keep only the notebook metadata the lesson needs; drop what the run added."""
    nb.metadata = {key: nb.metadata[key] for key in KEPT_METADATA if key in nb.metadata}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def sync(name):
    """Sync, execute and clean one lesson's pair NAME.py / NAME.ipynb. Returns 0 on success."""
    script, notebook = (os.path.join(ROOT, f"{name}.{ext}") for ext in ("py", "ipynb"))
    status = jupytext_cli(["--sync", script])
    if status:
        return status
    nb = jupytext.read(notebook)
    print(f"executing {os.path.relpath(notebook)} ...", flush=True)
    execute_notebook(nb, ROOT)
    jupytext.write(clean_metadata(nb), notebook)
    print(f"wrote {os.path.relpath(notebook)} with fresh outputs; {os.path.relpath(script)} is in sync")
    return 0


def main(argv=None):
    names = (sys.argv[1:] if argv is None else argv) or LESSONS
    unknown = [name for name in names if name not in LESSONS]
    if unknown:
        print(f"unknown lesson(s) {unknown}; the lessons are {list(LESSONS)}", file=sys.stderr)
        return 2
    for name in names:
        status = sync(name)
        if status:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
