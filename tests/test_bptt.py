"""Problem 2: SimpleRNN_BPTT's gradients, checked against finite differences."""
import numpy as np
import pytest

import rnn_scratch as rs

# (batch_size, n_sequences, n_features, n_nodes), including the edge sizes of 1.
SHAPES = [(3, 5, 4, 6), (1, 4, 3, 2), (2, 1, 3, 4), (2, 6, 2, 1), (1, 1, 1, 1), (4, 8, 5, 3)]


def random_case(random_layer, shape, seed, many_to_many):
    """random_layer's vanilla layer, x and h0, and a random direct gradient dh."""
    batch_size, n_sequences, n_features, n_nodes = shape
    layer, x, h0, rng = random_layer("rnn", shape, seed)
    dh_shape = (batch_size, n_sequences, n_nodes) if many_to_many else (batch_size, n_nodes)
    return layer, x, h0, rng.normal(size=dh_shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_finite_differences_many_to_one(shape, random_layer):
    errors = rs.check_rnn_gradients(*random_case(random_layer, shape, seed=sum(shape), many_to_many=False))
    assert set(errors) == {"dw_x", "dw_h", "db", "dx", "dh0"}
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_finite_differences_many_to_many(shape, random_layer):
    errors = rs.check_rnn_gradients(*random_case(random_layer, shape, seed=sum(shape) + 100, many_to_many=True))
    assert set(errors) == {"dw_x", "dw_h", "db", "dx", "dh0"}
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("name, corrupt", [
    ("dw_h", lambda g: g * 1.001),          # a 0.1% error
    ("dh0", lambda g: np.zeros_like(g)),    # forgetting the initial state
])
def test_gradient_check_catches_a_wrong_gradient(name, corrupt, random_layer):
    # The check itself must be able to fail, or the tests above prove nothing.
    class Broken(rs.SimpleRNN_BPTT):
        def backward(self, dh):
            grads = super().backward(dh)
            grads[name] = corrupt(grads[name])
            return grads

    layer, x, h0, dh = random_case(random_layer, (2, 4, 3, 3), seed=7, many_to_many=True)
    broken = Broken(layer.w_x, layer.w_h, layer.b)
    errors = rs.check_rnn_gradients(broken, x, h0, dh)
    assert errors[name] > 1e-5, errors
    assert all(err < 1e-7 for other, err in errors.items() if other != name), errors


@pytest.mark.parametrize("many_to_many", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_fast_backward_equals_the_plain_loop(shape, many_to_many, random_layer):
    layer, x, h0, dh = random_case(random_layer, shape, seed=sum(shape) + 7, many_to_many=many_to_many)
    _, hs = layer.forward(x, h0)
    fast = layer.backward(dh)
    plain = rs.rnn_backward_loop(x, h0, hs, dh, layer.w_x, layer.w_h)
    for name in ("dw_x", "dw_h", "db", "dx", "dh0"):
        np.testing.assert_allclose(fast[name], plain[name], rtol=1e-11, atol=1e-13, err_msg=name)


def test_plain_backward_matches_finite_differences_including_every_g_t(random_layer):
    # The plain loop is the reference, so it is checked on its own against central differences:
    # the five gradients, and g_t = dL/dh_t (a perturbation added to h_t inside the recurrence).
    layer, x, h0, dh = random_case(random_layer, (2, 5, 3, 4), seed=11, many_to_many=True)
    w_x, w_h, b = layer.w_x, layer.w_h, layer.b
    _, hs = rs.rnn_forward_loop(x, w_x, w_h, b, h0)
    grads = rs.rnn_backward_loop(x, h0, hs, dh, w_x, w_h)
    loss = lambda: float(np.sum(rs.rnn_forward_loop(x, w_x, w_h, b, h0)[1] * dh))
    for name, arr in {"dw_x": w_x, "dw_h": w_h, "db": b, "dx": x, "dh0": h0}.items():
        assert rs.rel_error(grads[name], rs.numerical_gradient(loss, arr)) < 1e-7, name
    bump = np.zeros_like(hs)   # L(bump) = sum of states * dh, where bump[:, t] is added to h_t as it is formed

    def bumped_loss():
        h, total = h0, 0.0
        for t in range(x.shape[1]):
            h = np.tanh(x[:, t] @ w_x + h @ w_h + b) + bump[:, t]
            total += float(np.sum(h * dh[:, t]))
        return total

    assert rs.rel_error(grads["g"], rs.numerical_gradient(bumped_loss, bump)) < 1e-7


def test_numerical_gradient_of_a_known_function():
    x = np.array([[0.5, -1.0], [2.0, 0.1]])
    grad = rs.numerical_gradient(lambda: float(np.sum(x ** 3)), x)
    np.testing.assert_allclose(grad, 3 * x ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, [[0.5, -1.0], [2.0, 0.1]])  # restored after perturbing


def test_rel_error_scales_by_the_largest_entry():
    assert rs.rel_error([1.0, 0.0], [1.0, 0.0]) == 0.0
    assert rs.rel_error([1.0, 1e-12], [1.0, 2e-12]) == pytest.approx(1e-12 / 2)
    assert rs.rel_error([0.0], [0.0]) == 0.0


def test_backward_gradient_shapes_match_their_arrays(random_layer):
    layer, x, h0, dh = random_case(random_layer, (3, 5, 4, 2), seed=1, many_to_many=False)
    layer.forward(x, h0)
    grads = layer.backward(dh)
    assert grads["dw_x"].shape == layer.w_x.shape
    assert grads["dw_h"].shape == layer.w_h.shape
    assert grads["db"].shape == layer.b.shape
    assert grads["dx"].shape == x.shape
    assert grads["dh0"].shape == h0.shape


def test_gradients_are_sums_over_the_batch(random_layer):
    # Two copies of the same sequence in one batch give twice the weight gradients.
    layer, x, h0, dh = random_case(random_layer, (1, 4, 3, 5), seed=2, many_to_many=True)
    layer.forward(x, h0)
    single = layer.backward(dh)
    layer.forward(np.concatenate([x, x]), np.concatenate([h0, h0]))
    double = layer.backward(np.concatenate([dh, dh]))
    for name in ("dw_x", "dw_h", "db"):
        np.testing.assert_allclose(double[name], 2 * single[name], rtol=1e-12)


def test_backward_before_forward_raises_a_clear_error(random_layer):
    layer, *_ = random_case(random_layer, (1, 2, 2, 2), seed=3, many_to_many=False)
    with pytest.raises(RuntimeError, match="call forward"):
        layer.backward(np.zeros((1, 2)))


def test_dh_of_the_wrong_shape_raises_value_error(random_layer):
    layer, x, h0, _ = random_case(random_layer, (2, 3, 2, 4), seed=4, many_to_many=False)
    layer.forward(x, h0)
    with pytest.raises(ValueError) as info:
        layer.backward(np.zeros((2, 5)))
    assert "(2, 4)" in str(info.value) and "(2, 3, 4)" in str(info.value) and "(2, 5)" in str(info.value)


def test_backward_matches_pytorch_autograd(random_layer):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional cross-check")
    layer, x, h0, dh = random_case(random_layer, (3, 7, 4, 5), seed=5, many_to_many=True)
    _, hs = layer.forward(x, h0)
    grads = layer.backward(dh)
    t = {name: torch.tensor(v, requires_grad=True) for name, v in
         {"w_x": layer.w_x, "w_h": layer.w_h, "b": layer.b, "x": x, "h0": h0}.items()}
    h, states = t["h0"], []
    for step in range(x.shape[1]):
        h = torch.tanh(t["x"][:, step] @ t["w_x"] + h @ t["w_h"] + t["b"])
        states.append(h)
    torch_hs = torch.stack(states, dim=1)
    (torch_hs * torch.tensor(dh)).sum().backward()
    np.testing.assert_allclose(hs, torch_hs.detach().numpy(), rtol=1e-12, atol=1e-14)
    for ours, theirs in [("dw_x", "w_x"), ("dw_h", "w_h"), ("db", "b"), ("dx", "x"), ("dh0", "h0")]:
        np.testing.assert_allclose(grads[ours], t[theirs].grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=ours)


def test_skipping_the_input_gradient_leaves_the_others_unchanged(random_layer):
    layer, x, h0, dh = random_case(random_layer, (3, 4, 2, 5), seed=6, many_to_many=True)
    layer.forward(x, h0)
    full = layer.backward(dh)
    partial = layer.backward(dh, input_gradient=False)
    assert partial["dx"] is None
    for name in ("dw_x", "dw_h", "db", "dh0"):
        np.testing.assert_array_equal(partial[name], full[name])


def test_gradient_check_refuses_float32():
    layer = rs.SimpleRNN_BPTT(np.zeros((2, 3), np.float32), np.zeros((3, 3), np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="float64"):
        rs.check_rnn_gradients(layer, np.zeros((1, 2, 2)), np.zeros((1, 3)), np.zeros((1, 3)))
