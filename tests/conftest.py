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

import gated_rnn_scratch  # noqa: E402
import rnn_scratch  # noqa: E402

# The slow end-to-end runs — every notebook re-executed in a fresh kernel, and whole chapters run
# as scripts — take minutes more than the rest of the suite together, so they run only when asked
# for: RUN_NOTEBOOKS=1 python -m pytest. CI always sets it; without it these tests are reported as
# skipped, each with its reason.
RUN_NOTEBOOKS = os.environ.get("RUN_NOTEBOOKS", "") not in ("", "0")
whole_chapter_run = pytest.mark.skipif(
    not RUN_NOTEBOOKS, reason="a whole chapter run as a script (a minute or more) is off: run "
    "RUN_NOTEBOOKS=1 python -m pytest to include it (CI always does)")

LAYERS = {"rnn": (rnn_scratch.SimpleRNN_BPTT, 1, 1), "lstm": (gated_rnn_scratch.LSTM_BPTT, 4, 1),
          "gru": (gated_rnn_scratch.GRU_BPTT, 3, 2)}   # class, blocks of columns, biases


def build_random_layer(cell, shape, seed=0, dtype=np.float64):
    """A layer of cell "rnn", "lstm" or "gru" with random weights, and a batch for it.

    shape : (batch_size, n_sequences, n_features, n_nodes). Weights N(0, 0.6^2), biases
    N(0, 0.2^2); x N(0, 1) and h0 N(0, 0.5^2), all from np.random.default_rng(seed).
    Returns (layer, x, h0, rng), rng ready for further draws (dh, c0, ...).
    """
    batch_size, n_sequences, n_features, n_nodes = shape
    layer_class, blocks, n_biases = LAYERS[cell]
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.6, (n_features, blocks * n_nodes)),
               rng.normal(0, 0.6, (n_nodes, blocks * n_nodes)),
               *(rng.normal(0, 0.2, blocks * n_nodes) for _ in range(n_biases))]
    layer = layer_class(*(w.astype(dtype) for w in weights))
    x = rng.normal(size=(batch_size, n_sequences, n_features)).astype(dtype)
    h0 = rng.normal(0, 0.5, (batch_size, n_nodes)).astype(dtype)
    return layer, x, h0, rng


@pytest.fixture
def random_layer():
    """The one random-layer builder of the test suite: build_random_layer."""
    return build_random_layer
