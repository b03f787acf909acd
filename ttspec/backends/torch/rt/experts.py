"""Mixture of experts of the PyTorch programs: top-k routing and a bank of gated expert MLPs whose
weights are [experts, ...] tensors (w1 = gate, w3 = up [E, hidden, d]; w2 = down [E, d, hidden])."""

import torch
import torch.nn.functional as F
from torch import nn

EXPERT_ACTIVATIONS = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu,
                      "gelu_tanh": lambda x: F.gelu(x, approximate="tanh")}


def topk_routing(logits, top_k, softmax="before", normalize=False):
    """Router logits [..., E] -> dense routing weights [..., E]: each token's top_k experts' weights, zero for
    the others. softmax "before": the softmax over every expert (in float32), the top k of it, renormalised to
    sum 1 with `normalize`; "after": the softmax of the top k logits. Ties: the lowest expert index first."""
    if softmax == "after":
        chosen = torch.sort(logits, dim=-1, descending=True, stable=True).indices[..., :top_k]
        weights = torch.softmax(logits.gather(-1, chosen).float(), dim=-1)
    else:
        probabilities = torch.softmax(logits.float(), dim=-1)
        chosen = torch.sort(probabilities, dim=-1, descending=True, stable=True).indices[..., :top_k]
        weights = probabilities.gather(-1, chosen)
        if normalize:
            weights = weights / weights.sum(dim=-1, keepdim=True)
    return torch.zeros_like(logits).scatter(-1, chosen, weights.to(logits.dtype))


def expert_glu(x, routing, w1, w3, w2, act="silu"):
    """sum_e routing[..., e] * w2[e] @ (act(w1[e] @ x) * (w3[e] @ x)), each expert run on the tokens that
    route to it (a nonzero weight) only."""
    flat, weights = x.reshape(-1, x.shape[-1]), routing.reshape(-1, routing.shape[-1])
    out = torch.zeros_like(flat)
    activation = EXPERT_ACTIVATIONS[act]
    for e in range(w1.shape[0]):
        tokens = weights[:, e].nonzero().squeeze(-1)
        if tokens.numel():
            h = flat[tokens]
            y = F.linear(activation(F.linear(h, w1[e])) * F.linear(h, w3[e]), w2[e])
            out.index_add_(0, tokens, y * weights[tokens, e, None])
    return out.view_as(x)


class Experts(nn.Module):
    """A bank of `experts` gated MLPs d -> hidden -> d: w1 (gate) and w3 (up) [experts, hidden, d], w2 (down)
    [experts, d, hidden]; forward(x, routing) sums them weighted by the dense routing weights."""

    def __init__(self, experts, hidden, dim, act="silu"):
        super().__init__()
        self.act = act
        self.w1 = nn.Parameter(torch.empty(experts, hidden, dim).uniform_(-dim ** -0.5, dim ** -0.5))
        self.w3 = nn.Parameter(torch.empty(experts, hidden, dim).uniform_(-dim ** -0.5, dim ** -0.5))
        self.w2 = nn.Parameter(torch.empty(experts, dim, hidden).uniform_(-hidden ** -0.5, hidden ** -0.5))

    def forward(self, x, routing):
        return expert_glu(x, routing, self.w1, self.w3, self.w2, self.act)
