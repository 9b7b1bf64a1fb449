"""tools/make_exercises.py and exercise_checks.py: the source notebook is the lesson with its
exercises marked and a check after each; the release notebook keeps no line of a solution;
every reference value a check holds is verified here independently of the solution that
computed it (central differences, the equations checked step by step, the assignment's given
values, a formula written in this file). The grading runs themselves are in test_grade.py."""
import ast
import importlib
import os
import sys
from collections import Counter

import jupytext
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import exercise_checks as checks  # noqa: E402
import make_exercises as mx  # noqa: E402
import rnn_scratch as rs  # noqa: E402
from rnn_scratch import numerical_gradient  # noqa: E402  (central differences)

CHAPTERS = list(mx.LESSONS)


def test_clear_solutions_writes_nbgraders_stub_at_the_delimiters_indentation():
    # the example of nbgrader's documentation ("Customizing how the student version looks")
    source = ('def foo(bar):\n    """Prints `bar`."""\n    ### BEGIN SOLUTION\n    print(bar)\n'
              '    ### END SOLUTION')
    cleared, replaced = mx.clear_solutions(source)
    assert replaced
    assert cleared == ('def foo(bar):\n    """Prints `bar`."""\n    # YOUR CODE HERE\n'
                       '    raise NotImplementedError()')
    for broken in ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
                   "x = 1\n### BEGIN SOLUTION\ny = 2"):
        with pytest.raises(RuntimeError):
            mx.clear_solutions(broken)


def test_clear_hidden_tests_drops_the_region_and_its_delimiters():
    source = ("assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS\n"
              "print('ok')")
    assert mx.clear_hidden_tests(source) == ("assert f(1) == 2\nprint('ok')", True)
    with pytest.raises(RuntimeError):
        mx.clear_hidden_tests("### BEGIN HIDDEN TESTS\nassert False")


def test_at_least_twelve_exercises_including_the_original_assignment():
    names = [name for chapter in CHAPTERS for name in mx.exercises(chapter)]
    assert len(names) >= 12 and len(set(names)) == len(names)
    for original in ("SimpleRNN._recurrence", "SimpleRNN_BPTT.backward", "training_step"):
        assert original in names
    assert set(names) == set(mx.CHECKS), "every exercise has a check, and every check an exercise"


def solution_regions(nb):
    """The lines of every solution region of nb, one list per region."""
    regions = []
    for cell in nb.cells:
        for line in cell.source.split("\n"):
            if "BEGIN SOLUTION" in line:
                regions.append([])
            elif "END SOLUTION" in line:
                regions[-1].append(None)
            elif regions and (not regions[-1] or regions[-1][-1] is not None):
                regions[-1].append(line)
    return [[line for line in region if line is not None] for region in regions]


@pytest.fixture(scope="module", params=CHAPTERS)
def notebooks(request):
    source = mx.source_notebook(request.param)
    return request.param, source, mx.release_notebook(source)


def test_the_release_keeps_no_line_of_a_solution(notebooks):
    chapter, source, release = notebooks
    assert len(release.cells) == len(source.cells)
    inside, outside = set(), set()
    for cell in source.cells:
        in_region = False
        for line in cell.source.split("\n"):
            if "BEGIN SOLUTION" in line or "END SOLUTION" in line:
                in_region = "BEGIN" in line
                continue
            (inside if in_region else outside).add(line.strip())
    only_in_solutions = {line for line in inside - outside if len(line) >= 20}
    assert only_in_solutions, "no solution lines found: the check would pass vacuously"
    released = {line.strip() for cell in release.cells for line in cell.source.split("\n")}
    assert not only_in_solutions & released
    stubs = sum(cell.source.count("# YOUR CODE HERE\n") for cell in release.cells)
    assert stubs == len(mx.exercises(chapter))
    assert not any("HIDDEN TESTS" in cell.source for cell in release.cells)
    # nor any of the right lines chapter 1's gallery of slips quotes
    quoted = [right for _, right, _ in importlib.import_module("rnn_scratch").BPTT_SLIPS]
    assert not any(right in cell.source for right in quoted for cell in release.cells
                   if chapter == "rnn_scratch")


def test_each_exercise_is_a_few_to_about_thirty_lines(notebooks):
    chapter, source, _ = notebooks
    sizes = [len(region) for region in solution_regions(source)]
    assert len(sizes) == len(mx.exercises(chapter))
    assert all(1 <= n <= 32 for n in sizes), sizes


def code_lines(texts):
    """The non-blank code lines of texts, stripped, as a multiset (a method taken out of its
    class reads the same stripped), without nbgrader's markers, the lesson's part markers and
    the line that names the helpers an exercise may call."""
    return Counter(line.strip() for text in texts for line in text.split("\n")
                   if line.strip() and "SOLUTION" not in line and not mx.PART.match(line)
                   and not line.strip().startswith(mx.HELPERS_NOTE))


def test_the_source_notebook_is_the_lesson_without_its_demos(notebooks):
    """Every markdown cell of the lesson, in order (as for_exercises words it); every line of
    its code except the `if __name__ == "__main__":` blocks and the cells left out; each
    exercise in a solution cell of its own, a method as `@add_to_class(Class)`; one check cell
    per exercise."""
    chapter, source, _ = notebooks
    lesson = jupytext.read(os.path.join(ROOT, f"{chapter}.py"))
    left_out_names = mx.LEFT_OUT.get(chapter, ())
    kept = [mx.without_demos(c.source) for c in lesson.cells if c.cell_type == "code"]
    left_out = [text for text in kept if text and mx.leaves_out(text, left_out_names)]
    assert len(left_out) >= len(left_out_names)
    assert ([c.source for c in source.cells[1:] if c.cell_type == "markdown"]
            == [mx.for_exercises(c.source) if c.cell_type == "markdown" else mx.LEFT_OUT_NOTE
                for c in lesson.cells if c.cell_type == "markdown"
                or mx.without_demos(c.source) in left_out])
    checks_found = mx.test_cells(source)
    ours = [c.source for i, c in enumerate(source.cells) if c.cell_type == "code"
            and i not in {index for index, _ in checks_found.values()}]
    added = Counter(f"@add_to_class({name.split('.')[0]})"
                    for name in mx.exercises(chapter) if "." in name)
    assert code_lines(ours) == code_lines(t for t in kept if t not in left_out) + added
    assert not any('__name__ == "__main__"' in c.source for c in source.cells
                   if c.cell_type == "code")
    solution_cells = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert [c.metadata["nbgrader"]["grade_id"] for c in solution_cells] == [
        mx.exercise_id(n) for n in mx.exercises(chapter)]
    for cell in solution_cells:       # one function per solution cell, nothing else
        tree = ast.parse(cell.source)
        assert len(tree.body) == 1 and isinstance(tree.body[0], ast.FunctionDef)
    assert list(checks_found) == ["check_" + mx.exercise_id(n) for n in mx.exercises(chapter)]
    for grade_id, (index, points) in checks_found.items():
        cell = source.cells[index]
        assert points == mx.CHECKS[cell.source.split("Check ")[1].split(" (")[0]].points
        assert cell.metadata["nbgrader"]["locked"] and not cell.metadata["nbgrader"]["solution"]
        assert mx.BEGIN_HIDDEN in cell.source and mx.END_HIDDEN in cell.source
    assert source.metadata["kernelspec"]["name"] == "python3"


def test_without_demos_drops_only_the_main_blocks():
    cell = 'def f():\n    return 1\n\n\nif __name__ == "__main__":\n    print(f())\n'
    assert mx.without_demos(cell) == "def f():\n    return 1"
    assert mx.without_demos('# a comment\nif __name__ == "__main__":\n    run()') == ""


def test_an_exercise_the_lesson_does_not_define_is_an_error():
    with pytest.raises(ValueError, match="without a check"):
        mx.source_notebook("rnn_scratch", ["no_such_function"])


def test_make_exercises_writes_both_notebooks_and_what_they_import(tmp_path):
    assert mx.main(["--out", str(tmp_path), "gated_rnn_scratch"]) == 0
    for kind in ("source", "release"):
        folder = tmp_path / kind / "gated_rnn_scratch"
        assert sorted(os.listdir(folder)) == sorted([
            "gated_rnn_scratch.ipynb", "reference_values.npz", "lesson_support.py",
            "exercise_checks.py", "rnn_scratch.py"])
    with pytest.raises(SystemExit):
        mx.main(["--out", str(tmp_path), "chapter_five"])


# -- exercise_checks: the messages a learner reads -----------------------------------------------
def test_close_names_the_shape_the_error_and_the_slip():
    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    with checks.exercise("demo"):
        checks.close("dw", expected + 1e-12, expected, 1e-8)
    for got, words in ((None, "is None"), (expected[0], "shape (2,); expected (2, 2)"),
                       (expected * np.nan, "NaN"), (expected * 2, "relative error 3.3e-01"),
                       (expected * 3, "this slip gives: tripled")):
        with pytest.raises(AssertionError, match=words.replace("(", r"\(").replace(")", r"\)")):
            with checks.exercise("demo"):
                checks.close("dw", got, expected, 1e-8, slips={"tripled": expected * 3})


def test_an_unwritten_exercise_fails_and_says_so(capsys):
    def unwritten():
        raise NotImplementedError()
    with pytest.raises(AssertionError, match="demo is not written yet"):
        with checks.exercise("demo"):
            unwritten()
    with checks.exercise("demo"):
        checks.equal("shape", (2, 3), (2, 3))
    assert capsys.readouterr().out == "demo: passed 1 checks\n"


def test_standing_in_restores_the_names():
    namespace = {"f": 1}
    with checks.standing_in(namespace, f=2):
        assert namespace["f"] == 2
    assert namespace["f"] == 1


# -- the reference values, verified independently ------------------------------------------------
@pytest.fixture(scope="module")
def references():
    return {chapter: mx.reference_values(chapter) for chapter in CHAPTERS}


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def rnn_step(x_t, h, c, case):
    return np.tanh(x_t @ case["w_x"] + h @ case["w_h"] + case["b"]), None


def lstm_step(x_t, h, c, case):
    i, f, g, o = np.split(x_t @ case["w_x"] + h @ case["w_h"] + case["b"], 4, axis=1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def gru_step(x_t, h, c, case):
    ax_r, ax_z, ax_n = np.split(x_t @ case["w_x"] + case["b_x"], 3, axis=1)
    ah_r, ah_z, ah_n = np.split(h @ case["w_h"] + case["b_h"], 3, axis=1)
    r, z = sigmoid(ax_r + ah_r), sigmoid(ax_z + ah_z)
    return (1 - z) * np.tanh(ax_n + r * ah_n) + z * h, None


def case_of(values, prefix):
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in values.items() if k.startswith(prefix + ".")}


FORWARD_CASES = [("rnn_scratch", "rnn_forward.case", rnn_step),
                 *(("rnn_scratch", f"rnn_backward_loop.{c}", rnn_step) for c in ("m2o", "m2m")),
                 *(("gated_rnn_scratch", f"{cell}.{c}", step) for cell, step in
                   (("lstm", lstm_step), ("gru", gru_step)) for c in ("m2o", "m2m"))]


@pytest.mark.parametrize("chapter, prefix, step", FORWARD_CASES)
def test_reference_states_satisfy_the_equations_step_by_step(references, chapter, prefix, step):
    case = case_of(references[chapter], prefix)
    h, c = case["h0"], case.get("c0")
    for t in range(case["x"].shape[1]):
        h, c = step(case["x"][:, t], h, c, case)
        np.testing.assert_allclose(case["hs"][:, t], h, rtol=0, atol=1e-13)
        if "cs" in case:
            np.testing.assert_allclose(case["cs"][:, t], c, rtol=0, atol=1e-13)


def test_problem_1_reference_is_the_assignments_given_h_T(references):
    given = np.array([[0.79494228, 0.81839002, 0.83939649, 0.85584174]])  # the assignment's
    np.testing.assert_array_equal(references["rnn_scratch"]["problem1.h_T"], given)


def assert_gradients(case, loss, names):
    for name, key in names:
        numeric = numerical_gradient(loss, case[key])
        assert checks.relative_error(case[name], numeric) < 1e-7, name


BACKWARD_CASES = [("rnn_scratch", f"rnn_backward_loop.{c}", "rnn") for c in ("m2o", "m2m")] + [
    ("gated_rnn_scratch", f"{cell}.{c}", cell) for cell in ("lstm", "gru") for c in ("m2o", "m2m")]


@pytest.mark.parametrize("chapter, prefix, cell", BACKWARD_CASES)
def test_reference_gradients_agree_with_central_differences(references, chapter, prefix, cell):
    """The loss sum(dh * h) read where dh is given, through the step equations of this file."""
    case = {k: v.copy() for k, v in case_of(references[chapter], prefix).items()}
    step = {"rnn": rnn_step, "lstm": lstm_step, "gru": gru_step}[cell]

    def loss():
        h, c, total = case["h0"], case.get("c0"), 0.0
        for t in range(case["x"].shape[1]):
            h, c = step(case["x"][:, t], h, c, case)
            if case["dh"].ndim == 3:
                total += np.sum(case["dh"][:, t] * h)
        return total if case["dh"].ndim == 3 else np.sum(case["dh"] * h)

    names = [("dw_x", "w_x"), ("dw_h", "w_h"), ("dx", "x"), ("dh0", "h0")]
    names += {"rnn": [("db", "b")], "lstm": [("db", "b"), ("dc0", "c0")],
              "gru": [("db_x", "b_x"), ("db_h", "b_h")]}[cell]
    assert_gradients(case, loss, names)


def scan_loss(case):
    """L = sum over t of dhs_t . h_t, with h_t = decay_t h_{t-1} + inputs_t written here."""
    def loss():
        h, total = case["h0"], 0.0
        for t in range(case["inputs"].shape[1]):
            h = case["decay"][:, t] * h + case["inputs"][:, t]
            total += np.sum(case["dhs"][:, t] * h)
        return total
    return loss


@pytest.mark.parametrize("label", ["full", "long"])
def test_scan_references_satisfy_the_recurrence_and_central_differences(references, label):
    case = {k: v.copy() for k, v in case_of(references["linear_rnn_scratch"],
                                            f"scan.{label}").items()}
    h = case["h0"]
    for t in range(case["inputs"].shape[1]):
        h = case["decay"][:, t] * h + case["inputs"][:, t]
        np.testing.assert_allclose(case["hs"][:, t], h, rtol=0, atol=1e-13)
    assert_gradients(case, scan_loss(case),
                     [("d_decay", "decay"), ("d_inputs", "inputs"), ("dh0", "h0")])


@pytest.mark.parametrize("label", ["m2m", "m2o_padded"])
def test_mingru_references_satisfy_the_equations_and_central_differences(references, label):
    """minGRU's step written here (z kept, n~ written); padded steps keep the state."""
    case = {k: v.copy() for k, v in case_of(references["linear_rnn_scratch"],
                                            f"mingru.{label}").items()}
    lengths = case.get("lengths", np.full(len(case["x"]), case["x"].shape[1]))

    def run():
        h, hs = case["h0"], []
        for t in range(case["x"].shape[1]):
            a_z, n = np.split(case["x"][:, t] @ case["w_x"] + case["b"], 2, axis=1)
            z = sigmoid(a_z)
            real = (t < lengths)[:, None]
            h = np.where(real, z * h + (1 - z) * n, h)
            hs.append(h)
        return h, np.stack(hs, axis=1)

    h_T, hs = run()
    np.testing.assert_allclose(case["h"].transpose(1, 0, 2), hs, rtol=0, atol=1e-13)
    a = case["x"] @ case["w_x"] + case["b"]               # the cache's gates: z (1 at padding), n~
    z = np.where(np.arange(a.shape[1])[None, :, None] < lengths[:, None, None],
                 sigmoid(a[..., :4]), 1.0)
    np.testing.assert_allclose(case["z"].transpose(1, 0, 2), z, rtol=0, atol=1e-13)
    np.testing.assert_allclose(case["n"].transpose(1, 0, 2), a[..., 4:], rtol=0, atol=1e-13)

    def loss():
        h_T, hs = run()
        return np.sum(case["dh"] * (hs if case["dh"].ndim == 3 else h_T))

    assert_gradients(case, loss, [("dw_x", "w_x"), ("db", "b"), ("dx", "x"), ("dh0", "h0")])


def test_reference_slips_are_recognisably_wrong(references):
    """Each stored slip of rnn_backward_loop differs from the right gradients in some array by
    far more than the checks' bound, so a learner's value that matches it cannot pass."""
    values = references["rnn_scratch"]
    for label in ("m2o", "m2m"):
        found = checks_slips(values, f"rnn_backward_loop.{label}")
        assert len(found) >= 6
        for description, slip in found.items():
            worst = max(checks.relative_error(slip[k], values[f"rnn_backward_loop.{label}.{k}"])
                        for k in slip)
            assert worst > 1e-3, description


def checks_slips(values, prefix):
    found, i = {}, 0
    while f"{prefix}.slip{i}.description" in values:
        found[str(values[f"{prefix}.slip{i}.description"])] = {
            k: values[f"{prefix}.slip{i}.{k}"] for k in ("dw_x", "dw_h", "db", "dx", "dh0")}
        i += 1
    return found


def test_reference_loss_clip_and_update_rules_follow_their_formulas(references):
    values = references["rnn_scratch"]
    for label in ("small", "large_logits"):
        case = {k: v.copy() for k, v in case_of(values, f"cross_entropy.{label}").items()}
        z, y = case["z"], case["y"]

        def loss():
            lse = np.logaddexp.reduce(z, axis=1)
            return float(np.mean(lse - z[np.arange(len(y)), y]))

        assert abs(case["loss"] - loss()) < 1e-12
        assert checks.relative_error(case["dz"], numerical_gradient(loss, z)) < 1e-7
    norm = np.sqrt(np.sum(values["clip.a"] ** 2) + np.sum(values["clip.b"] ** 2))
    assert norm > 1 and abs(values["clip.norm"] - norm) < 1e-12
    np.testing.assert_allclose(values["clip.a_clipped"], values["clip.a"] / norm, atol=1e-15)
    np.testing.assert_allclose(values["clip.b_clipped"], values["clip.b"] / norm, atol=1e-15)
    for key, (beta1, beta2) in (("updates", (0.9, 0.999)), ("updates_other_betas", (0.5, 0.9))):
        m = v = 0
        for k, g in enumerate(values["adam.g"], start=1):
            m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g
            step = 0.1 * (m / (1 - beta1 ** k)) / (np.sqrt(v / (1 - beta2 ** k)) + 1e-8)
            np.testing.assert_allclose(values[f"adam.{key}"][k - 1], step, rtol=1e-12)


def test_reference_training_steps_are_what_the_lesson_s_training_step_does(references,
                                                                         monkeypatch):
    # The check grades training_step with adam_updates (and clip_by_global_norm) stood in for;
    # the references must be what the lesson's own training_step leaves, the same way.
    import types
    values = references["rnn_scratch"]
    model = types.SimpleNamespace(clip_norm=None, optimizer="sgd", learning_rate=0.1)
    params = {"w": values["training_step.w"].copy()}
    rs.training_step(model, params, {"w": values["training_step.g"].copy()}, None, 1.0, 1)
    np.testing.assert_array_equal(params["w"], values["training_step.w_sgd"])
    monkeypatch.setattr(rs, "adam_updates", lambda grads, state, learning_rate, **options:
                        {"w": values["training_step.adam_update"].copy()})
    model = types.SimpleNamespace(clip_norm=1.0, optimizer="adam", learning_rate=0.01)
    params = {"w": values["training_step.w"].copy()}
    rs.training_step(model, params, {"w": values["training_step.g"].copy()}, {}, 1.0, 1)
    np.testing.assert_array_equal(params["w"], values["training_step.w_adam"])


@pytest.mark.parametrize("label", ["full", "padded"])
def test_reference_output_layer_agrees_with_its_formula_and_central_differences(references,
                                                                               label):
    case = {k: v.copy() for k, v in case_of(references["language_model_scratch"],
                                            f"output_layer.{label}").items()}
    lengths = case.get("lengths", np.full(case["hs"].shape[0], case["hs"].shape[1]))
    real = np.arange(case["hs"].shape[1])[None, :] < lengths[:, None]

    def loss():
        z = case["hs"] @ case["w_y"] + case["b_y"]
        log_p = z - np.logaddexp.reduce(z, axis=2, keepdims=True)
        picked = np.take_along_axis(log_p, case["y"][:, :, None], axis=2)[:, :, 0]
        return -float(np.sum(picked[real]) / real.sum())

    assert abs(case["loss"] - loss()) < 1e-12
    assert_gradients(case, loss, [("dw_y", "w_y"), ("db_y", "b_y"), ("dh", "hs")])


@pytest.mark.parametrize("label", ["full", "padded"])
def test_reference_attention_gradients_agree_with_central_differences(references, label):
    """L = sum(d_context * context) with the context computed in this file from the equations:
    u = tanh(keys + s W_q), e = u v, alpha = softmax over the real positions."""
    case = {k: v.copy() for k, v in case_of(references["seq2seq_scratch"],
                                            f"attend.{label}").items()}
    pad = case.get("pad")

    def loss():
        u = np.tanh(case["keys"] + (case["s_prev"] @ case["w_q"])[:, None, :])
        e = u @ case["v"]
        if pad is not None:
            e = np.where(pad, -np.inf, e)
        alpha = np.exp(e - e.max(axis=1, keepdims=True))
        alpha /= alpha.sum(axis=1, keepdims=True)
        return float(np.sum(case["d_context"] * np.einsum("bs,bsh->bh", alpha,
                                                          case["memory"])))

    assert_gradients(case, loss, [("ds_prev", "s_prev"), ("d_keys", "keys"),
                                  ("d_memory", "memory"), ("dw_q", "w_q"), ("dv", "v")])


def test_every_exercise_says_what_its_hidden_checks_add():
    intro = mx.source_notebook("seq2seq_scratch").cells[0].source
    for name in mx.exercises("seq2seq_scratch"):
        assert mx.CHECKS[name].hidden_adds in intro, name


def test_a_check_that_stops_keeps_the_failures_it_had_found():
    with pytest.raises(AssertionError, match=r"(?s)dw is off.*then the check stopped: "
                                             r"KeyError"):
        with checks.exercise("demo"):
            checks.close("dw", np.ones(2), np.zeros(2), 1e-8)
            {}["missing"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_generated_check_cell_compiles(chapter):
    # A typo in a check surfaces here, in the default suite, not only when notebooks are graded.
    for name in mx.exercises(chapter):
        source = mx.check_cell_source(name)
        compile(source, f"<check of {name}>", "exec")
        compile(mx.clear_hidden_tests(source)[0], f"<released check of {name}>", "exec")
        visible, hidden = mx.check_code(name)
        assert visible.strip() and hidden.strip(), name


def test_a_check_without_its_hidden_marker_is_refused():
    import exercise_cells as ec

    def no_marker():
        checks.equal("one", 1, 1)
    ec.CHECKS["demo"] = ec.ExerciseCheck("demo", 1, "demo", "", "", ("a", "b"), no_marker)
    try:
        with pytest.raises(ValueError, match="hidden checks"):
            ec.check_code("demo")
    finally:
        del ec.CHECKS["demo"]


def test_the_grader_refuses_a_notebook_made_by_another_version_of_the_checks():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import grade
    nb = mx.source_notebook("gated_rnn_scratch")
    version = nb.metadata["rnn_exercises"]["grading_version"]
    assert len(version) == 12 and version == mx.grading_version("gated_rnn_scratch")
    grade.with_hidden_tests(nb)                                # the same version: accepted
    nb.metadata["rnn_exercises"]["grading_version"] = "0123456789ab"
    with pytest.raises(SystemExit, match=f"grading version 0123456789ab .* version {version}"):
        grade.with_hidden_tests(nb)
    del nb.metadata["rnn_exercises"]["grading_version"]
    with pytest.raises(SystemExit, match="made before versions were stamped"):
        grade.with_hidden_tests(nb)


def test_the_grading_version_follows_the_checks_and_the_reference_names(monkeypatch):
    version = mx.grading_version("rnn_scratch")
    monkeypatch.setattr(mx, "check_cell_source", lambda name: "another check")
    assert mx.grading_version("rnn_scratch") != version
    monkeypatch.undo()
    values = mx.reference_values("rnn_scratch")
    monkeypatch.setattr(mx, "reference_values", lambda chapter: {**values, "new.key": 1.0})
    assert mx.grading_version("rnn_scratch") != version


def test_an_edited_release_notebook_is_never_overwritten_without_force(tmp_path, capsys):
    import nbformat
    out = str(tmp_path)
    assert mx.main(["--out", out, "rnn_scratch"]) == 0
    path = mx.notebook_path(out, "release", "rnn_scratch")
    nb = nbformat.read(path, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="ran\n")]
    code.execution_count = 1
    nbformat.write(nb, path)                      # running it (outputs only) is not an edit
    assert not mx.edited_since_written(path, None)
    stub = next(c for c in nb.cells if "raise NotImplementedError()" in c.source)
    stub.source = stub.source.replace("raise NotImplementedError()", "return 42  # my work")
    nbformat.write(nb, path)
    capsys.readouterr()
    assert mx.main(["--out", out, "rnn_scratch"]) == 1
    message = capsys.readouterr().err
    assert "wrote nothing" in message and path in message and "--force" in message
    assert "beside exercise_checks.py and reference_values.npz" in message
    assert "return 42  # my work" in nbformat.read(path, as_version=4).cells[
        nb.cells.index(stub)].source                                     # the work survives
    assert mx.main(["--out", out, "--force", "rnn_scratch"]) == 0
    assert "# my work" not in open(path, encoding="utf-8").read()


def test_grading_a_notebook_away_from_its_files_names_them_once(tmp_path):
    import shutil
    import grade
    mx.write_chapter("gated_rnn_scratch", str(tmp_path))
    away = tmp_path / "elsewhere"
    away.mkdir()
    copy = away / "mine.ipynb"
    shutil.copy(mx.notebook_path(str(tmp_path), "release", "gated_rnn_scratch"), copy)
    with pytest.raises(SystemExit) as raised:
        grade.grade(str(copy))
    message = str(raised.value)
    for name in ("exercise_checks.py", "reference_values.npz", "lesson_support.py",
                 "rnn_scratch.py", "exercises/release/gated_rnn_scratch/", str(away)):
        assert name in message, name
    assert grade.files_missing_beside(
        mx.notebook_path(str(tmp_path), "release", "gated_rnn_scratch"), "gated_rnn_scratch") == []


def test_every_exercise_and_check_cell_carries_the_tag_that_lets_run_all_go_on():
    nb = mx.release_notebook(mx.source_notebook("linear_rnn_scratch"))
    tagged = [c for c in nb.cells if "raises-exception" in c.metadata.get("tags", [])]
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
              or c.metadata.get("nbgrader", {}).get("solution")]
    assert tagged == graded and len(graded) == 2 * len(mx.exercises("linear_rnn_scratch"))
    assert "Run All runs to the end" in nb.cells[0].source
    assert "beside\n`exercise_checks.py` and `reference_values.npz`" in nb.cells[0].source


def test_an_exception_in_the_learners_cell_is_reported_with_its_line():
    """Code compiled under an ipykernel cell's file name (as the kernel names cells): the
    message quotes the learner's line; an unpacking error in the check names the form."""
    import linecache
    learner = "def f(x):\n    y = x + 1\n    return y[0]\n"
    check = "a, b = f(1.0)\n"
    namespace = {}
    for name, code in (("/tmp/ipykernel_1/111.py", learner), ("/tmp/ipykernel_1/222.py", check)):
        linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    exec(compile(learner, "/tmp/ipykernel_1/111.py", "exec"), namespace)
    with pytest.raises(checks.CheckFailed) as raised:
        with checks.exercise("f"):
            exec(compile(check, "/tmp/ipykernel_1/222.py", "exec"), namespace)
    assert str(raised.value) == ("f raised TypeError: 'float' object is not subscriptable "
                                 "(at line 3 of f, in its cell: `return y[0]`)")
    namespace["f"] = lambda x: (x,)
    with pytest.raises(checks.CheckFailed, match=r"the check's line `a, b = f\(1.0\)` expects "
                                                 r"the exercise to return \(a, b\)"):
        with checks.exercise("f"):
            exec(compile(check, "/tmp/ipykernel_1/222.py", "exec"), namespace)


def test_a_syntax_error_names_the_line_of_the_cell_not_the_kernels_file():
    import grade
    cell = {"outputs": [{"output_type": "error", "ename": "SyntaxError",
                         "evalue": "invalid syntax (3245469251.py, line 7)", "traceback": []}]}
    assert grade.error_message(cell) == "SyntaxError: invalid syntax (line 7 of the cell)"


def test_a_slip_is_named_once_and_the_failures_are_listed_by_case():
    ref = np.ones((2, 3))
    with pytest.raises(checks.CheckFailed) as raised:
        with checks.exercise("demo"):
            checks.case("many-to-one")
            for name in ("dw_x", "dw_h", "db"):
                checks.close(name, 2 * ref, ref, 1e-8, slips={"doubled": 2 * ref})
            checks.case("many-to-many, 5 steps, h0 given", hidden=True)
            checks.close("dx", 2 * ref, ref, 1e-8, slips={"doubled": 2 * ref})
            checks.close("dh0", ref, ref, 1e-8)
            checks.close("dc0", ref[0], ref, 1e-8)
    off = "is off by relative error 3.3e-01 (bound 1e-08)"
    assert str(raised.value).split("\n") == [
        "demo: 5 checks failed",
        f"  many-to-one (visible check): dw_x {off}; dw_h {off}; db {off}",
        f"  many-to-many, 5 steps, h0 given (hidden check): dx {off}; dc0 has shape (3,); "
        "expected (2, 3)",
        "The wrong values are exactly what this slip gives: doubled."]


def test_a_passed_exercise_says_what_its_largest_error_is_allowed_by(capsys):
    ref = np.ones(3)
    with checks.exercise("demo"):
        checks.close("h_T", ref * (1 + 2e-9), ref, 1e-7, allows=checks.PRINTED_H_T)
        checks.close("hs", ref * (1 + 1e-12), ref, 1e-10)
        checks.equal("hs.shape", (3,), (3,))
    assert capsys.readouterr().out == (
        "demo: passed 3 checks (largest relative error 1e-09, in h_T: within its bound 1e-07, "
        "which allows for the assignment's printed h_T, given to 8 digits)\n")
    with checks.exercise("demo"):
        checks.close("hs", ref * (1 + 1e-12), ref, 1e-10)
    assert "which allows for float64 rounding" in capsys.readouterr().out


def test_every_check_cell_labels_its_visible_and_its_hidden_case():
    for chapter in CHAPTERS:
        for name in mx.exercises(chapter):
            source = mx.check_cell_source(name)
            released = mx.clear_hidden_tests(source)[0]
            assert f"checks.case({mx.CHECKS[name].shows!r})" in released, name
            assert f"checks.case({mx.CHECKS[name].hidden_adds!r}, hidden=True)" in source
            assert "hidden=True" not in released, name


@pytest.mark.parametrize("chapter, prefix, cell", BACKWARD_CASES)
def test_reference_total_gradients_agree_with_central_differences_of_the_losss_tail(
        references, chapter, prefix, cell):
    """g_t = dL/dh_t (and the LSTM's g_c = dL/dc_t) at every step: the loss read from step t
    on, from the reference state at step t set by hand, through the step equations of this
    file, differentiated by central differences."""
    case = {k: v.copy() for k, v in case_of(references[chapter], prefix).items()}
    step = {"rnn": rnn_step, "lstm": lstm_step, "gru": gru_step}[cell]
    n_sequences, many = case["x"].shape[1], case["dh"].ndim == 3

    def tail(t, h_t, c_t, o_t=None):
        """The loss from step t on; with o_t (the LSTM's output gate at t), h_t is read as
        o_t tanh(c_t): a change of c_t then reaches the loss through h_t too."""
        def loss():
            h, c = (h_t if o_t is None else o_t * np.tanh(c_t)), c_t
            total = np.sum(case["dh"][:, t] * h) if many else 0.0
            for s in range(t + 1, n_sequences):
                h, c = step(case["x"][:, s], h, c, case)
                total += np.sum(case["dh"][:, s] * h) if many else 0.0
            return total if many else np.sum(case["dh"] * h)
        return loss

    for t in range(n_sequences):
        h_t = case["hs"][:, t].copy()
        c_t = case["cs"][:, t].copy() if cell == "lstm" else None
        loss = tail(t, h_t, c_t)
        assert checks.relative_error(case["g"][:, t], numerical_gradient(loss, h_t)) < 1e-7, t
        if cell == "lstm":
            h_prev = case["hs"][:, t - 1] if t > 0 else case["h0"]
            a = case["x"][:, t] @ case["w_x"] + h_prev @ case["w_h"] + case["b"]
            o_t = sigmoid(np.split(a, 4, axis=1)[3])
            np.testing.assert_allclose(o_t * np.tanh(c_t), h_t, rtol=0, atol=1e-13)
            loss = tail(t, h_t, c_t, o_t)
            assert checks.relative_error(case["g_c"][:, t],
                                         numerical_gradient(loss, c_t)) < 1e-7, ("g_c", t)


def test_text_about_the_lessons_own_code_is_reworded_for_the_exercises():
    lesson = jupytext.read(os.path.join(ROOT, "rnn_scratch.py"))
    markdown = "\n".join(c.source for c in lesson.cells if c.cell_type == "markdown")
    exercise = "\n".join(c.source for c in mx.source_notebook("rnn_scratch").cells
                         if c.cell_type == "markdown")
    for lesson_only in ("each line\ncommented with the equation", "read the loop below",
                        "benchmark all compare against this function"):
        assert lesson_only.replace("\n", " ") in markdown.replace("\n", " ")
        assert lesson_only.replace("\n", " ") not in exercise.replace("\n", " ")
    assert "`direct_gradients_per_step`, given in the cell" in exercise
    assert "<!--" not in exercise


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_wording_is_a_closed_pair(chapter):
    """An unclosed HTML comment would hide the rest of a lesson's cell."""
    for cell in jupytext.read(os.path.join(ROOT, f"{chapter}.py")).cells:
        if cell.cell_type == "markdown":
            opened = cell.source.count("<!-- exercises: ")
            assert opened == cell.source.count("<!-- /exercises -->")
            assert "<!--" not in mx.for_exercises(cell.source), cell.source[:60]


def test_an_exercise_names_the_given_helpers_its_solution_calls():
    cells = {c.metadata["nbgrader"]["grade_id"]: c.source
             for c in mx.release_notebook(mx.source_notebook("linear_rnn_scratch")).cells
             if c.metadata.get("nbgrader", {}).get("solution")}
    assert ("# For you to call: check_scan_input (given in this notebook); linear_scan (your "
            "earlier exercises).") in cells["linear_scan_backward"]
    assert ("# For you to call: self._last_forward, self._total_gradients, decay_gradient, "
            "block_input_products (given in this notebook).") in cells["MinGRU_backward"]
