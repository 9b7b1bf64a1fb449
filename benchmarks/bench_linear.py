"""Benchmark: chapter 5's minGRU layer against PyTorch, on the CPU, and where its time goes.

    python benchmarks/bench_linear.py                   # the tables (a few minutes on 2 cores)
    python benchmarks/bench_linear.py --quick           # a seconds-long smoke run
    python benchmarks/bench_linear.py --temporal-order  # chapter 5's 1,000-step runs in full

What is timed: one forward + backward pass, float32, many-to-many (dL/dh at every step), of
  * ours: linear_rnn_scratch.MinGRU (run_scan's rule picks the scan; here the loop);
  * torch.nn.GRU (batch_first), the layer a user would otherwise pick;
  * PyTorch minGRU, log-space: the form of the paper's appendix and of its popular PyTorch
    code (lucidrains/minGRU-pytorch: a positive candidate g(x), log-coefficients through
    softplus, the scan as cumsum and logcumsumexp), autograd for the backward;
  * PyTorch minGRU, a plain loop over steps (torch_twins.torch_mingru), autograd.
The log-space model's candidate is g(x), ours is x W + b: the timing compares the work of the
two forms of one recurrence, not one set of numbers. (The plain loop computes ours; the
optional test suite checks it to 1e-9.)

Protocol (bench_rnn.py's): in each round every implementation gets its turn — a settle pause
so that the last library's worker threads stop spinning, one untimed call, then timed calls —
so a drifting load on a shared machine hits all of them; medians over rounds, and the median
and range of the per-round ratios. PyTorch runs with as many threads as OpenBLAS.

Where our time goes: the same pass's parts timed alone, on the same arrays — the three
matrix products (x W forward; x^T delta and delta W^T backward), the two scans (run_scan
forward and reverse), and the rest (the elementwise passes: gates, omega_t, the deltas, the
copies) as the difference. The products are the floor NumPy cannot go under.
"""
import argparse
import os
import sys
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linear_rnn_scratch as lr  # noqa: E402
import breakdown  # noqa: E402
from bench_rnn import blas_description, fmt_round_ratios, load_torch  # noqa: E402
from gated_rnn_scratch import SEEDS  # noqa: E402
from lesson_support import format_table  # noqa: E402
from torch_twins import torch_mingru  # noqa: E402

SIZES = [(32, 1024, 64, 128), (16, 4096, 64, 128)]      # (B, T, F, H)
QUICK_SIZES = [(4, 64, 8, 16)]
SWEEP = (64, 256, 1024, 4096)        # lengths of the sweep, at chapter 5's batch 16, 32, 64
QUICK_SWEEP = (16, 64)


def interleaved(fns, rounds):
    """{name: [ms of one call, per round]}: breakdown.py's interleaved rounds (a settle
    pause, one untimed call, then the timed call), one timed call per turn."""
    return breakdown.interleaved(fns, rounds, calls_per_round=1)


def ours(size, seed=0):
    """A float32 MinGRU at its starting weights and a batch: (pass, layer, x, dh)."""
    B, T, F, H = size
    rng = np.random.default_rng(seed)
    layer = lr.make_layer("mingru", F, H, rng, np.float32)
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    dh = rng.normal(size=(B, T, H)).astype(np.float32)

    def run():
        layer.forward(x)
        return layer.backward(dh)
    return run, layer, x, dh


def torch_gru(torch, size, seed=0):
    B, T, F, H = size
    gen = torch.Generator().manual_seed(seed)
    module = torch.nn.GRU(F, H, batch_first=True)
    x = torch.randn(B, T, F, generator=gen).requires_grad_(True)
    dh = torch.randn(B, T, H, generator=gen)

    def run():
        module.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = module(x)
        out.backward(dh)
    return run


def torch_log_space_mingru(torch, size, seed=0):
    """The log-space minGRU of lucidrains/minGRU-pytorch (its minGRU.forward for a whole
    sequence from zeros, without the optional output projection), forward + backward."""
    F_ = torch.nn.functional
    B, T, F, H = size
    gen = torch.Generator().manual_seed(seed)
    to_hidden_and_gate = torch.nn.Linear(F, 2 * H, bias=False)
    x = torch.randn(B, T, F, generator=gen).requires_grad_(True)
    dh = torch.randn(B, T, H, generator=gen)

    def log_g(v):
        return torch.where(v >= 0, (F_.relu(v) + 0.5).log(), -F_.softplus(-v))

    def run():
        to_hidden_and_gate.zero_grad(set_to_none=True)
        x.grad = None
        hidden, gate = to_hidden_and_gate(x).chunk(2, dim=-1)
        log_coeffs = -F_.softplus(gate)                   # log(1 - z)
        log_values = -F_.softplus(-gate) + log_g(hidden)  # log z + log g(h~)
        a_star = log_coeffs.cumsum(dim=1)
        out = (a_star + (log_values - a_star).logcumsumexp(dim=1)).exp()
        out.backward(dh)
    return run


def torch_loop_mingru(torch, layer, x, dh):
    """torch_twins.torch_mingru (our minGRU, a plain loop over steps), forward + backward."""
    step, params = torch_mingru(torch, layer)
    tx = torch.from_numpy(x).requires_grad_(True)
    tdh = torch.from_numpy(dh)
    h0 = torch.zeros(x.shape[0], layer.n_nodes)

    def run():
        for p in (*params.values(), tx):
            p.grad = None
        hs, _ = step(tx, h0)
        hs.backward(tdh)
    return run


def parts(layer, x, dh):
    """Our pass's parts, each a function doing just that on the pass's arrays: the three
    matrix products and the two scans."""
    B, T, F = x.shape
    H = layer.n_nodes
    x2 = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(-1, F)
    d_gates = np.ones((T * B, 2 * H), np.float32)
    layer.forward(x)
    decay = np.ascontiguousarray(layer.decays.transpose(1, 0, 2))
    inputs = np.ascontiguousarray(dh.transpose(1, 0, 2))
    return {"products": lambda: (x2 @ layer.w_x, x2.T @ d_gates, d_gates @ layer.w_x.T),
            "scans": lambda: (lr.run_scan(decay, inputs),
                              lr.run_scan(decay, inputs, reverse=True))}


def speed_table(torch, sizes, rounds):
    print("Forward + backward, float32, many-to-many: median ms over rounds, and our time over")
    print("each other's (median and range of the per-round ratios)")
    header = ["(B, T, F, H)", "ours", "torch GRU", "ours / GRU", "log-space", "ours / log",
              "torch loop", "ours / loop"]
    rows = []
    for size in sizes:
        run, layer, x, dh = ours(size)
        fns = {"ours": run}
        if torch is not None:
            fns.update(gru=torch_gru(torch, size), log=torch_log_space_mingru(torch, size),
                       loop=torch_loop_mingru(torch, layer, x, dh))
        times = interleaved(fns, rounds)
        row = [str(size), f"{np.median(times['ours']):.1f}"]
        for name in ("gru", "log", "loop"):
            if name in times:
                ratios = [a / b for a, b in zip(times["ours"], times[name])]
                row += [f"{np.median(times[name]):.1f}", fmt_round_ratios(ratios)]
            else:
                row += ["n/a", "n/a"]
        rows.append(row)
    print(format_table(header, rows))


def breakdown_table(sizes, rounds):
    print("Where our time goes (median ms over rounds; the rest = the pass minus the parts):")
    rows = []
    for size in sizes:
        run, layer, x, dh = ours(size)
        fns = {"pass": run, **parts(layer, x, dh)}
        times = {k: float(np.median(v)) for k, v in interleaved(fns, rounds).items()}
        rest = times["pass"] - times["products"] - times["scans"]
        rows.append([str(size), f"{times['pass']:.1f}", f"{times['products']:.1f}",
                     f"{times['scans']:.1f}", f"{rest:.1f}",
                     f"{times['products'] / times['pass']:.2f}"])
    print(format_table(["(B, T, F, H)", "pass", "3 products", "2 scans", "the rest",
                           "products / pass"], rows))


def sweep_table(torch, lengths, rounds, batch_size=16, n_features=32, n_nodes=64):
    print(f"Against T at chapter 5's shape (batch {batch_size}, {n_features} inputs, "
          f"{n_nodes} nodes), median ms:")
    rows = []
    for T in lengths:
        size = (batch_size, T, n_features, n_nodes)
        run, layer, x, dh = ours(size)
        doubling = lr.MinGRU(layer.w_x, layer.b)
        doubling.scan_method = "doubling"
        fns = {"loop": run, "doubling": lambda: (doubling.forward(x), doubling.backward(dh))}
        if torch is not None:
            fns.update(gru=torch_gru(torch, size), log=torch_log_space_mingru(torch, size))
        times = {k: float(np.median(v)) for k, v in interleaved(fns, rounds).items()}
        rows.append([f"{T}", *(f"{times[k]:.1f}" if k in times else "n/a"
                               for k in ("loop", "doubling", "gru", "log")),
                     f"{times['loop'] / times['gru']:.2f}" if "gru" in times else "n/a"])
    print(format_table(["T", "ours, loop", "ours, doubling", "torch GRU",
                           "torch log-space minGRU", "loop / GRU"], rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke run")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--temporal-order", action="store_true",
                        help="instead: chapter 5's 1,000-step runs without the GRU's cap")
    args = parser.parse_args(argv)
    if args.temporal_order:
        rows = lr.temporal_order_runs("gru", 1000, seeds=SEEDS[:1])
        print("chapter 2's GRU at 1,000 steps, seed 0, no time cap (15 epochs at most):")
        print(lr.runs_table(rows))
        return 0
    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    torch, note = load_torch(threads)
    print(f"NumPy {np.__version__} ({blas_description()}); {note}; {os.cpu_count()} cores")
    rounds = 1 if args.quick else args.rounds
    speed_table(torch, QUICK_SIZES if args.quick else SIZES, rounds)
    breakdown_table(QUICK_SIZES if args.quick else SIZES, rounds)
    sweep_table(torch, QUICK_SWEEP if args.quick else SWEEP, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
