"""Corpus-wide accumulators filled batch by batch while scoring: the typical (query token, argmax
key token) pairs of each head (`PairCounts`) and the totals behind each head's top keys
(`KeyTotals`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from classifier.registry import PARTS
from classifier.thresholds import TOP_KEY_MIN_OCCURRENCES, TOP_KEY_MIN_SHARE, TOP_KEY_MIN_STORIES, TOP_KEY_NOTABLE_LIFT

# Most typical (query token -> argmax key token) pairs kept per head for the report.
TOP_PAIRS = 5
# Top key tokens kept per head (roles.json `top_keys`): the largest shares, and the largest
# among the keys the head prefers.
TOP_KEYS = 8
TOP_PREFERRED_KEYS = 5


# Pair codes buffered before they are merged into the counts (16 bytes a code with its weight):
# the buffer and its merge's temporaries are what a run holds beside the counts themselves.
# Measured (`make bench`'s peak RSS of the scorer, 1L-21M shape, 2,377,051 distinct pairs at
# 2,000 stories): 1M codes: +17% at 2,000 stories over 200; 250,000: +8% (target 10%), no slower.
PAIR_BUFFER = 250_000


@dataclass
class PairCounts:
    """Counts of (layer, head, query token, argmax key token, the key's budget part) and the summed
    argmax weight of each, merged every PAIR_BUFFER codes; and how often each token is a query."""

    vocab_size: int
    n_heads: int
    codes: np.ndarray  # sorted distinct codes (int64), with their counts (int64) and summed weights (float64)
    counts: np.ndarray
    weights: np.ndarray
    pending: list
    query_counts: torch.Tensor  # (V,) real queries i >= 1 of each token

    @classmethod
    def empty(cls, vocab_size: int, n_heads: int) -> "PairCounts":
        none = np.empty(0, dtype=np.int64)
        return cls(vocab_size, n_heads, none, none.copy(), np.empty(0), [], torch.zeros(vocab_size, dtype=torch.float64))

    def add_queries(self, tokens: torch.Tensor, valid: torch.Tensor) -> None:
        """Count the real queries i >= 1 of one batch by token (once per batch, not per layer)."""
        queries = valid & (torch.arange(tokens.shape[1], device=tokens.device) >= 1)
        self.query_counts.index_add_(0, tokens[queries].cpu(), torch.ones(int(queries.sum()), dtype=torch.float64))

    def add(self, layer: int, argmax: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor,
            parts: torch.Tensor, top: torch.Tensor) -> None:
        """Count the (query token, argmax key token, key's part) of one layer, argmax, parts and
        top (the argmax weight) (B, H, T), over real queries i >= 1 whose argmax is not BOS: BOS
        pairs are common to every head and say nothing about what makes a head what it is (self
        pairs are kept: they are a current-token head's evidence)."""
        batch, n_heads, length = argmax.shape
        keys = tokens.gather(1, argmax.flatten(1)).view(batch, n_heads, length)
        queries = tokens[:, None, :].expand(batch, n_heads, length)
        heads = torch.arange(n_heads, device=tokens.device).view(1, n_heads, 1) + layer * self.n_heads
        codes = ((heads * self.vocab_size + queries) * self.vocab_size + keys) * len(PARTS) + parts
        positions = torch.arange(length, device=tokens.device)
        mask = (valid & (positions >= 1))[:, None, :] & (argmax != 0)
        self.pending.append((codes[mask].cpu(), top[mask].double().cpu()))
        if sum(len(c) for c, _ in self.pending) > PAIR_BUFFER:
            self._merge()

    def _merge(self) -> None:
        """Fold the pending codes into the sorted distinct codes. The distinct pairs of a corpus
        grow with it (millions): existing codes are counted in place, new ones inserted one array
        at a time, so the merge holds at most one extra copy of one array (a sort of all codes
        again would hold several)."""
        if not self.pending:  # the last add() already merged everything
            return
        new_codes = np.concatenate([c.numpy() for c, _ in self.pending])
        new_weights = np.concatenate([w.numpy() for _, w in self.pending])
        self.pending = []
        distinct, inverse = np.unique(new_codes, return_inverse=True)
        counts = np.bincount(inverse, minlength=len(distinct))
        weights = np.bincount(inverse, weights=new_weights, minlength=len(distinct))
        at = np.searchsorted(self.codes, distinct)
        seen = at < len(self.codes)
        seen[seen] = self.codes[at[seen]] == distinct[seen]
        self.counts[at[seen]] += counts[seen]  # distinct codes: each position once
        self.weights[at[seen]] += weights[seen]
        fresh = ~seen
        self.codes = np.insert(self.codes, at[fresh], distinct[fresh])
        self.counts = np.insert(self.counts, at[fresh], counts[fresh])
        self.weights = np.insert(self.weights, at[fresh], weights[fresh])

    def top(self, k: int = TOP_PAIRS) -> pd.DataFrame:
        """The k most frequent pairs of every head and key part: layer, head, query_id, key_id,
        part (a PARTS name), count, share (of the head's counted queries), weight (mean argmax
        weight of the pair), top_rate (share of the query token's queries whose argmax it is).
        Rows by head, then count (most first; a tie in code order)."""
        self._merge()
        vocab, n_parts = self.vocab_size, len(PARTS)
        # Codes sort by head first: each head's codes are one slice, taken in turn so that the
        # sorts below hold one head's share of a corpus's millions of distinct pairs at a time.
        per_head = n_parts * vocab * vocab
        heads_seen = int(self.codes[-1] // per_head) + 1 if len(self.codes) else 0
        bounds = np.searchsorted(self.codes, np.arange(heads_seen + 1) * per_head)
        kept, totals = [], []
        for start, stop in zip(bounds[:-1], bounds[1:]):
            counts, part = self.counts[start:stop], self.codes[start:stop] % n_parts
            order = np.lexsort((-counts, part))  # part, then count down; a tie in code order (stable)
            first = np.flatnonzero(np.r_[True, np.diff(part[order]) != 0])
            rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
            chosen = order[rank < k]
            kept.append(start + chosen[np.lexsort((chosen, -counts[chosen]))])  # count down, then code
            totals.append(np.full(len(chosen), counts.sum()))
        kept = np.concatenate(kept) if kept else np.empty(0, dtype=np.int64)
        codes, counts = self.codes[kept], self.counts[kept]
        pair, head_index = codes // n_parts, codes // per_head
        query_id = (pair // vocab) % vocab
        return pd.DataFrame({
            "layer": head_index // self.n_heads,
            "head": head_index % self.n_heads,
            "query_id": query_id,
            "key_id": pair % vocab,
            "part": np.array(PARTS, dtype=object)[codes % n_parts],
            "count": counts,
            "share": counts / (np.concatenate(totals) if totals else np.empty(0)),
            "weight": self.weights[kept] / np.maximum(counts, 1),
            "top_rate": counts / self.query_counts.numpy()[query_id],
        })


@dataclass
class KeyTotals:
    """Corpus totals behind each head's top keys, by key token id: attention on keys other than
    BOS, the query itself and the previous token (mass (L, H, V)), what uniform attention gives
    the same keys over the same queries (uniform (V,)), how often each token is such a key and in
    how many stories (occurrences, stories (V,)), and the real queries i >= 1 (the share's base)."""

    mass: torch.Tensor
    uniform: torch.Tensor
    occurrences: torch.Tensor
    stories: torch.Tensor
    queries: float = 0.0

    @classmethod
    def empty(cls, n_layers: int, n_heads: int, vocab_size: int) -> "KeyTotals":
        def zeros(*shape):
            return torch.zeros(*shape, dtype=torch.float64)
        return cls(zeros(n_layers, n_heads, vocab_size), zeros(vocab_size), zeros(vocab_size), zeros(vocab_size))

    def add_batch(self, tokens: torch.Tensor, targets) -> None:
        """The token-only totals of one batch: uniform attention's, occurrences, stories, queries."""
        key_ok = targets.key_uniform > 0  # a key some later query i >= j + 2 may count
        flat = tokens.flatten().cpu()
        self.uniform.index_add_(0, flat, targets.key_uniform.flatten().double().cpu())
        self.occurrences.index_add_(0, flat, key_ok.flatten().double().cpu())
        per_story = torch.zeros(tokens.shape[0], len(self.stories), dtype=torch.float64)
        per_story.scatter_add_(1, tokens.cpu(), key_ok.double().cpu())
        self.stories += (per_story > 0).sum(0)
        self.queries += float((targets.valid & (torch.arange(tokens.shape[1], device=tokens.device) >= 1)).sum())

    def add_layer(self, layer: int, mass: torch.Tensor, tokens: torch.Tensor) -> None:
        """One layer's KeyView.mass (B, H, T) added by key token."""
        n_heads = mass.shape[1]
        self.mass[layer].index_add_(1, tokens.flatten().cpu(), mass.transpose(0, 1).reshape(n_heads, -1).double().cpu())

    def top(self, k: int = TOP_KEYS, preferred: int = TOP_PREFERRED_KEYS) -> pd.DataFrame:
        """Each head's k key tokens with the largest share of its attention, and the `preferred`
        largest among those it prefers (lift >= TOP_KEY_NOTABLE_LIFT: frequent tokens such as `.`
        top every head), among tokens with enough support (TOP_KEY_MIN_OCCURRENCES,
        TOP_KEY_MIN_STORIES) and at least TOP_KEY_MIN_SHARE of its attention: layer, head, rank (by share), key_id, share (of all the head's
        attention), lift (over uniform attention on the same keys over the same queries)."""
        supported = (self.occurrences >= TOP_KEY_MIN_OCCURRENCES) & (self.stories >= TOP_KEY_MIN_STORIES)
        n_layers, n_heads, vocab = self.mass.shape
        shares = torch.where(supported, self.mass / max(self.queries, 1.0), -1.0)
        lifts = self.mass / torch.where(self.uniform > 0, self.uniform, 1.0)
        notable = torch.where(lifts >= TOP_KEY_NOTABLE_LIFT, shares, -1.0)
        ids = torch.cat([shares.topk(min(k, vocab), dim=-1).indices, notable.topk(min(preferred, vocab), dim=-1).indices], -1)
        chosen = torch.zeros_like(shares, dtype=torch.bool).scatter_(-1, ids, True) & (shares >= TOP_KEY_MIN_SHARE)
        layer, head, key_id = (t.numpy() for t in chosen.nonzero(as_tuple=True))
        frame = pd.DataFrame({"layer": layer, "head": head, "key_id": key_id,
                              "share": shares[layer, head, key_id].numpy(), "lift": lifts[layer, head, key_id].numpy()})
        frame = frame.sort_values(["layer", "head", "share"], ascending=[True, True, False], kind="stable")
        frame.insert(2, "rank", frame.groupby(["layer", "head"]).cumcount())
        return frame.reset_index(drop=True)
