"""Benchmark: one training epoch of chapter 3's language model against PyTorch, on the CPU.

    python benchmarks/bench_language_model.py            # chapter 3's text, every cell (minutes)
    python benchmarks/bench_language_model.py --quick    # a seconds-long smoke run

What is timed, for each cell (rnn, gru, lstm) and dtype: one epoch of truncated-BPTT training
on chapter 3's training text (the standard-library docstrings) with chapter 3's settings — 128
nodes, 32 streams, chunks of 50 steps, one-hot inputs, Adam at 0.005, the global norm clipped
at 1 — from the string to trained weights:
  ours:   ScratchRNNLanguageModel(epochs=1).fit(text), which also builds the vocabulary,
          encodes the text and draws the starting weights;
  torch:  the same model in PyTorch — the same vocabulary and encoding, torch.nn.RNN / GRU /
          LSTM + nn.Linear on one-hot inputs, cross-entropy, clip_grad_norm_, torch.optim.Adam,
          the state carried between chunks and detached — with the same number of threads.
Both build the vocabulary, encode the text and draw the starting weights (with the same code)
inside the timed epoch. Before timing, the two compute the same loss and gradients for one
chunk from the same weights (checked), so the timings compare the same arithmetic. Nothing is
asserted about speed.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import gated_rnn_scratch as gs  # noqa: E402
import language_model_scratch as lm  # noqa: E402
import rnn_scratch as rs  # noqa: E402
from bench_rnn import (blas_description, epoch_against_torch, epoch_protocol,  # noqa: E402
                       fmt_ms, fmt_round_ratios, load_torch)
from torch_twins import torch_chunk_loss, torch_gradients, torch_twin  # noqa: E402


def our_epoch(text, cell, dtype):
    model = lm.ScratchRNNLanguageModel(cell=cell, epochs=1, random_state=0,
                                       **{**lm.TEXT_TRAINING, "dtype": dtype})
    return lambda: model.fit(text)


def torch_epoch(torch, text, cell, dtype):
    """The same epoch in PyTorch, from the string: the same vocabulary, encoding and starting
    weights (drawn by the same code as ours)."""
    settings = {**lm.TEXT_TRAINING, "dtype": dtype}

    def epoch():
        vocab = sorted(set(text))
        index = {ch: i for i, ch in enumerate(vocab)}
        idx = np.array([index[ch] for ch in text], dtype=np.int64)
        rng, n_nodes = np.random.default_rng(0), settings["n_nodes"]
        rnn = rs.make_layer(cell, len(vocab), n_nodes, rng, dtype, cells=lm.CELLS)
        w_y, b_y = rs.init_output_layer(n_nodes, len(vocab), rng, dtype)
        layer, linear, tdtype = torch_twin(torch, rnn, w_y, b_y)
        params = list(layer.parameters()) + list(linear.parameters())
        optimizer = torch.optim.Adam(params, lr=settings["learning_rate"])
        state = None
        for x_idx, y_idx in lm.stream_chunks(idx, settings["batch_size"], settings["bptt_steps"]):
            optimizer.zero_grad()
            loss, state = torch_chunk_loss(torch, layer, linear, tdtype, len(vocab), x_idx,
                                           y_idx, state)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings["clip_norm"])
            optimizer.step()
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()

    return epoch


def check_same_chunk(torch, text, cell, dtype):
    """Our loss and gradients for the second chunk (state carried from the first) against
    PyTorch's, from the same weights. Returns the largest |difference| of any gradient."""
    model = lm.ScratchRNNLanguageModel(cell=cell, epochs=1, random_state=0,
                                       **{**lm.TEXT_TRAINING, "dtype": dtype}).fit(text[:3000])
    layer, linear, tdtype = torch_twin(torch, model.rnn, model.w_y, model.b_y)
    idx = model.encode(text[:3000])
    chunks = list(lm.stream_chunks(idx, model.batch_size, model.bptt_steps))
    _, _, state = model.loss_and_gradients(*chunks[0])
    loss, grads, _ = model.loss_and_gradients(*chunks[1], state)
    with torch.no_grad():
        _, carried = torch_chunk_loss(torch, layer, linear, tdtype, len(model.vocab_),
                                      *chunks[0], None)
    t_loss, _ = torch_chunk_loss(torch, layer, linear, tdtype, len(model.vocab_), *chunks[1],
                                 carried)
    t_loss.backward()
    theirs = torch_gradients(cell, layer, linear)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    worst = max(float(np.max(np.abs(grads[k] - g))) for k, g in theirs.items())
    t_loss = float(t_loss.detach())
    if abs(loss - t_loss) > tol or worst > tol:
        raise AssertionError(f"{cell} {np.dtype(dtype).name}: ours and PyTorch differ "
                             f"(loss {loss} vs {t_loss}, gradient {worst:.1e})")
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the first 20,000 characters, one call per round: a smoke run")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed epochs per round (default 1)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds of ours and PyTorch's (default 5; 1 with "
                             "--quick)")
    args = parser.parse_args(argv)
    repeats = args.repeats or 1
    rounds = args.rounds or (1 if args.quick else 5)
    text = lm.split_corpus(lm.stdlib_docstrings())[0]   # the training text
    if args.quick:
        text = text[:20_000]
    threads = os.cpu_count()
    torch, torch_note = load_torch(threads)
    print(f"# Language-model benchmark: {threads} cores, NumPy {np.__version__} with "
          f"{blas_description()}; {torch_note}")
    print(f"one training epoch on {len(text):,} characters; "
          f"{epoch_protocol(rounds, repeats)}\n")
    rows = []
    for dtype in (np.float32, np.float64):
        for cell in lm.CELLS:
            t, check, ratios = epoch_against_torch(
                torch, our_epoch(text, cell, dtype),
                lambda: check_same_chunk(torch, text, cell, dtype),
                lambda: torch_epoch(torch, text, cell, dtype), repeats, rounds)
            rows.append(f"| {cell} | {np.dtype(dtype).name} | {t['ours'][0]:.0f} / {t['ours'][1]:.0f} "
                        f"| {fmt_ms(t.get('torch'), 0)} | {fmt_round_ratios(ratios)} "
                        f"| {check} |")
            print(f"  done {cell} {np.dtype(dtype).name}", flush=True)
    print("\n| cell | dtype | ours ms per epoch (min / median) | PyTorch ms (min) | ours / PyTorch (median of rounds, range) "
          "| max gradient difference, one chunk |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
