"""Chapter 2's plain LSTM and GRU loops: against the fast layers, central differences, float32,
PyTorch (when installed), and the classic slips of gated BPTT. Without PyTorch, the plain loops
are the fast layers' independent oracle."""
import functools

import numpy as np
import pytest

from gated_rnn_scratch import (GRU_BPTT, LSTM_BPTT, gru_backward_loop, gru_forward_loop,
                               lstm_backward_loop, lstm_forward_loop)
from rnn_scratch import direct_gradients_per_step, numerical_gradient, rel_error
from lesson_support import slipped

# (batch_size, n_sequences, n_features, n_nodes)
SIZES = [(1, 1, 2, 3), (1, 6, 3, 4), (4, 1, 3, 5), (3, 5, 4, 6)]
CHECK_SIZE = (3, 5, 4, 6)


def lstm_problem(size, seed=0, dtype=np.float64):
    """x, (w_x, w_h, b), h0, c0 and a many-to-many and a many-to-one dh."""
    batch_size, n_sequences, n_features, n_nodes = size
    rng = np.random.default_rng(seed)
    params = (rng.normal(0, 0.5, (n_features, 4 * n_nodes)),
              rng.normal(0, 0.5, (n_nodes, 4 * n_nodes)),
              rng.normal(0, 0.5, 4 * n_nodes))
    x = rng.normal(size=(batch_size, n_sequences, n_features))
    h0, c0 = rng.normal(size=(2, batch_size, n_nodes))
    dh = {"many-to-many": rng.normal(size=(batch_size, n_sequences, n_nodes)),
          "many-to-one": rng.normal(size=(batch_size, n_nodes))}
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    return (cast(x), tuple(map(cast, params)), cast(h0), cast(c0),
            {k: cast(v) for k, v in dh.items()})


def gru_problem(size, seed=0, dtype=np.float64):
    """x, (w_x, w_h, b_x, b_h), h0 and a many-to-many and a many-to-one dh."""
    batch_size, n_sequences, n_features, n_nodes = size
    rng = np.random.default_rng(seed)
    params = (rng.normal(0, 0.5, (n_features, 3 * n_nodes)),
              rng.normal(0, 0.5, (n_nodes, 3 * n_nodes)),
              rng.normal(0, 0.5, 3 * n_nodes), rng.normal(0, 0.5, 3 * n_nodes))
    x = rng.normal(size=(batch_size, n_sequences, n_features))
    h0 = rng.normal(size=(batch_size, n_nodes))
    dh = {"many-to-many": rng.normal(size=(batch_size, n_sequences, n_nodes)),
          "many-to-one": rng.normal(size=(batch_size, n_nodes))}
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    return (cast(x), tuple(map(cast, params)), cast(h0),
            {k: cast(v) for k, v in dh.items()})


def loss(h_T, hs, dh):
    """L = sum(hs * dh) (many-to-many) or sum(h_T * dh) (many-to-one)."""
    return float(np.sum((hs if dh.ndim == 3 else h_T) * dh))


def assert_same_gradients(ours, ref, input_gradient):
    """Every gradient the fast layer returns (ref) equals the plain loop's (ours); dx is
    None in both exactly when input_gradient is False."""
    for key in ref:
        if ref[key] is None:
            assert ours[key] is None and not input_gradient, key
        else:
            assert ours[key].shape == ref[key].shape, key
            assert_close(ours[key], ref[key])
    assert (ours["dx"] is None) == (not input_gradient)


def assert_close(ours, theirs, tol=1e-12):
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------
# 1. Forward loops against the fast layers
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("given", [True, False], ids=["h0-given", "h0-None"])
def test_lstm_forward_loop_matches_layer(size, given):
    x, params, h0, c0, _ = lstm_problem(size)
    h0, c0 = (h0, c0) if given else (None, None)
    h_T, hs, cs = lstm_forward_loop(x, *params, h0, c0)
    layer = LSTM_BPTT(*params)
    h_T_ref, hs_ref = layer.forward(x, h0, c0)
    assert hs.shape == cs.shape == (size[0], size[1], size[3])
    assert_close(hs, hs_ref)
    assert_close(h_T, h_T_ref)
    assert_close(cs, layer.cs)
    assert_close(h_T, layer.final_state[0])
    assert_close(cs[:, -1], layer.final_state[1])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("given", [True, False], ids=["h0-given", "h0-None"])
def test_gru_forward_loop_matches_layer(size, given):
    x, params, h0, _ = gru_problem(size)
    h0 = h0 if given else None
    h_T, hs = gru_forward_loop(x, *params, h0)
    h_T_ref, hs_ref = GRU_BPTT(*params).forward(x, h0)
    assert hs.shape == (size[0], size[1], size[3])
    assert_close(hs, hs_ref)
    assert_close(h_T, h_T_ref)


# --------------------------------------------------------------------------------------
# 2. Backward loops against the fast layers
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("form", ["many-to-one", "many-to-many"])
@pytest.mark.parametrize("input_gradient", [True, False])
@pytest.mark.parametrize("given", [True, False], ids=["h0-given", "h0-None"])
def test_lstm_backward_loop_matches_layer(size, form, input_gradient, given):
    x, params, h0, c0, dh = lstm_problem(size)
    h0, c0 = (h0, c0) if given else (None, None)
    _, hs, cs = lstm_forward_loop(x, *params, h0, c0)
    ours = lstm_backward_loop(x, h0, c0, hs, cs, dh[form], *params, input_gradient)
    layer = LSTM_BPTT(*params)
    layer.forward(x, h0, c0)
    ref = layer.backward(dh[form], input_gradient)
    assert set(ref) == {"dw_x", "dw_h", "db", "dx", "dh0", "dc0"}
    assert set(ours) == set(ref) | {"g", "g_c"}
    assert_same_gradients(ours, ref, input_gradient)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("form", ["many-to-one", "many-to-many"])
@pytest.mark.parametrize("input_gradient", [True, False])
@pytest.mark.parametrize("given", [True, False], ids=["h0-given", "h0-None"])
def test_gru_backward_loop_matches_layer(size, form, input_gradient, given):
    x, params, h0, dh = gru_problem(size)
    h0 = h0 if given else None
    _, hs = gru_forward_loop(x, *params, h0)
    ours = gru_backward_loop(x, h0, hs, dh[form], *params, input_gradient)
    layer = GRU_BPTT(*params)
    layer.forward(x, h0)
    ref = layer.backward(dh[form], input_gradient)
    assert set(ref) == {"dw_x", "dw_h", "db_x", "db_h", "dx", "dh0"}
    assert set(ours) == set(ref) | {"g"}
    assert_same_gradients(ours, ref, input_gradient)


# --------------------------------------------------------------------------------------
# 3. Backward loops against central differences
# --------------------------------------------------------------------------------------
def lstm_gradient_errors(backward, form, seed=0):
    """{gradient: rel. error of backward's against central differences}."""
    x, (w_x, w_h, b), h0, c0, dhs = lstm_problem(CHECK_SIZE, seed)
    dh = dhs[form]
    _, hs, cs = lstm_forward_loop(x, w_x, w_h, b, h0, c0)
    grads = backward(x, h0, c0, hs, cs, dh, w_x, w_h, b)
    numerical = lstm_numerical(form, seed)
    return {key: rel_error(grads[key], numerical[key]) for key in numerical}


@functools.lru_cache(maxsize=None)
def lstm_numerical(form, seed=0):
    x, (w_x, w_h, b), h0, c0, dhs = lstm_problem(CHECK_SIZE, seed)
    def f():
        return loss(*lstm_forward_loop(x, w_x, w_h, b, h0, c0)[:2], dhs[form])

    named = {"dw_x": w_x, "dw_h": w_h, "db": b, "dx": x, "dh0": h0, "dc0": c0}
    return {key: numerical_gradient(f, value) for key, value in named.items()}


def gru_gradient_errors(backward, form, seed=0):
    x, (w_x, w_h, b_x, b_h), h0, dhs = gru_problem(CHECK_SIZE, seed)
    dh = dhs[form]
    _, hs = gru_forward_loop(x, w_x, w_h, b_x, b_h, h0)
    grads = backward(x, h0, hs, dh, w_x, w_h, b_x, b_h)
    numerical = gru_numerical(form, seed)
    return {key: rel_error(grads[key], numerical[key]) for key in numerical}


@functools.lru_cache(maxsize=None)
def gru_numerical(form, seed=0):
    x, (w_x, w_h, b_x, b_h), h0, dhs = gru_problem(CHECK_SIZE, seed)
    def f():
        return loss(*gru_forward_loop(x, w_x, w_h, b_x, b_h, h0), dhs[form])

    named = {"dw_x": w_x, "dw_h": w_h, "db_x": b_x, "db_h": b_h, "dx": x, "dh0": h0}
    return {key: numerical_gradient(f, value) for key, value in named.items()}


@pytest.mark.parametrize("form", ["many-to-one", "many-to-many"])
def test_lstm_backward_loop_central_differences(form):
    errors = lstm_gradient_errors(lstm_backward_loop, form)
    assert set(errors) == {"dw_x", "dw_h", "db", "dx", "dh0", "dc0"}
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("form", ["many-to-one", "many-to-many"])
def test_gru_backward_loop_central_differences(form):
    errors = gru_gradient_errors(gru_backward_loop, form)
    assert set(errors) == {"dw_x", "dw_h", "db_x", "db_h", "dx", "dh0"}
    assert max(errors.values()) < 1e-7, errors


# --------------------------------------------------------------------------------------
# 4. g and g_c, every step, against central differences
# --------------------------------------------------------------------------------------
# The loss from slot s on depends on the past only through (h_s, c_s): it is the direct
# term h_s . g-hat_s plus the loss of the remaining sequence x[:, s+1:] started from
# (h_s, c_s). Its derivative in h_s (c_s held) is g_s; in c_s, with h_s = o_s tanh(c_s)
# recomputed from it (o_s held), it is bar-g^c_s, the cell's total gradient.
def lstm_loss_from(s, x, params, direct, h_s, c_s):
    _, hs_rest, _ = lstm_forward_loop(x[:, s + 1:], *params, h_s, c_s)
    return float(np.sum(h_s * direct[:, s]) + np.sum(hs_rest * direct[:, s + 1:]))


@pytest.mark.parametrize("form", ["many-to-one", "many-to-many"])
def test_lstm_g_and_g_c_central_differences(form):
    x, params, h0, c0, dhs = lstm_problem(CHECK_SIZE)
    w_x, w_h, b = params
    n_nodes = w_h.shape[0]
    _, hs, cs = lstm_forward_loop(x, *params, h0, c0)
    ours = lstm_backward_loop(x, h0, c0, hs, cs, dhs[form], *params)
    direct = direct_gradients_per_step(dhs[form], hs)
    for s in range(x.shape[1]):
        h_s, c_s = hs[:, s].copy(), cs[:, s].copy()
        def through_h():
            return lstm_loss_from(s, x, params, direct, h_s, c_s)

        g_s = numerical_gradient(through_h, h_s)
        assert rel_error(ours["g"][:, s], g_s) < 1e-7, s
        h_prev = hs[:, s - 1] if s > 0 else h0
        a_o = (x[:, s] @ w_x + h_prev @ w_h + b)[:, 3 * n_nodes:]
        o_s = 1 / (1 + np.exp(-a_o))               # the output gate, on its own
        np.testing.assert_allclose(o_s * np.tanh(c_s), h_s, atol=1e-14)

        def through_cell():
            return lstm_loss_from(s, x, params, direct, o_s * np.tanh(c_s), c_s)

        g_c_s = numerical_gradient(through_cell, c_s)
        assert rel_error(ours["g_c"][:, s], g_c_s) < 1e-7, s
    if form == "many-to-one":
        np.testing.assert_array_equal(ours["g"][:, -1], dhs[form])   # g_T = g-hat_T


@pytest.mark.parametrize("form", ["many-to-one", "many-to-many"])
def test_gru_g_central_differences(form):
    x, params, h0, dhs = gru_problem(CHECK_SIZE)
    _, hs = gru_forward_loop(x, *params, h0)
    ours = gru_backward_loop(x, h0, hs, dhs[form], *params)
    direct = direct_gradients_per_step(dhs[form], hs)

    def loss_from(s, h_s):
        _, hs_rest = gru_forward_loop(x[:, s + 1:], *params, h_s)
        return float(np.sum(h_s * direct[:, s]) + np.sum(hs_rest * direct[:, s + 1:]))

    for s in range(x.shape[1]):
        h_s = hs[:, s].copy()
        g_s = numerical_gradient(lambda: loss_from(s, h_s), h_s)
        assert rel_error(ours["g"][:, s], g_s) < 1e-7, s
    if form == "many-to-one":
        np.testing.assert_array_equal(ours["g"][:, -1], dhs[form])


# --------------------------------------------------------------------------------------
# 5. float32 in, float32 out
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("given", [True, False], ids=["h0-given", "h0-None"])
def test_lstm_float32(given):
    x, params, h0, c0, dhs = lstm_problem(CHECK_SIZE, dtype=np.float32)
    h0, c0 = (h0, c0) if given else (None, None)
    up = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    out32 = lstm_forward_loop(x, *params, h0, c0)
    out64 = lstm_forward_loop(up(x), *map(up, params), up(h0), up(c0))
    for a32, a64 in zip(out32, out64):
        assert a32.dtype == np.float32
        assert rel_error(a32, a64) < 1e-5
    for dh in dhs.values():
        g32 = lstm_backward_loop(x, h0, c0, *out32[1:], dh, *params)
        g64 = lstm_backward_loop(up(x), up(h0), up(c0), *out64[1:], up(dh),
                                 *map(up, params))
        for key in g64:
            assert g32[key].dtype == np.float32, key
            assert rel_error(g32[key], g64[key]) < 1e-5, key


@pytest.mark.parametrize("given", [True, False], ids=["h0-given", "h0-None"])
def test_gru_float32(given):
    x, params, h0, dhs = gru_problem(CHECK_SIZE, dtype=np.float32)
    h0 = h0 if given else None
    up = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    out32 = gru_forward_loop(x, *params, h0)
    out64 = gru_forward_loop(up(x), *map(up, params), up(h0))
    for a32, a64 in zip(out32, out64):
        assert a32.dtype == np.float32
        assert rel_error(a32, a64) < 1e-5
    for dh in dhs.values():
        g32 = gru_backward_loop(x, h0, out32[1], dh, *params)
        g64 = gru_backward_loop(up(x), up(h0), out64[1], up(dh), *map(up, params))
        for key in g64:
            assert g32[key].dtype == np.float32, key
            assert rel_error(g32[key], g64[key]) < 1e-5, key


# --------------------------------------------------------------------------------------
# 6. The classic slips: each is caught by the central-difference check
# --------------------------------------------------------------------------------------
def assert_slip_caught(cell, right, wrong):
    """The plain backward passes the check (< 1e-7, both forms); with `right` replaced
    by `wrong`, at least one gradient is off by more than 1e-3 (in one form or both)."""
    backward, errors_of = {"lstm": (lstm_backward_loop, lstm_gradient_errors),
                           "gru": (gru_backward_loop, gru_gradient_errors)}[cell]
    broken = slipped(backward, right, wrong)
    worst = 0.0
    for form in ("many-to-one", "many-to-many"):
        assert max(errors_of(backward, form).values()) < 1e-7
        worst = max(worst, max(errors_of(broken, form).values()))
    assert worst > 1e-3, f"the slip {right!r} -> {wrong!r} went unnoticed ({worst:.1e})"


def test_slip_lstm_input_gate_derivative_is_caught():        # tanh' in place of sigma'
    assert_slip_caught("lstm", "c_tilde * i_t * (1 - i_t)", "c_tilde * (1 - i_t ** 2)")


def test_slip_lstm_forget_gate_derivative_is_caught():       # sigma' dropped
    assert_slip_caught("lstm", "c_prev * f_t * (1 - f_t)", "c_prev")


def test_slip_lstm_candidate_derivative_is_caught():         # sigma' in place of tanh'
    assert_slip_caught("lstm", "i_t * (1 - c_tilde ** 2)",
                       "i_t * c_tilde * (1 - c_tilde)")


def test_slip_lstm_output_gate_derivative_is_caught():       # tanh' in place of sigma'
    assert_slip_caught("lstm", "o_t * (1 - o_t)", "(1 - o_t ** 2)")


def test_slip_lstm_cell_gradient_missing_path_through_h_is_caught():
    assert_slip_caught("lstm", "g_t * o_t * (1 - tanh_c ** 2) + along_cell",
                       "along_cell")


def test_slip_lstm_forget_gate_missing_from_cell_path_is_caught():
    assert_slip_caught("lstm", "along_cell = gamma_t * f_t", "along_cell = gamma_t")


def test_slip_lstm_forget_gate_paired_with_c_t_is_caught():  # c_t instead of c_{t-1}
    assert_slip_caught("lstm", "gamma_t * c_prev * f_t", "gamma_t * cs[:, t] * f_t")


def test_slip_lstm_h_prev_paired_with_wrong_step_is_caught():  # dW_h with h_t
    assert_slip_caught("lstm", "dw_h += h_prev.T @ delta_t",
                       "dw_h += hs[:, t].T @ delta_t")


def test_slip_gru_reset_gate_derivative_is_caught():         # tanh' in place of sigma'
    assert_slip_caught("gru", "r_t * (1 - r_t)", "(1 - r_t ** 2)")


def test_slip_gru_update_gate_derivative_is_caught():        # tanh' in place of sigma'
    assert_slip_caught("gru", "z_t * (1 - z_t)", "(1 - z_t ** 2)")


def test_slip_gru_candidate_derivative_is_caught():          # tanh' dropped
    assert_slip_caught("gru", "(1 - z_t) * (1 - n_t ** 2)", "(1 - z_t)")


def test_slip_gru_update_gate_sign_is_caught():              # (n_t - h_{t-1})
    assert_slip_caught("gru", "(h_prev - n_t)", "(n_t - h_prev)")


def test_slip_gru_reset_gate_missing_from_recurrent_side_is_caught():
    assert_slip_caught("gru", "r_t * delta_n]", "delta_n]")


def test_slip_gru_additive_path_dropped_is_caught():         # g_t * z_t
    assert_slip_caught("gru", "from_next = g_t * z_t + delta_h", "from_next = delta_h")


def test_slip_gru_h_prev_paired_with_wrong_step_is_caught():   # dW_h with h_t
    assert_slip_caught("gru", "dw_h += h_prev.T @ delta_h",
                       "dw_h += hs[:, t].T @ delta_h")


def test_slip_with_a_stale_right_string_fails_loudly():
    with pytest.raises(ValueError, match="occurs 0 times"):
        slipped(lstm_backward_loop, "no such line", "anything")


# --------------------------------------------------------------------------------------
# PyTorch: the same outputs and gradients as torch.nn.LSTM and torch.nn.GRU
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_loops_match_pytorch(cell):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional cross-check")
    torch_twins = pytest.importorskip("torch_twins")
    torch.set_num_threads(1)
    if cell == "lstm":
        x, params, h0, c0, dhs = lstm_problem(CHECK_SIZE, seed=3)
        _, hs, cs = lstm_forward_loop(x, *params, h0, c0)
        ours = lstm_backward_loop(x, h0, c0, hs, cs, dhs["many-to-many"], *params)
        layer = LSTM_BPTT(*params)
    else:
        x, params, h0, dhs = gru_problem(CHECK_SIZE, seed=3)
        c0 = None
        _, hs = gru_forward_loop(x, *params, h0)
        ours = gru_backward_loop(x, h0, hs, dhs["many-to-many"], *params)
        layer = GRU_BPTT(*params)
    out, theirs = torch_twins.torch_pass(torch, layer, x, h0, dhs["many-to-many"], c0=c0)()
    assert_close(hs, out)
    assert set(theirs) == set(ours) - {"g", "g_c"}
    for name, grad in theirs.items():
        assert_close(ours[name], grad)
