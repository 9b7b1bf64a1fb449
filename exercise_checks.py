"""The checks of the exercise notebooks (tools/make_exercises.py writes them; tools/grade.py
and nbgrader run them).

Each check cell of an exercise notebook runs inside `with exercise(name):` and compares what
the learner's code returns with reference values that lie beside the notebook in
reference_values.npz (the test suite verifies every one of them independently: by central
differences, by the equations checked step by step, or by the assignment's given values).
A check that fails raises CheckFailed (an AssertionError) with a message that says what is
off, by how much, and — where the wrong value is one a known slip produces — which slip it
looks like; an exception in the learner's code is reported with the line of their cell that
raised it. Only NumPy is needed here: this module never imports a lesson chapter.
"""
import contextlib
import linecache
import os
import traceback

import numpy as np

REFERENCE_FILE = "reference_values.npz"
_cache = {}


def _load():
    """The reference values beside this module, read once."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), REFERENCE_FILE)
    if path not in _cache:
        with np.load(path) as data:
            _cache[path] = {k: data[k] for k in data.files}
    return _cache[path]


def ref(key):
    """The reference array stored under key (for example "rnn_backward_loop.m2o.dw_h")."""
    return _load()[key].copy()


def refs(prefix):
    """Every reference array under prefix + "." as a dict keyed by the rest of its name."""
    cut = len(prefix) + 1
    return {k[cut:]: v.copy() for k, v in _load().items() if k.startswith(prefix + ".")}


def slips(prefix, name):
    """{description: value of `name`} of every slip stored under prefix + ".slip<i>"."""
    data, found, i = _load(), {}, 0
    while f"{prefix}.slip{i}.description" in data:
        found[str(data[f"{prefix}.slip{i}.description"])] = data[f"{prefix}.slip{i}.{name}"]
        i += 1
    return found


def relative_error(got, expected):
    """max |got - expected| / max(|got| + |expected|), one number for a whole array (0 when
    both are 0)."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    scale = np.max(np.abs(got) + np.abs(expected))
    return float(np.max(np.abs(got - expected)) / scale) if scale > 0 else 0.0


class CheckFailed(AssertionError):
    """A failed check. A notebook shows it as its message alone: IPython prints what
    _render_traceback_ returns instead of the frames of a traceback (which would all be
    this module's). A grader still sees an error, as from any exception."""

    def _render_traceback_(self):
        return [f"{type(self).__name__}: {self}"]


def _in_a_cell(filename):
    """Whether code of this file name was typed in a notebook cell (ipykernel's names) or
    at an IPython prompt."""
    return "ipykernel_" in filename or filename.startswith("<ipython-input-")


def where_it_failed(error):
    """Where in the notebook's cells an exception was raised, as a sentence: the line of
    the learner's function that raised it, or the check's own line (its deepest frame in a
    cell); an unpacking error names the form the check expected. '' when no frame of it
    lies in a cell."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if _in_a_cell(f.filename)]
    if not frames:
        return ""
    frame = frames[-1]
    line = (linecache.getline(frame.filename, frame.lineno) or frame.line or "").strip()
    if frame.name != "<module>":
        return f" (at line {frame.lineno} of {frame.name}, in its cell: `{line}`)"
    if isinstance(error, ValueError) and "values to unpack" in str(error) and " = " in line:
        form = line.split(" = ")[0].strip()
        return (f" (the check's line `{line}` expects the exercise to return "
                f"({form}): return exactly that)")
    return f" (in the check's line `{line}`)"


class _Exercise:
    def __init__(self, name):
        self.name, self.case = name, None
        self.passed = []     # (relative error or None, bound or None, what, allows)
        self.failed = []     # (case, message, slip or None)


_current = []

# What a check's bound allows for, unless it says otherwise (close's `allows`); and what
# the bound of a check against the assignment's printed h_T allows for
ROUNDING = "float64 rounding, in another order of operations than the reference's"
PRINTED_H_T = "the assignment's printed h_T, given to 8 digits"


def case(label, hidden=False):
    """Label the checks that follow in the running exercise: the case they check (its
    sizes, options), and whether the notebook shows it or only the grader runs it."""
    _current[-1].case = f"{label} ({'hidden' if hidden else 'visible'} check)"


def failure_message(name, failed, limit=5):
    """One message for an exercise's failed checks: by case, each case's failures on one
    line (at most `limit`), then each slip they match, once."""
    lines, by_case, slips_seen = [f"{name}: {len(failed)} checks failed"], {}, []
    for where, message, slip in failed:
        by_case.setdefault(where, []).append(message)
        if slip is not None and slip not in slips_seen:
            slips_seen.append(slip)
    for where, messages in by_case.items():
        more = len(messages) - limit
        shown = "; ".join(messages[:limit]) + (f"; and {more} more" if more > 0 else "")
        lines.append(f"  {where or 'the check'}: {shown}")
    lines += [f"The wrong values are exactly what this slip gives: {slip}."
              for slip in slips_seen]
    return "\n".join(lines)


def passed_message(name, passed):
    """The line a passed exercise prints: how many checks, and the largest relative error
    beside its bound and what that bound allows for."""
    measured = [check for check in passed if check[0] is not None]
    line = f"{name}: passed {len(passed)} checks"
    if measured:
        err, bound, what, allows = max(measured, key=lambda check: check[0])
        line += (f" (largest relative error {err:.0e}, in {what}: within its bound "
                 f"{bound:.0e}, which allows for {allows})")
    return line


@contextlib.contextmanager
def exercise(name):
    """Run one exercise's checks. Each check that fails is recorded and the others still
    run, so the message lists every value that is off, by case; at the end a failed
    exercise raises CheckFailed with all of them. An unwritten exercise
    (NotImplementedError) fails and says so; a passed one prints one line."""
    _current.append(_Exercise(name))
    try:
        yield _current[-1]
    except NotImplementedError:
        raise CheckFailed(f"{name} is not written yet: it still raises "
                          "NotImplementedError (replace the two lines under "
                          "'# YOUR CODE HERE').") from None
    except Exception as error:
        stopped = (f"{type(error).__name__}: {error}{where_it_failed(error)}")
        done = _current[-1]
        if not done.failed:
            raise CheckFailed(f"{name} raised {stopped}" + (
                f", in the case {done.case}" if done.case else "")) from error
        raise CheckFailed(failure_message(name, done.failed)
                          + f"\nthen the check stopped: {stopped}") from error
    finally:
        done = _current.pop()
    if done.failed:
        raise CheckFailed(failure_message(name, done.failed))
    print(passed_message(name, done.passed))


def _fail(message, slip=None):
    """Record a failed check in the running exercise (raise at once outside one)."""
    if not _current:
        raise CheckFailed(message)
    _current[-1].failed.append((_current[-1].case, message, slip))


def close(what, got, expected, bound, slips=None, allows=ROUNDING):
    """Check that got (the learner's value) matches expected to within the relative error
    bound. slips: {description: the value that slip gives}; when got matches one of them,
    the message names the slip. allows: what the bound allows for (said when the exercise
    passes). Returns the relative error (None when it could not be
    measured: None, a wrong shape, NaN)."""
    expected = np.asarray(expected)
    if got is None:
        return _fail(f"{what} is None; expected an array of shape {expected.shape}")
    got_array = np.asarray(got)
    if got_array.shape != expected.shape:
        return _fail(f"{what} has shape {got_array.shape}; expected {expected.shape}")
    if not np.all(np.isfinite(got_array.astype(np.float64))):
        return _fail(f"{what} holds NaN or inf values")
    err = relative_error(got_array, expected)
    if not err <= bound:
        matched = next((slip for slip, value in (slips or {}).items()
                        if relative_error(got_array, value) <= bound), None)
        return _fail(f"{what} is off by relative error {err:.1e} (bound {bound:.0e})",
                     matched)
    if _current:
        _current[-1].passed.append((err, bound, what, allows))
    return err


def equal(what, got, expected):
    """Check got == expected (strings, integers, lists of them), with both in the message."""
    if got != expected:
        return _fail(f"{what} is {got!r}; expected {expected!r}")
    if _current:
        _current[-1].passed.append((None, None, what, None))


def input_gradient_skipped(grads, name, expected, bound):
    """Check what a backward pass returned with input_gradient=False: dx is None, and the
    gradient `name` is still expected (to within bound)."""
    equal("the type of dx with input_gradient=False", type(grads["dx"]).__name__,
          "NoneType")
    close(f"{name} with input_gradient=False", grads[name], expected, bound)


def expected_draw(model, prime, temperature, seed):
    """The symbol a language model's sample(1, prime, temperature, seed) must draw: the
    inverse-CDF draw, with the generator's first number, from the model's next-symbol
    distribution after prime at that temperature (computed here from predict_proba, its
    distribution at temperature 1)."""
    p = model.predict_proba(prime)[-1] ** (1 / temperature)
    u = np.random.default_rng(seed).random() * p.sum()
    return model.vocab_[min(int(np.searchsorted(np.cumsum(p), u, side="right")), len(p) - 1)]


@contextlib.contextmanager
def standing_in(namespace, **stand_ins):
    """Replace names in namespace (the notebook's globals()) for the duration of a check,
    so an exercise is graded on its own, not through another exercise it calls."""
    saved = {name: namespace[name] for name in stand_ins}
    namespace.update(stand_ins)
    try:
        yield
    finally:
        namespace.update(saved)
