"""A toy cell that the course's registry has never seen, for the tests that adding a cell is one
class plus one registry entry: no w_h, and a state of shape (batch_size, n_nodes, 2).

Two leaky integrators per node, with fixed decays a = (0.5, 0.9), read the same input:

    u_t = tanh(x_t W_x + b),   s_t = a * s_{t-1} + u_t (on both),   h_t = s_t[..., 0] + s_t[..., 1].

Its state s is not its output h (state_is_output is False). Written plainly, one step at a time:
speed is not its point. Padded steps carry s and read 0 in hs, as the course's layers do.
"""
import functools
from typing import NamedTuple, Optional

import numpy as np

import lesson_support as support
import rnn_scratch as rs

DECAYS = np.array([0.5, 0.9])


class ToyCache(NamedTuple):
    x_tm: np.ndarray            # (T, B, n_features)
    s0: np.ndarray              # (B, H, 2)
    u: np.ndarray               # (T, B, H), tanh(x_t W_x + b)
    s: np.ndarray               # (T, B, H, 2), the states s_t
    h: np.ndarray               # (T, B, H), the outputs h_t (0 at padded steps)
    pad: Optional[np.ndarray]   # (T, B) bool, or None


class TwoRateLayer(rs.RecurrentLayer):
    parameter_names = ("w_x", "b")
    state_names = ("s",)
    state_is_output = False

    def __init__(self, w_x, b):
        self.w_x = support.as_float_array(w_x, "w_x")
        self.b = support.as_float_array(b, "b").astype(self.w_x.dtype, copy=False)
        self._cache = None

    @property
    def n_nodes(self):
        return self.w_x.shape[1]

    def state_shape(self, name, batch_size):
        return (batch_size, self.n_nodes, 2)

    def forward(self, x, s0=None, *, lengths=None):
        x, s0 = support.check_layer_input(self, x, s0)
        pad = rs.padding_mask(lengths, *x.shape[:2])
        self._cache = cache = self._run(np.ascontiguousarray(x.transpose(1, 0, 2)), (s0,), pad)
        self.final_state = (cache.s[-1],)
        return cache.s[-1].sum(axis=2), cache.h.transpose(1, 0, 2)

    def _run(self, x_tm, states, pad=None):
        (s0,) = states
        u = np.tanh(x_tm @ self.w_x + self.b)
        s = np.empty(u.shape + (2,), self.dtype)
        s_prev = s0
        for t in range(len(x_tm)):
            s[t] = DECAYS * s_prev + u[t][:, :, None]
            if pad is not None:
                s[t][pad[t]] = s_prev[pad[t]]
            s_prev = s[t]
        h = s.sum(axis=3)
        if pad is not None:
            h[pad] = 0
        return ToyCache(x_tm, s0, u, s, h, pad)

    def backward(self, dh, input_gradient=True, *, ds_T=None, cache=None):
        x_tm, s0, u, s, h, pad = cache = self._last_forward(cache)
        n_steps, batch_size, n_nodes = u.shape
        dh_T, dh_tm = self._direct_gradients(dh, cache)
        g = support.check_state(self, ds_T, "ds_T", batch_size).copy()
        if dh_tm is None:
            g += dh_T[:, :, None]
        d_a = np.zeros_like(u)
        for t in reversed(range(n_steps)):
            real = np.ones(batch_size, bool) if pad is None else ~pad[t]
            if dh_tm is not None:
                g[real] += dh_tm[t][real][:, :, None]
            d_a[t][real] = g[real].sum(axis=2) * (1 - u[t][real] ** 2)
            g[real] *= DECAYS                       # to s_{t-1}; padded rows pass straight
        dx = (d_a @ self.w_x.T).transpose(1, 0, 2) if input_gradient else None
        return {"dw_x": x_tm.reshape(-1, x_tm.shape[2]).T @ d_a.reshape(-1, n_nodes),
                "db": d_a.sum(axis=(0, 1)), "dx": dx, "ds0": g}


def init_two_rate(n_features, n_nodes, rng, dtype=np.float64):
    return TwoRateLayer(rng.normal(0, 1 / np.sqrt(n_features), (n_features, n_nodes)).astype(dtype),
                        np.zeros(n_nodes, dtype))


def random_two_rate(n_features, n_nodes, rng, dtype=np.float64):
    return TwoRateLayer(rng.normal(0, 0.6, (n_features, n_nodes)).astype(dtype),
                        rng.normal(0, 0.2, n_nodes).astype(dtype))


TOY = rs.Cell(TwoRateLayer, init_two_rate, "two-rate toy", None, random_two_rate)
