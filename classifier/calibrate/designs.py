"""Hand-set attention heads of the calibration models: the feature space and each role's weights.

The residual stream is a sum of named feature slots (a constant, token flags such as "is a
delimiter", a random identity vector per token, sinusoidal position codes, a position ramp),
embedded by a random orthonormal map whose columns have zero mean. Every token embedding and
every position embedding has a fixed norm (a filler slot takes up the rest), so the
pre-attention LayerNorm only rescales by a known constant and the features reach the heads
intact. Each head's query and key maps read chosen slots, so q_i . k_j (GPT-Neo does not scale
it) is a designed score: a sharp kernel in i - j from the position codes (the kernel's frequency
weights come from a small linear programme), a flag of the key token, a ramp that favours recent
keys, or the match of two token identity vectors. In the two-layer model the layer-0
previous-token head also writes what the previous token was (is it a clause boundary, a sentence
break, which token) into slots of its own, and layer-1 heads key on that.

`classifier.calibrate.planted` assembles these rows into checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from classifier.load.gpt2 import BOS_ID

N_POSITIONS = 512  # the TinyStories training context; scoring never goes past it
# The gap each sharp design gives its target (nats), which a soft head's query rows are scaled to.
SHARP_GAP = {
    "current-token": 25.0, "previous-token": 25.0, "positional": 25.0, "start-of-text": 30.0,
    "delimiter": 15.0, "word-start": 15.0, "duplicate-token": 15.0, "hold": 15.0,
}

# Sinusoidal position codes: geometric frequencies from pi/64 to pi. Low frequencies tell far
# offsets apart, high ones neighbours; geometric spacing avoids the aliasing of evenly spaced
# frequencies (a sum of cos(pi f d / F) repeats every 2F positions).
N_FREQUENCIES = 16
# Identity vectors per token (random unit vectors): matches score 1, other pairs ~N(0, 1/32).
TOKEN_ID_DIMS = 32
# Logit gaps (nats) between what a head must attend to and the best competitor, worst case.
PEAK_GAP = 25.0  # positional kernels: leak <= 511 e^-25
MECHANISM_PEAK_GAP = 40.0  # the previous-token head whose output layer 1 reads must be exact
FLAG_GAP = 15.0
RAMP_SLOPE = 12.0  # nats per position: the latest flagged key wins
# The layer-1 word-start head supports words of up to this many pieces after the first (the
# trade-off is explained there); 5.5 scores 0.997 on 1,000 TinyStories (3.5: 0.95, 8.5: 0.99).
WORD_PIECES = 5.5


# ---------------------------------------------------------------------------------------------
# Feature space


class Slots:
    """Named, disjoint coordinate ranges of the feature space."""

    def __init__(self, sizes: dict[str, int]):
        self.index, start = {}, 0
        for name, size in sizes.items():
            self.index[name] = slice(start, start + size)
            start += size
        self.size = start

    def __getitem__(self, name: str) -> slice:
        return self.index[name]

    def unit(self, name: str) -> np.ndarray:
        """The basis vector of a one-dimensional slot."""
        vector = np.zeros(self.size)
        vector[self[name].start] = 1.0
        return vector

    def has(self, name: str) -> bool:
        return name in self.index


def feature_slots(n_layers: int) -> Slots:
    sizes = {
        "const": 1,  # 1 on every token: lets a query ask for a key feature regardless of itself
        "bos": 1,
        "delimiter": 1,
        "newline": 1,
        "word_start": 1,  # leading space or delimiter (newline included)
        "boundary": 1,  # delimiter, conjunction or BOS: read by the previous-token head's values
        "sentence_break": 1,  # BOS, newline, lone quote, sentence end: likewise
        "word_break": 1,  # BOS, newline, glue: the next piece starts a word. Likewise
        "capital": 1,  # capitalised word start (any)
        "lone_quote": 1,  # a lone opening quote mark (` "`): most quotations open with one
        "token_id": TOKEN_ID_DIMS,
        "token_fill": 1,
        "sinusoid": 2 * N_FREQUENCIES,
        "ramp": 1,  # j / (N_POSITIONS - 1)
        "position_fill": 1,
    }
    if n_layers > 1:  # written by the layer-0 previous-token head
        sizes.update({
            "prev_boundary": 1, "prev_sentence_break": 1, "prev_word_break": 1, "prev_token_id": TOKEN_ID_DIMS,
        })
    return Slots(sizes)


def _frequencies() -> np.ndarray:
    return np.pi * np.geomspace(1 / 64, 1, N_FREQUENCIES)


def token_features(slots: Slots, vocab, rng: np.random.Generator, norm2: float) -> np.ndarray:
    """(vocab, K) features of every token, each of squared norm `norm2`."""
    size = len(vocab.texts)
    capital = vocab.capitalised & vocab.leading_space
    bos = np.arange(size) == BOS_ID
    features = np.zeros((size, slots.size))
    features[:, slots["const"].start] = 1.0
    features[:, slots["bos"].start] = bos
    features[:, slots["delimiter"].start] = vocab.delimiter & ~bos
    features[:, slots["newline"].start] = vocab.newline
    features[:, slots["word_start"].start] = (vocab.leading_space | vocab.delimiter) & ~vocab.glue & ~bos
    # Any conjunction piece counts: "And" after a newline has no leading space but is a boundary.
    features[:, slots["boundary"].start] = vocab.delimiter | vocab.conjunction | bos
    features[:, slots["sentence_break"].start] = vocab.newline | vocab.lone_quote | vocab.sentence_end | bos
    features[:, slots["word_break"].start] = vocab.newline | vocab.glue | bos
    features[:, slots["capital"].start] = capital
    features[:, slots["lone_quote"].start] = vocab.lone_quote
    identity = rng.standard_normal((size, TOKEN_ID_DIMS))
    features[:, slots["token_id"]] = identity / np.linalg.norm(identity, axis=1, keepdims=True)
    used = (features**2).sum(1)
    features[:, slots["token_fill"].start] = np.sqrt(norm2 - used)
    return features


def position_features(slots: Slots, norm2: float) -> np.ndarray:
    """(N_POSITIONS, K) position codes, each of squared norm `norm2`."""
    position = np.arange(N_POSITIONS, dtype=np.float64)
    angles = np.outer(position, _frequencies())
    features = np.zeros((N_POSITIONS, slots.size))
    sinusoid = features[:, slots["sinusoid"]]
    sinusoid[:, 0::2], sinusoid[:, 1::2] = np.cos(angles), np.sin(angles)
    features[:, slots["sinusoid"]] = sinusoid
    features[:, slots["ramp"].start] = position / (N_POSITIONS - 1)
    used = (features**2).sum(1)
    features[:, slots["position_fill"].start] = np.sqrt(norm2 - used)
    return features


def embedding_map(rng: np.random.Generator, d_model: int, k: int) -> np.ndarray:
    """(d_model, k) orthonormal columns with zero mean: LayerNorm's centring leaves them alone."""
    gaussian = rng.standard_normal((d_model, k))
    gaussian -= gaussian.mean(0, keepdims=True)
    # torch's QR: numpy's LAPACK build can be orders of magnitude slower on some machines.
    basis, _ = torch.linalg.qr(torch.from_numpy(gaussian))
    return basis.numpy()


# ---------------------------------------------------------------------------------------------
# Position kernels: k(d) = sum_f a_f cos(w_f d) + b_f sin(w_f d) over offsets d = i - j.


def _kernel_basis(freqs: np.ndarray) -> np.ndarray:
    offsets = np.arange(N_POSITIONS, dtype=np.float64)
    angles = np.outer(offsets, freqs)
    return np.concatenate([np.cos(angles), np.sin(angles)], axis=1)  # (N, 2F): a then b


def _kernel(freqs: np.ndarray, targets, *, flat: bool, width: float = 0.0) -> np.ndarray:
    """Kernel coefficients (2F,) whose values at `targets` sit >= 1 above every other offset.

    flat=False: others <= U, targets in [U + 1, U + 1 + width]; smallest coefficients.
    flat=True (a penalty): others in [L, U] with U - L as small as possible, so that the
    penalty pushes the targets down without favouring any other offset much.
    """
    from scipy.optimize import linprog

    basis = _kernel_basis(freqs)
    n = basis.shape[1]
    is_target = np.isin(np.arange(N_POSITIONS), list(targets))
    others, hits = basis[~is_target], basis[is_target]

    def rows(coef, u=0.0, l=0.0, c=0.0):
        """A_ub rows over the variables: coefficients (n), then U, L, c (max |coefficient|)."""
        return np.concatenate([coef, np.broadcast_to(np.array([u, l, c]), (len(coef), 3))], axis=1)

    eye = np.eye(n)
    constraints = [
        (rows(others, u=-1.0), np.zeros(len(others))),  # k(other) <= U
        (rows(-hits, u=1.0), -np.ones(len(hits))),  # k(target) >= U + 1
        (rows(eye, c=-1.0), np.zeros(n)),  # |coefficient| <= c
        (rows(-eye, c=-1.0), np.zeros(n)),
    ]
    cost = np.zeros(n + 3)
    if flat:
        constraints.append((rows(-others, l=1.0), np.zeros(len(others))))  # k(other) >= L
        cost[n], cost[n + 1], cost[n + 2] = 1.0, -1.0, 1e-3  # min U - L (c keeps it bounded)
    else:
        constraints.append((rows(hits, u=-1.0), np.full(len(hits), 1.0 + width)))  # k <= U + 1 + w
        cost[n + 2] = 1.0  # min c
    result = linprog(
        cost, A_ub=np.concatenate([a for a, _ in constraints]), b_ub=np.concatenate([b for _, b in constraints]),
        bounds=[(None, None)] * (n + 2) + [(0, None)], method="highs",
    )
    if not result.success:
        raise RuntimeError(f"kernel design failed for offsets {list(targets)}: {result.message}")
    return result.x[:n]


def _kernel_rows(slots: Slots, coef: np.ndarray, scale: float, freq_index) -> tuple[np.ndarray, np.ndarray]:
    """Query and key rows (2F, K) with q_i . k_j = scale * kernel(i - j).

    cos(w(i-j)) = cos wi cos wj + sin wi sin wj; sin(w(i-j)) = sin wi cos wj - cos wi sin wj.
    """
    freq_index = list(freq_index)
    count = len(freq_index)
    a, b = coef[:count], coef[count:]
    base = slots["sinusoid"].start
    cos_dims = base + 2 * np.asarray(freq_index)
    sin_dims = cos_dims + 1
    rows = np.arange(count)
    query = np.zeros((2 * count, slots.size))
    key = np.zeros((2 * count, slots.size))
    key[2 * rows, cos_dims] = 1.0
    key[2 * rows + 1, sin_dims] = 1.0
    query[2 * rows, cos_dims] = scale * a
    query[2 * rows, sin_dims] = scale * b
    query[2 * rows + 1, cos_dims] = -scale * b
    query[2 * rows + 1, sin_dims] = scale * a
    return query, key


# ---------------------------------------------------------------------------------------------
# Heads. Each builder returns query and key rows (r, K), r <= d_head, in feature coordinates.


@dataclass
class HeadContext:
    slots: Slots
    d_head: int
    layer: int
    rng: np.random.Generator


def _flag_rows(slots: Slots, slot: str, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """One dimension: q_i . k_j = weight * feature_j (the query reads the constant)."""
    return (weight * slots.unit("const"))[None], slots.unit(slot)[None]


def _ramp_rows(slots: Slots, slope: float) -> tuple[np.ndarray, np.ndarray]:
    """One dimension: q_i . k_j = slope * j (negative slope: earlier keys win)."""
    return (slope * (N_POSITIONS - 1) * slots.unit("const"))[None], slots.unit("ramp")[None]


def _frequencies_for(rank: int) -> list[int]:
    """The highest `rank` frequencies (they tell neighbouring offsets apart)."""
    return list(range(N_FREQUENCIES - rank, N_FREQUENCIES))


def _offset_head(ctx: HeadContext, offset: int, gap: float = PEAK_GAP, spare: int = 0):
    freqs = _frequencies_for(min(N_FREQUENCIES, (ctx.d_head - spare) // 2))
    coef = _kernel(_frequencies()[freqs], [offset], flat=False)
    return _kernel_rows(ctx.slots, coef, gap, freqs)


def _penalty_rows(ctx: HeadContext, offsets, spare: int, gap: float) -> tuple[tuple[np.ndarray, np.ndarray], float]:
    """A penalty of >= `gap` on `offsets`, flat elsewhere; also returns its spread (nats)."""
    freqs = _frequencies_for(min(N_FREQUENCIES, (ctx.d_head - spare) // 2))
    coef = _kernel(_frequencies()[freqs], offsets, flat=True)
    values = _kernel_basis(_frequencies()[freqs]) @ coef
    rest = np.delete(values, list(offsets))
    return _kernel_rows(ctx.slots, -coef, gap, freqs), gap * float(rest.max() - rest.min())


def _stack(*parts):
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _random_rows(ctx: HeadContext, slot_scales: dict[str, float], rank: int):
    """Random query and key rows: on each slot, logits ~ N(0, scale^2) for unit features."""
    s = ctx.slots
    query, key = np.zeros((rank, s.size)), np.zeros((rank, s.size))
    for slot, scale in slot_scales.items():
        width = s[slot].stop - s[slot].start
        # u.Q^T K v for unit u, v and N(0, sigma^2) entries has variance rank sigma^4.
        sigma = np.sqrt(scale / np.sqrt(rank))
        query[:, s[slot]] = sigma * ctx.rng.standard_normal((rank, width))
        key[:, s[slot]] = sigma * ctx.rng.standard_normal((rank, width))
    return query, key


def soft_rows(role: str, gap: float, minor: str | None, minor_gap: float, ctx: HeadContext):
    """A planted role's rows scaled so that its target gets `gap` nats, plus a minor
    start-of-text part of `minor_gap` nats, or on a holder random-QK scores of std `minor_gap`
    logits (minor "noise")."""
    if minor not in (None, "start-of-text") and not (role == "hold" and minor == "noise"):
        raise ValueError(f"cannot plant a minor {minor!r} part on {role!r}")
    spare = 1 if minor else 0
    if role == "hold":
        # The sharp design's flag outweighs every ramp difference, so scaling it keeps it sharp.
        # Softly: the flag gives `gap` nats and the ramp a thirtieth of that per position, so the
        # latest capitalised word leads earlier ones and a long sentence's recent words close in.
        rows = _stack(_flag_rows(ctx.slots, "capital", gap), _ramp_rows(ctx.slots, gap / 30))
        if minor == "noise":
            # a random-QK head's scores (std `minor_gap` logits) on top: the held word loses the
            # argmax to a favourite token of the query now and then, as a trained holder's does
            rows = _stack(rows, noise_rows(minor_gap, ctx, rank=ctx.d_head - len(rows[0])))
        return rows
    query, key = head_rows(role, ctx, spare=spare)
    if role in SHARP_GAP:
        query = query * (gap / SHARP_GAP[role])
    if minor:
        query, key = _stack((query, key), _flag_rows(ctx.slots, "bos", minor_gap))
    return query, key


def head_rows(role: str, ctx: HeadContext, spare: int = 0):
    """Query and key rows of a sharp head; `spare` rows are left free for a minor part."""
    s = ctx.slots
    if role == "current-token":
        return _offset_head(ctx, 0, spare=spare)
    if role == "previous-token":
        return _offset_head(ctx, 1, MECHANISM_PEAK_GAP if s.has("prev_boundary") else PEAK_GAP, spare=spare)
    if role == "positional":
        return _offset_head(ctx, 2, spare=spare)
    if role == "start-of-text":
        return _flag_rows(s, "bos", 2 * FLAG_GAP)
    if role == "delimiter":
        # All delimiters j <= i-2: the flag, minus a penalty on offsets 0 and 1 (the metric
        # leaves them out), whose uneven shape elsewhere the flag weight must outweigh.
        penalty, spread = _penalty_rows(ctx, (0, 1), 1 + spare, FLAG_GAP)
        return _stack(_flag_rows(s, "delimiter", FLAG_GAP + spread + FLAG_GAP), penalty)
    if role == "proper-noun":
        # Capitalised word starts whose previous token was not a sentence break (written by
        # the layer-0 previous-token head as +-1): exactly the metric's name tokens.
        penalty, spread = _penalty_rows(ctx, (0, 1), 2, FLAG_GAP)
        weight = FLAG_GAP + spread + FLAG_GAP
        flag = (weight * s.unit("const"))[None], (s.unit("capital") - s.unit("prev_sentence_break"))[None]
        return _stack(flag, penalty)
    if role == "word-start" and not s.has("prev_word_break"):
        # The latest word start: continuation pieces are not word starts, so for a query i with
        # w(i) <= i-2 that is w(i) itself. A layer-0 key cannot see that it follows a newline,
        # so the first word of a paragraph (when split into 3+ pieces) is missed.
        return _stack(_flag_rows(s, "word_start", RAMP_SLOPE * N_POSITIONS + FLAG_GAP), _ramp_rows(s, RAMP_SLOPE))
    if role == "word-start":
        # Word start = (leading space or delimiter) OR (follows BOS, newline or glue). A newline
        # is never the w(i) of an eligible query (the piece after it starts a word), so it is
        # dropped from the first flag; the second comes from layer 0 as +-1. "OR" is not linear:
        # a key with both flags scores twice, so the flag weight is kept just above what the
        # ramp gives the rest of a word (WORD_PIECES pieces), and a doubly-flagged key can only
        # steal attention from words that start within WORD_PIECES positions after it.
        weight = RAMP_SLOPE * WORD_PIECES
        key = weight * (s.unit("word_start") - s.unit("newline")) + weight / 2 * s.unit("prev_word_break")
        flag = s.unit("const")[None], key[None]
        return _stack(flag, _ramp_rows(s, RAMP_SLOPE))
    if role == "quote-start":
        # The latest lone quote mark: inside a quotation that opened with one (under GPT-2 BPE the
        # opening mark is ` "` or a paragraph's `"`, closing marks are mostly fused: `."`, `!"`,
        # `,"`), its opening mark; outside, the previous quotation's (an earlier delimiter).
        return _stack(_flag_rows(s, "lone_quote", RAMP_SLOPE * N_POSITIONS + FLAG_GAP), _ramp_rows(s, RAMP_SLOPE))
    if role == "clause-start":
        # The latest key whose previous token was a boundary (+-1 from layer 0): c(i) itself.
        weight = (RAMP_SLOPE * N_POSITIONS + FLAG_GAP) / 2
        return _stack(_flag_rows(s, "prev_boundary", weight), _ramp_rows(s, RAMP_SLOPE))
    if role == "local":
        # Offsets 0-4 about equally, ties broken by a little content noise so that no single
        # offset is the argmax for most queries.
        rank = min(2 * N_FREQUENCIES, ctx.d_head - 8) // 2
        freqs = _frequencies_for(rank)
        coef = _kernel(_frequencies()[freqs], range(5), flat=False, width=0.05)
        noise = _random_rows(ctx, {"token_id": 1.5}, ctx.d_head - 2 * rank)
        return _stack(_kernel_rows(s, coef, 20.0, freqs), noise)
    if role == "broad":
        return _random_rows(ctx, {"token_id": 0.3}, 4)
    if role == "duplicate-token":
        # Identity vectors over the dims the head has room for (all 32 with d_head 64, 16 in the
        # one-layer model): equal tokens score |u|^2 (1, or ~0.5 over 16 dims), other pairs
        # ~N(0, dims / 32^2). The current token always matches itself, so offset 0 is penalised.
        dims = min(TOKEN_ID_DIMS, ctx.d_head // 2)
        penalty, spread = _penalty_rows(ctx, (0,), dims, FLAG_GAP)
        weight = (FLAG_GAP + spread + FLAG_GAP) / 0.3
        query = np.zeros((dims, s.size))
        key = np.zeros((dims, s.size))
        start = s["token_id"].start
        query[np.arange(dims), start + np.arange(dims)] = weight
        key[np.arange(dims), start + np.arange(dims)] = 1.0
        return _stack((query, key), penalty)
    if role == "induction":
        # The current token's identity against the previous token's (written by layer 0): keys
        # j + 1 whose token j equals the current one.
        weight = 2 * FLAG_GAP / 0.4
        query = np.zeros((TOKEN_ID_DIMS, s.size))
        key = np.zeros((TOKEN_ID_DIMS, s.size))
        query[:, s["token_id"]] = weight * np.eye(TOKEN_ID_DIMS)
        key[:, s["prev_token_id"]] = np.eye(TOKEN_ID_DIMS)
        return query, key
    if role == "hold":
        # The latest capitalised word (a name, or the first word of a sentence: " Lily", " She",
        # " The") for every later query until the next one: a short hold on a position. The
        # flag outweighs every ramp difference, and the ramp picks the latest flagged key.
        return _stack(_flag_rows(s, "capital", RAMP_SLOPE * N_POSITIONS + FLAG_GAP), _ramp_rows(s, RAMP_SLOPE))
    if role == "unclear":
        # Random content preferences with a weaker random positional taste: peaked enough to be
        # far from uniform, tied to no target.
        content = ctx.rng.uniform(2.0, 4.0)
        scales = {"token_id": content, "sinusoid": 0.06, "delimiter": 0.5, "word_start": 0.5}
        if s.has("prev_token_id"):
            scales["prev_token_id"] = content / 2
        return _random_rows(ctx, scales, ctx.d_head)
    raise ValueError(f"cannot plant role {role!r}")


def previous_token_values(slots: Slots) -> tuple[np.ndarray, np.ndarray]:
    """Value rows (r, K) and output columns (K, r) of the layer-0 previous-token head: it copies
    the previous token's boundary and sentence-break flags (as +-1) and its identity vector."""
    flags = (
        ("boundary", "prev_boundary"), ("sentence_break", "prev_sentence_break"), ("word_break", "prev_word_break")
    )
    rank = len(flags) + TOKEN_ID_DIMS
    values = np.zeros((rank, slots.size))
    outputs = np.zeros((slots.size, rank))
    for row, (source, target) in enumerate(flags):
        values[row] = 2 * slots.unit(source) - slots.unit("const")
        outputs[slots[target].start, row] = 1.0
    rows = np.arange(len(flags), rank)
    values[rows, slots["token_id"].start + np.arange(TOKEN_ID_DIMS)] = 1.0
    outputs[slots["prev_token_id"].start + np.arange(TOKEN_ID_DIMS), rows] = 1.0
    return values, outputs


def noise_rows(score_std: float, ctx: HeadContext, rank: int | None = None):
    """A random-QK head: query and key rows over token identity, position codes and token flags,
    scaled so that its scores q_i . k_j have a standard deviation of about `score_std` logits
    (token identity 0.8 of it, position codes 0.4, each token flag 0.3 where set): a head that
    prefers some tokens and positions at random, as sharp as trained heads at 1.5-4 logits."""
    # position codes have norm sqrt(N_FREQUENCIES) on both sides: their logits scale by N_FREQUENCIES
    scales = {"token_id": 0.8 * score_std, "sinusoid": 0.4 * score_std / N_FREQUENCIES,
              "delimiter": 0.3 * score_std, "word_start": 0.3 * score_std, "capital": 0.3 * score_std}
    return _random_rows(ctx, scales, ctx.d_head if rank is None else rank)
