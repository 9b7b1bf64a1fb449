"""The PyTorch twins of the lessons' layers and models: the same weights in torch.nn
modules.

PyTorch is never a requirement: the tests that use these are skipped without it (each
says so), and the benchmarks compare with PyTorch only where it imports. Tests and
benchmarks both import this one module. Importing it does not import torch: every function
that builds or runs torch modules takes the imported torch module as its first argument
(torch_gradients only reads the .grad of modules already built).
"""
import numpy as np

import gated_rnn_scratch as gs


def torch_layer(torch, layer, *, cells=None):
    """The PyTorch twin of layer: the function of this module that its cell's entry in
    cells names (Cell.twin; cells None: chapter 2's CELLS), called with the layer. The
    entry is the one whose class is the layer's, or derives from it (chapter 2's
    LSTM_BPTT is FastLSTM's base). Returns (module, the names of our biases: ["b"] or
    ["b_x", "b_h"])."""
    cells = gs.CELLS if cells is None else cells
    twins = [cell.twin for cell in cells.values() if issubclass(cell.cls, type(layer))]
    if not twins or twins[0] is None:
        raise ValueError(f"{type(layer).__name__} has no PyTorch twin in torch_twins "
                         f"(its cell's twin is {twins[0] if twins else 'not registered'}).")
    return globals()[twins[0]](torch, layer)


def torch_rnn(torch, layer):
    """torch.nn.RNN holding a SimpleRNN_BPTT's weights (see torch_module)."""
    return torch_module(torch, layer, "RNN")


def torch_lstm(torch, layer):
    """torch.nn.LSTM holding an LSTM_BPTT's weights (see torch_module)."""
    return torch_module(torch, layer, "LSTM")


def torch_gru(torch, layer):
    """torch.nn.GRU holding a GRU_BPTT's weights (see torch_module)."""
    return torch_module(torch, layer, "GRU")


def torch_module(torch, layer, kind):
    """torch.nn.<kind> (RNN, LSTM or GRU; batch_first, in the layer's dtype) holding the
    layer's weights. Returns (module, the names of our biases: ["b"] or ["b_x",
    "b_h"])."""
    params = layer.parameters()  # w_x, w_h, then one bias (b) or two (b_x, b_h)
    bias_names = list(params)[2:]
    module = getattr(torch.nn, kind)(layer.n_features, layer.n_nodes, batch_first=True)
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
    """The language model's mean cross-entropy on one chunk, through the torch layer
    (torch_layer) and linear output (torch_twin) in dtype tdtype: x_idx, y_idx (n_streams,
    n_steps) ints over n_vocab symbols, state the torch state carried in (None: zeros).
    Returns (loss, the state after the chunk)."""
    x = torch.nn.functional.one_hot(torch.from_numpy(x_idx), n_vocab).to(tdtype)
    out, new_state = layer(x) if state is None else layer(x, state)
    loss = torch.nn.functional.cross_entropy(linear(out).reshape(-1, n_vocab),
                                             torch.from_numpy(y_idx).reshape(-1))
    return loss, new_state


def torch_seq2seq(torch, model):
    """A PyTorch twin of a fitted ScratchSeq2Seq (chapter 4), holding copies of its
    weights: torch_layer for each encoder layer and direction and for the decoder, plain
    tensors for the embeddings, the bridge, the additive attention and the output layer.

    The encoder reads packed sequences (pack_padded_sequence), which stop each source at
    its own length as our `lengths` do; the backward reader gets each source reversed
    within its length, and its states are reversed back. The decoder runs one step per
    call from the previous step's state, with teacher forcing.
    Returns a function of (sources, targets) giving the token-mean loss (a float) and
    every gradient as a numpy array under model.parameters()' names (numpy=False: only
    the loss; the gradients stay in the tensors, for an optimizer). The indices are made
    here from source_vocab_ and target_vocab_ (its last two symbols <eos>, <bos>). The
    function's attribute `parameters` lists the twin's tensors, for an optimizer.
    """
    nn_utils = torch.nn.utils.rnn
    weights = model.parameters()
    plain = {name: torch.tensor(weights[name], requires_grad=True)
             for name in ("src_embedding", "tgt_embedding", "bridge_w", "bridge_b", "w_y",
                          "b_y", "att_w_q", "att_w_k", "att_v") if name in weights}
    encoder = [[(f"enc{k}_{('fw', 'bw')[d]}_", *torch_layer(torch, layer))
                for d, layer in enumerate(pair)] for k, pair in enumerate(model.encoder)]
    decoder, decoder_biases = torch_layer(torch, model.decoder)
    is_lstm = type(decoder).__name__ == "LSTM"
    source_index = {s: i for i, s in enumerate(model.source_vocab_)}
    target_index = {s: i for i, s in enumerate(model.target_vocab_)}
    eos, bos = len(model.target_vocab_) - 2, len(model.target_vocab_) - 1

    def padded(rows):
        width = max(len(r) for r in rows)
        return torch.tensor([list(r) + [0] * (width - len(r)) for r in rows])

    def reverse_within(x, lengths):
        positions = torch.arange(x.shape[1])[None, :]
        source = torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions,
                             positions)
        return x[torch.arange(x.shape[0])[:, None], source]

    def module_gradients(prefix, module, bias_names):
        grads = {prefix + "w_x": module.weight_ih_l0.grad.T,
                 prefix + "w_h": module.weight_hh_l0.grad.T,
                 prefix + bias_names[0]: module.bias_ih_l0.grad}
        if len(bias_names) == 2:
            grads[prefix + bias_names[1]] = module.bias_hh_l0.grad
        return grads          # a single b: bias_hh_l0 stays 0, its gradient is bias_ih_l0's

    def run(sources, targets, numpy=True):
        modules = [m for pair in encoder for _, m, _ in pair] + [decoder]
        for module in modules:
            module.zero_grad(set_to_none=True)
        for tensor in plain.values():
            tensor.grad = None
        lengths = torch.tensor([len(s) for s in sources])
        src = padded([[source_index[s] for s in source] for source in sources])
        n_positions = src.shape[1]
        x = plain["src_embedding"][src]
        for pair in encoder:
            states, finals = [], []
            for direction, (_, module, _) in enumerate(pair):
                read = x if direction == 0 else reverse_within(x, lengths)
                packed = nn_utils.pack_padded_sequence(read, lengths, batch_first=True,
                                                       enforce_sorted=False)
                out, h_n = module(packed)
                out, _ = nn_utils.pad_packed_sequence(out, batch_first=True,
                                                      total_length=n_positions)
                states.append(out if direction == 0 else reverse_within(out, lengths))
                finals.append((h_n[0] if is_lstm else h_n)[0])  # after the last real step
            x = torch.cat(states, dim=-1)
        memory = x
        s0 = torch.tanh(torch.cat(finals, dim=-1) @ plain["bridge_w"] + plain["bridge_b"])
        state = (s0[None], torch.zeros_like(s0)[None]) if is_lstm else s0[None]
        if model.attention:
            keys = memory @ plain["att_w_k"]
            pad = torch.arange(n_positions)[None, :] >= lengths[:, None]
        y_out = [[target_index[s] for s in target] + [eos] for target in targets]
        y_in = padded([[bos] + row[:-1] for row in y_out])
        logits = []
        for t in range(y_in.shape[1]):
            step_input = plain["tgt_embedding"][y_in[:, t]]
            h_prev = (state[0] if is_lstm else state)[0]
            if model.attention:
                u = torch.tanh(keys + (h_prev @ plain["att_w_q"])[:, None, :])
                alpha = torch.softmax((u @ plain["att_v"]).masked_fill(pad, -float("inf")),
                                      dim=1)
                context = (alpha[:, None, :] @ memory)[:, 0]
                step_input = torch.cat([step_input, context], dim=1)
            out, state = decoder(step_input[:, None, :], state)
            out = out[:, 0]
            if model.attention:
                out = torch.cat([out, context], dim=1)
            logits.append(out @ plain["w_y"] + plain["b_y"])
        y_out = padded(y_out)
        real = torch.arange(y_out.shape[1])[None, :] < torch.tensor(
            [len(t) + 1 for t in targets])[:, None]
        z = torch.stack(logits, dim=1)                      # (batch_size, U, V_y - 1)
        loss = torch.nn.functional.cross_entropy(z[real], y_out[real])  # token mean
        loss.backward()
        if not numpy:
            return loss.item()
        grads = {name: tensor.grad for name, tensor in plain.items()}
        for pair in encoder:
            for prefix, module, bias_names in pair:
                grads.update(module_gradients(prefix, module, bias_names))
        grads.update(module_gradients("dec_", decoder, decoder_biases))
        return loss.item(), {name: grads[name].numpy() for name in weights}

    run.parameters = list(plain.values()) + [
        p for pair in encoder for _, module, _ in pair for p in module.parameters()
    ] + list(decoder.parameters())
    return run


def torch_mingru(torch, layer):
    """chapter 5's MinGRU or MinLSTM as a plain PyTorch loop (autograd does the backward):
    a function run(x, h0, lengths=None) -> (hs, h_T) on tensors, and the parameters
    {"w_x", "b"} as leaf tensors holding the layer's weights."""
    params = {name: torch.from_numpy(value.copy()).requires_grad_(True)
              for name, value in layer.parameters().items()}
    n_blocks, H = layer.n_blocks, layer.n_nodes

    def run(x, h0, lengths=None):
        h, hs = h0, []
        for t in range(x.shape[1]):
            a = x[:, t] @ params["w_x"] + params["b"]
            if n_blocks == 2:                         # minGRU: z kept, n~ written
                kept, n = torch.sigmoid(a[:, :H]), a[:, H:]
            else:                                     # minLSTM: i, f, n~
                i, f, n = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H:2 * H]), a[:, 2 * H:]
                kept = f / (f + i)
            new = kept * h + (1 - kept) * n
            if lengths is not None:                   # padded steps keep the state, read 0
                real = torch.from_numpy(t < lengths)[:, None]
                h = torch.where(real, new, h)
                hs.append(torch.where(real, h, torch.zeros_like(h)))
            else:
                h = new
                hs.append(h)
        return torch.stack(hs, dim=1), h
    return run, params


torch_minlstm = torch_mingru   # one loop serves both (the layer says which gates it has)


def torch_min_pass(torch, layer, x, states, dh, lengths=None):
    """Forward and backward (L = sum(hs * dh)) of the layer's twin from states (a tuple,
    one initial state per layer.state_names): torch_mingru for a MinGRU or MinLSTM,
    torch_mingru_stack for a MinGRUStack. Returns hs and the gradients under our names
    (dw_x, db, dx, dh0; a stack's dw_x1, ..., dh10, ...) as numpy arrays."""
    stacked = len(layer.state_names) > 1
    run, params = (torch_mingru_stack if stacked else torch_mingru)(torch, layer)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    tstates = [torch.from_numpy(s.copy()).requires_grad_(True) for s in states]
    hs, _ = run(tx, tstates if stacked else tstates[0], lengths)
    hs.backward(torch.from_numpy(dh))
    grads = {"d" + name: p.grad for name, p in params.items()}
    grads["dx"] = tx.grad
    grads.update((f"d{name}0", s.grad) for name, s in zip(layer.state_names, tstates))
    return hs.detach().numpy(), {k: v.numpy() for k, v in grads.items()}


def torch_mingru_stack(torch, layer):
    """chapter 5's MinGRUStack as torch_mingru's loops, one per layer, with tanh between:
    a function run(x, states, lengths=None) -> (hs, [h_T of each layer]) on tensors,
    states one initial state per layer, and the parameters {"w_x1", "b1", ...} as leaf
    tensors holding the stack's weights."""
    twins = [torch_mingru(torch, sub) for sub in layer.layers]
    params = {f"{name}{l}": p for l, (_, sub) in enumerate(twins, start=1)
              for name, p in sub.items()}

    def run(x, states, lengths=None):
        finals = []
        for (run_layer, _), h0 in zip(twins, states):
            if finals:
                x = torch.tanh(hs)
            hs, h_T = run_layer(x, h0, lengths)
            finals.append(h_T)
        return hs, finals
    return run, params
