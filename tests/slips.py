"""Break a lesson function on purpose: the classic slips of BPTT, made one line at a time.

`slipped(func, right, wrong)` returns a copy of `func` whose source has the text `right` replaced by
`wrong` (it must occur exactly once, so a renamed line makes the test fail loudly rather than
silently test nothing). The copy runs in func's own module namespace, so it calls the same helpers.
The slip tests then show that the lesson's checks catch each slip.
"""
import inspect
import textwrap


def slipped(func, right, wrong):
    """A copy of func with the one occurrence of the source text `right` replaced by `wrong`."""
    source = textwrap.dedent(inspect.getsource(func))
    count = source.count(right)
    assert count == 1, (f"{func.__name__}: the text {right!r} occurs {count} times in its source; "
                        "a slip must change exactly one place")
    # Decorators are dropped: an @add_to_class line would install the copy on the class itself.
    source = "\n".join(line for line in source.splitlines() if not line.startswith("@"))
    namespace = dict(func.__globals__)
    exec(compile(source.replace(right, wrong), f"<{func.__name__} with a slip>", "exec"), namespace)
    return namespace[func.__name__]
