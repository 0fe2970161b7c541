"""Calibration models: tiny GPT-Neo checkpoints whose head roles are known by construction.

`build_calibration_model` writes a Hugging Face checkpoint (`GPTNeoForCausalLM` with the real
GPT-2 tokenizer) whose attention weights are set by hand, so that every head has a role chosen
in advance, plus `truth.json` naming each head's role and the metric (design notes, section 3)
that checks it. The role classifier's thresholds are checked against these heads
(`head-roles selfcheck`).

How the weights are built: `classifier.calibrate.designs` (the feature space and each role's
query and key rows). MLPs are zero; logits are meaningless. The independent measurer that checks
a checkpoint with Hugging Face directly lives with the tests (tests/planted_measure.py).

What it does not do: the models say nothing about how real models implement these roles, and
only roles whose mechanism fits in one or two attention layers are planted. A layer-0 key sees
its own token and position, not its context, so roles that depend on the previous token
(proper-noun, clause-start, induction) exist in the two-layer model only, and the one-layer
word-start head misses the first word of a paragraph when that word has 3+ pieces (about 5% of
its queries on TinyStories).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from classifier.calibrate.designs import (
    N_POSITIONS,
    HeadContext,
    embedding_map,
    feature_slots,
    head_rows,
    noise_rows,
    position_features,
    previous_token_values,
    soft_rows,
    token_features,
)
from classifier.label.roles import HEADLINE_METRIC
from classifier.label.roles import ROLES as ROLE_NAMES  # the one list of role names
from classifier.load.gpt2 import BOS_ID, VOCAB_SIZE, gpt2_tokenizer

# The section-3 metric that checks each planted role: the role's headline metric ("broad" is
# checked by entropy and max_weight together; noise heads have no metric).
ROLE_METRIC: dict[str, str | None] = {**HEADLINE_METRIC, "unclear": None}
LAYOUTS = ("one-layer", "two-layer", "soft", "hold")
TRUTH_FILE = "truth.json"
D_MODEL = 512
D_MLP = 16  # the MLPs are zero: a narrow one keeps the checkpoint small and the forward pass fast

# Roles per layer before the seed shuffles heads within each layer. The layer-0 previous-token
# head of the two-layer model also feeds clause-start, induction, proper-noun and word-start in
# layer 1. Proper nouns need the previous token (a name does not follow a sentence end), so they
# are planted in layer 1 only: the best a layer-0 key can do (the earliest capitalised word that
# is not a common sentence starter) scores 0.93 on TinyStories but about 0.8 on the bundled
# stories, whose names often first appear at the start of a sentence.
_LAYOUT_ROLES: dict[str, tuple[tuple[str, ...], ...]] = {
    "one-layer": (
        (
            "current-token", "previous-token", "positional", "start-of-text", "delimiter",
            "broad", "word-start", "local", "duplicate-token", "quote-start",
            "unclear", "unclear", "unclear", "unclear", "unclear", "unclear",
        ),
    ),
    "two-layer": (
        (
            "previous-token", "current-token", "start-of-text", "duplicate-token", "delimiter",
            "unclear", "unclear", "unclear",
        ),
        (
            "clause-start", "induction", "proper-noun", "word-start", "local", "broad",
            "unclear", "unclear",
        ),
    ),
}

# The "soft" layout: one layer of heads as real trained heads are, each a planted role at a
# graded strength (the logit gap, in nats, its target gets over every other key: 3 nats puts
# about 0.1-0.3 of attention on a single target in a 50-200 token story, 5 nats about 0.5-0.8),
# the rest spread over the other keys, and two-role mixtures whose dominant role is the planted
# one and whose minor part is a start-of-text sink (as real heads mix a target with BOS).
# (role, gap, minor role, minor gap); the measured share of each head's target, not its gap,
# is what selfcheck reports recovery against.
SOFT_HEADS: tuple[tuple[str, float, str | None, float], ...] = (
    ("previous-token", 1.5, None, 0.0), ("previous-token", 3.0, None, 0.0),
    ("current-token", 1.5, None, 0.0), ("current-token", 3.0, None, 0.0),
    ("start-of-text", 3.0, None, 0.0), ("start-of-text", 4.0, None, 0.0),
    ("delimiter", 0.6, None, 0.0), ("delimiter", 0.8, None, 0.0),
    ("word-start", 1.0, None, 0.0), ("duplicate-token", 1.0, None, 0.0), ("positional", 2.5, None, 0.0),
    ("previous-token", 2.5, "start-of-text", 3.0), ("delimiter", 0.6, "start-of-text", 3.0),
    ("unclear", 0.0, None, 0.0), ("unclear", 0.0, None, 0.0), ("unclear", 0.0, None, 0.0),
)
_LAYOUT_ROLES["soft"] = (tuple(role for role, *_ in SOFT_HEADS),)
# The "hold" layout: holders (the latest capitalised word held until the next one, issue 28) from
# sharp to soft (15, 8, 6 and 4 nats for the flag), two noisy holders (6 and 8 nats with random-QK
# scores of std 1.5 and 3 logits on top: the held word loses the argmax for a query or two now and
# then, as a trained holder's does), and random-QK noise heads whose scores have a standard
# deviation from 0.5 to 4 logits ("unclear" with that spread in the gap's place): a random head
# prefers some key tokens, so its top key repeats, and must not be read as holding.
NOISE_SCORE_STDS = tuple(float(s) for s in np.round(np.linspace(0.5, 4.0, 10), 2))
HOLD_HEADS: tuple[tuple[str, float, str | None, float], ...] = (
    ("hold", 15.0, None, 0.0), ("hold", 8.0, None, 0.0), ("hold", 6.0, None, 0.0), ("hold", 4.0, None, 0.0),
    ("hold", 6.0, "noise", 1.5), ("hold", 8.0, "noise", 3.0),
    *(("unclear", std, None, 0.0) for std in NOISE_SCORE_STDS),
)
_LAYOUT_ROLES["hold"] = (tuple(role for role, *_ in HOLD_HEADS),)
_LAYOUT_SPECS = {"soft": SOFT_HEADS, "hold": HOLD_HEADS}



@dataclass(frozen=True)
class PlantedHead:
    """One head and the role it was built to have; `metric` checks it (None for noise heads)."""

    layer: int
    head: int
    role: str
    metric: str | None
    gap: float | None = None  # soft heads: the target's logit gap in nats (None: sharp)
    minor: str | None = None  # two-role mixtures: the minor role (its gap in minor_gap); "noise" on a holder: random-QK scores of std minor_gap
    minor_gap: float | None = None
    score_std: float | None = None  # random-QK noise heads: the spread of their scores (logits)


@dataclass(frozen=True)
class CalibrationTruth:
    """What a calibration checkpoint was built to contain."""

    layout: str
    seed: int
    n_layers: int
    n_heads: int
    heads: tuple[PlantedHead, ...]

    def to_json(self) -> dict:
        return {**asdict(self), "heads": [asdict(h) for h in self.heads]}

    @classmethod
    def from_json(cls, d: dict) -> "CalibrationTruth":
        heads = tuple(
            PlantedHead(int(h["layer"]), int(h["head"]), str(h["role"]), h["metric"],
                        h.get("gap"), h.get("minor"), h.get("minor_gap"), h.get("score_std"))
            for h in d["heads"]
        )
        return cls(str(d["layout"]), int(d["seed"]), int(d["n_layers"]), int(d["n_heads"]), heads)

    def role_of(self, layer: int, head: int) -> str:
        return next(h.role for h in self.heads if (h.layer, h.head) == (layer, head))



# ---------------------------------------------------------------------------------------------
# Building and saving


def _assign_roles(layout: str, rng: np.random.Generator) -> list[list[str]]:
    """Roles per layer and head, shuffled within each layer."""
    return [[roles[k] for k in rng.permutation(len(roles))] for roles in _LAYOUT_ROLES[layout]]


def _assign_specs(layout: str, shuffled_roles: list[str]) -> list[tuple[str, float, str | None, float]]:
    """The layout's head specs in the order of the shuffled roles (equal roles keep their order)."""
    pending = list(_LAYOUT_SPECS[layout])
    specs = []
    for role in shuffled_roles:
        spec = next(spec for spec in pending if spec[0] == role)
        pending.remove(spec)
        specs.append(spec)
    return specs


def build_calibration_model(out_dir, *, layout: str = "one-layer", seed: int = 0) -> CalibrationTruth:
    """Write a calibration checkpoint (model, tokenizer, truth.json) to `out_dir`; return its truth."""
    from classifier.console import quiet_kernel_probe

    quiet_kernel_probe()  # before transformers imports GPT-Neo
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    from classifier.load.tokens import vocab_classes

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    rng = np.random.default_rng(seed)
    roles = _assign_roles(layout, rng)
    # The soft and hold layouts' heads are specs, shuffled like the roles (same permutation).
    specs = _assign_specs(layout, roles[0]) if layout in _LAYOUT_SPECS else None
    n_layers, n_heads = len(roles), len(roles[0])
    d_head = D_MODEL // n_heads
    tokenizer = gpt2_tokenizer()
    vocab = vocab_classes(tokenizer)
    slots = feature_slots(n_layers)

    # Squared norms: the layer-0 outputs add 1 + 1 + 1 + 1 (three +-1 flags and a unit identity),
    # so the embeddings leave room for them and layer 1 sees norm^2 = D_MODEL as layer 0 nearly does.
    written = 4.0 if n_layers > 1 else 0.0
    token_norm2 = 128.0
    position_norm2 = D_MODEL - written - token_norm2
    embed = embedding_map(rng, D_MODEL, slots.size)
    tokens = token_features(slots, vocab, rng, token_norm2)
    positions = position_features(slots, position_norm2)
    # LayerNorm maps a zero-mean x to sqrt(D_MODEL) x / |x|: these are the features heads see.
    layer_scale = [np.sqrt(D_MODEL / (D_MODEL - written))] + [1.0] * (n_layers - 1)

    config = GPTNeoConfig(
        vocab_size=VOCAB_SIZE, max_position_embeddings=N_POSITIONS, hidden_size=D_MODEL,
        num_layers=n_layers, num_heads=n_heads, attention_types=[[["global"], n_layers]],
        intermediate_size=D_MLP, window_size=256, activation_function="gelu_new",
        resid_dropout=0.0, embed_dropout=0.0, attention_dropout=0.0, layer_norm_epsilon=1e-5,
        bos_token_id=BOS_ID, eos_token_id=BOS_ID, tie_word_embeddings=True,
    )
    state = {
        "transformer.wte.weight": torch.from_numpy(tokens) @ torch.from_numpy(embed).T,
        "transformer.wpe.weight": positions @ embed.T,
    }
    heads = []
    for layer, layer_roles in enumerate(roles):
        query = np.zeros((D_MODEL, slots.size))
        key = np.zeros((D_MODEL, slots.size))
        value = np.zeros((D_MODEL, slots.size))
        output = np.zeros((slots.size, D_MODEL))
        ctx = HeadContext(slots, d_head, layer, rng)
        for head, role in enumerate(layer_roles):
            first = head * d_head  # this head's rows of q_proj/k_proj/v_proj, columns of out_proj
            soft = specs[head] if specs is not None else None
            noise_std = soft[1] if soft is not None and soft[0] == "unclear" and soft[1] > 0 else None
            if noise_std is not None:
                q, k = noise_rows(noise_std, ctx)
            elif soft is not None and soft[0] != "unclear":
                q, k = soft_rows(*soft, ctx)
            else:
                q, k = head_rows(role, ctx)
            if len(q) > d_head:
                raise RuntimeError(f"{role} needs rank {len(q)} > d_head {d_head}")
            query[first : first + len(q)], key[first : first + len(k)] = q, k
            if role == "previous-token" and slots.has("prev_boundary") and layer == 0:
                v, o = previous_token_values(slots)
                value[first : first + len(v)] = v
                output[:, first : first + len(v)] = o
            if soft is not None and soft[0] != "unclear":
                _, gap, minor, minor_gap = soft
                heads.append(PlantedHead(layer, head, role, ROLE_METRIC[role], gap, minor, minor_gap if minor else None))
            elif noise_std is not None:
                heads.append(PlantedHead(layer, head, role, ROLE_METRIC[role], score_std=noise_std))
            else:
                heads.append(PlantedHead(layer, head, role, ROLE_METRIC[role]))
        # Weights act on LayerNorm outputs sqrt(D) x/|x| = scale * embed @ features.
        prefix = f"transformer.h.{layer}."
        state[prefix + "attn.attention.q_proj.weight"] = query @ embed.T / layer_scale[layer]
        state[prefix + "attn.attention.k_proj.weight"] = key @ embed.T / layer_scale[layer]
        state[prefix + "attn.attention.v_proj.weight"] = value @ embed.T / layer_scale[layer]
        state[prefix + "attn.attention.out_proj.weight"] = embed @ output

    model = GPTNeoForCausalLM(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in state:
                parameter.copy_(torch.as_tensor(state[name], dtype=parameter.dtype))
            elif name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "transformer.ln_f.weight":
                parameter.fill_(1.0)
            elif name != "lm_head.weight":  # tied to wte
                parameter.zero_()  # LayerNorm biases, out_proj bias, MLP
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    truth = CalibrationTruth(layout, int(seed), n_layers, n_heads, tuple(heads))
    (out / TRUTH_FILE).write_text(json.dumps(truth.to_json(), indent=2) + "\n", encoding="utf-8")
    return truth


def load_truth(model_dir) -> CalibrationTruth:
    """The truth.json of a calibration checkpoint."""
    path = Path(model_dir) / TRUTH_FILE
    return CalibrationTruth.from_json(json.loads(path.read_text(encoding="utf-8")))
