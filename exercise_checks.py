"""The checks of the exercise notebooks (tools/make_exercises.py writes them; tools/grade.py
and nbgrader run them).

Each check cell of an exercise notebook runs inside `with exercise(name):` and compares what
the learner's code returns with reference values that lie beside the notebook in
reference_values.npz (the test suite verifies every one of them independently: by central
differences, by the equations checked step by step, or by the assignment's given values).
A check that fails raises AssertionError with a message that says what is off, by how much,
and — where the wrong value is one a known slip produces — which slip it looks like. Only
NumPy is needed here: this module never imports a lesson chapter.
"""
import contextlib
import os

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


class _Exercise:
    def __init__(self, name):
        self.name, self.passed, self.failed = name, [], []


_current = []


@contextlib.contextmanager
def exercise(name):
    """Run one exercise's checks. Each check that fails is recorded and the others still
    run, so the message lists every value that is off; at the end a failed exercise raises
    AssertionError with all of them. An unwritten exercise (NotImplementedError) fails and
    says so; a passed one prints one line."""
    _current.append(_Exercise(name))
    try:
        yield _current[-1]
    except NotImplementedError:
        raise AssertionError(f"{name} is not written yet: it still raises "
                             "NotImplementedError (replace the two lines under "
                             "'# YOUR CODE HERE').") from None
    except Exception as error:
        if not _current[-1].failed:
            raise
        raise AssertionError("\n".join(_current[-1].failed[:5] + [
            f"then the check stopped: {type(error).__name__}: {error}"])) from error
    finally:
        done = _current.pop()
    if done.failed:
        shown = done.failed[:5] + ([f"... and {len(done.failed) - 5} more checks failed."]
                                   if len(done.failed) > 5 else [])
        raise AssertionError("\n".join(shown))
    errors = [err for err in done.passed if err is not None]
    print(f"{name}: passed {len(done.passed)} checks"
          + (f" (largest relative error {max(errors):.0e})" if errors else ""))


def _fail(message):
    """Record a failed check in the running exercise (raise at once outside one)."""
    if not _current:
        raise AssertionError(message)
    _current[-1].failed.append(message)


def close(what, got, expected, bound, slips=None):
    """Check that got (the learner's value) matches expected to within the relative error
    bound. slips: {description: the value that slip gives}; when got matches one of them,
    the message names the slip. Returns the relative error (None when it could not be
    measured: None, a wrong shape, NaN)."""
    name = _current[-1].name if _current else "check"
    expected = np.asarray(expected)
    if got is None:
        return _fail(f"{name}: {what} is None; expected an array of shape {expected.shape}.")
    got_array = np.asarray(got)
    if got_array.shape != expected.shape:
        return _fail(f"{name}: {what} has shape {got_array.shape}; expected "
                     f"{expected.shape}.")
    if not np.all(np.isfinite(got_array.astype(np.float64))):
        return _fail(f"{name}: {what} holds NaN or inf values.")
    err = relative_error(got_array, expected)
    if not err <= bound:
        message = (f"{name}: {what} is off — relative error {err:.1e} against the "
                   f"reference, above the bound {bound:.0e}.")
        for slip, value in (slips or {}).items():
            if relative_error(got_array, value) <= bound:
                message += f" It is exactly what this slip gives: {slip}."
                break
        return _fail(message)
    if _current:
        _current[-1].passed.append(err)
    return err


def equal(what, got, expected):
    """Check got == expected (strings, integers, lists of them), with both in the message."""
    name = _current[-1].name if _current else "check"
    if got != expected:
        return _fail(f"{name}: {what} is {got!r}; expected {expected!r}.")
    if _current:
        _current[-1].passed.append(None)


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
