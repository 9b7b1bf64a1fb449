"""Every exercise's check cell, written as code: tools/make_exercises.py turns each function
below into the text of a check cell (its body, cut at the line "# hidden checks" into the
visible part and the hidden tests), so that a linter, the boundary test and the default test
suite read the checks as Python rather than as strings.

An exercise lives in three places: its chapter's EXERCISES, its check here, and its reference
values in make_exercises.py (each verified independently in tests/test_make_exercises.py).
The decorator holds the rest: the points, where the check cell goes (after the cell that
defines `after`, by default the exercise itself), the case the visible part checks and what
the hidden part adds (the labels a failed check's message gives each; the exercise
notebook's first cell lists the hidden ones), and one slip of the solution that the grader's tests make to
see the exercise lose its points (`right` -> `wrong`: `right` occurs exactly once in the whole
generated notebook, inside the exercise's solution).

The names a check uses are the notebook's own: the imports below only make them visible to
tools that read this file; the check cells run in the exercise notebook's namespace.
"""
import inspect
import textwrap
from typing import Callable, NamedTuple

import numpy as np  # noqa: F401  (the check cells use np, as the notebooks do)

import exercise_checks as checks
from gated_rnn_scratch import (gru_backward_loop, gru_forward_loop, lstm_backward_loop,
                               lstm_forward_loop)
from language_model_scratch import ScratchRNNLanguageModel, output_layer_loop
from linear_rnn_scratch import MinCache, MinGRU, linear_scan, linear_scan_backward
from rnn_scratch import (PROBLEM1_B, PROBLEM1_W_H, PROBLEM1_W_X, PROBLEM1_X, RNNCache,
                         SimpleRNN, SimpleRNN_BPTT, adam_updates, clip_by_global_norm,
                         cross_entropy_and_gradient, rnn_backward_loop, rnn_forward_loop,
                         training_step)
from seq2seq_scratch import attend, attend_backward, tiny_model

HIDDEN = "# hidden checks"    # the line of a check's body after which its hidden tests come


class ExerciseCheck(NamedTuple):
    name: str                 # the exercise, as its chapter's EXERCISES names it
    points: int
    after: str                # the check cell follows the cell that defines this
    shows: str                # the visible check's case, as its messages label it
    hidden_adds: str          # what the hidden tests add to the visible check (their label)
    slip: tuple               # (right, wrong): a one-line slip of the solution
    function: Callable        # its body is the check cell's code


CHECKS = {}


def exercise_check(name, points, shows, hidden_adds, slip, after=None):
    """Register the function below as exercise `name`'s check (see the module's text)."""
    def register(function):
        if name in CHECKS:
            raise ValueError(f"two checks for the exercise {name!r}")
        CHECKS[name] = ExerciseCheck(name, points, after or name, shows, hidden_adds,
                                     tuple(slip), function)
        return function
    return register


def check_code(name):
    """(visible, hidden): the code of exercise `name`'s check, its function's body without
    the def line and dedented, cut at the line HIDDEN."""
    source = textwrap.dedent(inspect.getsource(CHECKS[name].function))
    lines = source.split("\n")
    body_start = next(i for i, line in enumerate(lines) if line.startswith("def ")) + 1
    body = textwrap.dedent("\n".join(lines[body_start:])).strip("\n").split("\n")
    if body.count(HIDDEN) != 1:
        raise ValueError(f"the check of {name} must hold the line {HIDDEN!r} exactly once "
                         f"(at the body's indentation); found it {body.count(HIDDEN)} times")
    cut = body.index(HIDDEN)
    return "\n".join(body[:cut]) + "\n", "\n".join(body[cut + 1:]) + "\n"


# -- Chapter 1: rnn_scratch ----------------------------------------------------

@exercise_check("rnn_forward_loop", points=2, after="run_problem_1",
                shows="Problem 1's example",
                hidden_adds="a batch of 3, 5 steps, h0 given",
                slip=("a_t = x[:, t] @ w_x + h @ w_h + b", "a_t = x[:, t] @ w_x + h @ w_h"))
def check_rnn_forward_loop():
    # Problem 1's example: the assignment gives its h_T.
    h_T, hs = rnn_forward_loop(PROBLEM1_X, PROBLEM1_W_X, PROBLEM1_W_H, PROBLEM1_B)
    checks.close("h_T", h_T, checks.ref("problem1.h_T"), 1e-7,
                 allows=checks.PRINTED_H_T)
    checks.close("hs[:, -1] (the last state again)", hs[:, -1], checks.ref("problem1.h_T"), 1e-7,
                 allows=checks.PRINTED_H_T)
    checks.equal("hs.shape", hs.shape, (1, 3, 4))
    # hidden checks
    case = checks.refs("rnn_forward.case")
    h_T, hs = rnn_forward_loop(case["x"], case["w_x"], case["w_h"], case["b"], case["h0"])
    checks.close("hs (batch 3, 5 steps, h0 given)", hs, case["hs"], 1e-10)
    checks.close("h_T (batch 3, 5 steps)", h_T, case["hs"][:, -1], 1e-10)


@exercise_check("SimpleRNN._recurrence", points=2,
                shows="Problem 1's example",
                hidden_adds="a batch of 3, 5 steps, h0 given",
                slip=("a_t += rec", "a_t -= rec"))
def check_SimpleRNN__recurrence():
    # Problem 1's example through the fast layer: SimpleRNN.forward calls your _recurrence.
    h_T, hs = SimpleRNN(PROBLEM1_W_X, PROBLEM1_W_H, PROBLEM1_B).forward(PROBLEM1_X)
    checks.close("h_T", h_T, checks.ref("problem1.h_T"), 1e-7,
                 allows=checks.PRINTED_H_T)
    checks.equal("hs.shape", hs.shape, (1, 3, 4))
    # hidden checks
    case = checks.refs("rnn_forward.case")
    layer = SimpleRNN(case["w_x"], case["w_h"], case["b"])
    h_T, hs = layer.forward(case["x"], case["h0"])
    checks.close("hs (batch 3, 5 steps, h0 given)", hs, case["hs"], 1e-10)


@exercise_check("rnn_backward_loop", points=4,
                shows="many-to-one",
                hidden_adds="many-to-many, other sizes, input_gradient=False",
                slip=("(1 - hs[:, t] ** 2)", "(1 - hs[:, t])"))
def check_rnn_backward_loop():
    case = checks.refs("rnn_backward_loop.m2o")
    # many-to-one: dh is dL/dh_T only; hs come from the reference, not from your forward
    grads = rnn_backward_loop(case["x"], case["h0"], case["hs"], case["dh"], case["w_x"],
                              case["w_h"])
    for name in ("dw_x", "dw_h", "db", "dx", "dh0", "g"):
        checks.close(name, grads[name], case[name], 1e-8,
                     slips=checks.slips("rnn_backward_loop.m2o", name))
    # hidden checks
    case = checks.refs("rnn_backward_loop.m2m")
    grads = rnn_backward_loop(case["x"], case["h0"], case["hs"], case["dh"], case["w_x"],
                              case["w_h"])
    for name in ("dw_x", "dw_h", "db", "dx", "dh0", "g"):
        checks.close(name, grads[name], case[name], 1e-8,
                     slips=checks.slips("rnn_backward_loop.m2m", name))
    grads = rnn_backward_loop(case["x"], case["h0"], case["hs"], case["dh"], case["w_x"],
                              case["w_h"], input_gradient=False)
    checks.input_gradient_skipped(grads, "dw_x", case["dw_x"], 1e-8)


@exercise_check("SimpleRNN_BPTT.backward", points=4, after="recurrent_products",
                shows="many-to-one",
                hidden_adds="many-to-many, other sizes, input_gradient=False",
                slip=("if dh_tm is not None and t > 0:\n            g_t += dh_tm[t - 1]  # ...",
                      "if False:\n            g_t += dh_tm[t - 1]  # ..."))
def check_SimpleRNN_BPTT_backward():
    # many-to-one; backward is given the reference states as its cache, so your forward
    # plays no part
    case = checks.refs("rnn_backward_loop.m2o")
    layer = SimpleRNN_BPTT(case["w_x"], case["w_h"], case["b"])
    given = RNNCache(x_tm=case["x"].transpose(1, 0, 2).copy(), h0=case["h0"],
                     h=case["hs"].transpose(1, 0, 2).copy(), pad=None)
    grads = layer.backward(case["dh"], cache=given)
    for name in ("dw_x", "dw_h", "db", "dx", "dh0"):
        checks.close(name, grads[name], case[name], 1e-8,
                     slips=checks.slips("rnn_backward_loop.m2o", name))
    # hidden checks
    case = checks.refs("rnn_backward_loop.m2m")
    layer = SimpleRNN_BPTT(case["w_x"], case["w_h"], case["b"])
    given = RNNCache(x_tm=case["x"].transpose(1, 0, 2).copy(), h0=case["h0"],
                     h=case["hs"].transpose(1, 0, 2).copy(), pad=None)
    grads = layer.backward(case["dh"], cache=given)
    for name in ("dw_x", "dw_h", "db", "dx", "dh0"):
        checks.close(name + " (many-to-many)", grads[name], case[name], 1e-8,
                     slips=checks.slips("rnn_backward_loop.m2m", name))
    grads = layer.backward(case["dh"], input_gradient=False, cache=given)
    checks.input_gradient_skipped(grads, "dw_h", case["dw_h"], 1e-8)


@exercise_check("cross_entropy_and_gradient", points=2,
                shows="a small batch",
                hidden_adds="logits near 1000",
                slip=("dz /= len(y_idx)", "dz /= 1"))
def check_cross_entropy_and_gradient():
    case = checks.refs("cross_entropy.small")
    loss, dz = cross_entropy_and_gradient(case["z"], case["y"])
    checks.close("loss", loss, case["loss"], 1e-10)
    checks.close("dz", dz, case["dz"], 1e-10,
                 slips={"the mean's 1/batch_size left out of dz": case["dz"] * len(case["y"])})
    # hidden checks
    case = checks.refs("cross_entropy.large_logits")     # logits near 1000: exp would overflow
    loss, dz = cross_entropy_and_gradient(case["z"], case["y"])
    checks.close("loss (logits near 1000)", loss, case["loss"], 1e-10)
    checks.close("dz (logits near 1000)", dz, case["dz"], 1e-10)


@exercise_check("clip_by_global_norm", points=2,
                shows="clipping to 1",
                hidden_adds="clip_norm None; a norm below clip_norm",
                slip=("g *= clip_norm / norm", "g *= norm / clip_norm"))
def check_clip_by_global_norm():
    case = checks.refs("clip")
    grads = {"a": case["a"].copy(), "b": case["b"].copy()}
    norm = clip_by_global_norm(grads, 1.0)
    checks.close("the returned norm (before clipping)", norm, case["norm"], 1e-12)
    checks.close("grads['a'] after clipping to 1", grads["a"], case["a_clipped"], 1e-12)
    checks.close("grads['b'] after clipping to 1", grads["b"], case["b_clipped"], 1e-12)
    # hidden checks
    grads = {"a": case["a"].copy(), "b": case["b"].copy()}
    clip_by_global_norm(grads, None)
    checks.close("grads['a'] with clip_norm None (unchanged)", grads["a"], case["a"], 0)
    grads = {"a": case["a"].copy(), "b": case["b"].copy()}
    clip_by_global_norm(grads, 100.0)
    checks.close("grads['b'] under a larger clip_norm (unchanged)", grads["b"], case["b"], 0)


@exercise_check("adam_updates", points=2,
                shows="three steps, the default betas",
                hidden_adds="other betas",
                slip=("(m / (1 - beta1**k))", "m"))
def check_adam_updates():
    case = checks.refs("adam")
    state = {"k": 0, "m": {"w": np.zeros(4)}, "v": {"w": np.zeros(4)}}
    for k in range(3):
        updates = adam_updates({"w": case["g"][k]}, state, 0.1)
        checks.close(f"update {k + 1}", updates["w"], case["updates"][k], 1e-10)
    checks.equal("state['k'] after three updates", state["k"], 3)
    # hidden checks
    state = {"k": 0, "m": {"w": np.zeros(4)}, "v": {"w": np.zeros(4)}}
    for k in range(3):
        updates = adam_updates({"w": case["g"][k]}, state, 0.1, beta1=0.5, beta2=0.9)
        checks.close(f"update {k + 1} (beta1 0.5, beta2 0.9)", updates["w"],
                     case["updates_other_betas"][k], 1e-10)


@exercise_check("training_step", points=2,
                shows="the SGD path, a NaN loss",
                hidden_adds="the Adam path",
                slip=("if not (np.isfinite(loss)", "if not (True"))
def check_training_step():
    # clip_by_global_norm (and, in the hidden part, adam_updates) is replaced here by a
    # stand-in that returns the reference's values, so this check grades training_step alone.
    import types
    case = checks.refs("training_step")
    calls = []
    def clip_stand_in(grads, clip_norm):
        calls.append(clip_norm)
        return 7.5
    model = types.SimpleNamespace(clip_norm=None, optimizer="sgd", learning_rate=0.1)
    params = {"w": case["w"].copy()}
    with checks.standing_in(globals(), clip_by_global_norm=clip_stand_in):
        norm = training_step(model, params, {"w": case["g"].copy()}, None, 1.0, 1)
        checks.equal("the clip_norm passed to clip_by_global_norm", calls, [None])
        checks.equal("the returned norm", norm, 7.5)
        checks.close("params['w'] after one SGD step", params["w"], case["w_sgd"], 1e-12)
        try:
            training_step(model, params, {"w": case["g"].copy()}, None, float("nan"), 2)
            raised = False
        except FloatingPointError:
            raised = True
        checks.equal("whether a NaN loss raises FloatingPointError", raised, True)
        checks.close("params['w'] after a NaN loss (unchanged)", params["w"], case["w_sgd"], 0)
    # hidden checks
    def adam_stand_in(grads, state, learning_rate, **options):
        return {"w": case["adam_update"].copy()}
    model = types.SimpleNamespace(clip_norm=1.0, optimizer="adam", learning_rate=0.01)
    params = {"w": case["w"].copy()}
    with checks.standing_in(globals(), clip_by_global_norm=clip_stand_in,
                            adam_updates=adam_stand_in):
        training_step(model, params, {"w": case["g"].copy()}, {}, 1.0, 1)
        checks.close("params['w'] after one Adam step", params["w"], case["w_adam"], 1e-12)
        checks.equal("the clip_norm passed to clip_by_global_norm", calls[-1], 1.0)


# -- Chapter 2: gated_rnn_scratch ----------------------------------------------

@exercise_check("lstm_forward_loop", points=2,
                shows="h0 and c0 given",
                hidden_adds="other sizes; h0 = c0 = None",
                slip=("c = f_t * c + i_t * c_tilde", "c = c + i_t * c_tilde"))
def check_lstm_forward_loop():
    case = checks.refs("lstm.m2o")
    h_T, hs, cs = lstm_forward_loop(case["x"], case["w_x"], case["w_h"], case["b"], case["h0"],
                                    case["c0"])
    checks.close("hs", hs, case["hs"], 1e-10)
    checks.close("cs", cs, case["cs"], 1e-10)
    checks.close("h_T", h_T, case["hs"][:, -1], 1e-10)
    # hidden checks
    case = checks.refs("lstm.m2m")           # other sizes, and h0 = c0 = None (zeros)
    h_T, hs, cs = lstm_forward_loop(case["x"], case["w_x"], case["w_h"], case["b"])
    checks.close("hs (h0 = c0 = None)", hs, case["hs"], 1e-10)
    checks.close("cs (h0 = c0 = None)", cs, case["cs"], 1e-10)


@exercise_check("lstm_backward_loop", points=4,
                shows="many-to-one",
                hidden_adds="many-to-many, other sizes, h0 = c0 = None, input_gradient=False",
                slip=("along_cell = gamma_t * f_t", "along_cell = gamma_t"))
def check_lstm_backward_loop():
    # many-to-one; hs and cs come from the reference, not from your forward
    case = checks.refs("lstm.m2o")
    grads = lstm_backward_loop(case["x"], case["h0"], case["c0"], case["hs"], case["cs"],
                               case["dh"], case["w_x"], case["w_h"], case["b"])
    for name in ("dw_x", "dw_h", "db", "dx", "dh0", "dc0", "g", "g_c"):
        checks.close(name, grads[name], case[name], 1e-8)
    # hidden checks
    case = checks.refs("lstm.m2m")
    grads = lstm_backward_loop(case["x"], None, None, case["hs"], case["cs"], case["dh"],
                               case["w_x"], case["w_h"], case["b"])
    for name in ("dw_x", "dw_h", "db", "dx", "dh0", "dc0", "g", "g_c"):
        checks.close(name + " (many-to-many)", grads[name], case[name], 1e-8)
    grads = lstm_backward_loop(case["x"], None, None, case["hs"], case["cs"], case["dh"],
                               case["w_x"], case["w_h"], case["b"], input_gradient=False)
    checks.input_gradient_skipped(grads, "dw_x", case["dw_x"], 1e-8)


@exercise_check("gru_forward_loop", points=2,
                shows="h0 given",
                hidden_adds="other sizes; h0 = None",
                slip=("h = (1 - z_t) * n_t + z_t * h", "h = z_t * n_t + (1 - z_t) * h"))
def check_gru_forward_loop():
    case = checks.refs("gru.m2o")
    h_T, hs = gru_forward_loop(case["x"], case["w_x"], case["w_h"], case["b_x"], case["b_h"],
                               case["h0"])
    checks.close("hs", hs, case["hs"], 1e-10)
    checks.close("h_T", h_T, case["hs"][:, -1], 1e-10)
    # hidden checks
    case = checks.refs("gru.m2m")            # other sizes, and h0 = None (zeros)
    h_T, hs = gru_forward_loop(case["x"], case["w_x"], case["w_h"], case["b_x"], case["b_h"])
    checks.close("hs (h0 = None)", hs, case["hs"], 1e-10)


@exercise_check("gru_backward_loop", points=4,
                shows="many-to-one",
                hidden_adds="many-to-many, other sizes, h0 = None, input_gradient=False",
                slip=("from_next = g_t * z_t + delta_h @ w_h.T", "from_next = delta_h @ w_h.T"))
def check_gru_backward_loop():
    # many-to-one; hs come from the reference, not from your forward
    case = checks.refs("gru.m2o")
    grads = gru_backward_loop(case["x"], case["h0"], case["hs"], case["dh"], case["w_x"],
                              case["w_h"], case["b_x"], case["b_h"])
    for name in ("dw_x", "dw_h", "db_x", "db_h", "dx", "dh0", "g"):
        checks.close(name, grads[name], case[name], 1e-8)
    # hidden checks
    case = checks.refs("gru.m2m")
    grads = gru_backward_loop(case["x"], None, case["hs"], case["dh"], case["w_x"],
                              case["w_h"], case["b_x"], case["b_h"])
    for name in ("dw_x", "dw_h", "db_x", "db_h", "dx", "dh0", "g"):
        checks.close(name + " (many-to-many)", grads[name], case[name], 1e-8)
    grads = gru_backward_loop(case["x"], None, case["hs"], case["dh"], case["w_x"],
                              case["w_h"], case["b_x"], case["b_h"], input_gradient=False)
    checks.input_gradient_skipped(grads, "dw_x", case["dw_x"], 1e-8)


# -- Chapter 3: language_model_scratch -----------------------------------------

@exercise_check("output_layer_loop", points=3,
                shows="no padding",
                hidden_adds="padding (lengths 5, 2, 4)",
                slip=("dz_t /= n_real", "dz_t /= batch_size"))
def check_output_layer_loop():
    case = checks.refs("output_layer.full")
    loss, dw_y, db_y, dh = output_layer_loop(case["hs"], case["y"], case["w_y"], case["b_y"])
    checks.close("loss", loss, case["loss"], 1e-10)
    for name, value in (("dw_y", dw_y), ("db_y", db_y), ("dh", dh)):
        checks.close(name, value, case[name], 1e-8,
                     slips={"the mean's 1/N left out": case[name] * case["hs"].shape[0]
                            * case["hs"].shape[1]})
    # hidden checks
    case = checks.refs("output_layer.padded")      # lengths 5, 2 and 4: padding is no prediction
    loss, dw_y, db_y, dh = output_layer_loop(case["hs"], case["y"], case["w_y"], case["b_y"],
                                             case["lengths"])
    checks.close("loss (padded)", loss, case["loss"], 1e-10)
    for name, value in (("dw_y", dw_y), ("db_y", db_y), ("dh", dh)):
        checks.close(name + " (padded)", value, case[name], 1e-8)


@exercise_check("sample_temperature", points=2,
                shows="temperature 0.5",
                hidden_adds="temperatures 2 and 1, another prime",
                slip=(".astype(np.float64) / temperature", ".astype(np.float64) * temperature"))
def check_sample_temperature():
    # A small model with random weights. sample draws by the inverse CDF with the generator's
    # first number, so each seed's symbol is known in advance (checks.expected_draw).
    lm = ScratchRNNLanguageModel(n_nodes=6, bptt_steps=4, batch_size=2, epochs=1,
                                 random_state=0)
    lm.fit("abcab cabba cbcab " * 3)
    weights = np.random.default_rng(0)
    for p in lm.parameters().values():
        p[...] = weights.normal(0, 1.5, p.shape)
    for seed in range(40):
        checks.equal(f"the symbol drawn at temperature 0.5 with random_state={seed}",
                     lm.sample(1, prime="abca", temperature=0.5, random_state=seed)[-1],
                     checks.expected_draw(lm, "abca", 0.5, seed))
    # hidden checks
    for temperature in (2.0, 1.0):
        for seed in range(40):
            checks.equal(f"the symbol drawn at temperature {temperature}, random_state={seed}",
                         lm.sample(1, prime="cab", temperature=temperature, random_state=seed)[-1],
                         checks.expected_draw(lm, "cab", temperature, seed))


# -- Chapter 4: seq2seq_scratch ------------------------------------------------

@exercise_check("attend_backward", points=4,
                shows="no padding",
                hidden_adds="padding (lengths 4, 2, 3)",
                slip=("alpha * (d_alpha - np.sum(alpha * d_alpha, axis=1, keepdims=True))",
                      "alpha * d_alpha"))
def check_attend_backward():
    case = checks.refs("attend.full")
    context, alpha, cache = attend(case["s_prev"], case["memory"], case["keys"], None,
                                   case["w_q"], case["v"])
    grads = attend_backward(case["d_context"], cache, case["memory"], case["w_q"], case["v"])
    checks.equal("the number of values returned", len(grads), 5)
    for name, value in zip(("ds_prev", "d_keys", "d_memory", "dw_q", "dv"), grads):
        checks.close(name, value, case[name], 1e-8)
    # hidden checks
    case = checks.refs("attend.padded")        # sources of lengths 4, 2 and 3
    context, alpha, cache = attend(case["s_prev"], case["memory"], case["keys"], case["pad"],
                                   case["w_q"], case["v"])
    grads = attend_backward(case["d_context"], cache, case["memory"], case["w_q"], case["v"])
    checks.equal("the number of values returned (padded)", len(grads), 5)
    for name, value in zip(("ds_prev", "d_keys", "d_memory", "dw_q", "dv"), grads):
        checks.close(name + " (padded)", value, case[name], 1e-8)


@exercise_check("beam_search_step", points=4, after="exhaustive_search",
                shows="the tiny GRU model, widths 1 and 16",
                hidden_adds="an LSTM model, length_penalty 1, two more sources",
                slip=("np.argsort(-total, axis=None", "np.argsort(total, axis=None"))
def check_beam_search_step():
    # The lesson's own checks of section 7, on the tiny model (no attention, so that a
    # model is trained without attend_backward): width 1 is greedy decoding, and a beam
    # wide enough to keep every hypothesis finds what the brute force finds.
    tiny = tiny_model(attention=False)
    checks.equal("the output of width 1", tiny.beam_search("bbaca", 1, 4)[0][1],
                 tiny.predict(["bbaca"], beam_width=1, max_length=4)[0])
    every = tiny.exhaustive_search("bbaca", 4)
    beam = tiny.beam_search("bbaca", 2 ** 4, 4)
    checks.equal("the best output of width 16", beam[0][1], every[0][1])
    checks.close("its score", beam[0][0], every[0][0], 1e-10)
    # hidden checks
    tiny = tiny_model(cell="lstm", attention=False, seed=1)
    for source in ("ab c", "ca"):
        checks.equal(f"the output of width 1 for {source!r}", tiny.beam_search(source, 1, 4)[0][1],
                     tiny.predict([source], beam_width=1, max_length=4)[0])
        every = tiny.exhaustive_search(source, 4, 1.0)
        beam = tiny.beam_search(source, 2 ** 4, 4, 1.0)
        checks.equal(f"the best output of width 16, length_penalty 1, for {source!r}",
                     beam[0][1], every[0][1])
        checks.close("its score", beam[0][0], every[0][0], 1e-10)
        scores = [score for score, _, _ in beam]
        checks.equal("the hypotheses ranked best first", scores, sorted(scores, reverse=True))



# -- Chapter 5: linear_rnn_scratch ---------------------------------------------

@exercise_check("linear_scan", points=3,
                shows="9 steps, h0 given",
                hidden_adds="37 steps (not a power of 2), h0 = None",
                slip=("hs[:, 0] += kept[:, 0] * h0", "hs[:, 0] += h0"))
def check_linear_scan():
    case = checks.refs("scan.full")                  # 9 steps, h0 given
    hs = linear_scan(case["decay"], case["inputs"], case["h0"])
    checks.close("hs", hs, case["hs"], 1e-10)
    # hidden checks
    case = checks.refs("scan.long")                  # 37 steps, h0 = None (zeros)
    hs = linear_scan(case["decay"], case["inputs"])
    checks.close("hs (37 steps, h0 = None)", hs, case["hs"], 1e-10)


@exercise_check("linear_scan_backward", points=3,
                shows="9 steps, h0 given",
                hidden_adds="37 steps (not a power of 2), h0 = None",
                slip=("kept_next[:, :-1] = decay[:, 1:]", "kept_next[:, :-1] = decay[:, :-1]"))
def check_linear_scan_backward():
    # hs come from the reference, not from your scan
    case = checks.refs("scan.full")
    grads = linear_scan_backward(case["decay"], case["hs"], case["dhs"], case["h0"])
    for name in ("d_decay", "d_inputs", "dh0"):
        checks.close(name, grads[name], case[name], 1e-9)
    # hidden checks
    case = checks.refs("scan.long")
    grads = linear_scan_backward(case["decay"], case["hs"], case["dhs"])
    for name in ("d_decay", "d_inputs", "dh0"):
        checks.close(name + " (37 steps, h0 = None)", grads[name], case[name], 1e-9)


@exercise_check("MinGRU.backward", points=4,
                shows="many-to-many, h0 given",
                hidden_adds="many-to-one, with lengths 6, 2, 4 (padding), input_gradient=False",
                slip=("d_n *= g", "d_n *= z"))
def check_MinGRU_backward():
    # many-to-many; backward is given the reference forward's cache, so your forward plays
    # no part
    case = checks.refs("mingru.m2m")
    layer = MinGRU(case["w_x"], case["b"])
    given = MinCache(x_tm=case["x"].transpose(1, 0, 2).copy(), h0=case["h0"],
                     gates=(case["z"], case["n"]), decay=case["z"], h=case["h"], pad=None)
    grads = layer.backward(case["dh"], cache=given)
    for name in ("dw_x", "db", "dx", "dh0"):
        checks.close(name, grads[name], case[name], 1e-9)
    # hidden checks
    case = checks.refs("mingru.m2o_padded")
    layer = MinGRU(case["w_x"], case["b"])
    given = MinCache(x_tm=case["x"].transpose(1, 0, 2).copy(), h0=case["h0"],
                     gates=(case["z"], case["n"]), decay=case["z"], h=case["h"],
                     pad=case["pad"])
    grads = layer.backward(case["dh"], cache=given)
    for name in ("dw_x", "db", "dx", "dh0"):
        checks.close(name + " (many-to-one, padded)", grads[name], case[name], 1e-9)
    grads = layer.backward(case["dh"], input_gradient=False, cache=given)
    checks.input_gradient_skipped(grads, "dw_x", case["dw_x"], 1e-9)
