"""The PyTorch twins of the lessons' layers and models: the same weights in torch.nn
modules.

PyTorch is never a requirement: the tests that use these are skipped without it (each
says so), and the benchmarks compare with PyTorch only where it imports. Tests and
benchmarks both import this one module. Every function takes the imported torch module
as its first argument, so that importing this file does not import torch.
"""
import numpy as np

import gated_rnn_scratch as gs
import rnn_scratch as rs


def torch_layer(torch, layer):
    """torch.nn.RNN, LSTM or GRU (matching the layer's class, batch_first, in its dtype)
    holding the layer's weights. Returns (module, the names of our biases: ["b"] or
    ["b_x", "b_h"])."""
    cell = {rs.SimpleRNN_BPTT: "RNN", gs.LSTM_BPTT: "LSTM",
            gs.GRU_BPTT: "GRU"}[type(layer)]
    params = layer.parameters()  # w_x, w_h, then one bias (b) or two (b_x, b_h)
    bias_names = list(params)[2:]
    module = getattr(torch.nn, cell)(layer.n_features, layer.n_nodes, batch_first=True)
    module = module.to(getattr(torch, np.dtype(layer.dtype).name))
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(layer.w_x.T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(layer.w_h.T.copy()))
        module.bias_ih_l0.copy_(torch.from_numpy(params[bias_names[0]]))
        if len(bias_names) == 2:
            module.bias_hh_l0.copy_(torch.from_numpy(params[bias_names[1]]))
        else:                                 # our single b is bias_ih + bias_hh
            module.bias_hh_l0.zero_()
    return module, bias_names


def torch_pass(torch, layer, x, h0, dh, c0=None):
    """torch_layer(layer); returns a function doing forward + backward (L = sum(hs *
    dh)) that returns hs and the gradients under our names. c0: the LSTM's initial cell
    (None: zeros, as our forward defaults to)."""
    module, bias_names = torch_layer(torch, layer)
    cell = type(module).__name__
    tx = torch.from_numpy(x).requires_grad_(True)
    states = [torch.from_numpy(h0[None]).requires_grad_(True)]
    if cell == "LSTM":
        c0 = np.zeros_like(h0) if c0 is None else c0
        states.append(torch.from_numpy(c0[None]).requires_grad_(True))
    tdh = torch.from_numpy(dh)

    def run():
        module.zero_grad(set_to_none=True)
        for tensor in (tx, *states):
            tensor.grad = None
        out, _ = module(tx, tuple(states) if cell == "LSTM" else states[0])
        out.backward(tdh)
        grads = {"dw_x": module.weight_ih_l0.grad.T, "dw_h": module.weight_hh_l0.grad.T,
                 "d" + bias_names[0]: module.bias_ih_l0.grad,
                 "dx": tx.grad, "dh0": states[0].grad[0]}
        if len(bias_names) == 2:
            grads["d" + bias_names[1]] = module.bias_hh_l0.grad
        if cell == "LSTM":
            grads["dc0"] = states[1].grad[0]
        return out.detach().numpy(), {k: v.numpy() for k, v in grads.items()}
    return run


def torch_twin(torch, rnn, w_y, b_y):
    """torch_layer for the recurrent layer, + a torch.nn.Linear holding w_y, b_y.
    Returns (layer, linear, torch dtype)."""
    layer, _ = torch_layer(torch, rnn)
    tdtype = layer.weight_ih_l0.dtype
    linear = torch.nn.Linear(*w_y.shape, dtype=tdtype)      # (n_nodes, n_vocab)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w_y.T.copy()))
        linear.bias.copy_(torch.from_numpy(b_y))
    return layer, linear, tdtype


def torch_gradients(cell, layer, linear):
    """The .grad of a torch_twin after backward, by our parameter names (as numpy
    arrays)."""
    grads = {"w_x": layer.weight_ih_l0.grad.T, "w_h": layer.weight_hh_l0.grad.T,
             "w_y": linear.weight.grad.T, "b_y": linear.bias.grad}
    if cell == "gru":
        grads.update(b_x=layer.bias_ih_l0.grad, b_h=layer.bias_hh_l0.grad)
    else:
        grads["b"] = layer.bias_ih_l0.grad       # bias_hh_l0 stays 0: ours has one bias
    return {name: g.numpy() for name, g in grads.items()}


def torch_chunk_loss(torch, layer, linear, tdtype, n_vocab, x_idx, y_idx, state):
    x = torch.nn.functional.one_hot(torch.from_numpy(x_idx), n_vocab).to(tdtype)
    out, new_state = layer(x) if state is None else layer(x, state)
    loss = torch.nn.functional.cross_entropy(linear(out).reshape(-1, n_vocab),
                                             torch.from_numpy(y_idx).reshape(-1))
    return loss, new_state
