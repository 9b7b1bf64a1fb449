"""Benchmark: one training epoch of chapter 4's encoder-decoder against PyTorch, on the CPU.

    python benchmarks/bench_seq2seq.py            # 10,000 dates, with and without attention
    python benchmarks/bench_seq2seq.py --quick    # a seconds-long smoke run

What is timed: one epoch of training on the chapter's dates with the class's defaults — a
bidirectional GRU encoder of 64 per direction, a GRU decoder of 128, additive attention of
64 (or none), embeddings of 32, batches of 64, Adam at 0.005, the global norm clipped at 1,
float32 —
  ours:   ScratchSeq2Seq(epochs=1).fit(sources, targets), which also builds the
          vocabularies, encodes the strings and draws the starting weights;
  torch:  the PyTorch twin of the same model (torch_twins.torch_seq2seq: torch.nn.GRU per
          encoder direction on packed sequences, the decoder one step per call, the
          attention in tensor operations), on the same batches (seq2seq_scratch's
          length_pooled_batches with the same seed), with clip_grad_norm_ and
          torch.optim.Adam, and the same number of threads. Its model is built before the
          epoch: only the batches are timed.
Before timing, the two compute the same loss and gradients for one batch from the same
weights (checked in float64), so the timings compare the same arithmetic. Nothing is
asserted about speed.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import seq2seq_scratch as s2s  # noqa: E402
from bench_rnn import (blas_description, epoch_against_torch, epoch_protocol,  # noqa: E402
                       fmt_ms, fmt_round_ratios, load_torch)
from torch_twins import torch_seq2seq  # noqa: E402


def our_epoch(sources, targets, attention):
    model = s2s.ScratchSeq2Seq(attention=attention, epochs=1, random_state=0)
    return lambda: model.fit(sources, targets)


def torch_epoch(torch, sources, targets, attention):
    """One epoch of the PyTorch twin on the batches ours would make."""
    model = s2s.ScratchSeq2Seq(attention=attention, epochs=1, random_state=0)
    model.fit(sources[:64], targets[:64])     # the vocabularies and starting weights
    run = torch_seq2seq(torch, model)
    optimizer = torch.optim.Adam(run.parameters, lr=model.learning_rate)
    lengths = np.array([len(s) for s in sources])

    def epoch():
        rng = np.random.default_rng(0)
        for batch in s2s.length_pooled_batches(lengths, model.batch_size, rng):
            optimizer.zero_grad()
            run([sources[i] for i in batch], [targets[i] for i in batch], numpy=False)
            torch.nn.utils.clip_grad_norm_(run.parameters, model.clip_norm)
            optimizer.step()

    return epoch


def check_same_batch(torch, sources, targets, attention):
    """Our float64 loss and gradients for one batch against the twin's. Returns the
    largest |difference| of any gradient."""
    model = s2s.ScratchSeq2Seq(attention=attention, epochs=1, random_state=0,
                               dtype=np.float64).fit(sources[:64], targets[:64])
    loss, grads = model.loss_and_gradients(sources[:64], targets[:64])
    t_loss, t_grads = torch_seq2seq(torch, model)(sources[:64], targets[:64])
    worst = max(float(np.max(np.abs(grads[k] - g))) for k, g in t_grads.items())
    if abs(loss - t_loss) > 1e-10 or worst > 1e-10:
        raise AssertionError(f"ours and PyTorch differ (loss {loss} vs {t_loss}, "
                             f"gradient {worst:.1e})")
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="500 dates, one timed epoch per round: a smoke run")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed epochs per round (default 1)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds of ours and PyTorch's (default 5; 1 with "
                             "--quick)")
    args = parser.parse_args(argv)
    repeats = args.repeats or 1
    rounds = args.rounds or (1 if args.quick else 5)
    sources, targets = s2s.make_date_data(500 if args.quick else 10_000, rng=0)
    threads = os.cpu_count()
    torch, torch_note = load_torch(threads)
    print(f"# Seq2seq benchmark: {threads} cores, NumPy {np.__version__} with "
          f"{blas_description()}; {torch_note}")
    print(f"one training epoch on {len(sources):,} dates, float32; "
          f"{epoch_protocol(rounds, repeats)}\n")
    rows = []
    for attention in (True, False):
        t, check, ratios = epoch_against_torch(
            torch, our_epoch(sources, targets, attention),
            lambda: check_same_batch(torch, sources, targets, attention),
            lambda: torch_epoch(torch, sources, targets, attention), repeats, rounds)
        rows.append(f"| {'with' if attention else 'without'} | {t['ours'][0]:.0f} / "
                    f"{t['ours'][1]:.0f} | {fmt_ms(t.get('torch'), 0)} | "
                    f"{fmt_round_ratios(ratios)} | {check} |")
        print(f"  done, {'with' if attention else 'without'} attention", flush=True)
    print("\n| attention | ours ms per epoch (min / median) | PyTorch ms (min) "
          "| ours / PyTorch (median of rounds, range) | max gradient difference, one batch (float64) |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
