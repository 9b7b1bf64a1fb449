"""Problem 1: SimpleRNN's forward pass."""
import numpy as np
import pytest

import rnn_scratch as rs


def test_forward_matches_problem_1_expected_values():
    # The expected numbers are the assignment's, not computed by this code.
    x = np.array([[[1, 2], [2, 3], [3, 4]]]) / 100
    w_x = np.array([[1, 3, 5, 7], [3, 5, 7, 8]]) / 100
    w_h = np.array([[1, 3, 5, 7], [2, 4, 6, 8], [3, 5, 7, 8], [4, 6, 8, 10]]) / 100
    b = np.array([1, 1, 1, 1])
    h_T, hs = rs.SimpleRNN(w_x, w_h, b).forward(x)
    expected = np.array([[0.79494228, 0.81839002, 0.83939649, 0.85584174]])
    np.testing.assert_allclose(h_T, expected, rtol=0, atol=1e-8)
    assert hs.shape == (1, 3, 4)


def test_plain_loop_reproduces_problem_1_expected_values():
    # The plain loop is the reference the fast layer is compared with, so it is pinned to the
    # assignment's independent answer first.
    h_T, hs = rs.rnn_forward_loop(rs.PROBLEM1_X, rs.PROBLEM1_W_X, rs.PROBLEM1_W_H, rs.PROBLEM1_B)
    np.testing.assert_allclose(h_T, [[0.79494228, 0.81839002, 0.83939649, 0.85584174]], rtol=0, atol=1e-8)
    np.testing.assert_array_equal(hs[:, -1], h_T)


@pytest.mark.parametrize("shape", [(4, 6, 3, 5), (1, 1, 1, 1), (3, 9, 2, 7)])
def test_forward_equals_the_plain_loop(shape, random_layer):
    layer, x, h0, _ = random_layer("rnn", shape, seed=sum(shape))
    h_T, hs = layer.forward(x, h0)
    plain_T, plain_hs = rs.rnn_forward_loop(x, layer.w_x, layer.w_h, layer.b, h0)
    np.testing.assert_allclose(hs, plain_hs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_T, plain_T, rtol=1e-12, atol=1e-12)


def test_lesson_comparison_of_fast_and_plain_forward_is_at_rounding_level():
    differences = rs.compare_forward_with_plain_loop()
    assert len(differences) == 2 and max(differences.values()) < 1e-14, differences


def test_h_T_is_the_state_after_the_last_step_run_one_step_at_a_time(random_layer):
    # Carrying final_state into the next call, one step at a time, must end where one call over
    # the whole sequence ends: h_T and every h_t are those of the recurrence, not of any one view.
    layer, x, h0, _ = random_layer("rnn", (2, 5, 3, 4), seed=1)
    h_T, hs = layer.forward(x, h0)
    h_T, hs = h_T.copy(), hs.copy()
    assert hs.shape == (2, 5, 4) and h_T.shape == (2, 4)
    state = h0
    for t in range(5):
        step_T, step_hs = layer.forward(x[:, t:t + 1], state)
        np.testing.assert_allclose(step_hs[:, 0], hs[:, t], rtol=1e-13, atol=1e-15)
        state = layer.final_state[0].copy()
        np.testing.assert_array_equal(state, step_T)
    np.testing.assert_allclose(state, h_T, rtol=1e-13, atol=1e-15)


def test_h0_is_honoured(random_layer):
    layer, x, h0, _ = random_layer("rnn", (2, 1, 3, 4), seed=2)
    h_T, _ = layer.forward(x, h0)
    np.testing.assert_allclose(h_T, np.tanh(x[:, 0] @ layer.w_x + h0 @ layer.w_h + layer.b), rtol=1e-13)
    h_T_zero, _ = layer.forward(x)
    np.testing.assert_allclose(h_T_zero, np.tanh(x[:, 0] @ layer.w_x + layer.b), rtol=1e-13)


def test_float32_weights_stay_float32(random_layer):
    layer, _, _, rng = random_layer("rnn", (2, 5, 3, 4), seed=3, dtype=np.float32)
    h_T, hs = layer.forward(rng.normal(size=(2, 5, 3)))  # float64 input is cast to the layer's dtype
    assert layer.w_x.dtype == np.float32
    assert h_T.dtype == np.float32 and hs.dtype == np.float32


def test_integer_weights_become_float64():
    layer = rs.SimpleRNN([[1, 0]], [[0, 1], [1, 0]], [0, 0])
    assert layer.w_x.dtype == layer.w_h.dtype == layer.b.dtype == np.float64


def test_forward_does_not_modify_its_inputs(random_layer):
    layer, _, _, rng = random_layer("rnn", (2, 5, 3, 4), seed=4)
    x, h0 = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 4))
    x_copy, h0_copy = x.copy(), h0.copy()
    layer.forward(x, h0)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(h0, h0_copy)


@pytest.mark.parametrize("w_x, w_h, b, fragment", [
    (np.zeros((2, 4)), np.zeros((3, 3)), np.zeros(4), "w_h must have shape (n_nodes, n_nodes) = (4, 4)"),
    (np.zeros((2, 4)), np.zeros((4, 4)), np.zeros(3), "b must have shape (n_nodes,) = (4,)"),
    (np.zeros(4), np.zeros((4, 4)), np.zeros(4), "w_x must be 2-D"),
])
def test_inconsistent_weight_shapes_raise_value_error_naming_the_shapes(w_x, w_h, b, fragment):
    with pytest.raises(ValueError) as info:
        rs.SimpleRNN(w_x, w_h, b)
    assert fragment in str(info.value)


@pytest.mark.parametrize("x_shape, h0_shape, fragment", [
    ((5, 3), None, "x must be 3-D"),
    ((2, 5, 2), None, "n_features = 3"),
    ((2, 5, 3), (3, 4), "h0 must have shape (batch_size, n_nodes) = (2, 4)"),
])
def test_bad_forward_input_raises_value_error(x_shape, h0_shape, fragment, random_layer):
    layer = random_layer("rnn", (1, 1, 3, 4), seed=5)[0]
    h0 = None if h0_shape is None else np.zeros(h0_shape)
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros(x_shape), h0)
    assert fragment in str(info.value)
    assert str(x_shape if h0 is None else h0_shape) in str(info.value)  # says what came
