"""Problem 4: gradient flow, accuracy against length, hidden states, clipping — and every plot file."""
import matplotlib.pyplot as plt
import numpy as np
import pytest

import rnn_scratch as rs


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def small_model():
    X, y = rs.make_temporal_order_data(40, 8, rng=3)
    X_val, y_val = rs.make_temporal_order_data(12, 8, rng=4)
    return rs.ScratchSimpleRNNClassifier(n_nodes=5, epochs=3, random_state=0).fit(X, y, X_val, y_val)


def test_scale_to_spectral_radius():
    w = np.random.default_rng(0).normal(size=(6, 6))
    for radius in (0.5, 3.0):
        assert np.max(np.abs(np.linalg.eigvals(rs.scale_to_spectral_radius(w, radius)))) == pytest.approx(radius)


def test_gradient_vanishes_going_back_in_time_below_radius_one():
    curve = rs.gradient_flow(radii=(0.5,), input_scale=1.0, n_sequences=30)[0.5]["grad_norms"]
    assert curve.shape == (30,)
    assert np.all(np.diff(curve) > 0), curve        # every step back in time shrinks it
    assert curve[0] < 1e-10 * curve[-1], curve


def test_gradient_explodes_going_back_in_time_at_a_large_radius():
    curve = rs.gradient_flow(radii=(3.0,), input_scale=0.1, n_sequences=30)[3.0]["grad_norms"]
    assert np.all(np.diff(curve) < 0), curve        # every step back in time grows it
    assert curve[0] > 1e3 * curve[-1], curve


def test_gradient_flow_comes_from_the_layers_backward():
    # The same numbers as calling SimpleRNN_BPTT.backward by hand with the same weights and inputs.
    rng = np.random.default_rng(0)  # gradient_flow draws w_x, w_h, x, dh in this order from this seed
    n_features, n_nodes, batch_size, n_sequences = 3, 4, 2, 5
    w_x = rng.normal(size=(n_features, n_nodes)) / np.sqrt(n_features)
    w_h = rng.normal(size=(n_nodes, n_nodes))
    x = rng.normal(size=(batch_size, n_sequences, n_features))
    dh = rng.normal(size=(batch_size, n_nodes))
    w_h_scaled = w_h * (1.5 / np.max(np.abs(np.linalg.eigvals(w_h))))
    # reference: the lesson's plain loops, forward then backward
    h0 = np.zeros((batch_size, n_nodes))
    _, hs = rs.rnn_forward_loop(x, w_x, w_h_scaled, np.zeros(n_nodes), h0)
    dx = rs.rnn_backward_loop(x, h0, hs, dh, w_x, w_h_scaled)["dx"]
    flow = rs.gradient_flow(radii=(1.5,), n_sequences=n_sequences, n_nodes=n_nodes, n_features=n_features,
                            batch_size=batch_size, seed=0)[1.5]
    np.testing.assert_allclose(flow["grad_norms"], np.linalg.norm(dx, axis=2).mean(axis=0), rtol=1e-12)
    assert flow["sigma_max"] == pytest.approx(np.linalg.svd(w_h_scaled, compute_uv=False)[0], rel=1e-12)
    assert flow["mean_tanh_slope"] == pytest.approx(np.mean(1 - hs ** 2), rel=1e-12)


def test_accuracy_vs_length_returns_one_entry_per_length_and_seed():
    results = rs.accuracy_vs_length(lengths=(6, 9), seeds=(0, 1, 2), n_train=30, n_val=10, epochs=1)
    assert sorted((r["n_sequences"], r["seed"]) for r in results) == [(6, 0), (6, 1), (6, 2), (9, 0), (9, 1), (9, 2)]
    for r in results:   # each accuracy is the model's score on the documented validation data
        X_val, y_val = rs.make_temporal_order_data(10, r["n_sequences"], rng=2000 + r["seed"])
        assert r["val_accuracy"] == r["model"].score(X_val, y_val) and r["epochs"] == 1
        assert r["model"].random_state == r["seed"]
    assert list(rs.summarize_by_length(results)) == [6, 9]
    assert all("test_accuracy" not in r for r in results)        # no test data unless asked


def test_accuracy_vs_length_scores_on_test_data_that_training_never_saw():
    results = rs.accuracy_vs_length(lengths=(6,), seeds=(0, 1), n_train=30, n_val=10, n_test=40,
                                    epochs=1)
    for r in results:   # test data of their own seed, 3000 + seed: not training's, not validation's
        X_test, y_test = rs.make_temporal_order_data(40, 6, rng=3000 + r["seed"])
        assert r["test_accuracy"] == r["model"].score(X_test, y_test)
    assert rs.summarize_by_length(results, "test_accuracy") == {6: [r["test_accuracy"] for r in results]}


def test_short_sequences_are_learned_and_long_ones_stay_near_chance():
    # The claim of section 4.2, at its two ends, with the section's own settings.
    by_length = rs.summarize_by_length(rs.accuracy_vs_length(lengths=(20, 60), seeds=(0,)))
    assert by_length[20][0] >= 0.95, by_length
    assert by_length[60][0] <= 0.35, by_length


def test_key_variants_change_only_the_keys():
    X, _ = rs.make_temporal_order_data(1, 12, rng=5)
    variants, keys = rs.key_variants(X[0])
    assert list(variants) == ["XX", "XY", "YX", "YY"]
    for label, v in variants.items():
        symbols = rs.decode_sequence(v)
        assert symbols[keys[0]] + symbols[keys[1]] == label
        others = [t for t in range(12) if t not in keys]
        np.testing.assert_array_equal(v[others], X[0][others])


def test_each_plot_is_written_to_the_given_directory(tmp_path, small_model):
    X, _ = rs.make_temporal_order_data(1, 8, rng=0)
    results = [{"n_sequences": n, "seed": s, "val_accuracy": 0.5} for n in (6, 8) for s in (0, 1)]
    clip_models = {"no clipping": small_model, "clip_norm = 1": small_model}
    calls = {
        "training_loss_curve.png": lambda d: rs.plot_training_curves(small_model, d),
        "gradient_flow.png": lambda d: rs.plot_gradient_flow({1.0: rs.gradient_flow(n_sequences=6)}, d),
        "unrolled_rnn.png": lambda d: rs.plot_unrolled_rnn(d),
        "accuracy_vs_length.png": lambda d: rs.plot_accuracy_vs_length(results, d),
        "hidden_states.png": lambda d: rs.plot_hidden_states(small_model, X[0], d),
        "clipping.png": lambda d: rs.plot_clipping(clip_models, d),
    }
    for filename, plot in calls.items():
        folder = tmp_path / filename.split(".")[0]
        plot(str(folder))
        assert [p.name for p in folder.iterdir()] == [filename]
        header = (folder / filename).read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        width = int.from_bytes(header[16:20], "big")
        assert width <= 1100, f"{filename} is {width} px wide: more than a notebook column"


def test_clipping_experiment_trains_three_runs_and_the_control_matches_the_early_step():
    models = rs.clipping_experiment(epochs=2, n_sequences=8)
    plain, clipped, control = models.values()
    assert plain.clip_norm is None and clipped.clip_norm == 1.0 and control.clip_norm is None
    assert plain.learning_rate == clipped.learning_rate == 0.5
    assert control.learning_rate == pytest.approx(0.5 * 1.0 / clipped.grad_norm_history[0])
    assert len(plain.grad_norm_history) == len(clipped.grad_norm_history) == len(control.grad_norm_history) == 2
    for name, start in plain.initial_parameters_.items():   # all three start from the same weights
        assert np.array_equal(start, clipped.initial_parameters_[name])
        assert np.array_equal(start, control.initial_parameters_[name])


@pytest.mark.parametrize("random_state", [3, None])
def test_initial_model_holds_the_weights_fit_started_from(random_state):
    # One SGD step on one batch: the trained weights are the start minus lr times the start's
    # gradient, whatever random_state is (None included: nothing to re-derive the start from).
    X, y = rs.make_temporal_order_data(16, 6, rng=1)
    model = rs.ScratchSimpleRNNClassifier(n_nodes=4, epochs=1, batch_size=16, optimizer="sgd",
                                          learning_rate=0.1, clip_norm=None,
                                          random_state=random_state).fit(X, y)
    start = rs.initial_model(model)
    _, grads = start.loss_and_gradients(X, np.searchsorted(model.classes_, y))
    for name, p in model.parameters().items():
        np.testing.assert_allclose(p, start.parameters()[name] - 0.1 * grads[name], rtol=1e-12,
                                   atol=1e-15, err_msg=name)
        assert not np.array_equal(p, start.parameters()[name]), name


def test_key_gradient_ratio_is_one_when_the_key_is_the_last_step():
    # g_k / g_T with k = T: the ratio of a norm to itself. Keys placed on the last step by hand.
    X, y = rs.make_temporal_order_data(6, 8, rng=2)
    model = rs.ScratchSimpleRNNClassifier(n_nodes=4, epochs=1, random_state=0).fit(X, y)
    X_last = X.copy()
    X_last[:, :, 6:] = 0
    X_last[:, :-1, 0] = np.where(X_last[:, :-1].sum(axis=2) == 0, 1, X_last[:, :-1, 0])  # keys become "a"
    X_last[:, -1] = 0
    X_last[:, -1, 6] = 1                                                                 # the only key: last
    assert rs.key_gradient_ratio(model, X_last, y) == pytest.approx(1.0)
    assert 0 < rs.key_gradient_ratio(model, X, y) < 1   # earlier keys get a share of it


def test_key_gradient_ratio_reads_the_first_key_not_the_second():
    X, y = rs.make_temporal_order_data(40, 20, rng=3)
    model = rs.ScratchSimpleRNNClassifier(n_nodes=6, epochs=1, random_state=0).fit(X, y)
    h_T, hs = rs.rnn_forward_loop(X, model.rnn.w_x, model.rnn.w_h, model.rnn.b)
    _, dz = rs.cross_entropy_and_gradient(h_T @ model.w_y + model.b_y, np.searchsorted(model.classes_, y))
    g = rs.rnn_backward_loop(X, None, hs, dz @ model.w_y.T, model.rnn.w_x, model.rnn.w_h)["g"]
    norms = np.linalg.norm(g, axis=2)
    keys = [[t for t, s in enumerate(rs.decode_sequence(x)) if s in "XY"] for x in X]
    rows = np.arange(len(X))
    first = np.median(norms[rows, [k[0] for k in keys]] / norms[:, -1])
    second = np.median(norms[rows, [k[1] for k in keys]] / norms[:, -1])
    assert abs(first - second) > 1e-3 * first       # the two keys give different ratios here
    assert rs.key_gradient_ratio(model, X, y) == pytest.approx(first, rel=1e-12)


def test_grad_norm_history_is_the_norm_before_clipping():
    X, y = rs.make_temporal_order_data(16, 8, rng=1)
    model = rs.ScratchSimpleRNNClassifier(n_nodes=4, epochs=1, batch_size=16, clip_norm=1e-6, random_state=0)
    model.fit(X, y)
    fresh = rs.initial_model(model)  # the weights model's fit started from
    _, grads = fresh.loss_and_gradients(X, np.searchsorted(model.classes_, y))
    expected = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
    assert model.grad_norm_history[0] == pytest.approx(expected, rel=1e-10)
    assert expected > 1e-3  # far above clip_norm: clipping really acted, yet the recorded norm is unclipped
