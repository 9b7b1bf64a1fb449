"""Chapter 2 (in progress): LSTM_BPTT, GRU_BPTT and their classifiers."""
import warnings

import numpy as np
import pytest

import gated_rnn_scratch as gs
import lesson_support as support
import rnn_scratch as rs

# (batch_size, n_sequences, n_features, n_nodes), including sizes of 1
SHAPES = [(3, 5, 4, 6), (1, 4, 3, 2), (2, 1, 3, 4), (2, 6, 2, 1), (1, 1, 1, 1)]


def case(random_layer, cell, shape, seed, many_to_many, padded):
    """random_layer's layer, x and h0, then c0 (LSTM), dh and lengths."""
    batch_size, n_sequences, n_features, n_nodes = shape
    layer, x, h0, rng = random_layer(cell, shape, seed)
    states = {"c0": rng.normal(0, 0.5, (batch_size, n_nodes))} if cell == "lstm" else {}
    dh = rng.normal(size=(batch_size, n_sequences, n_nodes) if many_to_many else (batch_size, n_nodes))
    lengths = rng.integers(1, n_sequences + 1, batch_size) if padded else None
    if padded:
        lengths[0] = n_sequences
        lengths[-1] = 1
    return layer, x, h0, states, dh, lengths


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("many_to_many", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_backward_matches_finite_differences(cell, shape, many_to_many, padded, random_layer):
    layer, x, h0, states, dh, lengths = case(random_layer, cell, shape, sum(shape), many_to_many, padded)
    errors = rs.check_rnn_gradients(layer, x, h0, dh, lengths=lengths, **states)
    expected = {"lstm": {"dw_x", "dw_h", "db", "dx", "dh0", "dc0"},
                "gru": {"dw_x", "dw_h", "db_x", "db_h", "dx", "dh0"}}[cell]
    assert set(errors) == expected
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_saturated_gates_give_their_limits_without_a_warning(cell, dtype, random_layer):
    """The fast layers take every sigmoid as 1 / (1 + exp(-a)): where exp overflows the
    gate must read exactly 0 (no NaN, no warning), and states match the plain loops."""
    layer, x, h0, rng = random_layer(cell, (3, 6, 4, 5), 7, dtype)
    x = (x * 300).astype(dtype)          # pre-activations of several hundred: exp overflows
    states = {"c0": h0.copy()} if cell == "lstm" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, hs = layer.forward(x, h0, **states)
    assert np.isfinite(hs).all()
    if cell == "lstm":
        gates = layer.gates
        assert all(((gates[k] == 0) | (gates[k] == 1)).any() for k in "ifo")   # saturated
        assert all(gates[k].min() >= 0 and gates[k].max() <= 1 for k in "ifo")
        assert gates["g"].min() >= -1 and gates["g"].max() <= 1
        plain = gs.lstm_forward_loop(x, layer.w_x, layer.w_h, layer.b, h0, states["c0"])[1]
    else:
        plain = gs.gru_forward_loop(x, layer.w_x, layer.w_h, layer.b_x, layer.b_h, h0)[1]
    assert np.max(np.abs(hs - plain)) < (1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_weights_changed_in_place_are_used_by_the_next_forward(cell, random_layer):
    """The layers keep internal copies of their weights with gate columns negated; an
    optimizer updates the public arrays in place, and the next forward must see it."""
    layer, x, h0, rng = random_layer(cell, (3, 6, 4, 5), 8)
    layer.forward(x, h0)
    for w in layer.parameters().values():
        w += rng.normal(0, 0.3, w.shape)                 # in place, as Adam does
    fresh = type(layer)(*(w.copy() for w in layer.parameters().values()))
    np.testing.assert_array_equal(layer.forward(x, h0)[1], fresh.forward(x, h0)[1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padded_batch_equals_each_sequence_alone(cell, random_layer):
    layer, x, h0, states, dh, lengths = case(random_layer, cell, (4, 6, 3, 5), 3, True, True)
    h_T, hs = layer.forward(x, h0, lengths=lengths, **states)
    grads = layer.backward(dh)
    for i, n_steps in enumerate(lengths):
        alone_states = {k: v[i:i + 1] for k, v in states.items()}
        alone_T, alone_hs = layer.forward(x[i:i + 1, :n_steps], h0[i:i + 1], **alone_states)
        alone = layer.backward(dh[i:i + 1, :n_steps])
        np.testing.assert_allclose(h_T[i], alone_T[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(hs[i, :n_steps], alone_hs[0], rtol=1e-12, atol=1e-14)
        assert np.all(hs[i, n_steps:] == 0) and np.all(grads["dx"][i, n_steps:] == 0)
        np.testing.assert_allclose(grads["dx"][i, :n_steps], alone["dx"][0], rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(grads["dh0"][i], alone["dh0"][0], rtol=1e-11, atol=1e-13)


def test_lstm_and_gru_match_pytorch(random_layer):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional cross-check")
    import torch_twins
    for cell in ("lstm", "gru"):
        for shape, many_to_many, with_state in [((3, 5, 4, 6), False, True), ((2, 4, 3, 2), True, False),
                                                 ((1, 1, 1, 1), True, True)]:
            layer, x, h0, states, dh, _ = case(random_layer, cell, shape, sum(shape) + 5, many_to_many, False)
            if not with_state:
                h0, states = np.zeros_like(h0), {k: np.zeros_like(v) for k, v in states.items()}
            h_T, hs = layer.forward(x, h0, **states)
            grads = layer.backward(dh)
            module, _ = torch_twins.torch_layer(torch, layer)   # the mapping the README gives
            xt = torch.tensor(x, requires_grad=True)
            h0t = torch.tensor(h0[None], requires_grad=True)
            if cell == "lstm":
                c0t = torch.tensor(states["c0"][None], requires_grad=True)
                out, (h_n, _) = module(xt, (h0t, c0t))
            else:
                out, h_n = module(xt, h0t)
            np.testing.assert_allclose(hs, out.detach().numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(h_T, h_n[0].detach().numpy(), rtol=1e-10, atol=1e-12)
            loss = (out * torch.tensor(dh)).sum() if many_to_many else (h_n[0] * torch.tensor(dh)).sum()
            loss.backward()
            expected = {"dw_x": module.weight_ih_l0.grad.T, "dw_h": module.weight_hh_l0.grad.T,
                        "dx": xt.grad, "dh0": h0t.grad[0]}
            if cell == "lstm":
                expected.update(db=module.bias_ih_l0.grad, dc0=c0t.grad[0])
            else:
                expected.update(db_x=module.bias_ih_l0.grad, db_h=module.bias_hh_l0.grad)
            for name, value in expected.items():
                np.testing.assert_allclose(grads[name], value.numpy(), rtol=1e-10, atol=1e-12,
                                           err_msg=f"{cell} {shape} {name}")


@pytest.mark.parametrize("make, fragment", [
    (lambda: gs.LSTM_BPTT(np.zeros((3, 8)), np.zeros((2, 6)), np.zeros(8)), r"w_h must have shape \(n_nodes, 4·n_nodes\)"),
    (lambda: gs.LSTM_BPTT(np.zeros((3, 6)), np.zeros((2, 8)), np.zeros(8)), r"w_x must have shape \(n_features, 4·n_nodes\) = \(n_features, 8\)"),
    (lambda: gs.LSTM_BPTT(np.zeros((3, 8)), np.zeros((2, 8)), np.zeros(6)), r"b must have shape \(4·n_nodes,\) = \(8,\)"),
    (lambda: gs.GRU_BPTT(np.zeros((3, 6)), np.zeros((2, 8)), np.zeros(6), np.zeros(6)), r"w_h must have shape \(n_nodes, 3·n_nodes\)"),
    (lambda: gs.GRU_BPTT(np.zeros((3, 5)), np.zeros((2, 6)), np.zeros(6), np.zeros(6)), r"w_x must have shape \(n_features, 3·n_nodes\)"),
    (lambda: gs.GRU_BPTT(np.zeros((3, 6)), np.zeros((2, 6)), np.zeros(6), np.zeros(5)), r"b_h must have shape \(3·n_nodes,\) = \(6,\)"),
])
def test_mismatched_weights_raise_value_errors_naming_the_gate_blocks(make, fragment):
    with pytest.raises(ValueError, match=fragment):
        make()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bad_forward_input_is_the_same_clear_error_as_in_chapter_1(cell, random_layer):
    layer, x, h0, states, dh, _ = case(random_layer, cell, (2, 4, 3, 5), 1, False, False)
    with pytest.raises(ValueError, match=r"x must be 3-D \(batch_size, n_sequences, n_features\) with n_features = 3"):
        layer.forward(x[:, :, :2])
    with pytest.raises(ValueError, match=r"h0 must have shape \(batch_size, n_nodes\) = \(2, 5\)"):
        layer.forward(x, h0[:1])
    with pytest.raises(ValueError, match=r"lengths must lie in 1..n_sequences = 1..4"):
        layer.forward(x, lengths=[0, 4])
    if cell == "lstm":
        with pytest.raises(ValueError, match=r"c0 must have shape \(batch_size, n_nodes\) = \(2, 5\)"):
            layer.forward(x, c0=np.zeros((2, 4)))
    layer.forward(x)
    with pytest.raises(ValueError, match="dh must have shape"):
        layer.backward(dh[:, :2])


@pytest.mark.parametrize("model_class", [gs.ScratchLSTMClassifier, gs.ScratchGRUClassifier])
def test_gated_classifier_gradients_match_finite_differences(model_class):
    X, y = rs.make_ragged_temporal_order_data(12, 6, 9, rng=2)
    model = model_class(n_nodes=3, epochs=1, batch_size=6, learn_h0=True, random_state=0).fit(X, y)
    X_pad, lengths = rs.pad_sequences(X)
    y_idx = np.searchsorted(model.classes_, y)
    _, grads = model.loss_and_gradients(X_pad, y_idx, lengths)
    params = model.parameters()
    assert set(grads) == set(params)
    errors = rs.check_gradients(lambda: model.loss_and_gradients(X_pad, y_idx, lengths)[0], grads, params)
    assert max(errors.values()) < 1e-7, errors


def test_lstm_classifier_starts_with_forget_bias_one_and_orthogonal_gate_blocks():
    X, y = rs.make_temporal_order_data(8, 6, rng=0)
    model = gs.ScratchLSTMClassifier(n_nodes=4, epochs=1, random_state=0).fit(X, y)
    start = model.initial_parameters_
    b = start["b"]
    assert np.all(b[4:8] == 1.0) and np.all(b[:4] == 0) and np.all(b[8:] == 0)
    for k in range(4):
        block = start["w_h"][:, 4 * k:4 * (k + 1)]
        np.testing.assert_allclose(block.T @ block, np.eye(4), atol=1e-12)


@pytest.mark.parametrize("model_class", [gs.ScratchLSTMClassifier, gs.ScratchGRUClassifier])
def test_gated_classifier_has_chapter_1_api_and_errors(model_class):
    X, y = rs.make_temporal_order_data(20, 8, rng=1)
    model = model_class(n_nodes=4, epochs=2, random_state=0).fit(X, y, X, y)
    assert type(model.rnn) is gs.CELLS[model.cell].cls
    assert type(model.rnn) is {"lstm": gs.FastLSTM, "gru": gs.FastGRU}[model.cell]
    assert model.predict_proba(X).shape == (20, len(model.classes_))
    assert len(model.loss_history) == len(model.val_accuracy_history) == 2
    with pytest.raises(support.NotFittedError):
        model_class().predict(X)
    with pytest.raises(ValueError, match="n_features = 7"):
        model.predict(X[:, :, :7])


def test_a_gated_cell_learns_a_length_where_the_vanilla_rnn_does_not():
    # 60 steps: every vanilla seed of chapter 1's 4.2 stays near chance there; the LSTM (forget
    # bias 1) learns it within a few epochs. Same data, same budget, same seed.
    X, y = rs.make_temporal_order_data(1000, 60, rng=1000)
    X_val, y_val = rs.make_temporal_order_data(300, 60, rng=2000)
    settings = dict(epochs=6, dtype=np.float32, random_state=0, stop_at_accuracy=0.95)
    lstm = gs.ScratchLSTMClassifier(**settings).fit(X, y, X_val, y_val)
    vanilla = gs.ScratchRNNClassifier(**settings).fit(X, y, X_val, y_val)
    assert lstm.val_accuracy_history[-1] >= 0.95, lstm.val_accuracy_history
    assert max(vanilla.val_accuracy_history) <= 0.35, vanilla.val_accuracy_history


@pytest.mark.parametrize("model_class", [gs.ScratchRNNClassifier, gs.ScratchGRUClassifier])
def test_stop_at_accuracy_stops_after_the_epoch_that_reaches_it(model_class):
    X, y = rs.make_temporal_order_data(400, 10, rng=3)
    model = model_class(n_nodes=8, epochs=30, random_state=0, stop_at_accuracy=0.9).fit(X, y, X, y)
    assert model.n_epochs_ == len(model.loss_history) < 30
    assert model.val_accuracy_history[-1] >= 0.9 and all(a < 0.9 for a in model.val_accuracy_history[:-1])
    # The same model without stopping trains the same epochs first (stopping changes nothing else).
    full = model_class(n_nodes=8, epochs=model.n_epochs_ + 2, random_state=0).fit(X, y, X, y)
    assert full.val_accuracy_history[:model.n_epochs_] == model.val_accuracy_history


def test_stop_at_accuracy_without_validation_data_is_an_error_not_ignored():
    X, y = rs.make_temporal_order_data(40, 8, rng=3)
    with pytest.raises(ValueError, match="stop_at_accuracy needs validation data"):
        gs.ScratchLSTMClassifier(n_nodes=4, epochs=2, stop_at_accuracy=0.9).fit(X, y)
    with pytest.raises(ValueError, match="stop_at_accuracy must be a positive number"):
        gs.ScratchRNNClassifier(stop_at_accuracy=-1).fit(X, y, X, y)


def test_chapter_1_classifier_has_no_chapter_2_parameter():
    with pytest.raises(TypeError):
        rs.ScratchSimpleRNNClassifier(stop_at_accuracy=0.9)


def test_importing_chapter_2_has_no_side_effects(tmp_path):
    import subprocess
    import sys
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", "import sys, gated_rnn_scratch; print('matplotlib' in sys.modules)"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYTHONPATH=root, PYTHONDONTWRITEBYTECODE="1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False\n" and result.stderr == "" and os.listdir(tmp_path) == []


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("fast, plain", [("FastLSTM", "LSTM_BPTT"), ("FastGRU", "GRU_BPTT")])
def test_the_fast_layers_compute_what_the_plain_vectorised_layers_compute(fast, plain, padded,
                                                                          random_layer):
    # Section 3b's one-exp layers against section 1-2's layers, which read like the equations:
    # the same states, gates and gradients to rounding, with the LSTM's c0 and dc_T.
    cell = "lstm" if "LSTM" in fast else "gru"
    layer, x, h0, states, dh, lengths = case(random_layer, cell, (4, 6, 3, 5), 11, True, padded)
    ends = {"dc_T": np.ones_like(h0)} if cell == "lstm" else {}
    weights = layer.parameters().values()
    fast_layer, plain_layer = getattr(gs, fast)(*weights), getattr(gs, plain)(*weights)
    assert type(fast_layer) is not type(plain_layer) and isinstance(fast_layer, type(plain_layer))
    results = []
    for each in (fast_layer, plain_layer):
        h_T, hs = each.forward(x, h0, lengths=lengths, **states)
        results.append((h_T, hs, each.final_state, each.backward(dh, **ends),
                        getattr(each, "gates", {})))
    (f_T, f_hs, f_final, f_grads, f_gates), (p_T, p_hs, p_final, p_grads, p_gates) = results
    np.testing.assert_allclose(f_hs, p_hs, rtol=1e-12, atol=1e-13)
    for a, b in zip(f_final, p_final):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    for name in p_grads:
        np.testing.assert_allclose(f_grads[name], p_grads[name], rtol=1e-11, atol=1e-12, err_msg=name)
    for name in p_gates:
        np.testing.assert_allclose(f_gates[name], p_gates[name], rtol=1e-12, atol=1e-13, err_msg=name)
