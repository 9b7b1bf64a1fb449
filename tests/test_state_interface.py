"""One state interface for every cell: state_names, final_state, the LSTM's gates, cs and dc_T,
make_layer; float32 against float64; and the measurements chapter 2 builds on them."""
import numpy as np
import pytest

import gated_rnn_scratch as gs
import rnn_scratch as rs

CELLS = ("rnn", "lstm", "gru")
SHAPE = (3, 7, 4, 5)   # batch_size, n_sequences, n_features, n_nodes


@pytest.mark.parametrize("cell", CELLS)
def test_final_state_holds_each_state_after_the_last_step(cell, random_layer):
    layer, x, h0, rng = random_layer(cell, SHAPE, seed=1)
    h_T, hs = layer.forward(x, h0)
    assert layer.state_names == (("h", "c") if cell == "lstm" else ("h",))
    assert len(layer.final_state) == len(layer.state_names)
    np.testing.assert_array_equal(layer.final_state[0], hs[:, -1])
    np.testing.assert_array_equal(layer.final_state[0], h_T)
    if cell == "lstm":
        _, _, cs = gs.lstm_forward_loop(x, *layer.parameters().values(), h0)
        np.testing.assert_allclose(layer.final_state[1], cs[:, -1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", CELLS)
def test_a_sequence_run_in_two_pieces_with_the_state_carried_forward_and_back(cell, random_layer):
    # What a decoder does: run a layer piece by piece, carrying final_state forward, and carry the
    # gradients of the initial states (dh0, and dc0 as dc_T for the LSTM) backward.
    layer, x, h0, rng = random_layer(cell, SHAPE, seed=2)
    dh = rng.normal(size=SHAPE[:2] + SHAPE[3:])
    layer.forward(x, h0)
    whole = layer.backward(dh)
    cut = 3
    _, hs_second = layer.forward(x[:, cut:], *[s.copy() for s in state_after(layer, x, h0, cut)])
    second = layer.backward(dh[:, cut:])
    _, hs_first = layer.forward(x[:, :cut], h0)
    dh_first = dh[:, :cut].copy()
    dh_first[:, -1] += second["dh0"]                    # what reaches h at the cut from after it
    first = layer.backward(dh_first, **({"dc_T": second["dc0"]} if cell == "lstm" else {}))
    for name in layer.parameters():
        np.testing.assert_allclose(first["d" + name] + second["d" + name], whole["d" + name],
                                   rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(first["dh0"], whole["dh0"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([first["dx"], second["dx"]], axis=1), whole["dx"],
                               rtol=1e-10, atol=1e-12)


def state_after(layer, x, h0, cut):
    """The layer's final_state after the first `cut` steps of x."""
    layer.forward(x[:, :cut], h0)
    return layer.final_state


def test_lstm_dc_T_matches_central_differences(random_layer):
    layer, x, h0, rng = random_layer("lstm", SHAPE, seed=3)
    dh, dc_T = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))

    def loss():   # L = sum(h_T * dh) + sum(c_T * dc_T): dc_T is the direct gradient at c_T
        h_T, _ = layer.forward(x, h0)
        return float(np.sum(h_T * dh) + np.sum(layer.final_state[1] * dc_T))

    loss()
    grads = layer.backward(dh, dc_T=dc_T)
    errors = rs.check_gradients(loss, grads, {"d" + k: p for k, p in layer.parameters().items()}
                                | {"dx": x, "dh0": h0})
    assert max(errors.values()) < 1e-7, errors
    with pytest.raises(ValueError, match=r"dc_T must have shape \(batch_size, n_nodes\) = \(3, 5\)"):
        layer.backward(dh, dc_T=np.zeros((3, 4)))


def test_lstm_gates_are_the_activations_of_every_step(random_layer):
    layer, x, h0, _ = random_layer("lstm", SHAPE, seed=4)
    _, hs = layer.forward(x, h0)
    assert set(layer.gates) == {"i", "f", "g", "o"}
    h_prev = h0
    for t in range(SHAPE[1]):
        expected = gs.lstm_gates(x[:, t], h_prev, *layer.parameters().values())
        for name, value in zip("ifgo", expected):
            assert layer.gates[name].shape == SHAPE[:2] + SHAPE[3:]
            np.testing.assert_allclose(layer.gates[name][:, t], value, rtol=1e-12, atol=1e-14,
                                       err_msg=f"{name} at step {t + 1}")
        h_prev = hs[:, t]


def test_lstm_cell_states_follow_the_contract_of_hs_at_padded_steps(random_layer):
    layer, x, h0, _ = random_layer("lstm", SHAPE, seed=5)
    lengths = np.array([7, 2, 4])
    layer.forward(x, h0, lengths=lengths)
    cs, c_T = layer.cs.copy(), layer.final_state[1].copy()
    for n, length in enumerate(lengths):
        alone = gs.LSTM_BPTT(*layer.parameters().values())
        alone.forward(x[n:n + 1, :length], h0[n:n + 1])
        np.testing.assert_allclose(cs[n, :length], alone.cs[0], rtol=1e-12, atol=1e-14)
        assert np.all(cs[n, length:] == 0)                   # zeros at padding, as hs
        np.testing.assert_allclose(c_T[n], alone.final_state[1][0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_layers_agree_with_float64(cell, random_layer):
    layer64, x, h0, rng = random_layer(cell, SHAPE, seed=6)
    layer32 = type(layer64)(*(p.astype(np.float32) for p in layer64.parameters().values()))
    dh = rng.normal(size=SHAPE[:2] + SHAPE[3:])
    h64 = layer64.forward(x, h0)[1]
    g64 = layer64.backward(dh)
    h32 = layer32.forward(x.astype(np.float32), h0.astype(np.float32))[1]
    g32 = layer32.backward(dh.astype(np.float32))
    assert h32.dtype == np.float32 and all(g.dtype == np.float32 for g in g32.values())
    assert rs.rel_error(h32, h64) < 1e-6
    for name in g64:
        assert rs.rel_error(g32[name], g64[name]) < 1e-5, name


@pytest.mark.parametrize("cell, layer_class", [("rnn", rs.SimpleRNN_BPTT), ("lstm", gs.LSTM_BPTT),
                                               ("gru", gs.GRU_BPTT)])
def test_make_layer_builds_the_cell_in_the_classifiers_draw_order(cell, layer_class):
    layer = gs.make_layer(cell, 6, 4, np.random.default_rng(0), np.float32)
    assert type(layer) is layer_class and layer.dtype == np.float32
    assert (layer.n_features, layer.n_nodes) == (6, 4)
    X, y = rs.make_temporal_order_data(8, 6, rng=0)
    model_class = {"rnn": rs.ScratchSimpleRNNClassifier, "lstm": gs.ScratchLSTMClassifier,
                   "gru": gs.ScratchGRUClassifier}[cell]
    model = model_class(n_nodes=4, epochs=1, random_state=0).fit(X[:, :, :8], y)
    same = gs.make_layer(cell, 8, 4, np.random.default_rng(0))
    for name, p in same.parameters().items():
        np.testing.assert_array_equal(p, model.initial_parameters_[name], err_msg=name)
    with pytest.raises(ValueError, match='cell must be one of "rnn", "lstm", "gru"'):
        gs.make_layer("LSTM", 6, 4, np.random.default_rng(0))


def test_lstm_starts_with_forget_bias_and_zero_forget_bias_is_honoured():
    b = gs.make_layer("lstm", 3, 4, np.random.default_rng(0)).b
    assert np.all(b[4:8] == 1) and np.all(np.delete(b, range(4, 8)) == 0)
    assert np.all(gs.make_layer("lstm", 3, 4, np.random.default_rng(0), forget_bias=0.0).b == 0)


@pytest.mark.parametrize("model_class", [gs.ScratchLSTMClassifier, gs.ScratchGRUClassifier,
                                         gs.EarlyStoppingClassifier])
def test_gradient_over_time_is_the_plain_loops_input_gradient(model_class):
    X, y = rs.make_temporal_order_data(20, 9, rng=4)
    model = model_class(n_nodes=5, epochs=1, random_state=0).fit(X, y)
    curve = gs.gradient_over_time(model, X, y)
    params = [p.astype(np.float64) for p in model.rnn.parameters().values()]
    w_y = model.w_y.astype(np.float64)
    plain = {"lstm": (gs.lstm_forward_loop, gs.lstm_backward_loop),
             "gru": (gs.gru_forward_loop, gs.gru_backward_loop),
             "rnn": (rs.rnn_forward_loop, rs.rnn_backward_loop)}[model_class.cell]
    h_T, *states = plain[0](X, *params)
    _, dz = rs.cross_entropy_and_gradient(h_T @ w_y + model.b_y, np.searchsorted(model.classes_, y))
    if model_class.cell == "lstm":
        dx = plain[1](X, None, None, *states, dz @ w_y.T, *params)["dx"]
    elif model_class.cell == "gru":
        dx = plain[1](X, None, *states, dz @ w_y.T, *params)["dx"]
    else:
        dx = plain[1](X, None, *states, dz @ w_y.T, *params[:2])["dx"]
    np.testing.assert_allclose(curve, np.linalg.norm(dx, axis=2).mean(axis=0), rtol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
def test_a_sequence_run_as_steps_equals_forward_and_backward(cell, random_layer):
    # The step API (cs231n's step_forward / step_backward): one layer, the caches in the caller's
    # hands. Run step by step from (h0[, c0]) and back with the direct gradients of every h_t
    # (and a gradient at c_T), the states, dx, the initial states' gradients and the weights'
    # gradients summed over the steps must be the sequence layer's.
    layer, x, h0, rng = random_layer(cell, SHAPE, seed=5)
    dh = rng.normal(size=SHAPE[:2] + SHAPE[3:])
    more = {"c0": rng.normal(size=h0.shape)} if cell == "lstm" else {}
    ends = {"dc_T": rng.normal(size=h0.shape)} if cell == "lstm" else {}
    h_T, hs = layer.forward(x, h0, **more)
    final = layer.final_state
    whole = layer.backward(dh, **ends)
    state, caches = (h0, *more.values()), []
    for t in range(SHAPE[1]):
        state, cache = layer.step(x[:, t], state)
        caches.append(cache)
        np.testing.assert_allclose(state[0], hs[:, t], rtol=1e-12, atol=1e-14)
    for got, expected in zip(state, final):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    d_state = (np.zeros_like(h0), *ends.values())
    sums, dx = {}, np.zeros_like(x)
    for t in reversed(range(SHAPE[1])):
        d_state = (d_state[0] + dh[:, t],) + d_state[1:]
        dx[:, t], d_state, grads = layer.step_backward(d_state, caches[t])
        assert len(d_state) == len(layer.state_names)
        assert sorted(grads) == sorted("d" + name for name in layer.parameters())
        for name, g in grads.items():
            sums[name] = sums.get(name, 0) + g
    for name in layer.parameters():
        np.testing.assert_allclose(sums["d" + name], whole["d" + name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    np.testing.assert_allclose(dx, whole["dx"], rtol=1e-10, atol=1e-12)
    for name, d in zip(layer.state_names, d_state):
        np.testing.assert_allclose(d, whole[f"d{name}0"], rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_a_step_keeps_nothing_on_the_layer(cell, random_layer):
    # One layer serves many steps: a step between a forward and its backward changes nothing.
    layer, x, h0, rng = random_layer(cell, SHAPE, seed=6)
    dh = rng.normal(size=SHAPE[:2] + SHAPE[3:])
    layer.forward(x, h0)
    expected = layer.backward(dh)
    layer.forward(x, h0)
    final = layer.final_state
    layer.step(rng.normal(size=(2, SHAPE[2])),
               tuple(rng.normal(size=(2, SHAPE[3])) for _ in layer.state_names))
    assert all(a is b for a, b in zip(layer.final_state, final))
    for name, g in layer.backward(dh).items():
        np.testing.assert_array_equal(g, expected[name], err_msg=name)


def test_a_step_names_what_it_expected_when_given_a_wrong_state(random_layer):
    layer, x, h0, rng = random_layer("lstm", SHAPE, seed=7)
    with pytest.raises(ValueError, match="c0"):
        layer.step(x[:, 0], (h0, np.zeros((SHAPE[0], SHAPE[3] + 1))))
