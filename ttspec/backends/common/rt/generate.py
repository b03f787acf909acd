"""Generation on the host: prefill each prompt, then decode every user one token per step, greedy
or sampled the way HF transformers samples (temperature, then top-k, then top-p)."""

import torch


def generate(model, prompts: list[list[int]], max_new_tokens: int, temperature: float = 0.0, top_k: int | None = None,
             top_p: float | None = None, seed: int = 0, stop_tokens=(), on_token=None) -> list[list[int]]:
    """New token ids for each prompt (lists of ids, one per user; at most the KV cache's batch).

    Each prompt is prefilled into its user's cache; then every user decodes one token per step at its
    own position, until it has max_new_tokens or produces one of stop_tokens (which it keeps). Greedy
    when temperature is 0 (a model with decode_greedy chooses on its device and returns ids and each user's
    largest logit, not the logits); otherwise drawn from softmax(logits / temperature), kept to the top_k
    most likely tokens and to the smallest set whose probability reaches top_p, by a generator seeded with
    `seed`. on_token(user, token) sees each token as it is chosen. Logits that are NaN or infinite raise
    NonFiniteLogits naming the step, the user and the position: nothing is sampled from them.
    """
    if any(len(prompt) == 0 for prompt in prompts):
        raise ValueError("every prompt needs at least one token")
    generator = torch.Generator().manual_seed(seed)
    stop = set(stop_tokens)
    new = [[] for _ in prompts]
    done = [max_new_tokens <= 0 for _ in prompts]
    logits = torch.stack([model.prefill(torch.tensor(prompt), user)[-1] for user, prompt in enumerate(prompts)])
    positions = [len(prompt) - 1 for prompt in prompts]
    step = "the prefill"
    on_device = temperature == 0 and hasattr(model, "decode_greedy")  # the device picks; the host reads ids
    chosen = None
    while True:
        if chosen is None:
            check_finite(logits, step, positions)
            chosen = sample(logits, temperature, top_k, top_p, generator)
        for user, token in enumerate(chosen.tolist()):
            if not done[user]:
                new[user].append(token)
                if on_token is not None:
                    on_token(user, token)
                done[user] = token in stop or len(new[user]) == max_new_tokens
        if all(done):
            return new
        # a finished user repeats its last step (same token, same position) until every user is done
        tokens = torch.tensor([ids[-1] for ids in new])
        positions = torch.tensor([len(prompts[user]) + len(ids) - 1 for user, ids in enumerate(new)])
        step = f"decode step {len(max(new, key=len))}"
        if on_device:
            chosen, peaks = model.decode_greedy(tokens, positions)
            check_finite(peaks[:, None], step, positions, "largest logit")
        else:
            logits, chosen = model.decode(tokens, positions), None


class NonFiniteLogits(ValueError):
    """The program gave NaN or infinite logits: no token can be chosen from them (an argmax over NaN is 0)."""


def check_finite(logits: torch.Tensor, step: str = "", positions=None, peak: str = "") -> None:
    """Raise NonFiniteLogits when a row of logits [users, vocab] holds NaN or an infinity (`peak`: the rows
    hold only each user's largest logit, so named, as a greedy step on the device gives them)."""
    bad = ~torch.isfinite(logits)
    if bad.any():
        user = int(bad.any(-1).nonzero()[0])
        kind = "NaN" if logits[user].isnan().any() else "infinite"
        at = f" at position {int(positions[user])}" if positions is not None else ""
        count = f"its {peak}" if peak else f"{int(bad[user].sum())} of {logits.shape[-1]}"
        raise NonFiniteLogits(f"{step}{': ' if step else ''}the logits of user {user}{at} are {kind} ({count})")


def sample(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of logits [users, vocab]: the argmax when temperature is 0, else a draw from
    sampling_probabilities(logits, temperature, top_k, top_p)."""
    if temperature == 0:
        check_finite(logits)
        return logits.float().cpu().argmax(-1)
    probabilities = sampling_probabilities(logits, temperature, top_k, top_p)
    return torch.multinomial(probabilities, 1, generator=generator)[:, 0]


def sampling_probabilities(logits: torch.Tensor, temperature: float, top_k: int | None = None,
                           top_p: float | None = None) -> torch.Tensor:
    """What `sample` draws from, [users, vocab] float64: softmax(logits / temperature) kept to the top_k most
    likely tokens, then to the smallest set whose probability reaches top_p, renormalised. The order is HF
    transformers' (temperature, top-k, top-p): top-p's set depends on the temperature and on what top-k left.

    Each row is shifted by its maximum before the division, in float64: the largest logit becomes 0 / temperature
    = 0, so no temperature > 0 gives an infinity or a NaN (a tiny one leaves the argmax, ties shared: greedy), and
    the most likely token always stays in the nucleus, however small top_p is."""
    check_finite(logits)
    logits = logits.double().cpu()
    scaled = (logits - logits.max(-1, keepdim=True).values) / temperature
    return keep_top_p(keep_top_k(scaled, top_k), top_p).softmax(-1)


def keep_top_k(scaled: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """Logits [users, vocab] with all but the top_k largest of each row at -inf (ties with the k-th stay, as in HF)."""
    if top_k is None:
        return scaled
    kth = scaled.topk(min(top_k, scaled.shape[-1]), dim=-1).values[:, -1:]
    return scaled.masked_fill(scaled < kth, float("-inf"))


def keep_top_p(scaled: torch.Tensor, top_p: float | None) -> torch.Tensor:
    """Logits [users, vocab] with each row kept to its nucleus: the most likely tokens until their probability
    reaches top_p (the first always kept), the rest at -inf."""
    if top_p is None:
        return scaled
    ordered, order = scaled.sort(dim=-1, descending=True)
    probs = ordered.softmax(-1)
    above = torch.cat([torch.zeros_like(probs[:, :1]), probs.cumsum(-1)[:, :-1]], -1)  # the mass before each
    outside = above >= top_p  # the tokens before it already reach top_p
    outside[:, 0] = False
    return scaled.scatter(-1, order, ordered.masked_fill(outside, float("-inf")))
