"""Chapter 5: the linear recurrence, its scans and their backward; minGRU and minLSTM."""
import numpy as np
import pytest

import linear_rnn_scratch as lr
import torch_twins
from rnn_scratch import check_gradients, check_rnn_gradients, steps_against_sequence

LAYERS = {"mingru": (lr.MinGRU, lr.mingru_step), "minlstm": (lr.MinLSTM, lr.minlstm_step)}


def plain_scan(decay, inputs, h0):
    """h_t = decay_t h_{t-1} + inputs_t, written here (batch-first, any state shape)."""
    h, hs = h0, []
    for t in range(inputs.shape[1]):
        h = decay[:, t] * h + inputs[:, t]
        hs.append(h)
    return np.stack(hs, axis=1)


# -- the scans ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n_sequences", [1, 2, 3, 7, 8, 9, 37, 4096])
@pytest.mark.parametrize("state_shape", [(5,), (3, 4)])
def test_scans_equal_the_recurrence(n_sequences, state_shape):
    """linear_scan (doubling), linear_scan_loop and run_scan's three methods give the states of
    the recurrence to 1e-12, for lengths that are and are not powers of 2, with a state of
    shape (n_nodes,) and (n_nodes, n_state)."""
    decay, inputs, h0 = lr.random_scan_case(2, n_sequences, state_shape, seed=n_sequences)
    decay[1] = 1 - 0.01 * decay[1]      # the second sequence's states carry far
    expected = plain_scan(decay, inputs, h0)
    np.testing.assert_allclose(lr.linear_scan_loop(decay, inputs, h0), expected, atol=1e-12)
    np.testing.assert_allclose(lr.linear_scan(decay, inputs, h0), expected, atol=1e-12)
    np.testing.assert_allclose(lr.linear_scan(decay, inputs), plain_scan(decay, inputs, 0 * h0),
                               atol=1e-12)
    tm = (1, 0) + tuple(range(2, decay.ndim))
    for method in ("loop", "doubling", "chunked"):
        got = lr.run_scan(decay.transpose(tm), inputs.transpose(tm), h0, method=method)
        np.testing.assert_allclose(got.transpose(tm), expected, atol=1e-12)


@pytest.mark.parametrize("method", ["loop", "doubling", "chunked"])
def test_run_scan_reverse_is_the_gradients_recurrence_and_may_write_over_its_inputs(method):
    decay, dhs, _ = lr.random_scan_case(3, 13, (4,), seed=1)
    g, g_next = np.empty_like(dhs), 0
    for t in reversed(range(13)):                 # g_t = dh_t + decay_{t+1} g_{t+1}
        g_next = dhs[:, t] + (decay[:, t + 1] if t < 12 else 0) * g_next
        g[:, t] = g_next
    decay_tm, dhs_tm = decay.transpose(1, 0, 2).copy(), dhs.transpose(1, 0, 2).copy()
    got = lr.run_scan(decay_tm, dhs_tm, reverse=True, method=method, out=dhs_tm)
    assert got is dhs_tm
    np.testing.assert_allclose(got.transpose(1, 0, 2), g, atol=1e-12)


def test_run_scan_rule_picks_by_the_numbers_in_a_step():
    picked = []
    with pytest.MonkeyPatch.context() as patch:
        for name in ("_scan_loop", "_scan_doubling", "_scan_chunked"):
            patch.setattr(lr, name, lambda *a, name=name: picked.append(name[6:]))
        for per_step in (8, 31, 32, 64, 255, 256, 4096):
            ones = np.ones((1024, 1, per_step))
            lr.run_scan(ones, ones)
    assert picked == ["doubling"] * 2 + ["chunked"] * 3 + ["loop"] * 2
    assert (lr.CHUNKED_FROM, lr.LOOP_FROM) == (32, 256)


@pytest.mark.parametrize("n_sequences", [2, 5, 64, 65, 130, 200])
def test_chunked_scan_handles_lengths_around_its_chunks(n_sequences):
    """Fewer steps than a chunk, exactly one, whole chunks, and chunks with steps left over:
    forward from h0, and the reverse scan written over its own inputs."""
    decay, inputs, h0 = lr.random_scan_case(3, n_sequences, (4,), seed=n_sequences)
    decay = 1 - 0.02 * decay            # near 1: a state carries across many chunks
    expected = plain_scan(decay, inputs, h0)
    decay_tm, inputs_tm = decay.transpose(1, 0, 2).copy(), inputs.transpose(1, 0, 2).copy()
    got = lr.run_scan(decay_tm, inputs_tm, h0, method="chunked")
    np.testing.assert_allclose(got.transpose(1, 0, 2), expected, atol=1e-12)
    looped = lr.run_scan(decay_tm, inputs_tm, reverse=True, method="loop")
    got = lr.run_scan(decay_tm, inputs_tm, reverse=True, method="chunked", out=inputs_tm)
    np.testing.assert_allclose(got, looped, atol=1e-12)


@pytest.mark.parametrize("backward", [lr.linear_scan_backward, lr.linear_scan_backward_loop])
@pytest.mark.parametrize("with_h0", [True, False])
def test_scan_backward_matches_central_differences(backward, with_h0):
    decay, inputs, h0 = lr.random_scan_case(3, 10, (2, 3), seed=4)
    if not with_h0:
        h0 = np.zeros_like(h0)
    dhs = np.random.default_rng(5).normal(size=inputs.shape)
    grads = backward(decay, plain_scan(decay, inputs, h0), dhs, h0 if with_h0 else None)

    def loss():
        return float(np.sum(plain_scan(decay, inputs, h0) * dhs))

    errors = check_gradients(loss, grads, {"d_decay": decay, "d_inputs": inputs, "dh0": h0})
    assert max(errors.values()) < 1e-7, errors


def test_the_closed_form_fails_in_float32_within_a_few_hundred_steps_and_later_in_float64():
    failures = lr.first_failure()
    assert 100 < failures["float32"] <= 300
    assert failures["float64"] > 900
    decay, inputs, h0 = lr.random_scan_case(2, 20, (3,), seed=2)
    decay = 0.5 + decay / 2                      # short and well away from underflow: exact
    np.testing.assert_allclose(lr.closed_form_scan(decay, inputs, h0),
                               plain_scan(decay, inputs, h0), atol=1e-9)


@pytest.mark.parametrize("bad, message", [
    (dict(decay=np.ones((2, 3, 4)), inputs=np.ones((2, 3, 5))), "one shape"),
    (dict(decay=np.ones((2, 3, 4)), inputs=np.ones((2, 3, 4)), h0=np.ones((2, 5))), "h0 must"),
    (dict(decay=np.ones(3), inputs=np.ones(3)), "one shape"),
    (dict(decay=np.array([["a"]]), inputs=np.ones((1, 1))), "real numbers"),
])
@pytest.mark.parametrize("scan", [lr.linear_scan_loop, lr.linear_scan])
def test_scans_refuse_bad_input_with_a_clear_message(scan, bad, message):
    with pytest.raises(ValueError, match=message):
        scan(**bad)


def test_run_scan_refuses_an_unknown_method_and_h0_in_reverse():
    ones = np.ones((3, 2, 4))
    with pytest.raises(ValueError, match="method must be"):
        lr.run_scan(ones, ones, method="parallel")
    with pytest.raises(ValueError, match="h0 must be None"):
        lr.run_scan(ones, ones, np.ones((2, 4)), reverse=True)


# -- minGRU and minLSTM ------------------------------------------------------------------------
def random_case(cell, shape=(5, 8, 3, 4), seed=0, dtype=np.float64):
    batch_size, n_sequences, n_features, n_nodes = shape
    rng = np.random.default_rng(seed)
    layer = lr.random_layer(LAYERS[cell][0], n_features, n_nodes, rng, dtype)
    x = rng.normal(size=(batch_size, n_sequences, n_features)).astype(dtype)
    h0 = rng.normal(size=(batch_size, n_nodes)).astype(dtype)
    return layer, x, h0, rng


def independent_step(cell, x_t, h, w_x, b):
    """The papers' equations written out here, with z (minGRU) the share kept."""
    a = x_t @ w_x + b
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    if cell == "mingru":
        a_z, n = np.split(a, 2, axis=1)
        return sig(a_z) * h + (1 - sig(a_z)) * n
    a_i, a_f, n = np.split(a, 3, axis=1)
    f, i = sig(a_f), sig(a_i)
    return f / (f + i) * h + i / (f + i) * n


@pytest.mark.parametrize("cell", LAYERS)
def test_layer_and_plain_steps_follow_the_papers_equations(cell):
    layer, x, h0, _ = random_case(cell)
    h_T, hs = layer.forward(x, h0)
    plain_T, plain_hs = lr.steps_forward_loop(LAYERS[cell][1], x, layer.w_x, layer.b, h0)
    h = h0
    for t in range(x.shape[1]):
        h = independent_step(cell, x[:, t], h, layer.w_x, layer.b)
        np.testing.assert_allclose(hs[:, t], h, atol=1e-12)
        np.testing.assert_allclose(plain_hs[:, t], h, atol=1e-12)
    np.testing.assert_allclose(h_T, h, atol=1e-12)
    np.testing.assert_allclose(plain_T, h, atol=1e-12)
    assert layer.final_state[0] is h_T or np.array_equal(layer.final_state[0], h_T)


@pytest.mark.parametrize("cell", LAYERS)
@pytest.mark.parametrize("many", [True, False])
@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("method", ["loop", "doubling", "chunked"])
def test_layer_gradients_match_central_differences(cell, many, padded, method):
    layer, x, h0, rng = random_case(cell, seed=3)
    layer.scan_method = method
    dh = rng.normal(size=(5, 8, 4) if many else (5, 4))
    options = {"lengths": np.array([8, 3, 1, 6, 8])} if padded else {}
    errors = check_rnn_gradients(layer, x, h0, dh, **options)
    assert set(errors) == {"dw_x", "db", "dx", "dh0"}
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("cell", LAYERS)
def test_padded_steps_read_zero_and_h_T_is_each_sequences_own_last_state(cell):
    layer, x, h0, _ = random_case(cell)
    lengths = np.array([8, 3, 1, 6, 2])
    h_T, hs = layer.forward(x, h0, lengths=lengths)
    for row, n in enumerate(lengths):
        _, alone = layer.forward(x[row:row + 1, :n], h0[row:row + 1])
        np.testing.assert_allclose(hs[row, :n], alone[0], atol=1e-12)
        np.testing.assert_array_equal(hs[row, n:], 0)
        np.testing.assert_allclose(h_T[row], alone[0, -1], atol=1e-12)


@pytest.mark.parametrize("cell", LAYERS)
def test_a_sequence_run_one_step_at_a_time_equals_the_parallel_form(cell):
    layer, x, h0, rng = random_case(cell, seed=6)
    states, gradients = steps_against_sequence(layer, x, rng.normal(size=(5, 8, 4)), (h0,))
    assert states < 1e-12 and gradients < 1e-12


@pytest.mark.parametrize("cell", LAYERS)
def test_float32_layers_compute_in_float32(cell):
    layer, x, h0, rng = random_case(cell, dtype=np.float32)
    h_T, hs = layer.forward(x, h0)
    grads = layer.backward(rng.normal(size=hs.shape).astype(np.float32))
    assert hs.dtype == h_T.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("cell", LAYERS)
def test_layers_refuse_weights_of_the_wrong_shape(cell):
    cls = LAYERS[cell][0]
    with pytest.raises(ValueError, match="w_x must be 2-D"):
        cls(np.ones((3, 7)), np.ones(7))
    with pytest.raises(ValueError, match="b must have shape"):
        cls(np.ones((3, 6 * cls.n_blocks)), np.ones(5))


def test_keep_bias_sets_the_block_that_decides_what_is_kept():
    rng = np.random.default_rng(0)
    gru = lr.make_layer("mingru", 3, 4, rng, keep_bias=2.0)
    np.testing.assert_array_equal(gru.b, [2.0] * 4 + [0.0] * 4)
    lstm = lr.make_layer("minlstm", 3, 4, rng, keep_bias=2.0)
    np.testing.assert_array_equal(lstm.b, [-2.0] * 4 + [2.0] * 4 + [0.0] * 4)
    layer = lr.make_layer("mingru", 3, 4, rng, keep_bias=np.log(99))
    layer.forward(np.zeros((1, 2, 3)))
    np.testing.assert_allclose(layer.decays, 0.99)          # sigma(ln 99) = 1 - 1/100


def test_chapter_2s_classifier_trains_mingru_with_the_chrono_keep_bias():
    """At 60 steps with chapter 2's settings: the keep bias ln(T - 1) learns the task in a few
    epochs; zero biases (the cells' default) stay far from it in as many."""
    rows = lr.temporal_order_runs("mingru", 60, seeds=(0,), keep_bias=np.log(59), max_epochs=3)
    assert rows[0]["test_accuracy"] >= 0.95, rows
    rows = lr.temporal_order_runs("mingru", 60, seeds=(0,), max_epochs=3)
    assert rows[0]["test_accuracy"] < 0.6, rows


def test_surviving_share_is_tiny_at_zero_bias_and_not_with_the_chrono_bias():
    assert lr.surviving_share("mingru", 100, 0.0) < -15
    assert lr.surviving_share("mingru", 100, np.log(99)) > -1


# -- PyTorch ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", LAYERS)
@pytest.mark.parametrize("padded", [False, True])
def test_min_layers_match_pytorch_autograd(cell, padded):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional cross-check")
    layer, x, h0, rng = random_case(cell, seed=9)
    dh = rng.normal(size=(5, 8, 4))
    lengths = np.array([8, 3, 1, 6, 8]) if padded else None
    h_T, hs = layer.forward(x, h0, lengths=lengths)
    ours = layer.backward(dh)
    theirs_hs, theirs = torch_twins.torch_min_pass(torch, layer, x, (h0,), dh, lengths)
    np.testing.assert_allclose(hs, theirs_hs, atol=1e-12)
    for name, value in ours.items():
        np.testing.assert_allclose(value, theirs[name], atol=1e-9, err_msg=name)


# -- the stack ----------------------------------------------------------------------------------
def random_stack(n_layers=3, seed=0, shape=(5, 8, 3, 4)):
    """A MinGRUStack with random weights, x, and one random initial state per layer."""
    batch_size, n_sequences, n_features, n_nodes = shape
    rng = np.random.default_rng(seed)
    stack = lr.CELLS["mingru_stack"].random(n_features, n_nodes, rng, n_layers=n_layers)
    x = rng.normal(size=(batch_size, n_sequences, n_features))
    states = tuple(rng.normal(size=(batch_size, n_nodes)) for _ in range(n_layers))
    return stack, x, states, rng


def initial_states(stack, states):
    """The keyword arguments h20, ..., hL0 for stack.forward."""
    return {f"{name}0": s for name, s in zip(stack.state_names[1:], states[1:])}


def test_stack_is_its_layers_with_tanh_between():
    stack, x, states, _ = random_stack()
    assert stack.state_names == ("h1", "h2", "h3") and not stack.state_is_output
    assert stack.parameter_names == ("w_x1", "b1", "w_x2", "b2", "w_x3", "b3")
    h_T, hs = stack.forward(x, states[0], **initial_states(stack, states))
    inputs = x
    for l, (h, final) in enumerate(zip(states, stack.final_state), start=1):
        w_x, b = getattr(stack, f"w_x{l}"), getattr(stack, f"b{l}")
        assert w_x is stack.layers[l - 1].w_x         # one array: an update reaches the layer
        outputs = []
        for t in range(x.shape[1]):
            h = independent_step("mingru", inputs[:, t], h, w_x, b)
            outputs.append(h)
        np.testing.assert_allclose(final, h, atol=1e-12)
        inputs = np.tanh(np.stack(outputs, axis=1))
    np.testing.assert_allclose(hs, np.stack(outputs, axis=1), atol=1e-12)
    np.testing.assert_allclose(h_T, outputs[-1], atol=1e-12)


def test_stack_padded_steps_read_zero_and_carry_every_layers_state():
    stack, x, states, _ = random_stack(n_layers=2)
    lengths = np.array([8, 3, 1, 6, 2])
    h_T, hs = stack.forward(x, states[0], h20=states[1], lengths=lengths)
    finals = [s.copy() for s in stack.final_state]
    for row, n in enumerate(lengths):
        alone_T, alone = stack.forward(x[row:row + 1, :n], states[0][row:row + 1],
                                       h20=states[1][row:row + 1])
        np.testing.assert_allclose(hs[row, :n], alone[0], atol=1e-12)
        np.testing.assert_array_equal(hs[row, n:], 0)
        np.testing.assert_allclose(h_T[row], alone_T[0], atol=1e-12)
        for final, own in zip(finals, stack.final_state):
            np.testing.assert_allclose(final[row], own[0], atol=1e-12)


@pytest.mark.parametrize("many", [True, False])
@pytest.mark.parametrize("padded", [True, False])
def test_stack_gradients_with_end_gradients_match_central_differences(many, padded):
    """L = sum(hs * dh) (or h_T * dh) + sum over layers of final state * dhl_T."""
    stack, x, states, rng = random_stack(seed=4)
    dh = rng.normal(size=(5, 8, 4) if many else (5, 4))
    ends = {f"d{name}_T": rng.normal(size=(5, 4)) for name in stack.state_names}
    lengths = np.array([8, 3, 1, 6, 8]) if padded else None
    inputs = {"x": x, "h10": states[0], **initial_states(stack, states)}

    def loss():
        h_T, hs = stack.forward(**inputs, lengths=lengths)
        return float(np.sum((hs if many else h_T) * dh) + sum(
            np.sum(final * ends[f"d{name}_T"])
            for name, final in zip(stack.state_names, stack.final_state)))

    loss()
    grads = stack.backward(dh, **ends)
    params = {"d" + k: p for k, p in stack.parameters().items()}
    params.update({"d" + k: v for k, v in inputs.items()})
    errors = check_gradients(loss, grads, params)
    assert set(errors) == set(grads) and len(errors) == 10
    assert max(errors.values()) < 1e-7, errors


def test_stack_refuses_what_it_cannot_run_with_a_clear_message():
    rng = np.random.default_rng(0)
    w_x, b, w_up = rng.normal(size=(3, 8)), np.zeros(8), rng.normal(size=(4, 8))
    with pytest.raises(ValueError, match="two arrays per layer for 2 to 9 layers"):
        lr.MinGRUStack(w_x, b)
    with pytest.raises(ValueError, match="h10 would name both"):
        lr.MinGRUStack(w_x, b, *[w_up, b] * 9)
    with pytest.raises(ValueError, match="two arrays per layer"):
        lr.MinGRUStack(w_x, b, w_up)
    with pytest.raises(ValueError, match=r"w_x2 must be float64 of shape \(n_nodes, 2\*n_nodes\) "
                                         r"= \(4, 8\).*got float64 of shape \(3, 8\)"):
        lr.MinGRUStack(w_x, b, w_x, b)
    with pytest.raises(ValueError, match="w_x2 must be float64.*got float32"):
        lr.MinGRUStack(w_x, b, w_up.astype(np.float32), b.astype(np.float32))
    stack = lr.MinGRUStack(w_x, b, w_up, b)
    with pytest.raises(TypeError, match=r"unexpected \['h30'\]: this stack takes \['h20'\]"):
        stack.forward(np.zeros((2, 5, 3)), h30=np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"h20 must have shape \(batch_size, n_nodes\)"):
        stack.forward(np.zeros((2, 5, 3)), h20=np.zeros((2, 5)))
    stack.forward(np.zeros((2, 5, 3)))
    with pytest.raises(TypeError, match=r"unexpected \['dh_T'\]"):
        stack.backward(np.zeros((2, 4)), dh_T=np.zeros((2, 4)))


def test_make_layer_builds_a_stack_of_n_layers_with_the_keep_bias_in_each():
    stack = lr.make_layer("mingru_stack", 3, 4, np.random.default_rng(0), n_layers=3,
                          keep_bias=2.0)
    assert len(stack.layers) == 3 and stack.n_features == 3 and stack.n_nodes == 4
    assert [layer.w_x.shape for layer in stack.layers] == [(3, 8), (4, 8), (4, 8)]
    for layer in stack.layers:
        np.testing.assert_array_equal(layer.b, [2.0] * 4 + [0.0] * 4)


@pytest.mark.parametrize("padded", [False, True])
def test_stack_matches_pytorch_autograd(padded):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional cross-check")
    stack, x, states, rng = random_stack(seed=9)
    dh = rng.normal(size=(5, 8, 4))
    lengths = np.array([8, 3, 1, 6, 8]) if padded else None
    _, hs = stack.forward(x, states[0], lengths=lengths, **initial_states(stack, states))
    ours = stack.backward(dh)
    theirs_hs, theirs = torch_twins.torch_min_pass(torch, stack, x, states, dh, lengths)
    np.testing.assert_allclose(hs, theirs_hs, atol=1e-12)
    assert set(ours) == set(theirs)
    for name, value in ours.items():
        np.testing.assert_allclose(value, theirs[name], atol=1e-9, err_msg=name)


def test_stack_without_the_input_gradient_still_passes_gradients_between_its_layers():
    stack, x, states, rng = random_stack(seed=5)
    dh = rng.normal(size=(5, 8, 4))
    stack.forward(x, *states)
    whole = stack.backward(dh)
    without = stack.backward(dh, input_gradient=False)
    assert without["dx"] is None
    for name, value in whole.items():
        if name != "dx":
            np.testing.assert_array_equal(without[name], value, err_msg=name)
