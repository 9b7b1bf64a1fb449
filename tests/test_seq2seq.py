"""Chapter 4: the encoder-decoder with attention — the dates, embeddings, the encoder, attention,
the whole gradient, decoding, bad input and training."""
import datetime
import re

import numpy as np
import pytest

import seq2seq_scratch as s2s
import torch_twins
from lesson_support import NotFittedError
from rnn_scratch import check_gradients, numerical_gradient, rel_error
from seq2seq_scratch import ScratchSeq2Seq

CELLS = ("rnn", "gru", "lstm")
EPS = 1e-5          # central differences: at 1e-6 the float64 rounding is ~1e-7 of small gradients
SOURCES, TARGETS = ["abca", "cb", "bac"], ["xy", "yxy", "x"]   # both padded, in one batch


# -- helpers: tiny models, and the model recomputed here from its public weights -----------------
def redraw(params, seed=1):
    """Every array redrawn in place from N(0, 0.7^2), so that no gradient is tiny."""
    rng = np.random.default_rng(seed)
    for p in params.values():
        p[...] = rng.normal(0, 0.7, p.shape)


def tiny_model(cell="gru", attention=True, bidirectional=True, n_layers=1, seed=0):
    """A float64 model fitted for one epoch on SOURCES -> TARGETS (target characters x, y),
    then every weight redrawn."""
    model = ScratchSeq2Seq(n_nodes=3, embedding_dim=2, cell=cell, attention=attention,
                           bidirectional=bidirectional, n_layers=n_layers, epochs=1,
                           batch_size=2, dtype=np.float64, random_state=seed)
    model.fit(SOURCES, TARGETS)
    redraw(model.parameters(), seed + 1)
    return model


def copy_layer(layer):
    return type(layer)(**{name: p.copy() for name, p in layer.parameters().items()})


def encode_alone(layers, x):
    """One source x (S, d_e), no padding: each forward reader on x, each backward reader on
    x[::-1] with its states flipped back; the next layer reads both side by side. Returns
    (memory (S, d_h), final (d_h,)) = the top layer's states and [h->_S ; h<-_1]."""
    for pair in layers:
        forward = copy_layer(pair[0]).forward(x[None])[1][0]
        states, finals = [forward], [forward[-1]]
        if len(pair) == 2:
            backward = copy_layer(pair[1]).forward(x[::-1][None])[1][0][::-1]
            states.append(backward)
            finals.append(backward[0])
        x = np.concatenate(states, axis=1)
    return x, np.concatenate(finals)


def log_softmax_row(z):
    z = z - z.max()
    return z - np.log(np.sum(np.exp(z)))


def reference_decoder(model, source, prefix):
    """The model recomputed from its public weights for one source: rows log p(. | source,
    <bos> prefix[:t]) for t = 0..len(prefix) over target_vocab_[:-1], and the attention
    weights of each step (None without attention)."""
    x = model.src_embedding[[model.source_vocab_.index(s) for s in source]]
    memory, final = encode_alone(model.encoder, x)
    decoder, vocab = copy_layer(model.decoder), model.target_vocab_
    s0 = np.tanh(final @ model.bridge_w + model.bridge_b)[None]
    state = [s0] + [np.zeros_like(s0)] * (len(decoder.state_names) - 1)
    rows, alphas = [], []
    for y_prev in [len(vocab) - 1] + [vocab.index(s) for s in prefix]:   # <bos> first
        step, context = model.tgt_embedding[y_prev], np.zeros(0)
        if model.attention:
            scores = np.tanh(memory @ model.att_w_k + state[0][0] @ model.att_w_q) @ model.att_v
            alpha = np.exp(scores - scores.max())
            alpha /= alpha.sum()
            alphas.append(alpha)
            context = alpha @ memory
            step = np.concatenate([step, context])
        decoder.forward(step[None, None], *state)
        state = list(decoder.final_state)
        rows.append(log_softmax_row(np.concatenate([state[0][0], context]) @ model.w_y + model.b_y))
    return np.array(rows), (np.array(alphas) if model.attention else None)


def sequence_log_p(model, source, text, ends):
    """sum log p of text's symbols, and of <eos> after them when ends."""
    rows, _ = reference_decoder(model, source, text)
    vocab = model.target_vocab_
    picks = [vocab.index(s) for s in text] + ([len(vocab) - 2] if ends else [])
    return float(sum(rows[t, k] for t, k in enumerate(picks)))


def sampled_errors(loss, grads, params, max_entries=10, seed=0):
    """rel_error of each gradient against central differences: at every entry of an array of
    at most max_entries, at max_entries random entries of a larger one (each perturbed in place
    through a one-entry view, as numerical_gradient does)."""
    rng = np.random.default_rng(seed)
    errors = {}
    for name, p in params.items():
        flat = p.reshape(-1)
        assert np.shares_memory(flat, p), f"{name} is not contiguous: it could not be perturbed"
        if flat.size <= max_entries:
            errors[name] = rel_error(grads[name], numerical_gradient(loss, p, EPS))
        else:
            picks = rng.choice(flat.size, max_entries, replace=False)
            numeric = [numerical_gradient(loss, flat[i:i + 1], EPS)[0] for i in picks]
            errors[name] = rel_error(grads[name].reshape(-1)[picks], numeric)
    return errors


# -- section 1: the dates ---------------------------------------------------------------------
MONTHS = ("January February March April May June July August September October November "
          "December").split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
UNITS = "one two three four five six seven eight nine".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
        "eighty": 80, "ninety": 90}
NUMBERS = {word: n for n, word in enumerate(UNITS + TEENS, start=1)}
NUMBERS.update(TENS)
NUMBERS.update({f"{t}-{u}": v + n for t, v in TENS.items() for n, u in enumerate(UNITS, start=1)})
FIRST_NINE = "first second third fourth fifth sixth seventh eighth ninth".split()
ORDINALS = {word: n for n, word in enumerate(
    FIRST_NINE + ("tenth eleventh twelfth thirteenth fourteenth fifteenth sixteenth seventeenth "
                  "eighteenth nineteenth").split(), start=1)}
ORDINALS.update({"twentieth": 20, "thirtieth": 30})
ORDINALS.update({f"{t}-{w}": v + n for t, v in (("twenty", 20), ("thirty", 30))
                 for n, w in enumerate(FIRST_NINE, start=1)})
SUFFIXES = {**{d: "th" for d in range(1, 32)}, 1: "st", 21: "st", 31: "st", 2: "nd", 22: "nd",
            3: "rd", 23: "rd"}


def year_from_words(words):
    if words == "two thousand":
        return 2000
    if words.startswith("two thousand and "):
        unit = NUMBERS[words[len("two thousand and "):]]
        assert 1 <= unit <= 9, words
        return 2000 + unit
    century, rest = words.split(" ")
    return 100 * NUMBERS[century] + NUMBERS[rest]


M, W, DAY = "|".join(MONTHS), "|".join(WEEKDAYS), r"([1-9]|[12]\d|3[01])"
PARSERS = [   # (format number 0..6, pattern, groups -> (year, month, day, weekday or None))
    (0, rf"{DAY} ({M}) (\d{{4}})", lambda d, m, y: (int(y), MONTHS.index(m) + 1, int(d), None)),
    (1, rf"({M}) {DAY}, (\d{{4}})", lambda m, d, y: (int(y), MONTHS.index(m) + 1, int(d), None)),
    (2, r"(\d\d)/(\d\d)/(\d{4})", lambda d, m, y: (int(y), int(m), int(d), None)),
    (3, rf"({W}), ({M}) {DAY}, (\d{{4}})",
     lambda w, m, d, y: (int(y), MONTHS.index(m) + 1, int(d), w)),
    (4, rf"{DAY} ({'|'.join(m[:3] for m in MONTHS)}) (\d{{4}})",
     lambda d, m, y: (int(y), [x[:3] for x in MONTHS].index(m) + 1, int(d), None)),
    (5, rf"the {DAY}(st|nd|rd|th) of ({M}), (\d{{4}})",
     lambda d, suffix, m, y: (int(y), MONTHS.index(m) + 1, int(d), None)
     if suffix == SUFFIXES[int(d)] else None),
    (6, rf"({W}) the ([a-z-]+) of ({M}), ([a-z -]+)",
     lambda w, o, m, y: (year_from_words(y), MONTHS.index(m) + 1, ORDINALS[o], w)),
]


def parse_date(source):
    """(set of formats the source matches, its date), parsed here, independently."""
    found = {}
    for k, pattern, read in PARSERS:
        match = re.fullmatch(pattern, source)
        if match and read(*match.groups()) is not None:
            year, month, day, weekday = read(*match.groups())
            date = datetime.date(year, month, day)
            assert weekday in (None, WEEKDAYS[date.weekday()]), source
            found[k] = date
    assert len(set(found.values())) == 1, (source, found)   # 5 May 2009: formats 1 and 5
    return set(found), next(iter(found.values()))


def test_the_seven_formats_write_two_dates_as_people_do():
    june, march = datetime.date(2009, 6, 25), datetime.date(2009, 3, 5)
    expected = [("25 June 2009", "5 March 2009"),
                ("June 25, 2009", "March 5, 2009"),
                ("25/06/2009", "05/03/2009"),
                ("Thursday, June 25, 2009", "Thursday, March 5, 2009"),
                ("25 Jun 2009", "5 Mar 2009"),
                ("the 25th of June, 2009", "the 5th of March, 2009"),
                ("Thursday the twenty-fifth of June, two thousand and nine",
                 "Thursday the fifth of March, two thousand and nine")]
    assert len(s2s.DATE_FORMATS) == 7
    assert [(form(june), form(march)) for form in s2s.DATE_FORMATS] == expected


def test_ordinal_suffixes_ordinal_words_and_year_words():
    suffixes = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th",
                21: "21st", 22: "22nd", 23: "23rd", 31: "31st"}
    for day, written in suffixes.items():
        assert f"{day}{s2s.ordinal_suffix(day)}" == written
        assert s2s.DATE_FORMATS[5](datetime.date(2010, 1, day)) == f"the {written} of January, 2010"
    years = {1953: "nineteen fifty-three", 2000: "two thousand", 2001: "two thousand and one",
             2009: "two thousand and nine", 2010: "twenty ten", 2021: "twenty twenty-one",
             2049: "twenty forty-nine"}
    for year, words in years.items():
        assert s2s.year_words(year) == words
        assert s2s.DATE_FORMATS[6](datetime.date(year, 1, 9)).endswith(f" of January, {words}")
    ordinals = {1: "first", 20: "twentieth", 21: "twenty-first", 30: "thirtieth",
                31: "thirty-first"}
    for day, words in ordinals.items():
        assert s2s.ordinal_words(day) == words
        assert f" the {words} of January, " in s2s.DATE_FORMATS[6](datetime.date(2010, 1, day))


def test_every_target_is_the_iso_form_of_its_sources_date_within_the_range():
    sources, targets, formats = s2s.make_date_data(1500, 4, return_formats=True)
    assert len(sources) == len(targets) == len(formats) == 1500
    assert set(formats.tolist()) == set(range(7))
    for source, target, k in zip(sources, targets, formats):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", target), target
        date = datetime.date.fromisoformat(target)
        assert datetime.date(1950, 1, 1) <= date <= datetime.date(2049, 12, 31)
        matched, parsed = parse_date(source)
        assert parsed == date and k in matched, (source, target, k, matched)


def test_a_seed_and_a_generator_give_the_same_data():
    assert s2s.make_date_data(40, 7) == s2s.make_date_data(40, np.random.default_rng(7))
    assert s2s.make_date_data(40, 7) != s2s.make_date_data(40, 8)
    rng = np.random.default_rng(7)
    assert s2s.make_date_data(40, rng) != s2s.make_date_data(40, rng)   # a Generator moves on


def test_excluded_dates_are_never_drawn():
    first_half = [(datetime.date(1950, 1, 1) + datetime.timedelta(days=n)).isoformat()
                  for n in range((datetime.date(2000, 1, 1) - datetime.date(1950, 1, 1)).days)]
    _, targets = s2s.make_date_data(400, 0, exclude=first_half)
    assert min(targets) >= "2000-01-01"
    _, unrestricted = s2s.make_date_data(400, 0)
    assert min(unrestricted) < "2000-01-01"                     # the exclusion did something


def test_held_out_dates_never_occur_in_training():
    train, val, test = s2s.date_splits(2000, 500, 500, seed=3)
    assert [len(part[0]) for part in (train, val, test)] == [2000, 500, 500]
    train_dates, val_dates, test_dates = (set(part[1]) for part in (train, val, test))
    assert not train_dates & (val_dates | test_dates)
    assert not val_dates & test_dates
    for sources, targets, formats in (train, val, test):
        assert all(parse_date(s)[1].isoformat() == t for s, t in zip(sources[:100], targets))
        assert len(formats) == len(sources)
    # drawn without the exclusion, sets this large do share dates: the test can fail
    shared = set(s2s.make_date_data(2000, 9)[1]) & set(s2s.make_date_data(1000, 10)[1])
    assert len(shared) > 10


def test_source_lengths_lie_between_10_and_65():
    sources, _ = s2s.make_date_data(3000, 5)
    lengths = [len(s) for s in sources]
    assert 10 <= min(lengths) and max(lengths) <= 65
    assert min(lengths) == 10                                 # formats 3 and 5 are never longer
    longest = "Wednesday the twenty-seventh of September, nineteen seventy-eight"
    assert len(longest) == 65 and datetime.date(1978, 9, 27).weekday() == 2
    assert s2s.DATE_FORMATS[6](datetime.date(1978, 9, 27)) == longest


# -- section 2: embeddings --------------------------------------------------------------------
def test_embedding_backward_and_its_loop_match_central_differences_with_repeated_symbols():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(5, 3))
    idx = np.array([[0, 2, 2, 4], [2, 0, 1, 2]])              # 2 four times, 0 twice, 3 never
    weights = rng.normal(size=(2, 4, 3))
    numeric = numerical_gradient(lambda: np.sum(table[idx] * weights), table, EPS)
    assert np.all(numeric[3] == 0) and np.abs(numeric[2]).max() > 0.5
    for backward in (s2s.embedding_backward, s2s.embedding_backward_loop):
        assert rel_error(backward(idx, weights, 5), numeric) < 1e-9


def test_lookup_equals_a_one_hot_row_times_the_table():
    rng = np.random.default_rng(1)
    table, idx = rng.normal(size=(6, 4)), rng.integers(6, size=(3, 5))
    one_hot = s2s.one_hot(idx, 6)
    assert one_hot.shape == (3, 5, 6)
    np.testing.assert_array_equal(one_hot, np.eye(6)[idx])
    np.testing.assert_allclose(one_hot @ table, table[idx], rtol=0, atol=1e-15)


# -- section 3: the encoder -------------------------------------------------------------------
def test_reverse_within_lengths_is_its_own_inverse_and_leaves_padding_in_place():
    x = np.arange(3 * 5 * 2).reshape(3, 5, 2)
    lengths = [5, 2, 3]
    flipped = s2s.reverse_within_lengths(x, lengths)
    for n, length in enumerate(lengths):
        np.testing.assert_array_equal(flipped[n, :length], x[n, :length][::-1])
        np.testing.assert_array_equal(flipped[n, length:], x[n, length:])
    np.testing.assert_array_equal(s2s.reverse_within_lengths(flipped, lengths), x)


def padded_encoder_case(cell, seed=0):
    layers = s2s.random_encoder(cell, bidirectional=True, n_layers=2, d_e=2, n_nodes=3, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for pair in layers:
        for layer in pair:
            redraw(layer.parameters(), seed + 2)
    lengths = np.array([5, 2, 4])
    x = rng.normal(size=(3, 5, 2))                    # not zero at padding: it must be ignored
    return layers, x, lengths, rng


@pytest.mark.parametrize("cell", CELLS)
def test_encoder_gradients_match_central_differences(cell):
    layers, x, lengths, rng = padded_encoder_case(cell)
    memory, final = s2s.encoder_forward(layers, x, lengths)
    a, b = rng.normal(size=memory.shape), rng.normal(size=final.shape)
    grads, dx = s2s.encoder_backward(layers, a, b, lengths)
    params = {f"{k}{d}_{name}": p for k, pair in enumerate(layers) for d, layer in enumerate(pair)
              for name, p in layer.parameters().items()}
    ours = {f"{k}{d}_{name}": grads[k][d]["d" + name] for k, pair in enumerate(layers)
            for d, layer in enumerate(pair) for name in layer.parameters()}

    def loss():
        memory, final = s2s.encoder_forward(layers, x, lengths)
        return np.sum(memory * a) + np.sum(final * b)

    errors = sampled_errors(loss, {**ours, "x": dx}, {**params, "x": x}, max_entries=12)
    assert len(errors) == 2 * 2 * len(layers[0][0].parameters()) + 1
    assert max(errors.values()) < 1e-7, errors
    assert np.all(dx[1, 2:] == 0) and np.all(dx[2, 4:] == 0)   # padding gets no gradient


@pytest.mark.parametrize("cell", CELLS)
def test_a_padded_batch_equals_each_source_read_alone_both_ways(cell):
    layers, x, lengths, _ = padded_encoder_case(cell)
    memory, final = s2s.encoder_forward(layers, x, lengths)
    n_nodes = 3
    assert memory.shape == (3, 5, 2 * n_nodes) and final.shape == (3, 2 * n_nodes)
    for n, length in enumerate(lengths):
        alone_memory, alone_final = s2s.encoder_forward(layers, x[n:n + 1, :length], [length])
        np.testing.assert_allclose(memory[n, :length], alone_memory[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(final[n], alone_final[0], rtol=0, atol=1e-13)
        assert np.all(memory[n, length:] == 0)
        # recomputed here: the backward reader is an ordinary layer on the reversed source
        reference_memory, reference_final = encode_alone(layers, x[n, :length])
        np.testing.assert_allclose(memory[n, :length], reference_memory, rtol=0, atol=1e-13)
        np.testing.assert_allclose(final[n], reference_final, rtol=0, atol=1e-13)
        np.testing.assert_array_equal(final[n, :n_nodes], memory[n, length - 1, :n_nodes])
        np.testing.assert_array_equal(final[n, n_nodes:], memory[n, 0, n_nodes:])
    # one layer: the backward reader's state at position 0 is a forward layer's h_T on x reversed
    one = [layers[0]]
    memory, _ = s2s.encoder_forward(one, x, lengths)
    for n, length in enumerate(lengths):
        h_T, _ = copy_layer(layers[0][1]).forward(x[n, :length][::-1][None])
        np.testing.assert_allclose(memory[n, 0, n_nodes:], h_T[0], rtol=0, atol=1e-13)


# -- section 5: attention ---------------------------------------------------------------------
def attention_case(seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.array([6, 2, 4])
    pad = np.arange(6)[None, :] >= lengths[:, None]
    memory = rng.normal(size=(3, 6, 4)) * ~pad[:, :, None]     # the encoder's zeros at padding
    weights = {"w_q": rng.normal(size=(5, 3)), "w_k": rng.normal(size=(4, 3)),
               "v": rng.normal(size=3)}
    return rng.normal(size=(3, 5)), memory, lengths, pad, weights, rng


def test_attend_equals_the_plain_loop():
    s_prev, memory, lengths, pad, w, _ = attention_case()
    context, alpha, _ = s2s.attend(s_prev, memory, memory @ w["w_k"], pad, w["w_q"], w["v"])
    plain_context, plain_alpha = s2s.attention_loop(s_prev, memory, lengths, **w)
    np.testing.assert_allclose(context, plain_context, rtol=0, atol=1e-14)
    np.testing.assert_allclose(alpha, plain_alpha, rtol=0, atol=1e-15)


def test_attend_backward_matches_central_differences_through_the_keys():
    s_prev, memory, lengths, pad, w, rng = attention_case(1)
    a = rng.normal(size=(3, 4))

    def forward():
        return s2s.attend(s_prev, memory, memory @ w["w_k"], pad, w["w_q"], w["v"])

    _, _, cache = forward()
    ds_prev, d_keys, d_memory, dw_q, dv = s2s.attend_backward(a, cache, memory, w["w_q"], w["v"])
    grads = {"w_q": dw_q, "v": dv, "s_prev": ds_prev,
             "w_k": memory.reshape(-1, 4).T @ d_keys.reshape(-1, 3),     # keys = memory W_k
             "memory": d_memory + d_keys @ w["w_k"].T}
    errors = check_gradients(lambda: np.sum(forward()[0] * a), grads,
                             {**w, "s_prev": s_prev, "memory": memory}, eps=EPS)
    assert max(errors.values()) < 1e-8, errors


def test_attention_weights_are_exactly_zero_at_padding_and_rows_sum_to_one():
    s_prev, memory, lengths, pad, w, _ = attention_case(2)
    keys = memory @ w["w_k"] + 5.0 * pad[:, :, None]    # even large scores at padding get 0
    _, alpha, _ = s2s.attend(s_prev, memory, keys, pad, w["w_q"], w["v"])
    assert np.all(alpha[pad] == 0) and np.all(alpha[~pad] > 0)
    np.testing.assert_allclose(alpha.sum(axis=1), 1, rtol=0, atol=1e-15)


# -- section 6: the model ---------------------------------------------------------------------
# each cell in four settings, so that every pair of attention / directions / layers occurs
MODEL_CASES = [(cell, attention, bidirectional, n_layers) for cell in CELLS
               for attention, bidirectional, n_layers in
               ((True, True, 2), (False, False, 1), (True, False, 1), (False, True, 2))]


@pytest.mark.parametrize("cell, attention, bidirectional, n_layers", MODEL_CASES)
def test_model_gradients_match_central_differences(cell, attention, bidirectional, n_layers):
    model = tiny_model(cell, attention, bidirectional, n_layers)
    loss, grads = model.loss_and_gradients(SOURCES, TARGETS)
    params = model.parameters()
    assert list(grads) == list(params)
    assert all(grads[name].shape == p.shape for name, p in params.items())
    n_tokens = sum(len(t) + 1 for t in TARGETS)

    def forward_loss():     # the same loss, forward only (the next test: log_prob gives it)
        return -model.log_prob(SOURCES, TARGETS).sum() / n_tokens

    assert forward_loss() == pytest.approx(loss, rel=1e-12)
    errors = sampled_errors(forward_loss, grads, params)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("cell", CELLS)
def test_loss_is_minus_the_log_probability_per_target_token(cell):
    model = tiny_model(cell, n_layers=2)
    loss, _ = model.loss_and_gradients(SOURCES, TARGETS)
    log_p = model.log_prob(SOURCES, TARGETS)
    assert log_p.shape == (3,) and np.all(log_p < 0)
    assert loss == pytest.approx(-log_p.sum() / (2 + 3 + 1 + 3), rel=1e-12)   # one <eos> each
    for source, target, value in zip(SOURCES, TARGETS, log_p):        # recomputed here, alone
        assert sequence_log_p(model, source, target, ends=True) == pytest.approx(value, rel=1e-10)


def test_parameters_are_the_arrays_themselves():
    model = tiny_model("lstm", attention=True, bidirectional=True, n_layers=2)
    params = model.parameters()
    layer_names = ["w_x", "w_h", "b"]
    expected = (["src_embedding"] + [f"enc{k}_{d}_{name}" for k in (0, 1) for d in ("fw", "bw")
                                     for name in layer_names]
                + ["bridge_w", "bridge_b", "tgt_embedding"] + [f"dec_{n}" for n in layer_names]
                + ["att_w_q", "att_w_k", "att_v", "w_y", "b_y"])
    assert sorted(params) == sorted(expected)
    assert params["w_y"] is model.w_y and params["dec_w_h"] is model.decoder.w_h
    assert params["enc1_bw_w_x"] is model.encoder[1][1].w_x
    loss = model.loss_and_gradients(SOURCES, TARGETS)[0]
    for name in ("src_embedding", "enc0_bw_w_h", "dec_w_h", "dec_b", "att_v", "w_y"):
        params[name].reshape(-1)[0] += 0.5
        assert model.loss_and_gradients(SOURCES, TARGETS)[0] != loss, name
        params[name].reshape(-1)[0] -= 0.5
        assert model.loss_and_gradients(SOURCES, TARGETS)[0] == pytest.approx(loss, rel=1e-14)


# -- section 7: decoding ----------------------------------------------------------------------
def greedy_here(model, source, max_length):
    """The most probable next symbol, one step at a time, until <eos> or max_length."""
    vocab, text = model.target_vocab_, ""
    for _ in range(max_length):
        rows, _ = reference_decoder(model, source, text)
        best = int(np.argmax(rows[-1]))
        if best == len(vocab) - 2:
            break
        text += vocab[best]
    return text


@pytest.mark.parametrize("cell, attention, seed", [("gru", True, 4), ("lstm", False, 3)])
def test_greedy_predict_equals_the_stepwise_argmax_and_a_beam_of_width_one(cell, attention, seed):
    model = tiny_model(cell, attention, n_layers=2, seed=seed)    # seeds whose answers vary
    sources = ["abca", "cb", "bac", "a", "cccab", "ba"]
    predicted = model.predict(sources, beam_width=1, max_length=6)
    assert predicted == [greedy_here(model, s, 6) for s in sources]
    assert predicted == [model.beam_search(s, 1, 6)[0][1] for s in sources]
    assert len(set(predicted)) > 1                                 # not one answer for all


def all_outputs(model, source, max_length, length_penalty):
    """{text: score} of every output over the target characters: up to max_length - 1 symbols
    then <eos>, or max_length symbols cut there (no <eos>), scored sum log p / len**penalty."""
    symbols, scores = model.target_vocab_[:-2], {}
    texts = [""]
    for n in range(max_length + 1):
        for text in texts:
            ends = n < max_length
            scores[text] = sequence_log_p(model, source, text, ends) / (n + ends) ** length_penalty
        texts = [t + s for t in texts for s in symbols]
    return scores


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_a_beam_that_keeps_every_hypothesis_returns_the_best_output(length_penalty):
    model = tiny_model("gru", seed=5)
    assert model.target_vocab_[:-2] == ["x", "y"]                  # 2 symbols: 2**4 at most
    bests = set()
    for source in ("abca", "cb", "bac"):
        scores = all_outputs(model, source, 4, length_penalty)
        assert len(scores) == 1 + 2 + 4 + 8 + 16
        for text in ("xy", "y"):                                   # the recomputation is log_prob
            assert sequence_log_p(model, source, text, True) == pytest.approx(
                model.log_prob([source], [text])[0], rel=1e-10)
        ranked = model.beam_search(source, 16, 4, length_penalty)
        best = max(scores, key=scores.get)
        assert ranked[0][1] == best and ranked[0][0] == pytest.approx(scores[best], rel=1e-10)
        assert model.predict([source], beam_width=16, max_length=4,
                             length_penalty=length_penalty) == [best]
        for score, text, log_p in ranked:                          # each under its own score
            assert score == pytest.approx(scores[text], rel=1e-10)
        if length_penalty:      # nothing stops it early: every output ended before the last step
            assert {t for t in scores if len(t) < 3} <= {text for _, text, _ in ranked}
        bests.add(best)
    assert bests != {""}


def test_predictions_do_not_depend_on_padding_or_on_the_rest_of_the_batch():
    model = tiny_model("lstm", attention=True, bidirectional=True, n_layers=2, seed=4)
    rng = np.random.default_rng(0)
    sources = ["".join(rng.choice(list("abc"), rng.integers(1, 8))) for _ in range(300)]
    together = model.predict(sources, max_length=6)                # two batches of at most 256
    assert len(set(together)) > 3
    assert [model.predict([s], max_length=6)[0] for s in sources[:30]] == together[:30]
    order = rng.permutation(len(sources))
    assert model.predict([sources[i] for i in order], max_length=6) == [together[i] for i in order]
    beams = model.predict(sources[:6], beam_width=3, max_length=6)
    assert [model.predict([s], beam_width=3, max_length=6)[0] for s in sources[:6]] == beams


def test_attention_weights_have_a_row_per_output_symbol_and_eos():
    model = tiny_model("gru", n_layers=2, seed=2)
    weights = model.attention_weights("bacca", "yxy")
    assert weights.shape == (4, 5)
    np.testing.assert_allclose(weights.sum(axis=1), 1, rtol=0, atol=1e-14)
    assert np.all(weights >= 0)
    _, alphas = reference_decoder(model, "bacca", "yxy")
    np.testing.assert_allclose(weights, alphas, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="no attention"):
        tiny_model("gru", attention=False).attention_weights("bacca", "yxy")


# -- bad input --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    return tiny_model("gru")


def call(method, *args, **kwargs):
    return lambda model: getattr(model, method)(*args, **kwargs)


BAD_CALLS = [
    (call("fit", [], []), r"sources is empty; it needs at least one string"),
    (call("fit", "abc", ["x"]), r"sources must be a list of strings; got a single string 'abc'"),
    (call("fit", ["ab", "ba"], ["x"]), r"must have the same length; got 2 and 1"),
    (call("fit", ["ab", 5], ["x", "y"]), r"sources\[1\] must be a string; got int"),
    (call("fit", ["ab", "ba"], ["x", ""]), r"targets\[1\] is an empty string"),
    (call("fit", SOURCES, TARGETS, val_sources=["ab"]), r"give both val_sources and val_targets"),
    (call("predict", []), r"sources is empty"),
    (call("predict", "abc"), r"got a single string 'abc'"),
    (call("predict", ["ab", None]), r"sources\[1\] must be a string; got NoneType"),
    (call("predict", ["ab", ""]), r"sources\[1\] is an empty string"),
    (call("predict", ["ab"], beam_width=0), r"beam_width must be a positive integer; got 0"),
    (call("predict", ["ab"], max_length=0), r"max_length must be a positive integer; got 0"),
    (call("score", ["ab", "ba"], ["xy"]), r"same length; got 2 and 1"),
    (call("log_prob", ["ab"], "xy"), r"targets must be a list of strings; got a single string"),
    (call("log_prob", ["ab"], [3.5]), r"targets\[0\] must be a string; got float"),
    (call("loss_and_gradients", [""], ["x"]), r"sources\[0\] is an empty string"),
    (call("loss_and_gradients", ["ab", "b", "c"], ["x"]), r"same length; got 3 and 1"),
    (call("beam_search", "ab", 0, 3), r"beam_width must be a positive integer; got 0"),
    (call("beam_search", "ab", 2, 0), r"max_length must be a positive integer; got 0"),
    (call("beam_search", "", 2, 3), r"sources\[0\] is an empty string"),
    (call("predict", ["ab"], beam_width=2, length_penalty="x"),
     r"length_penalty must be a finite number; got 'x'"),
]


@pytest.mark.parametrize("bad, message", BAD_CALLS)
def test_bad_input_raises_a_value_error_saying_what_was_expected_and_what_came(fitted, bad,
                                                                                message):
    with pytest.raises(ValueError, match=message):
        bad(fitted)


UNKNOWN_SYMBOLS = [
    (call("predict", ["ab", "aZb"]), r"sources hold symbols .*\['Z'\]"),
    (call("predict", ["ab", "aZb"], beam_width=2), r"sources hold symbols .*\['Z'\]"),
    (call("score", ["aZb"], ["xy"]), r"sources hold symbols .*\['Z'\]"),
    (call("log_prob", ["aZb"], ["xy"]), r"sources hold symbols .*\['Z'\]"),
    (call("log_prob", ["ab"], ["xQy"]), r"targets hold symbols .*\['Q'\]"),
    (call("score", ["ab"], ["xQ"]), r"targets hold symbols .*\['Q'\]"),
    (call("loss_and_gradients", ["a!b"], ["xy"]), r"sources hold symbols .*\['!'\]"),
    (call("loss_and_gradients", ["ab"], ["xa"]), r"targets hold symbols .*\['a'\]"),
    (call("attention_weights", "aZ", "xy"), r"\['Z'\]"),
    (call("fit", SOURCES, TARGETS, val_sources=["aZ"], val_targets=["x"]),
     r"val_sources hold symbols .*\['Z'\]"),
    (call("fit", SOURCES, TARGETS, val_sources=["ab"], val_targets=["xQ"]),
     r"val_targets hold symbols .*\['Q'\]"),
]


@pytest.mark.parametrize("bad, message", UNKNOWN_SYMBOLS)
def test_symbols_outside_the_vocabularies_are_named(fitted, bad, message):
    with pytest.raises(ValueError, match=message):
        bad(fitted)


@pytest.mark.parametrize("kwargs, message", [
    ({"cell": "transformer"}, r"cell must be one of .*; got 'transformer'"),
    ({"n_layers": 0}, r"n_layers must be a positive integer; got 0"),
    ({"embedding_dim": 0}, r"embedding_dim must be a positive integer; got 0"),
    ({"learning_rate": -1}, r"learning_rate must be a positive number; got -1"),
    ({"optimizer": "rmsprop"}, r"optimizer must be \"sgd\" or \"adam\"; got 'rmsprop'"),
])
def test_bad_hyperparameters_raise_a_value_error_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScratchSeq2Seq(**{"n_nodes": 3, "embedding_dim": 2, "epochs": 1, **kwargs}).fit(
            SOURCES, TARGETS)


@pytest.mark.parametrize("use", [
    call("predict", ["ab"]), call("score", ["ab"], ["x"]), call("log_prob", ["ab"], ["x"]),
    call("parameters"), call("loss_and_gradients", ["ab"], ["x"]),
    call("attention_weights", "ab", "x"), call("beam_search", "ab", 2, 3)])
def test_use_before_fit_raises_not_fitted_error(use):
    with pytest.raises(NotFittedError, match=r"call fit\(sources, targets\)"):
        use(ScratchSeq2Seq())


def test_a_failed_call_leaves_a_fitted_model_unchanged():
    model = tiny_model("gru", n_layers=2)
    before = {name: p.copy() for name, p in model.parameters().items()}
    vocabs = (list(model.source_vocab_), list(model.target_vocab_), model.max_length_)
    predicted = model.predict(SOURCES)
    failing = [call("fit", ["pq", "rs"], ["1", "2"], val_sources=["pq"], val_targets=["Z"]),
               call("fit", ["pq", "rs"], ["1"]), call("fit", ["pq", ""], ["1", "2"]),
               call("predict", ["aZ"]), call("loss_and_gradients", ["ab"], ["xQ"])]
    for bad in failing:
        with pytest.raises(ValueError):
            bad(model)
    model.n_layers = 0
    with pytest.raises(ValueError, match="n_layers"):
        model.fit(["pq"], ["1"])
    assert (list(model.source_vocab_), list(model.target_vocab_), model.max_length_) == vocabs
    after = model.parameters()
    assert list(after) == list(before)
    assert all(np.array_equal(after[name], p) for name, p in before.items())
    assert model.predict(SOURCES) == predicted


# -- fit --------------------------------------------------------------------------------------
def test_fit_keeps_one_loss_and_one_validation_accuracy_per_epoch():
    sources, targets = ["ab", "ba", "abc", "cab"], ["x", "y", "xy", "yx"]
    settings = dict(n_nodes=3, embedding_dim=2, epochs=3, batch_size=2, random_state=0)
    model = ScratchSeq2Seq(**settings).fit(sources, targets)
    assert len(model.loss_history) == 3 and model.val_accuracy_history == []
    assert all(np.isfinite(model.loss_history)) and model.max_length_ == 4
    model = ScratchSeq2Seq(**settings).fit(sources, targets, sources[:2], targets[:2])
    assert len(model.loss_history) == 3 and len(model.val_accuracy_history) == 3
    assert all(0 <= a <= 1 for a in model.val_accuracy_history)
    assert model.val_accuracy_history[-1] == model.score(sources[:2], targets[:2])


def test_the_same_random_state_gives_identical_parameters():
    def fitted(seed):
        return ScratchSeq2Seq(n_nodes=3, embedding_dim=2, cell="lstm", n_layers=2, epochs=2,
                              batch_size=2, random_state=seed).fit(SOURCES, TARGETS).parameters()

    first, again, other = fitted(4), fitted(4), fitted(5)
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert not all(np.array_equal(first[name], other[name]) for name in first)


def test_training_lowers_the_loss_on_a_copy_task():
    rng = np.random.default_rng(0)
    sources = ["".join(rng.choice(list("abcd"), 3)) for _ in range(300)]
    targets = [s[::-1] for s in sources]
    model = ScratchSeq2Seq(n_nodes=8, embedding_dim=4, batch_size=30, epochs=5,
                           learning_rate=0.02, random_state=0).fit(sources, targets)
    assert len(model.loss_history) == 5
    assert model.loss_history[-1] < 0.5 * model.loss_history[0], model.loss_history
    assert model.score(sources[:50], targets[:50]) > 0.5


# -- PyTorch: the same loss and gradients from a torch twin with the same weights -------------
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_loss_and_gradients_match_the_pytorch_twin(cell):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional cross-check")
    model = tiny_model(cell, attention=True, bidirectional=True, n_layers=2, seed=6)
    sources, targets = SOURCES + ["c"], TARGETS + ["yyxy"]   # padded sources, targets 1 to 4
    loss, grads = model.loss_and_gradients(sources, targets)
    torch_loss, torch_grads = torch_twins.torch_seq2seq(torch, model)(sources, targets)
    assert torch_loss == pytest.approx(loss, rel=1e-9)
    assert list(torch_grads) == list(grads)
    errors = {name: rel_error(grads[name], torch_grads[name]) for name in grads}
    assert max(errors.values()) < 1e-9, errors
