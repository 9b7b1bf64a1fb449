"""Make the lesson script importable from the tests."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Tests write only to temporary folders: no bytecode caches in the checkout either.
sys.dont_write_bytecode = True

# Plots in tests render off-screen, whatever display the machine has.
os.environ.setdefault("MPLBACKEND", "Agg")


import numpy as np  # noqa: E402
import pytest  # noqa: E402

import linear_rnn_scratch  # noqa: E402
from toy_cell import TOY  # noqa: E402

# The cells the parametrised tests run on: every cell of the course (chapter 5's registry, which
# holds chapter 2's),
# and a toy cell registered here alone (toy_cell.py): no w_h, a state of shape
# (batch_size, n_nodes, 2) that is not its output. Adding a cell to a chapter's CELLS adds it
# to these tests.
TEST_CELLS = {**linear_rnn_scratch.CELLS, "toy": TOY}

# The slow end-to-end runs — every notebook re-executed in a fresh kernel, and whole chapters run
# as scripts — take minutes more than the rest of the suite together, so they run only when asked
# for: RUN_NOTEBOOKS=1 python -m pytest. CI always sets it; without it these tests are reported as
# skipped, each with its reason.
RUN_NOTEBOOKS = os.environ.get("RUN_NOTEBOOKS", "") not in ("", "0")
whole_chapter_run = pytest.mark.skipif(
    not RUN_NOTEBOOKS, reason="a whole chapter run as a script (a minute or more) is off: run "
    "RUN_NOTEBOOKS=1 python -m pytest to include it (CI always does)")


def build_random_layer(cell, shape, seed=0, dtype=np.float64, *, cells=None):
    """A layer of the cell keyed `cell` with random weights (its registry entry's random:
    weights N(0, 0.6^2) and biases N(0, 0.2^2) for the course's cells), and a batch for it.

    shape : (batch_size, n_sequences, n_features, n_nodes); cells : a CELLS mapping, or None
    (chapter 5's with the toy cell of toy_cell.py). x N(0, 1) and the first initial state
    N(0, 0.5^2), in the layer's state shape, all from np.random.default_rng(seed) after the
    weights. Returns (layer, x, h0, rng), rng ready for further draws (dh, c0, ...).
    """
    batch_size, n_sequences, n_features, n_nodes = shape
    rng = np.random.default_rng(seed)
    layer = (TEST_CELLS if cells is None else cells)[cell].random(n_features, n_nodes, rng, dtype)
    x = rng.normal(size=(batch_size, n_sequences, n_features)).astype(dtype)
    h0 = rng.normal(0, 0.5, layer.state_shape(layer.state_names[0], batch_size)).astype(dtype)
    return layer, x, h0, rng


@pytest.fixture
def random_layer():
    """The one random-layer builder of the test suite: build_random_layer."""
    return build_random_layer
