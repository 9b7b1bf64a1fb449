"""Benchmark: the lesson's NumPy RNN against a textbook NumPy loop and PyTorch, on the CPU.

    python benchmarks/bench_rnn.py            # the full table (a few minutes on 2 cores)
    python benchmarks/bench_rnn.py --quick    # a seconds-long smoke run

What is timed, for each size (batch_size, n_sequences, n_features, n_nodes)
and dtype:
  * one forward + backward pass of the layer, with dL/dh for every step
    (many-to-many), computing dw_x, dw_h, db, dx and dh0;
  * one training epoch of the classifier (model built from scratch, 4 batches
    of fixed data, 4 classes, global-norm clipping at 5), with SGD and Adam;
  * the layer's forward + backward with per-sequence lengths (masks): all
    equal to n_sequences, ragged in T/2..T, and about T/2 with the batch
    padded to its own longest sequence, against the same pass without lengths.
Against:
  (a) TextbookRNN below: the lesson's plain loops (rnn_forward_loop and
      rnn_backward_loop), straight from the equations, batch-first, with
      x_t W_x inside the loop and the weight gradients accumulated step by step;
  (b) PyTorch (torch.nn.RNN(batch_first=True), + nn.Linear + cross-entropy +
      the same optimizer for the epoch), when torch imports, with the same
      number of threads.
Before timing, each implementation's output is checked against ours, so the
table compares implementations that compute the same numbers.

Reported: min and median milliseconds over 2 rounds of repeats, GFLOP/s counting
2*B*T*(F*H + H*H) per pass and 3 passes for forward + backward, the fraction of
this machine's GEMM peak (a large matmul timed in the same run), ratios of our
time to each reference's (below 1 = we are faster), and the peak memory that
forward + backward allocates (tracemalloc; NumPy reports its buffers to it).
Nothing here is asserted: speed is measured, not tested.
"""
import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import gated_rnn_scratch as gs  # noqa: E402
import rnn_scratch as rs  # noqa: E402
from torch_twins import torch_layer, torch_pass  # noqa: E402

SIZES = [(32, 20, 8, 32), (64, 50, 32, 128), (128, 100, 64, 256), (64, 50, 128, 512)]
QUICK_SIZES = [(32, 20, 8, 32)]
EPOCH_BATCHES = 4  # batches per timed epoch
N_CLASSES = 4


class TextbookRNN:
    """The reference: the lesson's own plain loops, rs.rnn_forward_loop and rs.rnn_backward_loop
    (per step, batch-first, exactly as the equations read), behind SimpleRNN_BPTT's interface:
    forward(x, h0) -> (h_T, hs); backward(dh, input_gradient) -> dict.
    """

    def __init__(self, w_x, w_h, b):
        self.w_x, self.w_h, self.b = w_x, w_h, b
        self.dtype = w_x.dtype

    def parameters(self):
        return {"w_x": self.w_x, "w_h": self.w_h, "b": self.b}

    def forward(self, x, h0=None, *, lengths=None):
        if lengths is not None:
            raise ValueError("the plain loops have no masks: the benchmark times them on full batches")
        self._x = x
        self._h0 = np.zeros((x.shape[0], len(self.b)), self.dtype) if h0 is None else h0
        h_T, self._hs = rs.rnn_forward_loop(x, self.w_x, self.w_h, self.b, self._h0)
        return h_T, self._hs

    def backward(self, dh, input_gradient=True):
        grads = rs.rnn_backward_loop(self._x, self._h0, self._hs, dh, self.w_x, self.w_h, input_gradient)
        del grads["g"]
        return grads


class TextbookClassifier(rs.ScratchSimpleRNNClassifier):
    """The lesson's classifier with the textbook layer inside, at the same starting weights."""

    def _init_layer(self, n_features, rng, dtype):
        layer = rs.init_simple_rnn(n_features, self.n_nodes, rng, dtype)
        return TextbookRNN(layer.w_x, layer.w_h, layer.b)


SETTLE_SECONDS = 0.3


def settle():
    """Sleep SETTLE_SECONDS, long enough on this machine for the last library's worker
    threads to stop spinning (nothing checks that they have).

    After a call, OpenBLAS's worker threads keep busy-waiting for more work for a while, and a
    spinning thread takes a core from whatever runs next: on this project's 2-core machine
    (2026-12-01) PyTorch's LSTM at the language model's shape took 29 ms right after one of
    our passes, 15 ms after 0.1 s of idling and 14 ms after 0.2 s; with
    OPENBLAS_THREAD_TIMEOUT=4, which makes those threads sleep at once, the idling made no
    difference. The old single warm-up call (one PyTorch pass, 14 to 29 ms there) did not
    outlast the spinning, so every timed turn starts with this pause."""
    time.sleep(SETTLE_SECONDS)


def timed_rounds(fns, repeats, rounds=2):
    """Time each function of {name: fn}; returns {name: [[ms of each timed call] for
    each round]}.

    In each of `rounds` rounds every function gets its turn: a pause (settle) so that the
    previous library's worker threads have stopped spinning, one untimed warm-up call,
    then `repeats` timed calls in a row. Rounds guard against the load of a shared machine
    drifting while one implementation is timed.
    """
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            settle()
            fn()
            this_round = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                this_round.append((time.perf_counter() - start) * 1e3)
            times[name].append(this_round)
    return times


def min_and_median(times):
    """{name: (min ms, median ms)} over all rounds of timed_rounds' {name: rounds}."""
    return {name: (min(sum(t, [])), float(np.median(sum(t, [])))) for name, t in times.items()}


def timed(fns, repeats, rounds=2):
    """As timed_rounds; returns {name: (min ms, median ms)} over all timed calls."""
    return min_and_median(timed_rounds(fns, repeats, rounds))


def peak_memory_mb(fn):
    """Peak bytes allocated while fn runs (tracemalloc), in MB."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def gemm_peak_gflops(dtype, n=2048, repeats=5):
    """This machine's GEMM rate: the best of `repeats` n x n products."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n)).astype(dtype), rng.random((n, n)).astype(dtype)
    best, _ = timed({"gemm": lambda: a @ b}, repeats, rounds=1)["gemm"]
    return 2 * n ** 3 / (best * 1e-3) / 1e9


def make_layer_case(size, dtype, seed=0, layer_class=rs.SimpleRNN_BPTT):
    """Random weights for layer_class (layer_class.n_blocks blocks of columns: 1 for the vanilla
    layer, 4 for the LSTM, 3 for the GRU), an input x, h0 and dL/dh for every step. Returns
    (weights, x, h0, dh)."""
    n_blocks, n_biases = layer_class.n_blocks, len(layer_class.parameter_names) - 2
    batch_size, n_sequences, n_features, n_nodes = size
    rng = np.random.default_rng(seed)
    w_x = (rng.normal(size=(n_features, n_blocks * n_nodes)) / np.sqrt(n_features)).astype(dtype)
    w_h = (rng.normal(size=(n_nodes, n_blocks * n_nodes)) / np.sqrt(n_nodes)).astype(dtype)
    biases = [(0.1 * rng.normal(size=n_blocks * n_nodes)).astype(dtype) for _ in range(n_biases)]
    x = rng.normal(size=(batch_size, n_sequences, n_features)).astype(dtype)
    h0 = (0.1 * rng.normal(size=(batch_size, n_nodes))).astype(dtype)
    dh = rng.normal(size=(batch_size, n_sequences, n_nodes)).astype(dtype)
    return (w_x, w_h, *biases), x, h0, dh


def numpy_pass(layer, x, h0, dh, lengths=None):
    """Forward + backward of a layer; with lengths, the batch is cut to its own longest sequence
    (as the classifier pads each batch) and masked."""
    if lengths is not None:
        longest = int(np.max(lengths))
        x, dh = x[:, :longest], dh[:, :longest]

    options = {} if lengths is None else {"lengths": lengths}   # chapter 1's MaskedRNN

    def run():
        _, hs = layer.forward(x, h0, **options)
        return hs, layer.backward(dh)
    return run


def mask_lengths(size, low, high, seed=0):
    """Lengths drawn uniformly from round(low * T)..round(high * T) for a batch of this size."""
    batch_size, n_sequences = size[:2]
    rng = np.random.default_rng(seed)
    return rng.integers(max(1, round(low * n_sequences)), round(high * n_sequences) + 1, size=batch_size)





def assert_same(reference, other, dtype, what):
    """Before timing: `other` must compute what `reference` computes."""
    tol = 1e-3 if dtype == np.float32 else 1e-9
    (hs_ref, g_ref), (hs, g) = reference, other
    scale = lambda a: max(1.0, float(np.max(np.abs(a))))  # noqa: E731
    assert np.max(np.abs(hs - hs_ref)) <= tol * scale(hs_ref), f"{what}: hidden states differ"
    for name in g_ref:
        err = np.max(np.abs(g[name] - g_ref[name]))
        assert err <= tol * scale(g_ref[name]), f"{what}: {name} differs by {err}"


def make_epoch_data(size, seed=0):
    batch_size, n_sequences, n_features, _ = size
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(EPOCH_BATCHES * batch_size, n_sequences, n_features))
    y = rng.integers(0, N_CLASSES, size=len(X))
    return X, y


def numpy_epoch(model_class, size, dtype, optimizer, X, y):
    batch_size, _, _, n_nodes = size
    X = X.astype(dtype)

    def run():
        model_class(n_nodes=n_nodes, epochs=1, batch_size=batch_size, learning_rate=0.01, optimizer=optimizer,
                    clip_norm=5.0, dtype=dtype, random_state=0).fit(X, y)
    return run


def torch_epoch(torch, size, dtype, optimizer, X, y):
    batch_size, _, n_features, n_nodes = size
    tdtype = getattr(torch, np.dtype(dtype).name)
    tX, ty = torch.from_numpy(X.astype(dtype)), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)

    def run():
        rnn = torch.nn.RNN(n_features, n_nodes, batch_first=True).to(tdtype)
        dense = torch.nn.Linear(n_nodes, N_CLASSES).to(tdtype)
        params = list(rnn.parameters()) + list(dense.parameters())
        opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(params, lr=0.01)
        for batch in torch.randperm(len(tX), generator=generator).split(batch_size):
            _, h_T = rnn(tX[batch])
            loss = torch.nn.functional.cross_entropy(dense(h_T[0]), ty[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
    return run


def epoch_against_torch(torch, ours, check, theirs, repeats, rounds=2):
    """Time one epoch function of ours and, where PyTorch loaded, its twin's, in
    interleaved rounds: first check() (the largest gradient difference of one batch,
    raising when the two differ), then theirs() builds the twin's epoch function.
    Returns ({name: (min ms, median ms)} over all timed epochs, the check's difference
    formatted or n/a without PyTorch, the ratio ours / theirs of each round's fastest
    epochs, [] without PyTorch)."""
    fns, difference = {"ours": ours}, "n/a"
    if torch is not None:
        difference = f"{check():.0e}"
        fns["torch"] = theirs()
    times = timed_rounds(fns, repeats, rounds)
    ratios = ([min(a) / min(b) for a, b in zip(times["ours"], times["torch"])]
              if "torch" in times else [])
    return min_and_median(times), difference, ratios


def epoch_protocol(rounds, repeats):
    """How epoch_against_torch times, said once for the scripts' headers."""
    return (f"{rounds} interleaved rounds of {repeats} timed epoch(s) each, each turn after a "
            f"{SETTLE_SECONDS} s pause and a warm-up epoch; ratio: ours / PyTorch's fastest "
            "epoch of each round, median and range over the rounds (< 1: ours is faster)")


def blas_description():
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        text = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict mode
        text = "unknown BLAS"
    try:  # optional: which kernel OpenBLAS picked, and its threads
        from threadpoolctl import threadpool_info
        info = [i for i in threadpool_info() if i.get("user_api") == "blas"][0]
        text += f", {info.get('architecture')} kernels, {info.get('num_threads')} threads"
    except Exception:
        pass
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return text + (f" (OPENBLAS_CORETYPE={coretype} set)" if coretype else "")


def load_torch(threads):
    """(torch set to `threads` threads, a note naming it), or (None, a note) without PyTorch."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch not installed: its columns say n/a"
    torch.set_num_threads(threads)
    return torch, f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads"


def fmt_ms(timing, digits):
    """The min of a (min, median) timing, or n/a when that reference did not run."""
    return "n/a" if timing is None else f"{timing[0]:.{digits}f}"


def fmt_ratio(ours, theirs):
    """Our min time over theirs, or n/a when that reference did not run."""
    return "n/a" if theirs is None else f"{ours[0] / theirs[0]:.2f}×"


def fmt_round_ratios(ratios):
    """The median of per-round ratios with their min-max range, or n/a for none."""
    if not ratios:
        return "n/a"
    return f"{np.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small size, few repeats: a smoke run")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per round, 2 rounds (default 5; 2 with --quick)")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else SIZES
    repeats = args.repeats or (2 if args.quick else 5)
    threads = os.cpu_count()
    torch, torch_note = load_torch(threads)
    print(f"# RNN benchmark: {threads} cores, NumPy {np.__version__} with {blas_description()}; {torch_note}")
    print(f"min / median of 2 rounds x {repeats} timed calls, each turn after a {SETTLE_SECONDS} s pause and a warm-up call; ratios are of "
          "the minima, our time / theirs (< 1: ours is faster)\n")

    layer_rows, epoch_rows, mask_rows, gated_rows = [], [], [], []
    for dtype in (np.float32, np.float64):
        peak = gemm_peak_gflops(dtype, n=512 if args.quick else 2048)
        print(f"{np.dtype(dtype).name} GEMM peak on this machine: {peak:.0f} GFLOP/s")
        for size in sizes:
            B, T, F, H = size
            weights, x, h0, dh = make_layer_case(size, dtype)
            passes = {"ours": numpy_pass(rs.SimpleRNN_BPTT(*weights), x, h0, dh),
                      "book": numpy_pass(TextbookRNN(*weights), x, h0, dh)}
            if torch is not None:
                passes["torch"] = torch_pass(torch, rs.SimpleRNN_BPTT(*weights), x, h0, dh)
            reference = passes["ours"]()
            for name in ("book", "torch"):
                if name in passes:
                    assert_same(reference, passes[name](), dtype, name)
            t = timed(passes, repeats)
            t_ours, t_book, t_torch = t["ours"], t["book"], t.get("torch")
            gflops = 3 * 2 * B * T * (F * H + H * H) / (t_ours[0] * 1e-3) / 1e9
            mem = peak_memory_mb(passes["ours"])
            layer_rows.append(
                f"| {np.dtype(dtype).name} | {size} | {t_ours[0]:.2f} / {t_ours[1]:.2f} | {gflops:.0f} "
                f"| {100 * gflops / peak:.0f}% | {fmt_ms(t_book, 2)} | {fmt_ratio(t_ours, t_book)} "
                f"| {fmt_ms(t_torch, 2)} | {fmt_ratio(t_ours, t_torch)} | {mem:.1f} |")
            T_full = np.full(B, T)
            # The unmasked pass is timed again in the same call, so each ratio is of neighbours in time.
            masked = {"none": passes["ours"]}
            for name, lengths in [("full", T_full), ("ragged", mask_lengths(size, 0.5, 1.0)),
                                  ("half", mask_lengths(size, 0.4, 0.6))]:
                masked[name] = numpy_pass(rs.MaskedRNN(*weights), x, h0, dh, lengths)
            m = timed(masked, repeats)
            mask_rows.append(
                f"| {np.dtype(dtype).name} | {size} | {m['none'][0]:.2f} | {fmt_ms(m['full'], 2)} | "
                f"{fmt_ratio(m['full'], m['none'])} | {fmt_ms(m['ragged'], 2)} | {fmt_ratio(m['ragged'], m['none'])} | "
                f"{fmt_ms(m['half'], 2)} | {fmt_ratio(m['half'], m['none'])} |")
            for cell, layer_class in (("LSTM", gs.CELLS["lstm"].cls), ("GRU", gs.CELLS["gru"].cls)):
                gated_weights, gx, gh0, gdh = make_layer_case(size, dtype, layer_class=layer_class)
                fns = {"ours": numpy_pass(layer_class(*gated_weights), gx, gh0, gdh)}
                if torch is not None:
                    fns["torch"] = torch_pass(torch, layer_class(*gated_weights), gx, gh0, gdh)
                    assert_same(fns["ours"](), fns["torch"](), dtype, f"torch.nn.{cell}")
                g = timed(fns, repeats)
                gated_rows.append(f"| {cell} | {np.dtype(dtype).name} | {size} | {g['ours'][0]:.2f} / {g['ours'][1]:.2f} "
                                  f"| {fmt_ms(g.get('torch'), 2)} | {fmt_ratio(g['ours'], g.get('torch'))} |")
            X, y = make_epoch_data(size)
            for optimizer in ("sgd", "adam"):
                epochs = {"ours": numpy_epoch(rs.ScratchSimpleRNNClassifier, size, dtype, optimizer, X, y),
                          "book": numpy_epoch(TextbookClassifier, size, dtype, optimizer, X, y)}
                if torch is not None:
                    epochs["torch"] = torch_epoch(torch, size, dtype, optimizer, X, y)
                e = timed(epochs, repeats)
                e_ours, e_book, e_torch = e["ours"], e["book"], e.get("torch")
                epoch_rows.append(
                    f"| {np.dtype(dtype).name} | {size} | {optimizer} | {e_ours[0]:.1f} / {e_ours[1]:.1f} "
                    f"| {fmt_ms(e_book, 1)} | {fmt_ratio(e_ours, e_book)} "
                    f"| {fmt_ms(e_torch, 1)} | {fmt_ratio(e_ours, e_torch)} |")
            print(f"  done {np.dtype(dtype).name} {size}", flush=True)

    print("\n## Layer: forward + backward, size = (batch_size, n_sequences, n_features, n_nodes)\n")
    print("| dtype | size | ours ms (min / median) | GFLOP/s | of GEMM peak | textbook ms | ours / textbook "
          "| PyTorch ms | ours / PyTorch | peak extra MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(layer_rows))
    print(f"\n## Classifier: one training epoch ({EPOCH_BATCHES} batches, model built from scratch)\n")
    print("| dtype | size | optimizer | ours ms (min / median) | textbook ms | ours / textbook | PyTorch ms "
          "| ours / PyTorch |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(epoch_rows))
    print("\n## Masks: forward + backward with lengths (ratios to the unmasked pass, < 1: cheaper)\n")
    print("all T: every length equal to n_sequences; ragged: lengths uniform in T/2..T, padded to T and "
          "masked; half: lengths uniform in 0.4 T..0.6 T, the batch padded to its own longest\n")
    print("| dtype | size | no lengths ms | all T ms | ratio | ragged ms | ratio | half ms | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(mask_rows))
    print("\n## Gated layers (chapter 2): forward + backward against torch.nn.LSTM / torch.nn.GRU\n")
    print("| cell | dtype | size | ours ms (min / median) | PyTorch ms | ours / PyTorch |")
    print("|---|---|---|---|---|---|")
    print("\n".join(gated_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
