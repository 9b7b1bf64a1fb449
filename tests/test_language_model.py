"""Chapter 3: the language model, its truncated BPTT, sampling, the Reber grammar and n-grams."""
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import language_model_scratch as lm
from language_model_scratch import ScratchRNNLanguageModel
from gated_rnn_scratch import FastGRU, FastLSTM
from conftest import whole_chapter_run
from lesson_support import NotFittedError
from rnn_scratch import MaskedRNN, SimpleRNN_BPTT, numerical_gradient, rel_error

import torch_twins as twins

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELLS = ("rnn", "gru", "lstm")
TEXT = "the cat sat on the mat; the dog sat on the log. " * 4


def small_model(cell="rnn", **kw):
    settings = dict(n_nodes=6, cell=cell, batch_size=3, bptt_steps=7, epochs=1, random_state=0)
    return ScratchRNNLanguageModel(**{**settings, **kw})


# -- the API ----------------------------------------------------------------------------------
def test_fit_sets_the_documented_attributes():
    model = small_model("lstm", epochs=2).fit(TEXT, val_corpus="the cat")
    assert model.vocab_ == sorted(set(TEXT)) and all(len(ch) == 1 for ch in model.vocab_)
    n_vocab = len(model.vocab_)
    assert model.w_y.shape == (6, n_vocab) and model.b_y.shape == (n_vocab,)
    assert model.rnn.n_features == n_vocab and model.rnn.w_x.shape == (n_vocab, 4 * 6)
    assert len(model.loss_history) == 2 and len(model.val_bits_history) == 2
    assert small_model().fit(TEXT).val_bits_history == []
    assert model.val_bits_history[-1] == pytest.approx(model.bits_per_symbol("the cat"), rel=1e-12)
    for cell, layer_class in (("rnn", MaskedRNN), ("gru", FastGRU), ("lstm", FastLSTM)):
        assert type(small_model(cell).fit(TEXT).rnn) is layer_class
    assert list(inspect.signature(ScratchRNNLanguageModel).parameters) == [
        "n_nodes", "cell", "bptt_steps", "batch_size", "epochs", "learning_rate", "optimizer",
        "clip_norm", "dtype", "random_state", "verbose", "cells"]
    defaults = ScratchRNNLanguageModel()
    assert defaults.cells is None
    assert (defaults.n_nodes, defaults.cell, defaults.bptt_steps, defaults.batch_size,
            defaults.epochs, defaults.learning_rate, defaults.optimizer, defaults.clip_norm,
            defaults.dtype, defaults.random_state, defaults.verbose) == (
        128, "rnn", 50, 32, 10, 0.005, "adam", 1.0, np.float64, None, False)


def test_vocabulary_is_sorted_and_dtype_is_kept():
    assert small_model().fit(["cab", "ba"]).vocab_ == ["a", "b", "c"]
    model = small_model("gru", dtype=np.float32).fit(TEXT)
    assert model.w_y.dtype == model.b_y.dtype == model.rnn.w_x.dtype == np.float32
    assert model.rnn.b_h.dtype == np.float32


@pytest.mark.parametrize("cell", CELLS)
def test_training_lowers_the_loss_on_a_stream_and_on_a_list(cell):
    model = small_model(cell, epochs=8, learning_rate=0.03).fit(TEXT)
    assert model.loss_history[-1] < 0.8 * model.loss_history[0]
    strings = ["abcabc", "abcab", "abca", "cab", "bcabcab"] * 6
    model = small_model(cell, epochs=8, learning_rate=0.03).fit(strings)
    assert model.loss_history[-1] < 0.8 * model.loss_history[0]


# -- section 1: the per-step loss and its gradient ------------------------------------------------
def test_gradients_match_central_differences_with_padding_and_a_carried_state():
    rows = lm.check_language_model_gradients(seed=3)
    assert {(cell, batch) for cell, batch, _ in rows} == {
        (c, b) for c in CELLS for b in ("list, padded", "stream, carried state")}
    assert all(err < 1e-7 for *_, err in rows), rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_output_layer_equals_the_plain_loop(seed):
    assert lm.compare_output_layer_with_loop(seed) < 1e-12


def test_the_plain_output_layer_is_the_models_own_loss():
    # same states, weights and targets: the plain loop gives the model's loss and dW_y, db_y
    model = small_model("rnn").fit(TEXT)
    x_idx, y_idx, lengths = lm.pad_symbol_sequences([np.array([1, 2, 3, 4, 5]), np.array([3, 1])])
    loss, grads, _ = model.loss_and_gradients(x_idx, y_idx, lengths=lengths)
    _, hs = model.rnn.forward(lm.one_hot(x_idx, len(model.vocab_)), lengths=lengths)
    plain = lm.output_layer_loop(hs, y_idx, model.w_y, model.b_y, lengths)
    assert plain[0] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(plain[1], grads["w_y"], atol=1e-14)
    np.testing.assert_allclose(plain[2], grads["b_y"], atol=1e-14)


def test_loss_is_the_mean_over_real_positions_only():
    model = small_model("gru").fit(TEXT)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, len(model.vocab_), n) for n in (6, 3, 4)]
    x_idx, y_idx, lengths = lm.pad_symbol_sequences(seqs)
    loss, grads, _ = model.loss_and_gradients(x_idx, y_idx, lengths=lengths)
    # each sequence alone (no padding), weighted by its number of positions
    alone = [model.loss_and_gradients(s[None, :-1], s[None, 1:]) for s in seqs]
    n = lengths.sum()
    assert loss == pytest.approx(sum(l * (len(s) - 1) for (l, _, _), s in zip(alone, seqs)) / n,
                                 rel=1e-12)
    for name in grads:
        combined = sum(g[name] * (len(s) - 1) for (_, g, _), s in zip(alone, seqs)) / n
        np.testing.assert_allclose(grads[name], combined, rtol=1e-10, atol=1e-13)
    # garbage at the padded positions changes nothing
    x_bad, y_bad = x_idx.copy(), y_idx.copy()
    for i, n_real in enumerate(lengths):
        x_bad[i, n_real:] = 1
        y_bad[i, n_real:] = 2
    assert (x_bad != x_idx).sum() == 3 + 2
    loss_bad, grads_bad, _ = model.loss_and_gradients(x_bad, y_bad, lengths=lengths)
    assert loss_bad == loss and all(np.array_equal(grads[k], grads_bad[k]) for k in grads)


def test_bits_per_symbol_is_the_mean_negative_log2_probability():
    model = small_model("lstm").fit(TEXT)
    text = "the mat sat"
    p = model.predict_proba(text)
    idx = [model.vocab_.index(ch) for ch in text]
    expected = -np.mean([np.log2(p[t, idx[t + 1]]) for t in range(len(text) - 1)])
    assert model.bits_per_symbol(text) == pytest.approx(expected, rel=1e-12)
    strings = ["the cat", "on", "the dog sat"]
    positions = [-np.log2(model.predict_proba(s)[t, model.vocab_.index(s[t + 1])])
                 for s in strings for t in range(len(s) - 1)]
    assert model.bits_per_symbol(strings) == pytest.approx(np.mean(positions), rel=1e-12)


# -- section 2: truncated BPTT and the carried state ----------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_a_carried_state_equals_reading_the_concatenated_stream(cell):
    model = small_model(cell).fit(TEXT)
    idx = model.encode(TEXT)
    one_piece = model.stream_log_probs(idx, chunk=len(idx))
    for chunk in (1, 5, 13):
        np.testing.assert_allclose(model.stream_log_probs(idx, chunk=chunk), one_piece,
                                   rtol=0, atol=1e-12)
    # and the carried state matters: restarting from zeros at each chunk gives other numbers
    restarted = np.concatenate([model.stream_log_probs(idx[s:s + 14], chunk=13)
                                for s in range(0, len(idx) - 1, 13)])
    assert np.max(np.abs(restarted - one_piece)) > 1e-3


@pytest.mark.parametrize("cell", CELLS)
def test_truncated_bptt_equals_full_bptt_when_the_chunk_covers_the_stream(cell):
    model = small_model(cell).fit(TEXT[:60])
    idx = model.encode(TEXT[:60])
    n_steps = (len(idx) - 1) // 3                                  # 19 steps per stream
    (x_all, y_all), = lm.stream_chunks(idx, 3, 10**6)

    def full_loss():
        return model.loss_and_gradients(x_all, y_all)[0]

    full = {k: numerical_gradient(full_loss, p) for k, p in model.parameters().items()}
    for bptt_steps in (n_steps, n_steps + 1, 1000):
        truncated = lm.stream_gradient(model, idx, 3, bptt_steps)
        assert max(rel_error(truncated[k], full[k]) for k in full) < 1e-7
    short = lm.stream_gradient(model, idx, 3, 4)
    assert max(rel_error(short[k], full[k]) for k in full) > 1e-3   # truncation does drop terms


def test_fit_with_a_chunk_longer_than_the_streams_is_full_bptt_training():
    text = TEXT[:70]
    a = small_model("gru", optimizer="sgd", learning_rate=0.1, clip_norm=None, epochs=2,
                    bptt_steps=23).fit(text)          # (70 - 1) // 3 = 23 steps: one chunk
    b = small_model("gru", optimizer="sgd", learning_rate=0.1, clip_norm=None, epochs=2,
                    bptt_steps=500).fit(text)
    c = small_model("gru", optimizer="sgd", learning_rate=0.1, clip_norm=None, epochs=2,
                    bptt_steps=5).fit(text)
    for name, p in a.parameters().items():
        np.testing.assert_array_equal(p, b.parameters()[name])
    assert not np.allclose(a.rnn.w_h, c.rnn.w_h)


def test_fit_carries_the_state_between_chunks_and_resets_it_each_epoch(monkeypatch):
    model = small_model("lstm", epochs=2, bptt_steps=5)
    calls = []
    original = ScratchRNNLanguageModel.loss_and_gradients

    def spy(self, x_idx, y_idx, state=None, lengths=None):
        result = original(self, x_idx, y_idx, state, lengths)
        calls.append((x_idx.copy(), state, result[2]))
        return result

    monkeypatch.setattr(ScratchRNNLanguageModel, "loss_and_gradients", spy)
    model.fit(TEXT)
    n_chunks = -(-((len(TEXT) - 1) // 3) // 5)
    assert len(calls) == 2 * n_chunks
    for epoch in range(2):
        chunks = calls[epoch * n_chunks:(epoch + 1) * n_chunks]
        assert chunks[0][1] is None                                 # zero state at each epoch
        for (_, _, returned), (_, received, _) in zip(chunks, chunks[1:]):
            assert len(received) == 2                               # h and the LSTM's c
            for r, s in zip(returned, received):
                np.testing.assert_array_equal(r, s)
        # the streams are walked in order: chunk j holds steps 5j .. 5j+4 of each stream
        idx = model.encode(TEXT)
        n_steps = (len(idx) - 1) // 3
        np.testing.assert_array_equal(chunks[1][0], idx[:3 * n_steps].reshape(3, n_steps)[:, 5:10])


def test_list_batches_are_reshuffled_every_epoch(monkeypatch):
    strings = [f"{a}{b}x" for a in "abcd" for b in "abcd"]            # 16 distinct strings
    firsts = []
    original = ScratchRNNLanguageModel.loss_and_gradients

    def spy(self, x_idx, y_idx, state=None, lengths=None):
        assert state is None                                        # independent sequences
        firsts.append(tuple(x_idx[:, 0]) + tuple(x_idx[:, 1]))
        return original(self, x_idx, y_idx, state, lengths)

    monkeypatch.setattr(ScratchRNNLanguageModel, "loss_and_gradients", spy)
    small_model(batch_size=4, epochs=3).fit(strings)
    per_epoch = [firsts[i:i + 4] for i in range(0, 12, 4)]
    assert per_epoch[0] != per_epoch[1] and per_epoch[1] != per_epoch[2]
    assert len(firsts) == 12
    for epoch in per_epoch:                                          # each string once per epoch
        assert len(set(sum((list(zip(b[:4], b[4:])) for b in epoch), []))) == 16


def test_stream_chunks_cut_the_text_into_consecutive_pieces():
    idx = np.arange(23)
    chunks = list(lm.stream_chunks(idx, 3, 4))
    assert [x.shape for x, _ in chunks] == [(3, 4), (3, 3)]
    x = np.concatenate([c[0] for c in chunks], axis=1)
    y = np.concatenate([c[1] for c in chunks], axis=1)
    np.testing.assert_array_equal(x, np.arange(21).reshape(3, 7))   # stream b = piece b
    np.testing.assert_array_equal(y, x + 1)
    (x, y), = lm.stream_chunks(np.array([4, 2]), 32, 50)            # capped at n_symbols - 1
    assert x.tolist() == [[4]] and y.tolist() == [[2]]
    assert len(small_model(batch_size=32).fit("ab").loss_history) == 1


@pytest.mark.parametrize("cell", CELLS)
def test_stream_loss_history_is_the_mean_over_the_cut_streams(cell):
    model = small_model(cell, learning_rate=1e-300).fit(TEXT)        # weights do not move
    n = (len(TEXT) - 1) // 3
    pieces = [TEXT[b * n:(b + 1) * n + 1] for b in range(3)]
    expected = np.mean([model.bits_per_symbol(p) for p in pieces]) * np.log(2)
    assert model.loss_history[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_the_training_loss_uses_the_carried_state(cell):
    model = small_model(cell).fit(TEXT)
    idx = model.encode(TEXT)
    total, state = 0.0, None
    for x, y in lm.stream_chunks(idx, 1, 7):
        loss, _, state = model.loss_and_gradients(x, y, state)
        total += loss * y.size
    assert total == pytest.approx(-np.sum(model.stream_log_probs(idx)), rel=1e-12)


def test_list_loss_history_and_val_bits_are_over_every_position():
    strings = ["the cat", "on", "the dog sat", "a log", "cat sat on", "the mat", "dog"]
    model = small_model("gru", batch_size=2, learning_rate=1e-300).fit(strings)
    assert model.loss_history[0] == pytest.approx(model.bits_per_symbol(strings) * np.log(2),
                                                  rel=1e-12)
    model = small_model("gru", batch_size=2, epochs=2, learning_rate=0.05).fit(
        strings, val_corpus=strings[:3])
    assert model.val_bits_history[-1] == pytest.approx(model.bits_per_symbol(strings[:3]),
                                                       rel=1e-12)
    with pytest.raises(ValueError, match=r"\['Q'\]"):
        small_model().fit(strings, val_corpus=["the", "Qat"])


def test_stream_gradient_weights_each_chunk_by_its_positions():
    model = small_model("gru").fit(TEXT[:60])
    idx = model.encode(TEXT[:60])
    chunks, states, state = list(lm.stream_chunks(idx, 3, 4)), [], None
    for x, y in chunks:
        states.append(state)
        _, _, state = model.loss_and_gradients(x, y, state)
    n = sum(y.size for _, y in chunks)
    expected = {k: 0.0 for k in model.parameters()}
    for (x, y), s in zip(chunks, states):      # each chunk's loss, its incoming state held fixed
        for k, p in model.parameters().items():
            chunk_loss = lambda: model.loss_and_gradients(x, y, s)[0]   # noqa: E731
            expected[k] = expected[k] + numerical_gradient(chunk_loss, p) * y.size / n
    got = lm.stream_gradient(model, idx, 3, 4)
    assert max(rel_error(got[k], expected[k]) for k in expected) < 1e-7


def test_bits_per_symbol_on_a_list_longer_than_one_evaluation_batch():
    model = small_model("rnn").fit(TEXT)
    rng = np.random.default_rng(0)
    strings = ["".join(rng.choice(model.vocab_, rng.integers(2, 9))) for _ in range(300)]
    positions = [-np.log2(model.predict_proba(s)[t, model.vocab_.index(s[t + 1])])
                 for s in strings for t in range(len(s) - 1)]
    assert model.bits_per_symbol(strings) == pytest.approx(np.mean(positions), rel=1e-12)


# -- section 3: sampling ------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_sampling_is_seeded_and_starts_with_the_prime(cell):
    model = small_model(cell, epochs=3).fit(TEXT)
    a = model.sample(40, prime="the ", random_state=7)
    assert a == model.sample(40, prime="the ", random_state=7)
    assert a != model.sample(40, prime="the ", random_state=8)
    assert a.startswith("the ") and len(a) == 44 and set(a) <= set(model.vocab_)
    assert len(model.sample(12, random_state=1)) == 12
    assert model.sample(0, prime="cat") == "cat"


def test_sampling_draws_from_softmax_of_z_over_the_temperature():
    model = small_model().fit("abcd" * 5)
    q = np.array([0.6, 0.25, 0.1, 0.05])
    model.w_y[:] = 0
    model.b_y[:] = np.log(q)                                # p_t = q after any input
    n = 6000
    for temperature, target in ((1.0, q), (0.5, q ** 2 / np.sum(q ** 2)),
                                (2.0, np.sqrt(q) / np.sum(np.sqrt(q)))):
        s = model.sample(n, prime="a", temperature=temperature, random_state=0)[1:]
        freq = np.array([s.count(ch) for ch in "abcd"]) / n
        assert np.all(np.abs(freq - target) < 5 * np.sqrt(target * (1 - target) / n)), (
            temperature, freq, target)


def test_temperature_near_zero_is_greedy_decoding():
    model = small_model("lstm", epochs=3).fit(TEXT)
    text = "the "
    for _ in range(25):
        text += model.vocab_[int(np.argmax(model.predict_proba(text)[-1]))]
    for seed in range(3):
        assert model.sample(25, prime="the ", temperature=1e-4, random_state=seed) == text
    first = model.vocab_[0]     # an empty prime feeds vocab_[0] from a zero state, unreturned
    greedy = ""
    for _ in range(10):
        greedy += model.vocab_[int(np.argmax(model.predict_proba(first + greedy)[-1]))]
    assert model.sample(10, temperature=1e-4, random_state=0) == greedy


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("corpus, message", [
    ("", "at least 2 symbols"),
    ("a", "at least 2 symbols"),
    ([], "empty list"),
    (123, "string .* or a list of strings"),
    (np.array(["ab"]), "string .* or a list of strings"),
    (("ab", "cd"), "string .* or a list of strings"),
    (["ab", 3], r"corpus\[1\] must be a string"),
    (["abc", "a"], r"corpus\[1\] = 'a' has fewer than 2 symbols"),
])
def test_bad_corpora_are_named(corpus, message):
    with pytest.raises(ValueError, match=message):
        small_model().fit(corpus)


def test_bad_settings_and_unknown_symbols_are_clear_errors():
    with pytest.raises(ValueError, match="cell must be one of"):
        small_model(cell="transformer").fit(TEXT)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="bptt_steps must be a positive integer"):
            small_model(bptt_steps=bad).fit(TEXT)
    with pytest.raises(ValueError, match=r"val_corpus holds symbols .*\['Z', 'q'\]"):
        small_model().fit(TEXT, val_corpus="Zq the")
    with pytest.raises(ValueError, match=r"val_corpus\[0\] = 'x' has fewer"):
        small_model().fit(TEXT, val_corpus=["x"])
    with pytest.raises(NotFittedError, match="call fit"):
        small_model().bits_per_symbol("the")
    with pytest.raises(NotFittedError):
        small_model().sample(5)
    model = small_model().fit(TEXT)
    with pytest.raises(ValueError, match=r"symbols outside vocab_: \['!'\]"):
        model.bits_per_symbol("the cat!")
    with pytest.raises(ValueError, match=r"corpus\[1\] holds symbols outside vocab_: \['Q'\]"):
        model.bits_per_symbol(["the", "Qat"])
    with pytest.raises(ValueError, match=r"prime holds symbols outside vocab_: \['#'\]"):
        model.sample(5, prime="#the")
    with pytest.raises(ValueError, match="length must be an integer >= 0"):
        model.sample(-1)
    assert model.sample(3, temperature=np.int64(2), random_state=0) == model.sample(
        3, temperature=2.0, random_state=0)
    for t in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="temperature must be a positive number"):
            model.sample(5, temperature=t)


def test_a_failed_fit_leaves_a_fitted_model_unchanged():
    model = small_model().fit(TEXT)
    before = {k: p.copy() for k, p in model.parameters().items()}
    with pytest.raises(ValueError):
        model.fit("the cat", val_corpus="dog!")
    assert model.vocab_ == sorted(set(TEXT))
    assert all(np.array_equal(before[k], p) for k, p in model.parameters().items())


# -- section 4: the Reber grammar ------------------------------------------------------------------
def test_the_grammar_accepts_its_strings_and_rejects_broken_ones():
    rng = np.random.default_rng(0)
    strings = [lm.embedded_reber_string(rng) for _ in range(500)]
    assert all(lm.is_embedded_reber(s) for s in strings)
    assert {s[1] for s in strings} == {"T", "P"}
    for s in strings[:100]:
        swapped = s[:-2] + ("P" if s[-2] == "T" else "T") + s[-1]
        assert not lm.is_embedded_reber(swapped)                      # the long-range rule
        assert not lm.is_embedded_reber(s[:-1])
        assert not lm.is_embedded_reber(s[:4] + "E" + s[5:])
    assert lm.is_reber("BTXSE") and lm.is_reber("BPVVE") and not lm.is_reber("BTXXE")


def test_reber_entropy_is_what_the_automaton_gives():
    # -log2 of each string's probability under the automaton, walked independently
    rng = np.random.default_rng(1)
    strings = [lm.embedded_reber_string(rng) for _ in range(200)]
    bits = 0.0
    for s in strings:
        bits += 1                                   # T or P
        state = 0
        for symbol in s[3:-3]:                      # the inner string between B and E
            bits += 1                               # every state 0-4 has two branches
            state = dict(lm.REBER[state])[symbol]
        assert state == 5
    assert lm.reber_entropy_bits(strings) == pytest.approx(
        bits / sum(len(s) - 1 for s in strings), rel=1e-12)


def test_grading_on_the_grammar_separates_a_trained_model_from_an_untrained_one():
    rng = np.random.default_rng(0)
    train = [lm.embedded_reber_string(rng) for _ in range(2000)]
    test = [lm.embedded_reber_string(rng) for _ in range(100)]
    trained = ScratchRNNLanguageModel(n_nodes=16, cell="rnn", learning_rate=0.01, epochs=8,
                                      random_state=0).fit(train)
    untrained = ScratchRNNLanguageModel(n_nodes=16, cell="rnn", epochs=1, learning_rate=1e-9,
                                        random_state=0).fit(train)
    assert lm.grammatical_share(trained, 50) > 0.5 > lm.grammatical_share(untrained, 50)
    assert lm.second_to_last_accuracy(trained, test) > 0.9 > lm.second_to_last_accuracy(untrained,
                                                                                      test)
    assert trained.bits_per_symbol(test) < 1.0 < untrained.bits_per_symbol(test)


# -- section 5: n-grams and the docstring corpus --------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_ngram_probabilities_sum_to_one_over_the_vocabulary(n):
    train = "abracadabra, abracadabra; cabbage"
    vocab = sorted(set(train))
    counts = lm.ngram_counts(train, n)

    def bits_of_last(text):     # total bits of text minus those of text[:-1]
        total = lm.ngram_bits(counts, text, n, [0.1], len(vocab))[0] * (len(text) - 1)
        return total - lm.ngram_bits(counts, text[:-1], n, [0.1], len(vocab))[0] * (len(text) - 2)

    for context in ("ab", "ra", "b,", "aa"):        # "aa" never occurs in train
        probs = [2.0 ** -bits_of_last(context + s) for s in vocab]
        assert sum(probs) == pytest.approx(1.0, rel=1e-12)


def test_ngram_counts_by_hand():
    train = "abab"                                   # bigrams ab, ba, ab; V = 2
    # p(b | a) = (count(ab) + k) / (count(a as a context) + k V) = (2 + 1) / (2 + 2)
    bits = lm.ngram_bits(lm.ngram_counts(train, 2), "ab", 2, [1.0], 2)
    assert bits[0] == pytest.approx(-np.log2(3 / 4))
    bits = lm.ngram_bits(lm.ngram_counts(train, 1), "ab", 1, [0.5], 2)   # p(b) = (2 + 0.5) / (4 + 1)
    assert bits[0] == pytest.approx(1.0)


def test_docstrings_are_read_without_importing_or_printing(tmp_path):
    code = ("import sys, language_model_scratch as lm\n"
            "before = set(sys.modules)\n"
            "text = lm.stdlib_docstrings(('tarfile', 'this', 'sched'))\n"
            "print(len(text) > 10000, sorted({'tarfile', 'this', 'sched'} & (set(sys.modules) - before)),"
            " set(text) <= set(chr(c) for c in range(32, 127)) | {'\\n'}, 'Zen' in text)\n")
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # 'this' has no docstring of its own and would print the Zen if imported: nothing printed
    assert result.stdout == "True [] True False\n", result.stdout
    assert os.listdir(tmp_path) == []


def test_split_corpus_holds_out_the_last_tenth_in_two_halves_and_drops_unseen_symbols():
    train, validation, test, dropped = lm.split_corpus("a" * 85 + "b" * 5 + "aaab" + "bbab" + "z!")
    assert train == "a" * 85 + "b" * 5 and dropped == 2
    assert validation == "aaab" and test == "bbab"      # the first half, then the second
    assert lm.split_corpus("abcdefgh") == ("abcdefgh", "", "", 0)   # a tenth of 8 is 0 symbols


def test_ngram_table_reports_the_test_bits_of_the_k_chosen_on_validation():
    train, validation, test = TEXT * 3, "the dog sat on the cat. ", "a cat sat on the dog. "
    ks = (0.001, 0.1, 1.0, 10.0)
    counts = lm.ngram_counts(train, 3)
    for n, k, val_bits, test_bits in lm.ngram_table(train, validation, 3, ks, test=test):
        assert val_bits == min(lm.ngram_bits(counts, validation, n, ks, len(set(train))))
        assert test_bits == lm.ngram_bits(counts, test, n, [k], len(set(train)))[0]


# -- optional: PyTorch ------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_bits_and_truncated_gradients_match_pytorch(cell):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional cross-check")
    model = small_model(cell, epochs=2, bptt_steps=6).fit(TEXT)
    layer, linear, _ = twins.torch_twin(torch, model.rnn, model.w_y, model.b_y)
    n_vocab = len(model.vocab_)

    def torch_bits(text):
        idx = torch.tensor(model.encode(text))
        x = torch.nn.functional.one_hot(idx[:-1], n_vocab).double()[None]
        out, _ = layer(x)
        log_p = torch.log_softmax(linear(out[0]), dim=-1)
        return -log_p[torch.arange(len(idx) - 1), idx[1:]], len(idx) - 1

    with torch.no_grad():
        nll, _ = torch_bits(TEXT)
        assert model.bits_per_symbol(TEXT) == pytest.approx(float(nll.mean()) / np.log(2),
                                                            abs=1e-9)
        strings = ["the cat sat", "on", "the log. the"]
        total = sum(float(torch_bits(s)[0].sum()) for s in strings)
        n = sum(len(s) - 1 for s in strings)
        assert model.bits_per_symbol(strings) == pytest.approx(total / n / np.log(2), abs=1e-9)

    # one training step: the second chunk of the streams, from the state the first one left
    idx = model.encode(TEXT)
    chunks = list(lm.stream_chunks(idx, 3, 6))
    _, _, state = model.loss_and_gradients(*chunks[0])
    our_loss, grads, _ = model.loss_and_gradients(*chunks[1], state)
    with torch.no_grad():                                            # no gradient across chunks
        _, carried = twins.torch_chunk_loss(torch, layer, linear, torch.float64, n_vocab,
                                            *chunks[0], None)
    loss, _ = twins.torch_chunk_loss(torch, layer, linear, torch.float64, n_vocab, *chunks[1],
                                     carried)
    loss.backward()
    theirs = twins.torch_gradients(cell, layer, linear)
    assert abs(loss.item() - our_loss) < 1e-9 and set(theirs) == set(grads)
    for name, g in theirs.items():
        np.testing.assert_allclose(grads[name], g, rtol=0, atol=1e-9)


# -- the chapter as a script ------------------------------------------------------------------------
@whole_chapter_run
def test_chapter_3_runs_headless_with_its_options(tmp_path):
    # The full chapter runs in the notebook test; here its command line, with one epoch of text.
    plots = tmp_path / "p"
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
    env.pop("DISPLAY", None)
    script = os.path.join(ROOT, "language_model_scratch.py")
    result = subprocess.run(
        [sys.executable, script, "--plots-dir", str(plots), "--quiet", "--epochs", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    heads = [out.index(f"Section {k}:") for k in (1, 3, 4, 5, 6)]
    assert heads == sorted(heads)
    assert "All below 1e-7: True" in out and "below 1e-12: True" in out
    assert "Full BPTT (bptt_steps >= 30) matches central differences below 1e-7: True" in out
    assert not any(line.startswith("epoch ") for line in out.splitlines())   # --quiet
    assert {p.name for p in plots.iterdir()} == {"reber_next_symbol.png",
                                                 "text_learning_curves.png"}
    assert os.listdir(tmp_path) == ["p"]
    bad = subprocess.run([sys.executable, script, "--epochs", "0"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "argument --epochs: must be at least 1" in bad.stderr


def test_ngram_table_picks_the_k_with_the_lowest_held_out_bits_for_each_n():
    train, held_out = TEXT * 3, "the dog sat on the cat. " * 2
    ks = (0.001, 0.1, 1.0, 10.0)
    rows = lm.ngram_table(train, held_out, max_n=3, ks=ks)
    counts = lm.ngram_counts(train, 3)
    for n, k, bits in rows:
        all_bits = lm.ngram_bits(counts, held_out, n, ks, len(set(train)))
        assert bits == min(all_bits) and k == ks[int(np.argmin(all_bits))]
    # on this repetitive text a small k wins at n = 3 and the largest k loses: the choice matters
    assert rows[2][1] != 10.0


def test_a_diverging_language_model_raises_and_keeps_finite_weights():
    model = small_model("lstm", learning_rate=1e308, clip_norm=None, optimizer="sgd", epochs=3)
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.raises(FloatingPointError, match="Training diverged in epoch"):
        model.fit(TEXT)
    assert all(np.all(np.isfinite(p)) for p in model.parameters().values())
