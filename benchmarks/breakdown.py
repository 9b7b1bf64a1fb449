"""Where the time of one forward + backward goes, for each layer, against PyTorch's.

    python benchmarks/breakdown.py                 # float32, the four benchmark sizes
    python benchmarks/breakdown.py --dtype float64 --rounds 7
    python benchmarks/breakdown.py --quick         # a seconds-long smoke run
    python benchmarks/breakdown.py --elementwise   # ns per element of tanh, exp, ... only
    python benchmarks/breakdown.py --size 32,50,65,128 --cells lstm   # other sizes, cells

For each cell (vanilla, LSTM, GRU) and size (batch_size, n_sequences, n_features, n_nodes),
with dL/dh at every step (as bench_rnn.py times it):

  ours       the lesson's layer, forward + backward (all gradients);
  rec GEMMs  the recurrent products alone, with the layer's shapes and out= buffers: T of
             h_{t-1} W_h forward and T of d_t W_h^T backward — what no reordering removes;
  big GEMMs  the products over all T * batch_size rows alone: x W_x forward; dW_x, dx and
             dW_h backward;
  floor      rec + big: the GEMM time, below which no NumPy layer can go;
  overhead   the layer at batch_size 1, n_features 1, n_nodes 1 and the same T: per-step
             Python and NumPy call overhead, with (almost) no arithmetic;
  rest       ours - floor - overhead: the elementwise passes over memory (clipped at 0);
  exp/tanh   of the rest, the transcendental calls alone, with the layer's shapes: per step,
             the LSTM's exp over (batch_size, 4 n_nodes) and tanh over (batch_size, n_nodes),
             the GRU's exp over (batch_size, 2 n_nodes) and tanh over (batch_size, n_nodes),
             the vanilla layer's tanh over (batch_size, n_nodes), each into an out= buffer;
  bound      what this layer would take if everything but its products and its exp/tanh
             were as cheap as NumPy can make it: floor + exp/tanh + the layer's other
             elementwise work inside its loops, STEP_WORK calls per step, each at the cost of
             the cheapest call (a multiply of (1, 1) arrays), and STEP_WORK passes per step
             over a (batch_size, n_nodes) array, each at the cost per element of a multiply of
             a contiguous array of that shape, in cache, by itself (less its call). No other
             interpreter work, and the passes outside the loops (the input-side bias, the sums
             for db, 1 - h^2 before the vanilla loop, copies) are left out: the bound errs low;
  PyTorch    its twin (torch_twins.torch_pass), with oneDNN (torch.backends.mkldnn) on, and
             off, and which kernel its forward ran (from torch.profiler).

Protocol, for a shared and noisy machine: every quantity of one row is timed in interleaved
rounds (each round times each quantity after a pause that lets the last library's worker
threads stop spinning and one untimed warm-up call, over enough calls to fill 20 ms), and
the median over the rounds is reported, with the min-max range over the rounds of ours /
PyTorch. Nothing is asserted.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gated_rnn_scratch as gs  # noqa: E402
import rnn_scratch as rs  # noqa: E402
from bench_rnn import (QUICK_SIZES, SIZES, assert_same, blas_description,  # noqa: E402
                       load_torch, make_layer_case, numpy_pass, settle)
from torch_twins import torch_pass  # noqa: E402

CELLS = gs.CELLS   # the course's registry: --cells takes its keys (rnn, lstm, gru)
# The elementwise work each layer's loops do per step besides its products and exp/tanh (no
# padding, dL/dh at every step): (NumPy calls, passes over a (batch_size, n_nodes) array; a
# call over k gate blocks makes k passes). Counted from the lessons' code on 2026-12-01:
#   rnn      forward a_t += rec; backward d *= g_t, g_t += dh                    3 calls, 3
#   lstm     forward a_t += rec (4 passes), + 1 (4), 1 / (4), c~ = 2 s - 1 (2 calls), c_t
#            (3 calls), h_t: 9 calls, 18 passes; backward gamma (5 calls), the slopes
#            (2 calls, 8 passes), the factors (5), delta (1 call, 4 passes), the cell's
#            carry, + dh: 15 calls, 24 passes                                   24 calls, 42
#   gru      forward rec += b_h (3 passes), r and z: += rec, + 1, 1 / (2 passes each),
#            q_t kept, r q_t, n +=, h_t (3 calls): 10 calls, 15 passes; backward d_n (5),
#            its copy and d_n r with its copy (3), the reset gate's (6) and the update
#            gate's (7), g_h (3):
#            24 calls, 24 passes                                                34 calls, 39
STEP_WORK = {"rnn": (3, 3), "lstm": (24, 42), "gru": (34, 39)}


def gemm_parts(w_x, w_h, x, h0):
    """(recurrent GEMMs, big GEMMs): two functions doing only the matrix products of a layer
    with these weights on this batch."""
    dtype = w_x.dtype
    batch_size, n_sequences, n_features = x.shape
    n_nodes = w_h.shape[0]
    width = w_h.shape[1]
    rec = np.empty((batch_size, width), dtype)
    back = np.empty((batch_size, n_nodes), dtype)
    d = np.ones((n_sequences, batch_size, width), dtype) * 0.1
    h = np.ones((n_sequences, batch_size, n_nodes), dtype) * 0.1
    x_2d = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(-1, n_features)
    d_2d, h_2d = d.reshape(-1, width), h.reshape(-1, n_nodes)

    def recurrent():
        h_prev = h0
        for t in range(n_sequences):
            np.matmul(h_prev, w_h, out=rec)
            h_prev = h[t]
        for t in reversed(range(n_sequences)):
            np.matmul(d[t], w_h.T, out=back)

    def big():
        x_2d @ w_x
        x_2d.T @ d_2d
        d_2d @ w_x.T
        h_2d.T @ d_2d
    return recurrent, big


def transcendental_part(cell, x, n_nodes):
    """A function making only the layer's exp and tanh calls for one forward pass."""
    batch_size, n_sequences, _ = x.shape
    exp_width = {"rnn": 0, "lstm": 4 * n_nodes, "gru": 2 * n_nodes}[cell]
    rng = np.random.default_rng(1)
    a = rng.normal(size=(n_sequences, batch_size, exp_width)).astype(x.dtype)
    c = rng.normal(size=(n_sequences, batch_size, n_nodes)).astype(x.dtype)
    a_out, c_out = np.empty_like(a[0]), np.empty_like(c[0])

    def transcendentals():
        for t in range(n_sequences):
            if exp_width:
                np.exp(a[t], out=a_out)
            np.tanh(c[t], out=c_out)
    return transcendentals


def torch_kernel(torch, run):
    """The names of the RNN kernels PyTorch's profiler saw in one forward + backward."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run()
    names = {e.key for e in prof.key_averages()}
    picked = sorted(n for n in names if any(k in n.lower() for k in ("rnn", "lstm", "gru")))
    return ", ".join(picked) or "no RNN kernel named"


def interleaved(fns, rounds, least_ms=20.0, calls_per_round=None):
    """{name: list of ms per call over rounds}. Each function is first called enough times to
    fill least_ms (k calls), or k = calls_per_round for every function when given; then each
    round gives every function its turn: a pause (bench_rnn.settle: the last library's worker
    threads stop spinning), one untimed call and k timed calls, so a round of a fast function
    is not one noisy microsecond reading."""
    def calls_to_fill(fn):
        fn()
        start = time.perf_counter()
        fn()
        once = (time.perf_counter() - start) * 1e3
        return max(1, int(np.ceil(least_ms / max(once, 1e-3))))

    calls = {name: calls_per_round or calls_to_fill(fn) for name, fn in fns.items()}
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            settle()
            fn()
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            times[name].append((time.perf_counter() - start) * 1e3 / calls[name])
    return times


def breakdown_row(torch, cell, size, dtype, rounds):
    layer_class = CELLS[cell].cls
    weights, x, h0, dh = make_layer_case(size, dtype, layer_class=layer_class)
    layer = layer_class(*weights)
    ours = numpy_pass(layer, x, h0, dh)
    tiny_size = (1, size[1], 1, 1)
    tiny_weights, tiny_x, tiny_h0, tiny_dh = make_layer_case(tiny_size, dtype,
                                                             layer_class=layer_class)
    tiny = numpy_pass(layer_class(*tiny_weights), tiny_x, tiny_h0, tiny_dh)
    recurrent, big = gemm_parts(weights[0], weights[1], x, h0)
    one, one_out = np.ones((size[0], size[3]), dtype), np.empty((size[0], size[3]), dtype)
    dot, dot_out = np.ones((1, 1), dtype), np.empty((1, 1), dtype)
    fns = {"ours": ours, "rec": recurrent, "big": big, "overhead": tiny,
           "transcendentals": transcendental_part(cell, x, size[3]),
           "pass": lambda: np.multiply(one, one, out=one_out),
           "pass_call": lambda: np.multiply(dot, dot, out=dot_out)}
    kernel = "n/a"
    if torch is not None:
        theirs = torch_pass(torch, layer, x, h0, dh)
        hs, grads = ours()
        assert_same((hs, grads), theirs(), dtype, f"PyTorch {cell} {size}")
        kernel = torch_kernel(torch, theirs)

        def without_onednn():
            with torch.backends.mkldnn.flags(enabled=False):
                return theirs()
        fns.update({"torch": theirs, "torch_no_onednn": without_onednn})
    times = interleaved(fns, rounds)
    med = {name: float(np.median(t)) for name, t in times.items()}
    floor = med["rec"] + med["big"]
    calls, passes = STEP_WORK[cell]
    one_pass = max(0.0, med["pass"] - med["pass_call"])   # ms, its elements alone
    bound = (floor + med["transcendentals"]
             + size[1] * (calls * med["pass_call"] + passes * one_pass))
    row = {"cell": cell, "size": size, "ours": med["ours"], "rec": med["rec"], "big": med["big"],
           "floor": floor, "overhead": med["overhead"],
           "rest": max(0.0, med["ours"] - floor - med["overhead"]),
           "transcendentals": med["transcendentals"], "bound": bound, "kernel": kernel}
    if torch is not None:
        ratios = np.array(times["ours"]) / np.array(times["torch"])
        row.update(torch=med["torch"], torch_off=med["torch_no_onednn"],
                   ratio=float(np.median(ratios)), ratio_min=float(ratios.min()),
                   ratio_max=float(ratios.max()), floor_ratio=floor / med["torch"],
                   bound_ratio=bound / med["torch"])
    return row


def elementwise_costs(torch, rounds, shape=(64, 512), calls=400):
    """Rows (dtype, operation, NumPy ns per element, PyTorch's): one array of `shape`, written
    in place with out=, one thread for PyTorch (NumPy's elementwise loops use one), median
    over `rounds` interleaved rounds of `calls` calls each."""
    operations = {"tanh": (np.tanh, "tanh"), "exp": (np.exp, "exp"),
                  "sigmoid": (None, "sigmoid"), "multiply": (np.multiply, "mul")}
    if torch is not None:
        torch.set_num_threads(1)
    rows = []
    for dtype in ("float32", "float64"):
        a = np.random.default_rng(0).normal(size=shape).astype(dtype)
        out = np.empty_like(a)
        fns = {}
        for name, (np_op, torch_name) in operations.items():
            args = (a, a) if name == "multiply" else (a,)
            if np_op is not None:
                fns[("numpy", name)] = lambda op=np_op, args=args: op(*args, out=out)
            if torch is not None:
                ta, t_out = torch.from_numpy(a.copy()), torch.from_numpy(out.copy())
                t_args = (ta, ta) if name == "multiply" else (ta,)
                fns[("torch", name)] = (lambda op=getattr(torch, torch_name), t_args=t_args,
                                        t_out=t_out: op(*t_args, out=t_out))
        times = interleaved(fns, rounds, calls_per_round=calls)   # ms per call
        for name in operations:
            rows.append((dtype, name, *(float(np.median(times[(lib, name)])) * 1e6 / a.size
                                        if (lib, name) in times else None
                                        for lib in ("numpy", "torch"))))
    return rows


def elementwise_table(rows):
    lines = ["| dtype | operation | NumPy ns per element | PyTorch ns per element (1 thread) |",
             "|---|---|---|---|"]
    for dtype, name, ours, theirs in rows:
        cells = ["n/a" if v is None else f"{v:.2f}" for v in (ours, theirs)]
        lines.append(f"| {dtype} | {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def table(rows):
    head = ("| cell | size | ours ms | rec GEMMs | big GEMMs | floor | overhead | rest | "
            "of it exp/tanh | ours / floor | PyTorch ms (oneDNN on / off) | "
            "ours / PyTorch (range) | floor / PyTorch | bound | bound / PyTorch |")
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        torch_part = ("n/a | n/a | n/a" if "torch" not in r else
                      f"{r['torch']:.2f} / {r['torch_off']:.2f} | {r['ratio']:.2f}× "
                      f"({r['ratio_min']:.2f}–{r['ratio_max']:.2f}) | {r['floor_ratio']:.2f}×")
        bound_ratio = "n/a" if "torch" not in r else f"{r['bound_ratio']:.2f}×"
        lines.append(f"| {CELLS[r['cell']].name} | {r['size']} | {r['ours']:.2f} | {r['rec']:.2f} | "
                     f"{r['big']:.2f} | {r['floor']:.2f} | {r['overhead']:.2f} | "
                     f"{r['rest']:.2f} | {r['transcendentals']:.2f} | "
                     f"{r['ours'] / r['floor']:.2f}× | {torch_part} | {r['bound']:.2f} | "
                     f"{bound_ratio} |")
    return "\n".join(lines)


def parse_size(text, parser):
    """'32,50,65,128' -> (32, 50, 65, 128); a clear error for anything else."""
    try:
        size = tuple(int(v) for v in text.split(","))
    except ValueError:
        size = ()
    if len(size) != 4 or min(size) < 1:
        parser.error(f"--size takes four positive integers B,T,F,H; got {text!r}")
    return size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="one small size, 2 rounds")
    parser.add_argument("--size", action="append", default=None, metavar="B,T,F,H",
                        help="batch_size,n_sequences,n_features,n_nodes; repeatable; replaces "
                             "the four benchmark sizes (the language model's: 32,50,65,128)")
    parser.add_argument("--cells", nargs="+", choices=list(CELLS), default=list(CELLS),
                        help="which layers (default: all three)")
    parser.add_argument("--elementwise", action="store_true",
                        help="only the cost per element of tanh, exp, sigmoid and multiply")
    args = parser.parse_args(argv)
    torch, note = load_torch(args.threads)
    if args.elementwise:
        rounds = 2 if args.quick else args.rounds
        print(f"# {rounds} interleaved rounds; NumPy {np.__version__}; {note} (set to 1 "
              "thread for this table)")
        print(elementwise_table(elementwise_costs(torch, rounds, calls=20 if args.quick else 400)))
        return 0
    dtype = np.dtype(args.dtype).type
    sizes, rounds = (QUICK_SIZES, 2) if args.quick else (SIZES, args.rounds)
    if args.size:
        sizes = [parse_size(text, parser) for text in args.size]
    print(f"# {args.dtype}, {rounds} interleaved rounds; NumPy {np.__version__} "
          f"({blas_description()}); {note}")
    rows = [breakdown_row(torch, cell, size, dtype, rounds)
            for cell in args.cells for size in sizes]
    print(table(rows))
    kernels = sorted({(r["cell"], r["kernel"]) for r in rows})
    for cell, kernel in kernels:
        print(f"# PyTorch's {cell} ran: {kernel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
