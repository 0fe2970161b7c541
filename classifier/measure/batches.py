"""Stories as every pass reads them: token ids, the truncation rule, padded batches, the mask.

The one home of how a story reaches a model (scoring, ablation, attribution, similarity, the
planted measurer and the benchmark all read stories through here):
- a story is its stripped text tokenized without special tokens, BOS first, and cut to `limit`
  tokens in all (BOS + at most limit - 1 pieces), where limit = min(--max-tokens, the model's
  context) (`token_limit`); `Stories.cut` says which stories were longer and lost tokens;
- passes run over batches of similar length (longest first), right-padded with BOS, whose
  padding the valid-position mask leaves out; a batch holds at most `batch_size` stories, and
  fewer where `row_cost(longest) * rows` would pass a memory `budget`: a pass over a model's
  attention (`attention_batches`) keeps copies x rows x heads x T^2 within PASS_BUDGET;
- the memory those passes free goes back to the system (`return_freed_memory`), so the budget
  bounds the resident memory, not only the tensors.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from classifier.settings import PASS_BUDGET

# glibc's malloc serves blocks of at least M_MMAP_THRESHOLD bytes from their own mappings, given
# back when freed, and trims its heap when M_TRIM_THRESHOLD bytes at its top are free. By default
# both follow the largest block freed so far (up to 32 MiB and twice that), so once a pass has
# freed one big tensor, the heap serves the rest and its holes stay resident. Measured (1L-21M
# shape, 16 heads, vocabulary 50,257, one 512-token story): attribution's peak resident memory
# +0.39 GB by default, +0.16 GB with both fixed at 1 MiB; scoring no slower (tools.bench).
HEAP_THRESHOLD = 2**20
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)

# Texts handed to the tokenizer at once: its per-text objects never pile up for a whole corpus.
TOKENIZE_CHUNK = 256


def return_freed_memory() -> bool:
    """Have glibc give freed blocks of HEAP_THRESHOLD bytes or more back to the system at once,
    for this whole process (a report's passes free tensors of tens of MB every batch). False
    where the C library is not glibc (other allocators have no such knobs): nothing is changed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl and other C libraries
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, HEAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, HEAP_THRESHOLD))


def token_limit(max_tokens: int, n_ctx: int) -> int:
    """Tokens of a story scored at most, BOS included: --max-tokens, capped by the model's context."""
    return min(max_tokens, n_ctx)


@dataclass(frozen=True)
class Stories:
    """Token ids of stories as scored: `ids` (int32 arrays, BOS first, at most `limit` long) and
    `cut` (N,) True where the story had more than `limit` tokens (BOS included) and was cut."""

    ids: list[np.ndarray]
    cut: np.ndarray
    limit: int

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_tokens(self) -> int:
        return int(sum(len(t) for t in self.ids))


def tokenize(texts, tokenizer, bos_token_id: int, limit: int) -> Stories:
    """Every stripped text's token ids without special tokens, BOS first, at most `limit` in all.

    Texts are encoded TOKENIZE_CHUNK at a time and kept as int32 arrays."""
    texts = [t.strip() for t in texts]
    ids, cut = [], []
    for start in range(0, len(texts), TOKENIZE_CHUNK):
        encoded = tokenizer(texts[start : start + TOKENIZE_CHUNK], add_special_tokens=False)["input_ids"]
        ids += [np.array([bos_token_id, *pieces[: limit - 1]], dtype=np.int32) for pieces in encoded]
        cut += [1 + len(pieces) > limit for pieces in encoded]
    return Stories(ids, np.array(cut, dtype=bool), limit)


def model_stories(model, texts, max_tokens: int) -> Stories:
    """`texts` as `report` feeds them to `model` (a LoadedModel): its tokenizer, BOS and context."""
    return tokenize(texts, model.tokenizer, model.bos_token_id, token_limit(max_tokens, model.n_ctx))


def valid_positions(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T) True at the real tokens of right-padded rows."""
    return torch.arange(tokens.shape[1], device=tokens.device) < lengths[:, None]


@dataclass(frozen=True)
class Batch:
    """One padded batch: the stories' indices (B,), tokens (B, T) right-padded with BOS and
    lengths (B,), both on the pass's device."""

    indices: np.ndarray
    tokens: torch.Tensor
    lengths: torch.Tensor

    @property
    def valid(self) -> torch.Tensor:
        """(B, T) True at real tokens (`valid_positions`)."""
        return valid_positions(self.tokens, self.lengths)


def length_batches(lengths, batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (longest first), to waste little padding."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def padded_batches(
    token_lists, batch_size: int, *, pad_id: int, device="cpu",
    row_cost: Callable[[int], int] | None = None, budget: int | None = None,
) -> Iterator[Batch]:
    """Length-sorted, right-padded batches of `token_lists` (BOS-first id arrays) on `device`:
    at most `batch_size` rows, and at most max(1, budget // row_cost(longest)) when a budget is given."""
    for indices in length_batches([len(t) for t in token_lists], batch_size):
        rows = len(indices)
        if budget is not None and row_cost is not None:
            rows = max(1, budget // row_cost(len(token_lists[indices[0]])))
        for start in range(0, len(indices), rows):
            part = indices[start : start + rows]
            sequences = [torch.as_tensor(token_lists[k]).long() for k in part]
            tokens = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True, padding_value=pad_id)
            lengths = torch.tensor([len(s) for s in sequences])
            yield Batch(part, tokens.to(device), lengths.to(device))


def attention_cost(n_heads: int, length: int, copies: int = 1) -> int:
    """Attention weights of one layer for one story of `length` tokens run `copies` times."""
    return copies * n_heads * length**2


def attention_batches(model, token_lists, batch_size: int, copies: int = 1) -> Iterator[Batch]:
    """`padded_batches` of `token_lists` for `model` (a LoadedModel: its BOS pads, on its device)
    whose `copies` copies of every row keep one layer's attention weights within PASS_BUDGET
    (at least one row a batch)."""
    return padded_batches(token_lists, batch_size, pad_id=model.bos_token_id, device=model.device,
                          row_cost=lambda longest: attention_cost(model.n_heads, longest, copies), budget=PASS_BUDGET)
