"""Problem 3: ScratchSimpleRNNClassifier — gradients, training, determinism, dtypes."""
import numpy as np
import pytest

import rnn_scratch as rs


def small_data(n_samples=24, n_sequences=6, seed=1):
    X, y = rs.make_temporal_order_data(n_samples, n_sequences, rng=seed)
    assert len(np.unique(y)) == 4, "test data should hold all four classes"
    return X, y


def reference_loss(params, X, y_idx):
    """Mean cross-entropy, written without the classifier: the lesson's plain loop, then the softmax by hand."""
    h_T, _ = rs.rnn_forward_loop(X, params["w_x"], params["w_h"], params["b"])
    total = 0.0
    for h, label in zip(h_T, y_idx):
        z = h @ params["w_y"] + params["b_y"]
        total += np.log(np.sum(np.exp(z - z.max()))) + z.max() - z[label]
    return total / len(X)


def test_loss_gradients_match_finite_differences_for_every_parameter():
    X, y = small_data()
    model = rs.ScratchSimpleRNNClassifier(n_nodes=5, epochs=1, batch_size=8, random_state=0).fit(X, y)
    y_idx = np.searchsorted(model.classes_, y)
    loss, grads = model.loss_and_gradients(X, y_idx)
    params = model.parameters()
    assert set(grads) == set(params) == {"w_x", "w_h", "b", "w_y", "b_y"}
    errors = rs.check_gradients(lambda: model.loss_and_gradients(X, y_idx)[0], grads, params)
    assert max(errors.values()) < 1e-7, errors
    assert loss == pytest.approx(reference_loss(params, X, y_idx), rel=1e-12)


def test_one_full_batch_sgd_epoch_is_one_gradient_step():
    # Two runs with the same seed: after epoch 1 they agree, so run 2's second
    # epoch must be exactly  params <- params - lr * dL/dparams  from there.
    # The gradient is computed independently: finite differences of reference_loss.
    X, y = small_data(n_samples=10, n_sequences=6, seed=1)
    settings = dict(n_nodes=4, batch_size=10, learning_rate=0.5, optimizer="sgd", clip_norm=None, random_state=3)
    one = rs.ScratchSimpleRNNClassifier(epochs=1, **settings).fit(X, y)
    two = rs.ScratchSimpleRNNClassifier(epochs=2, **settings).fit(X, y)
    before = {name: p.copy() for name, p in one.parameters().items()}
    y_idx = np.searchsorted(one.classes_, y)
    for name, after in two.parameters().items():
        grad = rs.numerical_gradient(lambda: reference_loss(before, X, y_idx), before[name])
        np.testing.assert_allclose(after, before[name] - 0.5 * grad, rtol=1e-7, atol=1e-9, err_msg=name)
    # and the recorded epoch-2 loss is the loss at the start of that step
    assert two.loss_history[1] == pytest.approx(reference_loss(before, X, y_idx), rel=1e-10)


def test_training_reaches_95_percent_on_temporal_order():
    X, y = rs.make_temporal_order_data(800, 20, rng=10)
    X_val, y_val = rs.make_temporal_order_data(300, 20, rng=11)
    model = rs.ScratchSimpleRNNClassifier(n_nodes=32, epochs=10, random_state=0).fit(X, y, X_val, y_val)
    assert model.score(X_val, y_val) >= 0.95, model.val_accuracy_history
    assert model.val_accuracy_history[-1] == pytest.approx(model.score(X_val, y_val))
    assert model.loss_history[-1] < model.loss_history[0]


def test_same_random_state_gives_identical_loss_history():
    X, y = small_data(n_samples=40)
    runs = [rs.ScratchSimpleRNNClassifier(n_nodes=6, epochs=4, batch_size=7, random_state=42).fit(X, y)
            for _ in range(2)]
    assert runs[0].loss_history == runs[1].loss_history
    other = rs.ScratchSimpleRNNClassifier(n_nodes=6, epochs=4, batch_size=7, random_state=43).fit(X, y)
    assert other.loss_history != runs[0].loss_history


def test_global_numpy_random_state_is_not_used():
    X, y = small_data(n_samples=20)
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    rs.ScratchSimpleRNNClassifier(n_nodes=4, epochs=2, random_state=None).fit(X, y)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_string_labels_come_back_from_predict():
    X, y = small_data(n_samples=30)
    labels = np.array(["cat", "dog"])[(y == "XX").astype(int)]
    model = rs.ScratchSimpleRNNClassifier(n_nodes=4, epochs=2, random_state=0).fit(X, labels)
    assert model.classes_.tolist() == ["cat", "dog"]
    assert set(model.predict(X)) <= {"cat", "dog"}
    proba = model.predict_proba(X)
    assert proba.shape == (30, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_fitted_attributes_have_the_documented_shapes():
    X, y = small_data(n_samples=20)
    X_val, y_val = small_data(n_samples=10, seed=3)
    model = rs.ScratchSimpleRNNClassifier(n_nodes=7, epochs=3, random_state=0).fit(X, y, X_val, y_val)
    n_classes = len(np.unique(y))
    assert isinstance(model.rnn, rs.SimpleRNN_BPTT)
    assert model.rnn.w_x.shape == (8, 7) and model.rnn.w_h.shape == (7, 7) and model.rnn.b.shape == (7,)
    assert model.w_y.shape == (7, n_classes) and model.b_y.shape == (n_classes,)
    assert len(model.loss_history) == len(model.val_loss_history) == len(model.val_accuracy_history) == 3
    assert all(isinstance(v, float) for v in model.loss_history + model.val_loss_history)
    no_val = rs.ScratchSimpleRNNClassifier(n_nodes=7, epochs=2, random_state=0).fit(X, y)
    assert no_val.val_loss_history == [] and no_val.val_accuracy_history == []


def test_float32_end_to_end():
    X, y = small_data(n_samples=30)
    model = rs.ScratchSimpleRNNClassifier(n_nodes=6, epochs=3, dtype=np.float32, random_state=0).fit(X, y)
    for name, p in model.parameters().items():
        assert p.dtype == np.float32, name
    _, grads = model.loss_and_gradients(X.astype(np.float32), np.searchsorted(model.classes_, y))
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.predict_proba(X).dtype == np.float32
    assert np.all(np.isfinite(model.loss_history))


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    X, y = small_data(n_samples=6, seed=0)
    model = rs.ScratchSimpleRNNClassifier(n_nodes=3, epochs=1, random_state=0).fit(X, y)
    model.w_y[:] = 0
    model.b_y[:] = np.where(np.arange(len(model.b_y)) % 2 == 0, 1000.0, -1000.0)
    y_idx = np.arange(6) % len(model.classes_)  # some labels sit on the -1000 logits
    loss, grads = model.loss_and_gradients(X, y_idx)
    # Every row has logits (1000, -1000, 1000, -1000): p = (1/2, 0, 1/2, 0) exactly, so a label on a
    # +1000 logit costs ln 2 and one on a -1000 logit costs 2000 + ln 2. Labels 0, 1, 2, 3, 0, 1:
    # three of each, a mean of 1000 + ln 2, which float64 holds to 1e-13 if no exp overflows.
    assert len(model.classes_) == 4
    assert loss == pytest.approx(1000 + np.log(2), rel=1e-13)
    # dL/db_y = mean of (p - onehot(y)) = p - (label counts) / 6 = (1/6, -1/3, 1/3, -1/6)
    np.testing.assert_allclose(grads["b_y"], [1 / 6, -1 / 3, 1 / 3, -1 / 6], rtol=1e-12)
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    assert np.all(np.isfinite(model.predict_proba(X)))


def test_gradient_clipping_bounds_the_global_norm():
    grads = {"a": np.array([3.0, 4.0]), "b": np.array([[12.0]])}  # global norm 13
    norm = rs.clip_by_global_norm(grads, 1.0)
    assert norm == pytest.approx(13.0)
    total = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
    assert total == pytest.approx(1.0)
    np.testing.assert_allclose(grads["a"], [3 / 13, 4 / 13])  # direction kept


def test_clipping_leaves_a_short_gradient_alone_and_none_means_off():
    grads = {"a": np.array([0.3, 0.4])}
    assert rs.clip_by_global_norm(grads, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(grads["a"], [0.3, 0.4])
    big = {"a": np.array([30.0, 40.0])}
    assert rs.clip_by_global_norm(big, None) == pytest.approx(50.0)
    np.testing.assert_array_equal(big["a"], [30.0, 40.0])


def test_fit_reshuffles_the_batches_every_epoch():
    # The docstring promises a new order each epoch: record which samples form each batch.
    X, y = small_data(n_samples=24)
    X = X.copy()
    X[:, 1, 0] = np.arange(1, 25) / 24          # a tag in one input entry tells the samples apart
    seen = []

    class Recording(rs.ScratchSimpleRNNClassifier):
        def loss_and_gradients(self, X_batch, y_idx, lengths=None):
            seen.append(tuple(np.rint(X_batch[:, 1, 0] * 24).astype(int) - 1))
            return super().loss_and_gradients(X_batch, y_idx, lengths)

    Recording(n_nodes=3, epochs=3, batch_size=8, random_state=0).fit(X, y)
    epochs = [seen[i:i + 3] for i in (0, 3, 6)]
    for batches in epochs:
        assert sorted(i for batch in batches for i in batch) == list(range(24))   # each sample once per epoch
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2], epochs


def test_clip_fraction_history_counts_the_clipped_batches():
    X, y = small_data(n_samples=24)
    always = rs.ScratchSimpleRNNClassifier(n_nodes=4, epochs=2, batch_size=8, clip_norm=1e-9, random_state=0)
    never = rs.ScratchSimpleRNNClassifier(n_nodes=4, epochs=2, batch_size=8, clip_norm=1e9, random_state=0)
    off = rs.ScratchSimpleRNNClassifier(n_nodes=4, epochs=2, batch_size=8, clip_norm=None, random_state=0)
    assert always.fit(X, y).clip_fraction_history == [1.0, 1.0]
    assert never.fit(X, y).clip_fraction_history == [0.0, 0.0]
    assert off.fit(X, y).clip_fraction_history == [0.0, 0.0]


def test_adam_first_step_moves_each_parameter_by_the_learning_rate():
    # With bias correction, Adam's first update is lr * g / (|g| + eps): about lr for every nonzero entry.
    grads = {"w": np.array([1e-4, -3.0, 50.0])}
    state = rs.adam_state(grads)
    update = rs.adam_updates({"w": grads["w"].copy()}, state, learning_rate=0.01)["w"]
    np.testing.assert_allclose(update, 0.01 * np.sign(grads["w"]), rtol=1e-3)
    assert state["k"] == 1


def test_fit_does_not_modify_the_callers_arrays():
    X, y = small_data(n_samples=20)
    X_val, y_val = small_data(n_samples=8, seed=3)
    copies = [a.copy() for a in (X, y, X_val, y_val)]
    rs.ScratchSimpleRNNClassifier(n_nodes=4, epochs=2, random_state=0).fit(X, y, X_val, y_val)
    for original, copy in zip((X, y, X_val, y_val), copies):
        np.testing.assert_array_equal(original, copy)


def test_loss_and_gradients_match_pytorch_autograd():
    torch = pytest.importorskip("torch", reason="PyTorch is an optional cross-check")
    X, y = small_data(n_samples=12)
    model = rs.ScratchSimpleRNNClassifier(n_nodes=5, epochs=1, batch_size=4, random_state=2).fit(X, y)
    y_idx = np.searchsorted(model.classes_, y)
    loss, grads = model.loss_and_gradients(X, y_idx)
    t = {name: torch.tensor(p, requires_grad=True) for name, p in model.parameters().items()}
    h = torch.zeros(len(X), 5, dtype=torch.float64)
    for step in range(X.shape[1]):
        h = torch.tanh(torch.tensor(X[:, step]) @ t["w_x"] + h @ t["w_h"] + t["b"])
    torch_loss = torch.nn.functional.cross_entropy(h @ t["w_y"] + t["b_y"], torch.tensor(y_idx))
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(g, t[name].grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=name)
