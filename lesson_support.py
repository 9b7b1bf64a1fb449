"""Support code for the lessons: not a lesson itself.

Everything here is plumbing that the chapters need but a reader of the math does not:
the command-line options, saving figures and their common styling, aligned tables, and
the checks that turn bad input into a clear error (the *text* of those errors lives
here; a chapter says in one line which check it runs). The chapters import it in one
line, as d2l's chapters import `d2l`.
"""
import argparse
import functools
import inspect
import os
import sys
import textwrap
import time

import numpy as np

# The course's chapters, in order: each NAME.py (the lesson, a module) paired with NAME.ipynb.
# Every tool and test reads this list; a new chapter is one entry here.
CHAPTERS = ("rnn_scratch", "gated_rnn_scratch", "language_model_scratch", "seq2seq_scratch",
            "linear_rnn_scratch")

__all__ = [
    "CHAPTERS", "NotFittedError", "add_to_class", "as_float_array", "check_corpus", "check_fitted",
    "check_hyperparameters", "check_labels", "check_layer_input", "check_layer_weights",
    "check_lengths", "check_positive_integer", "check_positive_number",
    "check_sequence_data", "check_sequences",
    "check_state", "check_direct_gradient", "check_strings", "check_string_pairs",
    "check_task_size",
    "check_decoding", "finish_axes", "format_table",
    "in_notebook", "label_indices", "lesson_figure", "lesson_options", "lesson_finished",
    "log_this_epoch", "save_figure", "slipped", "stopwatch",
]


# -- running a lesson
# -------------------------------------------------------------------------
def in_notebook():
    """True inside a Jupyter kernel (the notebook), False when run as a script."""
    return "ipykernel" in sys.modules


def _integers(minimum):
    """An argparse type: comma-separated integers, each at least `minimum`."""
    def parse(text):
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be integers separated by commas; got {text!r}") from None
        if min(values) < minimum:
            raise argparse.ArgumentTypeError(
                f"must each be at least {minimum}; got {text!r}")
        return values
    return parse


def _integer(minimum):
    """An argparse type: one integer, at least `minimum`."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be an integer; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}; got {value}")
        return value
    return parse


def lesson_options(description, epochs=None, epochs_help="", options=(), argv=None):
    """The command-line options of a lesson, parsed.

    Every chapter has --seed, --plots-dir and --quiet, and --epochs (at least 1) when
    `epochs` gives its default. `options` declares a chapter's own ones as data: (flag,
    kind, default, help) with kind ("integers", minimum) for a comma-separated list or
    ("integer", minimum). On the command line an unknown option is an error, so a typo
    does not pass silently; inside a Jupyter kernel sys.argv holds the kernel's own
    flags, which are ignored. A default given as text is parsed like a command-line
    value. The result's .start is the time it was parsed.
    """
    parser = argparse.ArgumentParser(description=description)
    if epochs is not None:
        parser.add_argument("--epochs", type=_integer(1), default=epochs,
                            help=f"{epochs_help} (default {epochs})")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed for data and training (default 0)")
    parser.add_argument("--plots-dir", default="plots",
                        help="where the plots are saved (default plots/)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only headers and results, not every epoch")
    kinds = {"integers": _integers, "integer": _integer}
    for flag, (kind, minimum), default, help_text in options:
        parser.add_argument(flag, type=kinds[kind](minimum), default=default,
                            help=f"{help_text} (default {default})")
    args, unknown = parser.parse_known_args(argv)
    if unknown and not in_notebook():
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.start = time.perf_counter()
    return args


def stopwatch():
    """Start timing: returns a function that gives the seconds since the call."""
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


def log_this_epoch(verbose, epoch, epochs):
    """Should a training loop print its line for this epoch (1..epochs)?

    verbose : False (never), True (every epoch) or an integer k >= 1 (the first epoch,
    every k-th and the last: a log that a notebook page can hold).
    """
    if isinstance(verbose, (bool, np.bool_)) or verbose is None:
        return bool(verbose)
    if not isinstance(verbose, (int, np.integer)) or verbose < 1:
        raise ValueError(f"verbose must be True, False or a positive integer (print "
                         f"every k-th epoch); got {verbose!r}.")
    return epoch == 1 or epoch % verbose == 0 or epoch == epochs


def lesson_finished(name, args):
    """As a script, say how long the lesson took (since args were parsed) and where its
    plots are; a notebook shows neither (its cells show their own results)."""
    if not in_notebook():
        print(f"{name} finished in {time.perf_counter() - args.start:.1f} s; "
              f"plots are in {args.plots_dir}/")


# -- figures and tables
# -----------------------------------------------------------------------
# Text sizes of every figure: 12 pt, so that tick labels and legends stay at least 9 pt
# when a narrow page (a notebook at 800 px) shows a figure at 75% of its size.
FIGURE_FONTS = {"font.size": 12, "axes.titlesize": 12, "axes.labelsize": 12,
                "xtick.labelsize": 12, "ytick.labelsize": 12, "legend.fontsize": 12,
                "figure.titlesize": 13}


def lesson_figure(plot):
    """Decorator for a function that draws and saves a figure: its text is drawn at
    FIGURE_FONTS' sizes (matplotlib's own defaults are left alone)."""
    @functools.wraps(plot)
    def draw(*args, **kwargs):
        import matplotlib

        # Only the font sizes are set and put back. (matplotlib's rc_context restores
        # every setting on exit, "interactive" included, and with it the notebooks
        # showed only the first of these figures: see matplotlib issue 24351.)
        saved = {key: matplotlib.rcParams[key] for key in FIGURE_FONTS}
        matplotlib.rcParams.update(FIGURE_FONTS)
        try:
            return plot(*args, **kwargs)
        finally:
            matplotlib.rcParams.update(saved)
    return draw


def save_figure(fig, plots_dir, filename):
    """Save fig as plots_dir/filename (creating the folder) and return the path.

    Figures are at most 9 inches wide at 110 dpi: about 1,000 pixels, the width of a
    notebook column at 1280 px; a narrower page shows them smaller, which is what the
    text sizes of FIGURE_FONTS allow for. As a script the path is printed; a notebook
    shows the figure instead.
    """
    for ax in fig.axes:   # ticks drawn later (a notebook shows the figure after the
        ax.tick_params(labelsize=FIGURE_FONTS["xtick.labelsize"])   # cell) keep the size
    os.makedirs(plots_dir, exist_ok=True)
    path = os.path.join(plots_dir, filename)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    if not in_notebook():
        print(f"saved {path}")
    return path


def finish_axes(ax, xlabel=None, ylabel=None, title=None, log=False, legend=None,
                grid="major"):
    """The course's common styling of one panel: labels, an optional log y axis, a light
    grid and a legend (legend: None for none, else the keyword arguments of
    ax.legend)."""
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.grid(True, which=grid, alpha=0.3)
    if legend is not None:
        ax.legend(**legend)


def format_table(headers, rows):
    """An aligned plain-text table: the first column left-aligned, the others
    right-aligned.

    headers : list of str; rows : list of lists of already formatted str (one format per
    column).
    """
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), "  ".join("-" * w for w in widths),
                      *(line(r) for r in rows)])


def add_to_class(cls):
    """Decorator: add the function below to cls as a method (d2l's add_to_class), so a
    class can grow across the cells of one chapter, one idea per cell. The lessons use
    it only to add (tests/test_boundaries.py checks): a later cell never changes objects
    that earlier cells built; a subclass changes behaviour instead. (Running a cell
    again in a notebook replaces its own method, as it should.)"""
    def register(method):
        setattr(cls, method.__name__, method)
        return method
    return register


def slipped(func, right, wrong):
    """A copy of func with the one occurrence of the source text `right` replaced by
    `wrong`: a slip made on purpose, to see which check catches it. `right` must occur
    exactly once (a renamed line then fails loudly rather than silently changing
    nothing). The copy runs in func's own module namespace, so it calls the same helpers;
    decorators are dropped (an @add_to_class line would install the copy on the class
    itself)."""
    source = textwrap.dedent(inspect.getsource(func))
    count = source.count(right)
    if count != 1:
        raise ValueError(f"{func.__name__}: the text {right!r} occurs {count} times in "
                         "its source; a slip must change exactly one place")
    source = "\n".join(line for line in source.splitlines() if not line.startswith("@"))
    namespace = dict(func.__globals__)
    exec(compile(source.replace(right, wrong), f"<{func.__name__} with a slip>", "exec"),
         namespace)
    return namespace[func.__name__]


# -- the layers' input checks
# -----------------------------------------------------------------
def as_float_array(value, name):
    """An array-like as a float array: integers become float64, float32 stays float32.
    Anything non-numeric is a ValueError that names the argument."""
    arr = np.asarray(value)
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise ValueError(f"{name} must hold real numbers; "
                         f"got an array of dtype {arr.dtype}.")
    return arr


def check_layer_weights(w_x, w_h, biases, n_blocks, layer):
    """A layer's weights: w_x (n_features, k*n_nodes), w_h (n_nodes, k*n_nodes) and each
    bias (k*n_nodes,), k = n_blocks (1 for the vanilla RNN, 4 for the LSTM, 3 for the
    GRU).
    Returns w_x, w_h and the dict of biases, as float arrays of one dtype."""
    w_x, w_h = as_float_array(w_x, "w_x"), as_float_array(w_h, "w_h")
    biases = {name: as_float_array(b, name) for name, b in biases.items()}
    if n_blocks == 1:
        if w_x.ndim != 2:
            raise ValueError("w_x must be 2-D (n_features, n_nodes); "
                             f"got shape {w_x.shape}.")
        n_nodes = w_x.shape[1]
        if w_h.shape != (n_nodes, n_nodes):
            raise ValueError("w_h must have shape (n_nodes, n_nodes) = "
                             f"({n_nodes}, {n_nodes}) to match w_x of shape "
                             f"{w_x.shape}; got {w_h.shape}.")
        for name, b in biases.items():
            if b.shape != (n_nodes,):
                raise ValueError(f"{name} must have shape (n_nodes,) = ({n_nodes},) "
                                 f"to match w_x of shape {w_x.shape}; got {b.shape}.")
    else:
        blocks = f"{n_blocks}·n_nodes"
        if w_h.ndim != 2 or w_h.shape[1] != n_blocks * w_h.shape[0]:
            raise ValueError(f"{layer}: w_h must have shape (n_nodes, {blocks}), "
                             f"{n_blocks} blocks of gates side by side; "
                             f"got {w_h.shape}.")
        n_nodes = w_h.shape[0]
        if w_x.ndim != 2 or w_x.shape[1] != n_blocks * n_nodes:
            raise ValueError(f"{layer}: w_x must have shape (n_features, {blocks}) = "
                             f"(n_features, {n_blocks * n_nodes}) to match w_h of "
                             f"shape {w_h.shape}; got {w_x.shape}.")
        for name, b in biases.items():
            if b.shape != (n_blocks * n_nodes,):
                raise ValueError(f"{layer}: {name} must have shape ({blocks},) = "
                                 f"({n_blocks * n_nodes},) to match w_h of shape "
                                 f"{w_h.shape}; got {b.shape}.")
    dtype = np.result_type(w_x, w_h, *biases.values())
    return (w_x.astype(dtype, copy=False), w_h.astype(dtype, copy=False),
            {name: b.astype(dtype, copy=False) for name, b in biases.items()})


def check_state(layer, state, name, batch_size):
    """An initial state such as h0 or c0, or a state's end gradient such as dc_T (the
    state contract's names: <state>0 and d<state>_T), in the shape the layer gives that
    state, layer.state_shape(<state>, batch_size), and the layer's dtype; zeros when
    None."""
    key = name[1:-2] if name.startswith("d") and name.endswith("_T") else name[:-1]
    shape = layer.state_shape(key, batch_size)
    if state is None:
        return np.zeros(shape, dtype=layer.dtype)
    state = as_float_array(state, name).astype(layer.dtype, copy=False)
    if state.shape != shape:
        size = ("(batch_size, n_nodes)" if shape == (batch_size, layer.n_nodes)
                else f"{key}'s shape")
        raise ValueError(f"{name} must have shape {size} = {shape}; got {state.shape}.")
    return state


def check_layer_input(layer, x, h0):
    """x (batch_size, n_sequences, n_features) and the first initial state h0 (named
    after layer.state_names[0]) for layer.forward. Returns x in the layer's dtype and h0
    (zeros when None)."""
    x = as_float_array(x, "x").astype(layer.dtype, copy=False)
    if x.ndim != 3 or x.shape[2] != layer.n_features:
        raise ValueError("x must be 3-D (batch_size, n_sequences, n_features) with "
                         f"n_features = {layer.n_features}; got shape {x.shape}.")
    if 0 in x.shape:
        raise ValueError(f"x is empty: got shape {x.shape}.")
    return x, check_state(layer, h0, layer.state_names[0] + "0", x.shape[0])


def check_lengths(lengths, batch_size, n_sequences):
    """Per-sequence lengths: integers, shape (batch_size,), each in 1..n_sequences."""
    arr = np.asarray(lengths)
    if arr.shape != (batch_size,):
        raise ValueError(f"lengths must have shape (batch_size,) = ({batch_size},); "
                         f"got shape {arr.shape}.")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"lengths must be integers; got dtype {arr.dtype}: "
                         f"{arr.tolist()[:5]}.")
    if arr.min() < 1 or arr.max() > n_sequences:
        bad = arr[(arr < 1) | (arr > n_sequences)]
        raise ValueError(f"lengths must lie in 1..n_sequences = 1..{n_sequences}; "
                         f"got {bad.tolist()[:5]}.")
    return arr.astype(np.int64)


def check_direct_gradient(layer, dh, batch_size, n_sequences, name="dh"):
    """The loss's direct gradient for backward: (batch_size, n_nodes) for h_T only, or
    (batch_size, n_sequences, n_nodes) for every h_t, matching the last forward pass.
    Returns it as an array in the layer's dtype."""
    n_nodes = layer.n_nodes
    dh = as_float_array(dh, name).astype(layer.dtype, copy=False)
    if dh.shape not in ((batch_size, n_nodes), (batch_size, n_sequences, n_nodes)):
        raise ValueError(f"{name} must have shape (batch_size, n_nodes) = "
                         f"({batch_size}, {n_nodes}) or (batch_size, n_sequences, "
                         f"n_nodes) = ({batch_size}, {n_sequences}, {n_nodes}) "
                         f"to match the last forward pass; got {dh.shape}.")
    return dh


def check_task_size(n_samples, n_steps, high=None):
    """The sizes of a temporal-order data set (chapter 1): n_samples at least 1; n_steps
    an int, at least 6 (B, two keys, distractors and E); with high, the lengths run from
    n_steps (low) to high, n_steps <= high."""
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be an integer, at least 1; got {n_samples!r}.")
    name = "n_sequences" if high is None else "low"
    for label, value in ((name, n_steps), ("high", high)):
        if label == "high" and high is None:
            continue
        if not isinstance(value, (int, np.integer)):
            raise ValueError(f"{label} must be an integer (a number of time steps); "
                             f"got {value!r}.")
        if value < 6:
            raise ValueError(f"{label} must be at least 6 to hold B, two keys, "
                             f"distractors and E; got {value}.")
    if high is not None and high < n_steps:
        raise ValueError(f"the lengths run from low to high: low <= high needed; got "
                         f"low = {n_steps}, high = {high}.")


# -- the models' input checks
# -----------------------------------------------------------------
class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used for prediction before fit."""


def check_fitted(model, attribute, call):
    """A NotFittedError unless model has `attribute` (set by fit); `call` says what to
    call."""
    if not hasattr(model, attribute):
        raise NotFittedError(f"This {type(model).__name__} is not fitted yet: "
                             f"call {call}.")


def check_positive_number(value, name, allow_none=False):
    """A positive finite number (or None when allow_none), else a ValueError naming
    it."""
    if value is None and allow_none:
        return
    if (isinstance(value, bool)
            or not isinstance(value, (int, float, np.integer, np.floating))
            or not (value > 0 and np.isfinite(value))):
        raise ValueError(f"{name} must be a positive number"
                         f"{' or None' if allow_none else ''}; got {value!r}.")


def check_positive_integer(value, name):
    """A positive integer (not a bool), else a ValueError naming it."""
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or value < 1):
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def check_hyperparameters(model, integers=("n_nodes", "epochs", "batch_size")):
    """The training settings every model of the course shares: positive integer sizes, a
    positive learning_rate, optimizer "sgd" or "adam", clip_norm positive or None, a
    float dtype."""
    for name in integers:
        check_positive_integer(getattr(model, name), name)
    check_positive_number(model.learning_rate, "learning_rate")
    if model.optimizer not in ("sgd", "adam"):
        raise ValueError(f'optimizer must be "sgd" or "adam"; got {model.optimizer!r}.')
    check_positive_number(model.clip_norm, "clip_norm", allow_none=True)
    if np.dtype(model.dtype) not in (np.float32, np.float64):
        raise ValueError("dtype must be np.float32 or np.float64; "
                         f"got {model.dtype!r}.")


def check_sequences(sequences, name="X", n_features=None):
    """A list of sequences of different lengths, each an array-like (n_steps_i,
    n_features) with n_steps_i >= 1. Returns (list of float ndarrays, lengths: int
    ndarray (n_samples,))."""
    if len(sequences) == 0:
        raise ValueError(f"{name} is an empty list; it needs at least one sequence.")
    arrays = []
    for i, seq in enumerate(sequences):
        try:
            seq = np.asarray(seq)
        except ValueError:
            raise ValueError(f"{name}[{i}] is not a rectangular 2-D array "
                             "(n_steps, n_features).")
        if seq.dtype.kind not in "biuf":
            raise ValueError(f"{name}[{i}] must hold numbers; "
                             f"got an array of dtype {seq.dtype}.")
        if seq.ndim != 2:
            raise ValueError(f"{name}[{i}] must be 2-D (n_steps, n_features); "
                             f"got shape {seq.shape}.")
        if 0 in seq.shape:
            raise ValueError(f"{name}[{i}] is empty: got shape {seq.shape}; "
                             "every sequence needs at least one step and one feature.")
        expected = arrays[0].shape[1] if arrays else n_features
        if expected is not None and seq.shape[1] != expected:
            where = "the model was fitted with" if not arrays else f"{name}[0] has"
            raise ValueError(f"{name}[{i}] has n_features = {seq.shape[1]}, "
                             f"but {where} n_features = {expected}.")
        if seq.dtype.kind == "f" and not np.all(np.isfinite(seq)):
            raise ValueError(f"{name}[{i}] contains NaN or infinite values; "
                             "every entry must be finite.")
        arrays.append(seq.astype(np.float64) if seq.dtype.kind != "f" else seq)
    return arrays, np.array([len(a) for a in arrays])


def check_sequence_data(X, name="X", n_features=None):
    """Sequences: a 3-D array (n_samples, n_sequences, n_features), or a list of 2-D
    arrays (n_steps_i, n_features) of different lengths. Returns (X, lengths): the array
    (not copied when it already is one) and None, or the list of arrays and their
    lengths (n_samples,)."""
    if isinstance(X, (list, tuple)):
        try:
            shapes = {np.shape(seq) for seq in X}
        except ValueError:               # an item that is not even rectangular
            shapes = set()
        if len(shapes) == 1 and len(next(iter(shapes))) == 2:
            X = np.asarray(X)            # all of one length: an ordinary 3-D array
        else:
            return check_sequences(X, name, n_features)
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers; got an array of dtype {X.dtype}.")
    if X.ndim != 3:
        raise ValueError(f"{name} must be 3-D (n_samples, n_sequences, n_features) "
                         "or a list of 2-D (n_steps, n_features) sequences; "
                         f"got shape {X.shape}.")
    if 0 in X.shape:
        raise ValueError(f"{name} is empty: got shape {X.shape}; "
                         "it needs at least one sample, step and feature.")
    if n_features is not None and X.shape[2] != n_features:
        raise ValueError(f"{name} has n_features = {X.shape[2]}, "
                         f"but the model was fitted with n_features = {n_features}; "
                         f"got shape {X.shape}.")
    if X.dtype.kind == "f" and not np.all(np.isfinite(X)):
        bad = int(np.sum(~np.isfinite(X)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); "
                         "every entry must be finite.")
    return X, None


def check_labels(y, n_samples, name="y"):
    """Labels: 1-D, one per sample. Returns an ndarray."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,); got shape {y.shape}.")
    if len(y) != n_samples:
        raise ValueError(f"{name} must have one label per sample: "
                         f"expected {n_samples} labels, got {len(y)}.")
    return y


def label_indices(classes, y, name="y"):
    """Labels y (n_samples,) as indices into the sorted classes; unknown labels are an
    error."""
    idx = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
    unknown = classes[idx] != y
    if np.any(unknown):
        raise ValueError(f"{name} holds labels not seen in training: "
                         f"{np.unique(y[unknown]).tolist()}; known classes are "
                         f"{classes.tolist()}.")
    return idx


def check_corpus(corpus, name):
    """A text corpus: one string of at least 2 symbols (a stream) or a non-empty list of
    strings of at least 2 symbols each. Returns ("stream", corpus) or ("list", list of
    str)."""
    if isinstance(corpus, str):
        if len(corpus) < 2:
            raise ValueError(f"{name} must hold at least 2 symbols, one to read and "
                             f"one to predict; got {corpus!r}.")
        return "stream", corpus
    if not isinstance(corpus, list):
        raise ValueError(f"{name} must be a string (one stream) or a list of strings "
                         f"(independent sequences); got {type(corpus).__name__}.")
    if len(corpus) == 0:
        raise ValueError(f"{name} is an empty list; it needs at least one string.")
    for i, s in enumerate(corpus):
        if not isinstance(s, str):
            raise ValueError(f"{name}[{i}] must be a string; "
                             f"got {type(s).__name__}: {s!r}.")
        if len(s) < 2:
            raise ValueError(f"{name}[{i}] = {s!r} has fewer than 2 symbols; "
                             "each string needs one to read and one to predict.")
    return "list", list(corpus)


# -- chapter 4: pairs of strings
# --------------------------------------------------------------------------
def check_strings(strings, name):
    """A non-empty list (or tuple) of non-empty strings, else a ValueError naming what
    came."""
    if isinstance(strings, str):
        raise ValueError(f"{name} must be a list of strings; got a single string "
                         f"{strings[:40]!r}: wrap it in a list, [{name[:-1] or name}].")
    if not isinstance(strings, (list, tuple)):
        raise ValueError(f"{name} must be a list of strings; "
                         f"got {type(strings).__name__}.")
    if len(strings) == 0:
        raise ValueError(f"{name} is empty; it needs at least one string.")
    for i, s in enumerate(strings):
        if not isinstance(s, str):
            raise ValueError(f"{name}[{i}] must be a string; "
                             f"got {type(s).__name__}: {s!r}.")
        if not s:
            raise ValueError(f"{name}[{i}] is an empty string; every {name[:-1]} needs "
                             "at least one character.")
    return list(strings)


def check_string_pairs(sources, targets, source_name="sources", target_name="targets"):
    """Both lists checked, and of the same length."""
    sources = check_strings(sources, source_name)
    targets = check_strings(targets, target_name)
    if len(sources) != len(targets):
        raise ValueError(f"{source_name} and {target_name} must have the same length; "
                         f"got {len(sources)} and {len(targets)}.")
    return sources, targets


def check_decoding(beam_width, max_length, length_penalty):
    """Positive integers beam_width and max_length, a finite length_penalty."""
    check_positive_integer(beam_width, "beam_width")
    check_positive_integer(max_length, "max_length")
    if (isinstance(length_penalty, bool)
            or not isinstance(length_penalty, (int, float, np.integer, np.floating))
            or not np.isfinite(length_penalty)):
        raise ValueError("length_penalty must be a finite number; "
                         f"got {length_penalty!r}.")
