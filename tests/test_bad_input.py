"""Section 3: bad input gets a clear ValueError that says what was expected and what came."""
import numpy as np
import pytest

import lesson_support as support
import rnn_scratch as rs


@pytest.fixture
def data():
    X, y = rs.make_temporal_order_data(20, 6, rng=1)
    assert len(np.unique(y)) == 4
    return X, y


@pytest.fixture
def fitted(data):
    return rs.ScratchSimpleRNNClassifier(n_nodes=4, epochs=1, random_state=0).fit(*data)


def fit_error(X, y, **kwargs):
    with pytest.raises(ValueError) as info:
        rs.ScratchSimpleRNNClassifier(n_nodes=4, epochs=1).fit(X, y, **kwargs)
    return str(info.value)


def test_X_not_3d(data):
    X, y = data
    message = fit_error(X.reshape(20, -1), y)
    assert "3-D" in message and "(20, 48)" in message


def test_empty_X():
    message = fit_error(np.zeros((0, 6, 8)), np.array([]))
    assert "empty" in message and "(0, 6, 8)" in message


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_X_with_nan_or_inf(data, bad):
    X, y = data
    X = X.copy()
    X[3, 2, 1] = bad
    assert "NaN or infinite" in fit_error(X, y)


def test_non_numeric_X(data):
    _, y = data
    message = fit_error(np.full((20, 6, 8), "a"), y)
    assert "numbers" in message and "<U1" in message


def test_n_features_at_predict_differs_from_fit(fitted):
    with pytest.raises(ValueError) as info:
        fitted.predict(np.zeros((3, 6, 5)))
    assert "n_features = 5" in str(info.value) and "n_features = 8" in str(info.value)


def test_len_y_differs_from_len_X(data):
    X, y = data
    message = fit_error(X, y[:-1])
    assert "expected 20 labels, got 19" in message


def test_y_with_one_class_only(data):
    X, _ = data
    message = fit_error(X, np.full(20, "XX"))
    assert "at least 2 classes" in message and "XX" in message


def test_X_val_without_y_val(data):
    X, y = data
    assert "X_val without y_val" in fit_error(X, y, X_val=X)


def test_y_val_with_unknown_labels(data):
    X, y = data
    message = fit_error(X, y, X_val=X[:2], y_val=np.array(["XX", "ZZ"]))
    assert "ZZ" in message


@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_predict_before_fit_says_to_call_fit(data, method):
    X, _ = data
    with pytest.raises(support.NotFittedError, match=r"call fit\(X, y\)"):
        getattr(rs.ScratchSimpleRNNClassifier(), method)(X)


def test_score_before_fit_says_to_call_fit(data):
    with pytest.raises(support.NotFittedError, match=r"call fit\(X, y\)"):
        rs.ScratchSimpleRNNClassifier().score(*data)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"n_nodes": 0}, "n_nodes must be a positive integer"),
    ({"epochs": 2.5}, "epochs must be a positive integer"),
    ({"learning_rate": -1}, "learning_rate must be a positive number"),
    ({"optimizer": "rmsprop"}, "optimizer must be"),
    ({"clip_norm": 0}, "clip_norm must be a positive number or None"),
    ({"dtype": np.int32}, "dtype must be np.float32 or np.float64"),
])
def test_bad_hyperparameters(data, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        rs.ScratchSimpleRNNClassifier(**kwargs).fit(*data)


@pytest.mark.parametrize("dtype, learning_rate", [(np.float64, 1e308), (np.float32, 1e38)])
def test_diverging_training_raises_floating_point_error_and_keeps_finite_weights(data, dtype, learning_rate):
    X, y = data
    model = rs.ScratchSimpleRNNClassifier(n_nodes=8, epochs=50, optimizer="sgd", learning_rate=learning_rate,
                                          clip_norm=None, dtype=dtype, random_state=0)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError) as info:
        model.fit(X, y)
    message = str(info.value)
    assert "epoch" in message and "learning_rate" in message and "clip_norm" in message
    assert all(np.all(np.isfinite(p)) for p in model.parameters().values())


def test_temporal_order_generator_rejects_too_short_sequences():
    with pytest.raises(ValueError, match="at least 6"):
        rs.make_temporal_order_data(10, 4)


def test_a_fit_rejected_for_bad_input_leaves_the_model_as_it_was(data, fitted):
    X, y = data
    fresh = rs.ScratchSimpleRNNClassifier(n_nodes=4, epochs=1)
    with pytest.raises(ValueError):
        fresh.fit(X, y, X_val=X[:2, :, :5], y_val=y[:2])  # X_val with the wrong n_features
    with pytest.raises(support.NotFittedError):
        fresh.predict(X)
    before = fitted.predict_proba(X)
    with pytest.raises(ValueError):
        fitted.fit(X[:, :, :5], np.array(["p", "q"] * 10), X_val=X[:2], y_val=y[:2])
    assert fitted.classes_.tolist() == ["XX", "XY", "YX", "YY"]
    np.testing.assert_array_equal(fitted.predict_proba(X), before)
