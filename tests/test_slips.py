"""The classic slips of BPTT, each made on purpose in one line, and the lesson's check that
catches it.

Every test breaks a plain lesson function with `slipped` (one source line changed), shows that
the check reports the slip, and shows that the unbroken function passes the very same check, so
each test fails if the slip goes unnoticed *or* if the check rejects the correct code. The
docstring of each test says, in one sentence, what the slip is and what catches it.
"""
import numpy as np
import pytest

import language_model_scratch as lm
import rnn_scratch as rs
from language_model_scratch import ScratchRNNLanguageModel
from rnn_scratch import (SimpleRNN, check_gradients, check_rnn_gradients, rnn_backward_loop,
                         rnn_forward_loop)
from lesson_support import slipped
from test_language_model import TEXT, small_model

CAUGHT = 1e-3     # a slip must push the check's relative error above this...
CLEAN = 1e-7      # ...while the correct function stays below this (float64 central differences)


class LoopRNN(SimpleRNN):
    """Chapter 1's layer with the plain loops as forward and backward, so that the lesson's
    check_rnn_gradients checks rnn_backward_loop itself, or a copy of it with a slip."""

    def __init__(self, w_x, w_h, b, backward_loop):
        super().__init__(w_x, w_h, b)
        self.backward_loop = backward_loop

    def forward(self, x, h0=None, lengths=None):
        self.kept = (x, h0)
        h_T, self.hs = rnn_forward_loop(x, self.w_x, self.w_h, self.b, h0)
        return h_T, self.hs

    def backward(self, dh):
        x, h0 = self.kept
        return self.backward_loop(x, h0, self.hs, dh, self.w_x, self.w_h)


def bptt_check(backward_loop, many_to_many=False, n_features=3, seed=0):
    """check_rnn_gradients on a batch of 3 sequences of 5 steps, 4 nodes, a non-zero h0 and
    random direct gradients: {"dw_x": err, "dw_h": err, "db": err, "dx": err, "dh0": err}."""
    rng = np.random.default_rng(seed)
    w_x, w_h = rng.normal(0, 0.5, (n_features, 4)), rng.normal(0, 0.5, (4, 4))
    x, h0 = rng.normal(size=(3, 5, n_features)), rng.normal(0, 0.5, (3, 4))
    dh = rng.normal(size=(3, 5, 4) if many_to_many else (3, 4))
    rnn = LoopRNN(w_x, w_h, rng.normal(0, 0.1, 4), backward_loop)
    return check_rnn_gradients(rnn, x, h0, dh)


def assert_caught_only_in(bad, slip, caught_in):
    """The check of every gradient in caught_in reports the slip (above CAUGHT), and the
    checks of the others stay clean (below CLEAN), so the check also says where it is."""
    for name, err in bad.items():
        if name in caught_in:
            assert err > CAUGHT, f"slip NOT caught: {slip}; the check of {name} reports {err:.0e}"
        else:
            assert err < CLEAN, f"{slip}: the check of {name} should be clean, got {err:.0e}"


def assert_caught(slip, right, wrong, caught_in, many_to_many=True, n_features=3):
    """The slip moves the check of every gradient in caught_in above CAUGHT, leaves the others
    below CLEAN, and the unbroken rnn_backward_loop passes the same check."""
    good = bptt_check(rnn_backward_loop, many_to_many, n_features)
    bad = bptt_check(slipped(rnn_backward_loop, right, wrong), many_to_many, n_features)
    assert max(good.values()) < CLEAN, f"the correct rnn_backward_loop fails the check: {good}"
    assert_caught_only_in(bad, slip, caught_in)
    return bad


# -- chapter 1: rnn_backward_loop against central differences (check_rnn_gradients) ------------
def test_slip_tanh_derivative_taken_as_one_minus_h():
    """tanh' taken as 1 - h instead of 1 - h**2: the central-difference check of every gradient
    (dw_x, dw_h, db, dx, dh0) reports it."""
    assert_caught("tanh' taken as 1 - h instead of 1 - h**2",
                  "(1 - hs[:, t] ** 2)", "(1 - hs[:, t])", {"dw_x", "dw_h", "db", "dx", "dh0"})


def test_slip_dw_h_pairs_delta_t_with_h_t():
    """h_t paired with delta_t instead of h_{t-1} in dW_h: the central-difference check of dw_h
    reports it, and only dw_h."""
    assert_caught("h_t paired with delta_t instead of h_{t-1} in dW_h",
                  "dw_h += h_prev.T @ delta_t", "dw_h += hs[:, t].T @ delta_t", {"dw_h"})


def test_slip_dw_h_forgets_h0_at_the_first_step():
    """h_0 forgotten in dW_h (hs[:, t-1] at t = 0 is hs[:, -1] = h_T, not h_0): the
    central-difference check of dw_h reports it."""
    assert_caught("h_0 forgotten in dW_h: hs[:, t-1] at the first step is h_T, not h_0",
                  "hs[:, t - 1] if t > 0 else h0", "hs[:, t - 1]", {"dw_h"})


def test_slip_direct_gradient_added_one_step_late_is_caught_only_many_to_many(monkeypatch):
    """The direct gradient g-hat shifted by one step (g-hat_{t+1} added at step t): a
    many-to-one check cannot see it, only the many-to-many check reports it (every gradient)."""
    right, wrong = "direct[:] = dh", "direct[:, :-1] = dh[:, 1:]"
    # rnn_backward_loop takes g-hat_t from direct_gradients_per_step: the slip goes there.
    good = bptt_check(rnn_backward_loop, many_to_many=True)
    monkeypatch.setattr(rs, "direct_gradients_per_step",
                        slipped(rs.direct_gradients_per_step, right, wrong))
    one = bptt_check(rnn_backward_loop, many_to_many=False)
    assert max(one.values()) < CLEAN, f"the many-to-one check was expected to pass: {one}"
    bad = bptt_check(rnn_backward_loop, many_to_many=True)
    assert max(good.values()) < CLEAN, good
    assert min(bad.values()) > CAUGHT, f"slip NOT caught: g-hat shifted by one step: {bad}"


@pytest.mark.parametrize("wrong", ["delta_t[0]", "delta_t.mean(axis=0)"])
def test_slip_bias_gradient_without_its_batch_sum(wrong):
    """The bias gradient not summed over the batch (one row, or the mean): the central-difference
    check of db reports it, and only db."""
    assert_caught(f"the bias gradient taken as {wrong} instead of the batch sum",
                  "delta_t.sum(axis=0)", wrong, {"db"})


def test_slip_dx_uses_w_h_instead_of_w_x():
    """dx taken as delta_t W_h^T instead of delta_t W_x^T: with as many features as nodes (else
    NumPy's shape error stops it first) the central-difference check of dx reports it."""
    assert_caught("dx taken as delta_t W_h^T instead of delta_t W_x^T",
                  "dx[:, t] = delta_t @ w_x.T", "dx[:, t] = delta_t @ w_h.T", {"dx"},
                  n_features=4)


def test_slip_dh0_forgotten():
    """dh0 forgotten (returned as zeros instead of the last delta_1 W_h^T): the central-difference
    check of dh0 reports it, and only dh0."""
    assert_caught("dh0 forgotten: zeros returned instead of delta_1 W_h^T",
                  '"dh0": from_next', '"dh0": np.zeros_like(h0)', {"dh0"})


# -- chapter 3: the per-step output layer against central differences of its own loss -----------
def output_layer_check(func, seed=0):
    """Relative errors of func's (dw_y, db_y, dh) against central differences of its loss, on a
    padded batch: 3 sequences of lengths 6, 2 and 4, 5 nodes, 7 symbols (float64)."""
    rng = np.random.default_rng(seed)
    lengths = np.array([6, 2, 4])
    hs = rng.normal(size=(3, 6, 5)) * (np.arange(6)[None, :] < lengths[:, None])[:, :, None]
    y_idx, w_y, b_y = rng.integers(0, 7, (3, 6)), rng.normal(size=(5, 7)), rng.normal(size=7)
    _, dw_y, db_y, dh = func(hs, y_idx, w_y, b_y, lengths)

    def loss():
        return func(hs, y_idx, w_y, b_y, lengths)[0]

    return check_gradients(loss, {"dw_y": dw_y, "db_y": db_y, "dh": dh},
                           {"dw_y": w_y, "db_y": b_y, "dh": hs})


@pytest.mark.parametrize("right, wrong, slip, caught_in", [
    ("dz_t /= n_real", "dz_t /= 1", "the 1/N of the mean loss missing from the gradient",
     {"dw_y", "db_y", "dh"}),
    ("np.outer(hs[n, t], dz_t)", "np.outer(hs[n, t - 1], dz_t)",
     "dW_y built from h_{t-1} instead of h_t", {"dw_y"}),
], ids=["mean_1_over_N_missing", "dw_y_from_h_t_minus_1"])
def test_slip_in_the_output_layer_gradient(right, wrong, slip, caught_in):
    """A slip in output_layer_loop's gradient (the 1/N missing, or dW_y from the wrong state):
    central differences of output_layer_loop's own loss report it."""
    good = output_layer_check(lm.output_layer_loop)
    bad = output_layer_check(slipped(lm.output_layer_loop, right, wrong))
    assert max(good.values()) < CLEAN, f"the correct output_layer_loop fails the check: {good}"
    assert_caught_only_in(bad, slip, caught_in)


# -- chapter 3: sampling and the carried state, through the public API --------------------------
def temperature_frequencies(temperature=0.5, n=6000):
    """Sample n symbols from a model whose next-symbol distribution is q = (0.6, 0.25, 0.1, 0.05)
    after any input (w_y = 0, b_y = log q, as in test_language_model). Returns (frequencies,
    softmax(log q / temperature), the 5-sigma tolerance of each frequency)."""
    model = small_model().fit("abcd" * 5)
    q = np.array([0.6, 0.25, 0.1, 0.05])
    model.w_y[:] = 0
    model.b_y[:] = np.log(q)
    s = model.sample(n, prime="a", temperature=temperature, random_state=0)[1:]
    target = q ** (1 / temperature) / np.sum(q ** (1 / temperature))
    return (np.array([s.count(ch) for ch in "abcd"]) / n, target,
            5 * np.sqrt(target * (1 - target) / n))


def test_slip_temperature_multiplied_instead_of_divided(monkeypatch):
    """Sampling temperature multiplied instead of divided (softmax(z * T), not softmax(z / T)):
    the symbol frequencies at T = 0.5 of a model with a known distribution miss softmax(z / 0.5)."""
    freq, target, tol = temperature_frequencies()
    assert np.all(np.abs(freq - target) < tol), ("the correct sample misses", freq, target)
    broken = slipped(ScratchRNNLanguageModel.sample, ".astype(np.float64) / temperature",
                     ".astype(np.float64) * temperature")
    monkeypatch.setattr(ScratchRNNLanguageModel, "sample", broken)
    freq, target, tol = temperature_frequencies()
    worst = np.max(np.abs(freq - target) / tol)
    assert worst > 1, (f"slip NOT caught: temperature multiplied instead of divided; the "
                       f"frequencies {freq.round(3)} match softmax(z / 0.5) = {target.round(3)}")


def stream_loss_gap(cell="rnn"):
    """|first-epoch training loss - the loss of the same text read with the state carried| /
    that loss, for a model whose weights do not move (learning rate 1e-300): the carried-state
    loss is the mean bits_per_symbol of the cut streams (as in test_language_model)."""
    model = small_model(cell, learning_rate=1e-300).fit(TEXT)
    n = (len(TEXT) - 1) // 3
    carried = np.mean([model.bits_per_symbol(TEXT[b * n:(b + 1) * n + 1]) for b in range(3)])
    carried *= np.log(2)
    return abs(model.loss_history[0] - carried) / carried


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_slip_carried_state_dropped_between_chunks(cell, monkeypatch):
    """The carried state dropped between the chunks of a stream in fit (each chunk restarts from
    zeros): the first epoch's training loss no longer equals the stream's loss read with the state
    carried (mean bits_per_symbol of the cut streams)."""
    assert stream_loss_gap(cell) < 1e-12, "the correct fit's loss is not the carried-state loss"
    broken = slipped(ScratchRNNLanguageModel.fit, 'state if kind == "stream" else None', "None")
    monkeypatch.setattr(ScratchRNNLanguageModel, "fit", broken)
    gap = stream_loss_gap(cell)
    assert gap > 1e-6, (f"slip NOT caught: carried state dropped between chunks; the training "
                        f"loss differs from the carried-state loss by only {gap:.0e}")


# -- chapter 4 -----------------------------------------------------------------------------------
def test_slip_attention_softmax_backward_without_its_mean_term(monkeypatch):
    """The softmax's backward without the term every weight shares (dL/de = alpha * dL/dalpha
    only): chapter 4's check_attention reports it in every gradient that flows through the
    scores — the query's weights W_q, the keys' W_k, v and s_{t-1}."""
    import seq2seq_scratch as s2s
    _, clean = s2s.check_attention()
    assert max(clean.values()) < CLEAN, clean
    broken = slipped(s2s.attend_backward,
                     "alpha * (d_alpha - np.sum(alpha * d_alpha, axis=1, keepdims=True))",
                     "alpha * d_alpha")
    monkeypatch.setattr(s2s, "attend_backward", broken)
    _, bad = s2s.check_attention()
    for name in ("w_q", "w_k", "v", "s_prev"):
        assert bad[name] > CAUGHT, f"slip NOT caught: softmax backward; {name} reports {bad[name]:.0e}"


def test_slip_backward_readers_dx_not_reversed_back(monkeypatch):
    """The backward reader's dx left in its own (reversed) order when the two directions' dx are
    added: chapter 4's check_encoder reports dx of a one-layer encoder, and every weight of the
    lower layer of a two-layer one."""
    import seq2seq_scratch as s2s
    _, clean = s2s.check_encoder("gru", True, 2)
    assert max(clean.values()) < CLEAN, clean
    broken = slipped(s2s.encoder_backward, 'else reverse_within_lengths(g["dx"], lengths))',
                     'else g["dx"])')
    monkeypatch.setattr(s2s, "encoder_backward", broken)
    _, bad = s2s.check_encoder("gru", True, 2)
    assert bad["x"] > CAUGHT and bad["enc0_fw_w_x"] > CAUGHT, bad
