"""One state interface for every cell: the state contract, the step API, the LSTM's gates, cs and
dc_T, the registry and make_layer; float32 against float64; and the measurements chapter 2
builds on them. The parametrised tests run on every registered cell (conftest.TEST_CELLS: the
course's and a toy cell whose state is not its output)."""
import numpy as np
import pytest

import gated_rnn_scratch as gs
import rnn_scratch as rs
from conftest import TEST_CELLS

CELLS = list(TEST_CELLS)
SHAPE = (3, 7, 4, 5)   # batch_size, n_sequences, n_features, n_nodes


def random_states(layer, rng, batch_size, names):
    """{name: an array in that state's shape} for each of names."""
    return {name: rng.normal(0, 0.5, layer.state_shape(name, batch_size)) for name in names}


def end_gradient_names(layer):
    """The states whose end gradients backward takes as d<name>_T: all but the first
    where the first is the output (its gradient is then dh's)."""
    return layer.state_names[1:] if layer.state_is_output else layer.state_names


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_keeps_the_state_contract(cell, random_layer):
    # h_T is hs[:, -1]; final_state holds one array per state_names, each in the shape the layer
    # gives it; final_state[0] is h_T only where the cell says its state is its output.
    layer, x, h0, rng = random_layer(cell, SHAPE, seed=1)
    more = {f"{name}0": s for name, s in
            random_states(layer, rng, SHAPE[0], layer.state_names[1:]).items()}
    h_T, hs = layer.forward(x, h0, **more)
    assert TEST_CELLS[cell].state_is_output == layer.state_is_output
    assert hs.shape == SHAPE[:2] + SHAPE[3:] and layer.n_nodes == SHAPE[3]
    np.testing.assert_array_equal(hs[:, -1], h_T)
    assert len(layer.final_state) == len(layer.state_names)
    for name, state in zip(layer.state_names, layer.final_state):
        assert state.shape == layer.state_shape(name, SHAPE[0]), name
    if layer.state_is_output:
        np.testing.assert_array_equal(layer.final_state[0], h_T)
    else:
        assert layer.final_state[0].shape != h_T.shape or not np.array_equal(
            layer.final_state[0], h_T)


def test_the_state_contract_test_fails_for_a_cell_whose_state_is_not_its_output(random_layer):
    layer, x, h0, _ = random_layer("toy", SHAPE, seed=1)
    h_T, _ = layer.forward(x, h0)
    assert not layer.state_is_output and layer.final_state[0].shape == SHAPE[:1] + SHAPE[3:] + (2,)
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(layer.final_state[0], h_T)


def test_lstm_final_cell_is_the_plain_loops_last_cell(random_layer):
    layer, x, h0, rng = random_layer("lstm", SHAPE, seed=1)
    layer.forward(x, h0)
    assert layer.state_names == ("h", "c")
    _, _, cs = gs.lstm_forward_loop(x, *layer.parameters().values(), h0)
    np.testing.assert_allclose(layer.final_state[1], cs[:, -1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", CELLS)
def test_a_sequence_run_in_two_pieces_with_the_state_carried_forward_and_back(cell, random_layer):
    # What a language model's chunks do: run a layer piece by piece, carrying final_state forward,
    # and carry the gradients of the initial states (dh0 into dh; dc0 as dc_T for the LSTM; a
    # state that is not the output, as its d<name>_T) backward.
    layer, x, h0, rng = random_layer(cell, SHAPE, seed=2)
    dh = rng.normal(size=SHAPE[:2] + SHAPE[3:])
    layer.forward(x, h0)
    whole = layer.backward(dh)
    cut = 3
    _, hs_second = layer.forward(x[:, cut:], *[s.copy() for s in state_after(layer, x, h0, cut)])
    second = layer.backward(dh[:, cut:])
    _, hs_first = layer.forward(x[:, :cut], h0)
    dh_first = dh[:, :cut].copy()
    if layer.state_is_output:
        dh_first[:, -1] += second["d" + layer.state_names[0] + "0"]   # reaches h at the cut
    first = layer.backward(dh_first, **{f"d{name}_T": second[f"d{name}0"]
                                        for name in end_gradient_names(layer)})
    for name in layer.parameters():
        np.testing.assert_allclose(first["d" + name] + second["d" + name], whole["d" + name],
                                   rtol=1e-10, atol=1e-12, err_msg=name)
    first_state = "d" + layer.state_names[0] + "0"
    np.testing.assert_allclose(first[first_state], whole[first_state], rtol=1e-10, atol=1e-12)
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


@pytest.mark.parametrize("cell, layer_class", [("rnn", rs.MaskedRNN), ("lstm", gs.FastLSTM),
                                               ("gru", gs.FastGRU)])
def test_make_layer_builds_the_cell_in_the_classifiers_draw_order(cell, layer_class):
    layer = rs.make_layer(cell, 6, 4, np.random.default_rng(0), np.float32, cells=gs.CELLS)
    assert type(layer) is layer_class and layer.dtype == np.float32
    assert (layer.n_features, layer.n_nodes) == (6, 4)
    X, y = rs.make_temporal_order_data(8, 6, rng=0)
    model = gs.ScratchRNNClassifier(n_nodes=4, epochs=1, random_state=0, cell=cell).fit(
        X[:, :, :8], y)
    preset = {"rnn": rs.ScratchSimpleRNNClassifier, "lstm": gs.ScratchLSTMClassifier,
              "gru": gs.ScratchGRUClassifier}[cell](n_nodes=4, epochs=1, random_state=0)
    same = rs.make_layer(cell, 8, 4, np.random.default_rng(0), cells=gs.CELLS)
    for name, p in same.parameters().items():
        np.testing.assert_array_equal(p, model.initial_parameters_[name], err_msg=name)
        np.testing.assert_array_equal(p, preset.fit(X[:, :, :8], y).initial_parameters_[name])
    with pytest.raises(ValueError, match=r"cell must be one of \['rnn', 'lstm', 'gru'\]"):
        rs.make_layer("LSTM", 6, 4, np.random.default_rng(0), cells=gs.CELLS)
    with pytest.raises(ValueError, match=r"cell must be one of \['rnn'\]; got 'lstm'"):
        rs.make_layer("lstm", 6, 4, np.random.default_rng(0))   # chapter 1's registry


def test_lstm_starts_with_forget_bias_and_zero_forget_bias_is_honoured():
    b = rs.make_layer("lstm", 3, 4, np.random.default_rng(0), cells=gs.CELLS).b
    assert np.all(b[4:8] == 1) and np.all(np.delete(b, range(4, 8)) == 0)
    assert np.all(rs.make_layer("lstm", 3, 4, np.random.default_rng(0), cells=gs.CELLS,
                                forget_bias=0.0).b == 0)
    model = gs.ScratchLSTMClassifier(n_nodes=4, epochs=1, random_state=0,
                                     cell_options={"forget_bias": 0.0})
    X, y = rs.make_temporal_order_data(8, 6, rng=0)
    assert np.all(model.fit(X, y).initial_parameters_["b"] == 0)


def test_chapter_registries_extend_and_never_change_an_earlier_one():
    import language_model_scratch as lm
    import seq2seq_scratch as s2s
    assert list(rs.CELLS) == ["rnn"] and list(gs.CELLS) == ["rnn", "lstm", "gru"]
    assert list(lm.CELLS) == ["rnn", "gru", "lstm"]       # the order of chapter 3's tables
    assert all(gs.CELLS[key] is cell for key, cell in rs.CELLS.items())
    assert list(s2s.CELLS) == [k for k, c in gs.CELLS.items() if c.state_is_output]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradient_over_time_is_the_plain_loops_input_gradient(cell):
    X, y = rs.make_temporal_order_data(20, 9, rng=4)
    model = gs.ScratchRNNClassifier(n_nodes=5, epochs=1, random_state=0, cell=cell).fit(X, y)
    curve = gs.gradient_over_time(model, X, y)
    params = [p.astype(np.float64) for p in model.rnn.parameters().values()]
    w_y = model.w_y.astype(np.float64)
    plain = {"lstm": (gs.lstm_forward_loop, gs.lstm_backward_loop),
             "gru": (gs.gru_forward_loop, gs.gru_backward_loop),
             "rnn": (rs.rnn_forward_loop, rs.rnn_backward_loop)}[cell]
    h_T, *states = plain[0](X, *params)
    _, dz = rs.cross_entropy_and_gradient(h_T @ w_y + model.b_y, np.searchsorted(model.classes_, y))
    if cell == "lstm":
        dx = plain[1](X, None, None, *states, dz @ w_y.T, *params)["dx"]
    elif cell == "gru":
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
    more = random_states(layer, rng, SHAPE[0], layer.state_names[1:])
    ends = random_states(layer, rng, SHAPE[0], end_gradient_names(layer))
    h_T, hs = layer.forward(x, h0, **{f"{name}0": s for name, s in more.items()})
    final = layer.final_state
    whole = layer.backward(dh, **{f"d{name}_T": d for name, d in ends.items()})
    state, caches = (h0, *more.values()), []
    for t in range(SHAPE[1]):
        state, cache = layer.step(x[:, t], state)
        caches.append(cache)
        np.testing.assert_allclose(cache.h[-1], hs[:, t], rtol=1e-12, atol=1e-14)
    for got, expected in zip(state, final):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    d_state = tuple(ends[name] if name in ends else np.zeros(layer.state_shape(name, SHAPE[0]))
                    for name in layer.state_names)
    sums, dx = {}, np.zeros_like(x)
    for t in reversed(range(SHAPE[1])):
        dx[:, t], d_state, grads = layer.step_backward(d_state, caches[t], dh[:, t])
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
               tuple(random_states(layer, rng, 2, layer.state_names).values()))
    assert all(a is b for a, b in zip(layer.final_state, final))
    for name, g in layer.backward(dh).items():
        np.testing.assert_array_equal(g, expected[name], err_msg=name)


def test_a_step_names_what_it_expected_when_given_a_wrong_state(random_layer):
    layer, x, h0, rng = random_layer("lstm", SHAPE, seed=7)
    with pytest.raises(ValueError, match="c0"):
        layer.step(x[:, 0], (h0, np.zeros((SHAPE[0], SHAPE[3] + 1))))


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_every_registered_cell_s_gradients_match_central_differences(cell, padded, random_layer):
    layer, x, h0, rng = random_layer(cell, SHAPE, seed=9)
    more = {f"{name}0": s for name, s in
            random_states(layer, rng, SHAPE[0], layer.state_names[1:]).items()}
    dh = rng.normal(size=SHAPE[:2] + SHAPE[3:])
    lengths = np.array([7, 1, 4]) if padded else None
    errors = rs.check_rnn_gradients(layer, x, h0, dh, lengths=lengths, **more)
    assert set(errors) == ({"d" + name for name in layer.parameters()} | {"dx"}
                           | {f"d{name}0" for name in layer.state_names})
    assert max(errors.values()) < 1e-7, errors


def test_a_new_cell_is_one_class_and_one_registry_entry():
    # The toy cell of toy_cell.py (no w_h; a state of shape (batch_size, n_nodes, 2) that is
    # not its output), registered in a mapping of its own, is trained by chapter 2's classifier
    # and chapter 3's language model with nothing else changed; chapter 4 refuses it, since its
    # decoder's state must be its output.
    import language_model_scratch as lm
    import seq2seq_scratch as s2s
    cells = {**gs.CELLS, "toy": TEST_CELLS["toy"]}
    X, y = rs.make_temporal_order_data(300, 8, rng=0)
    model = gs.ScratchRNNClassifier(n_nodes=8, epochs=4, random_state=0, cell="toy", cells=cells,
                                    learning_rate=0.02).fit(X, y)
    assert type(model.rnn) is TEST_CELLS["toy"].cls
    assert model.loss_history[-1] < 0.9 * model.loss_history[0], model.loss_history
    text = "the cat sat on the mat; the dog sat on the log. " * 4
    language_model = lm.ScratchRNNLanguageModel(n_nodes=8, cell="toy", batch_size=3, bptt_steps=7,
                                                epochs=3, random_state=0, cells=cells).fit(text)
    assert type(language_model.rnn) is TEST_CELLS["toy"].cls
    assert language_model.loss_history[-1] < language_model.loss_history[0]
    language_model.fit(["the cat", "sat on", "the mat."])       # padded lists too
    with pytest.raises(ValueError, match="whose first state is its output"):
        s2s.ScratchSeq2Seq(cell="toy", cells=cells, epochs=1).fit(["ab"], ["x"])
