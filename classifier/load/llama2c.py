"""Read llama2.c checkpoints (karpathy/llama2.c `.bin` files) into Hugging Face Llama models.

A llama2.c `.bin` is seven little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
vocab_size, seq_len; a negative vocab_size means the classifier is not shared with the
embedding) followed by float32 arrays, matrices stored (out, in):

    token_embedding (vocab, dim)
    rms_att (L, dim), wq (L, dim, dim), wk (L, kv_dim, dim), wv (L, kv_dim, dim), wo (L, dim, dim)
    rms_ffn (L, dim), w1 (L, hidden, dim), w2 (L, dim, hidden), w3 (L, hidden, dim)
    rms_final (dim)
    [freq_cis_real, freq_cis_imag (seq_len, head_size / 2) each: unused, may be absent]
    [wcls (vocab, dim): only when the classifier is not shared]

This module reads that layout (llama2.c's "version 0" export, the one `run.c` reads and the one
`karpathy/tinyllamas` publishes) into a float32 `transformers.LlamaForCausalLM` that computes the
same function, builds a Hugging Face tokenizer from the SentencePiece `.model`, and boots a
TransformerLens `TransformerBridge` on the result. It does not read the newer versioned exports
(magic "ak42"), int8-quantised checkpoints, or llama2.c's own `tokenizer.bin` format.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from classifier.errors import InputError
from classifier.load.packaged import DATA_DIR, EMBEDDED_CHECKPOINTS, embedded_checkpoint  # noqa: F401 (re-exported)

HEADER_FIELDS = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len")
HEADER_BYTES = 4 * len(HEADER_FIELDS)

# Checkpoints known by name: (hub repo, weights file, tokenizer repo, tokenizer file).
# The 15M/42M/110M models use the Llama 2 tokenizer (32,000 pieces). llama2.c ships it as
# `tokenizer.model` on GitHub, not on the hub; `hf-internal-testing/llama-tokenizer` holds the same
# Llama 2 SentencePiece model ungated (meta-llama/Llama-2-7b-hf is gated behind a licence).
LLAMA2_TOKENIZER = ("hf-internal-testing/llama-tokenizer", "tokenizer.model")
LLAMA2C_CHECKPOINTS = {
    "stories15M": ("karpathy/tinyllamas", "stories15M.bin", *LLAMA2_TOKENIZER),
    "stories42M": ("karpathy/tinyllamas", "stories42M.bin", *LLAMA2_TOKENIZER),
    "stories110M": ("karpathy/tinyllamas", "stories110M.bin", *LLAMA2_TOKENIZER),
    "stories260K": (
        "karpathy/tinyllamas", "stories260K/stories260K.bin", "karpathy/tinyllamas", "stories260K/tok512.model"
    ),
}


class Llama2cError(InputError):
    """A llama2.c checkpoint or tokenizer that cannot be read; the message is one line."""


@dataclass(frozen=True)
class Llama2cConfig:
    """The header of a llama2.c checkpoint; vocab_size is positive, the sign lives in shared_classifier."""

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_size

    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Name and shape of every array in file order, without the RoPE tables and wcls."""
        L, d, h, kv = self.n_layers, self.dim, self.hidden_dim, self.kv_dim
        return [
            ("token_embedding", (self.vocab_size, d)),
            ("rms_att", (L, d)), ("wq", (L, d, d)), ("wk", (L, kv, d)), ("wv", (L, kv, d)), ("wo", (L, d, d)),
            ("rms_ffn", (L, d)), ("w1", (L, h, d)), ("w2", (L, d, h)), ("w3", (L, h, d)),
            ("rms_final", (d,)),
        ]

    def weight_floats(self, rope_tables: bool) -> int:
        """Number of float32 values after the header, with or without the two RoPE tables."""
        count = sum(int(np.prod(shape)) for _, shape in self.shapes())
        count += 0 if self.shared_classifier else self.vocab_size * self.dim
        return count + (self.seq_len * self.head_size if rope_tables else 0)  # two tables of seq_len*hs/2


def read_llama2c_header(path) -> Llama2cConfig:
    """Read and check the 28-byte header of a llama2.c `.bin` checkpoint."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except OSError as err:
        raise Llama2cError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(raw) < HEADER_BYTES:
        raise Llama2cError(f"{path}: too short for a llama2.c header ({len(raw)} bytes, need {HEADER_BYTES})")
    values = dict(zip(HEADER_FIELDS, struct.unpack("<7i", raw)))
    shared = values["vocab_size"] > 0
    values["vocab_size"] = abs(values["vocab_size"])
    bad = [f"{k}={v}" for k, v in values.items() if v <= 0]
    if bad:
        raise Llama2cError(f"{path}: not a llama2.c checkpoint: header has non-positive sizes {', '.join(bad)}")
    # These are what run.c and HF's LlamaAttention silently assume; a random file breaks them.
    if values["dim"] % values["n_heads"] or (values["dim"] // values["n_heads"]) % 2:
        raise Llama2cError(
            f"{path}: not a llama2.c checkpoint: dim={values['dim']} does not split into "
            f"{values['n_heads']} heads of even size"
        )
    if values["n_heads"] % values["n_kv_heads"]:
        raise Llama2cError(
            f"{path}: not a llama2.c checkpoint: n_heads={values['n_heads']} is not a multiple of "
            f"n_kv_heads={values['n_kv_heads']}"
        )
    return Llama2cConfig(**values, shared_classifier=shared)


def is_llama2c_path(path) -> bool:
    """Whether `path` is an existing `.bin` file whose header reads as a llama2.c checkpoint."""
    path = Path(path)
    if path.suffix != ".bin" or not path.is_file():
        return False
    try:
        read_llama2c_header(path)
    except Llama2cError:
        return False
    return True


def is_llama2c_name(name) -> bool:
    """Whether `name` is one of LLAMA2C_CHECKPOINTS (stories15M, stories42M, ...)."""
    return str(name) in LLAMA2C_CHECKPOINTS


def read_llama2c_weights(path) -> tuple[Llama2cConfig, dict[str, np.ndarray]]:
    """The header and every array of a llama2.c checkpoint as float32 numpy arrays (raw layout)."""
    path = Path(path)
    config = read_llama2c_header(path)
    found = path.stat().st_size - HEADER_BYTES
    bare, with_rope = 4 * config.weight_floats(False), 4 * config.weight_floats(True)
    if found not in (bare, with_rope):
        problem = "truncated" if found < bare else "too long"
        raise Llama2cError(
            f"{path}: {problem}: expected {bare:,} bytes of weights ({with_rope:,} with the RoPE tables), "
            f"found {found:,}"
        )
    data = np.fromfile(path, dtype="<f4", offset=HEADER_BYTES)
    arrays, start = {}, 0
    for name, shape in config.shapes():
        size = int(np.prod(shape))
        arrays[name] = data[start : start + size].reshape(shape)
        start += size
    if not config.shared_classifier:
        # run.c reads wcls after the RoPE tables, so skip them when they are there.
        start += config.seq_len * config.head_size if found == with_rope else 0
        arrays["wcls"] = data[start : start + config.vocab_size * config.dim].reshape(config.vocab_size, config.dim)
    return config, arrays


def interleaved_to_half(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder each head's rows from rotary pairs (2k, 2k+1) to halves (k, k + head_size/2).

    llama2.c rotates consecutive pairs; HF Llama's rotate_half pairs row k with row k + hs/2.
    This is the `permute` of HF's convert_llama_weights_to_hf.py: within a head, new row
    j * hs/2 + k is old row 2k + j.
    """
    rows, cols = w.shape
    return w.reshape(n_heads, rows // n_heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def hf_config(config: Llama2cConfig):
    """The `transformers.LlamaConfig` that computes what llama2.c's run.c computes."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.dim, intermediate_size=config.hidden_dim,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads, head_dim=config.head_size, hidden_act="silu",
        max_position_embeddings=config.seq_len, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=config.shared_classifier, attention_bias=False, mlp_bias=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, dtype="float32",
    )


def hf_state_dict(config: Llama2cConfig, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The raw llama2.c arrays under `LlamaForCausalLM` names, wq and wk permuted for rotate_half."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    state = {
        "model.embed_tokens.weight": t(arrays["token_embedding"]),
        "model.norm.weight": t(arrays["rms_final"]),
        "lm_head.weight": t(arrays["token_embedding"] if config.shared_classifier else arrays["wcls"]),
    }
    for layer in range(config.n_layers):
        p = f"model.layers.{layer}."
        state |= {
            p + "input_layernorm.weight": t(arrays["rms_att"][layer]),
            p + "self_attn.q_proj.weight": t(interleaved_to_half(arrays["wq"][layer], config.n_heads)),
            p + "self_attn.k_proj.weight": t(interleaved_to_half(arrays["wk"][layer], config.n_kv_heads)),
            p + "self_attn.v_proj.weight": t(arrays["wv"][layer]),
            p + "self_attn.o_proj.weight": t(arrays["wo"][layer]),
            p + "post_attention_layernorm.weight": t(arrays["rms_ffn"][layer]),
            p + "mlp.gate_proj.weight": t(arrays["w1"][layer]),
            p + "mlp.down_proj.weight": t(arrays["w2"][layer]),
            p + "mlp.up_proj.weight": t(arrays["w3"][layer]),
        }
    return state


def read_sentencepiece_model(model_path):
    """The parsed SentencePiece `.model` file of a llama2.c tokenizer (ids 0, 1, 2 are <unk>, <s>,
    </s>); Llama2cError when it is not one. Cheap: no tokenizer is built."""
    from sentencepiece import sentencepiece_model_pb2

    model_path = Path(model_path)
    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(model_path.read_bytes())
    except OSError as err:
        raise Llama2cError(f"{model_path}: cannot read ({err.strerror or err})") from None
    except Exception:
        raise Llama2cError(f"{model_path}: not a SentencePiece .model file") from None
    if len(proto.pieces) < 3 or [p.piece for p in proto.pieces[:3]] != ["<unk>", "<s>", "</s>"]:
        raise Llama2cError(f"{model_path}: not a llama2.c tokenizer: ids 0, 1, 2 must be <unk>, <s>, </s>")
    return proto


def load_sentencepiece_tokenizer(model_path):
    """A Hugging Face Llama tokenizer built from a SentencePiece `.model` file.

    <unk> is id 0, <s> (BOS) 1, </s> (EOS) 2, as in every llama2.c tokenizer. Encoding prepends
    BOS like Llama's; pass add_special_tokens=False for the bare pieces. Padding is on the right
    (BOS stays at position 0) with <unk> (id 0): llama2.c has no pad token, and padding with EOS
    would make padded positions look like story ends. Text is split as SentencePiece splits it;
    only the literal strings "<s>" and "</s>" differ (they become BOS and EOS, as usual in HF).
    """
    from tokenizers import Regex, normalizers
    from transformers import LlamaTokenizer

    model_path = Path(model_path)
    proto = read_sentencepiece_model(model_path)
    # transformers 5 ignores LlamaTokenizer(vocab_file=...) and builds a 3-token tokenizer, but
    # from_pretrained converts a single .model file. add_bos_token=True lands in init_kwargs,
    # where TransformerLens looks before it would reload the tokenizer by name.
    tokenizer = LlamaTokenizer.from_pretrained(
        str(model_path), add_bos_token=True, add_eos_token=False, padding_side="right"
    )
    if proto.normalizer_spec.remove_extra_whitespaces:
        # SentencePiece's own option (on for llama2.c's tok512/tok4096, off for Llama 2): drop
        # leading and trailing spaces and collapse runs of spaces; HF's converter ignores it.
        # The dummy prefix moves into the normalizer too, because Metaspace(prepend_scheme="first")
        # skips it when the text's first character was removed. \A and \z, not ^ and $, which
        # match at every newline in the tokenizers' regex engine (Oniguruma).
        steps = [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Replace(Regex(r"\A | \z"), "")]
        steps += [normalizers.Prepend("\u2581")] if proto.normalizer_spec.add_dummy_prefix else []
        tokenizer.backend_tokenizer.normalizer = normalizers.Sequence(steps + [normalizers.Replace(" ", "\u2581")])
        tokenizer.backend_tokenizer.pre_tokenizer = None
    tokenizer.pad_token = "<unk>"
    if len(tokenizer) != len(proto.pieces):
        raise Llama2cError(f"{model_path}: converted to {len(tokenizer)} tokens instead of {len(proto.pieces)}")
    return tokenizer


def find_tokenizer(bin_path, vocab_size: int) -> Path:
    """`tokenizer.model` or `tok{vocab_size}.model` next to the checkpoint."""
    bin_path = Path(bin_path)
    for name in ("tokenizer.model", f"tok{vocab_size}.model"):
        if (bin_path.parent / name).is_file():
            return bin_path.parent / name
    raise Llama2cError(
        f"{bin_path}: no tokenizer.model or tok{vocab_size}.model next to it; "
        "pass the SentencePiece .model with --tokenizer"
    )


def describe_source(model) -> str:
    """Where a llama2.c model argument is read from, as a report names it."""
    if embedded_checkpoint(model) is not None and not Path(str(model)).exists():
        repo, filename, _, _ = LLAMA2C_CHECKPOINTS[str(model)]
        return f"{repo}/{filename} (embedded copy in head-roles)"
    return str(model)


def describe_tokenizer(model, path) -> str | None:
    """The tokenizer file of a llama2.c model as a report names it: the embedded copy by its hub
    name (not this machine's path, so a report reads the same from any install), else its path."""
    embedded = embedded_checkpoint(model)
    if embedded is not None and path is not None and Path(str(path)).resolve() == embedded[1].resolve():
        _, _, tok_repo, tok_filename = LLAMA2C_CHECKPOINTS[str(model)]
        return f"{tok_repo}/{tok_filename} (embedded copy in head-roles)"
    return str(path) if path is not None else None


def resolve_llama2c_name(name) -> tuple[Path, Path]:
    """Local paths of a named checkpoint and its tokenizer: the embedded copy, else the hub cache,
    else downloaded from the hub."""
    from huggingface_hub import hf_hub_download

    from classifier.load.hub import hub_reachable

    if not is_llama2c_name(name):
        raise Llama2cError(f"{name}: not a known llama2.c checkpoint (known: {', '.join(LLAMA2C_CHECKPOINTS)})")
    if embedded_checkpoint(name) is not None:
        return embedded_checkpoint(name)
    repo, filename, tok_repo, tok_filename = LLAMA2C_CHECKPOINTS[name]
    files = ((repo, filename), (tok_repo, tok_filename))
    try:  # A cached copy needs no network, even offline.
        return tuple(Path(hf_hub_download(r, f, local_files_only=True)) for r, f in files)
    except Exception:
        pass
    # Checking first fails in at most a few seconds; hf_hub_download retries for much longer.
    if not hub_reachable():
        raise Llama2cError(
            f"{name}: {repo}/{filename} is not in the local Hugging Face cache and the hub is unreachable; "
            "download it and pass the .bin path (with --tokenizer for its .model)"
        )
    try:
        return tuple(Path(hf_hub_download(r, f)) for r, f in files)
    except Exception as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise Llama2cError(f"{name}: download from {repo} failed ({type(err).__name__}: {first_line})") from None


def load_llama2c(bin_path, tokenizer_path=None):
    """A float32 `LlamaForCausalLM` (eval mode) and its tokenizer from a llama2.c checkpoint.

    `bin_path` may also be a name in LLAMA2C_CHECKPOINTS. Without `tokenizer_path` the tokenizer is
    looked for next to the checkpoint (see find_tokenizer).
    """
    from transformers import LlamaForCausalLM

    if is_llama2c_name(bin_path) and not Path(bin_path).exists():
        bin_path, named_tokenizer = resolve_llama2c_name(bin_path)
        tokenizer_path = tokenizer_path or named_tokenizer
    bin_path = Path(bin_path)
    config, arrays = read_llama2c_weights(bin_path)
    tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else find_tokenizer(bin_path, config.vocab_size)
    tokenizer = load_sentencepiece_tokenizer(tokenizer_path)
    if len(tokenizer) != config.vocab_size:
        raise Llama2cError(
            f"{tokenizer_path}: tokenizer has {len(tokenizer):,} tokens but {bin_path} has vocab_size "
            f"{config.vocab_size:,}; pass the tokenizer the checkpoint was trained with"
        )
    model = LlamaForCausalLM(hf_config(config))
    # strict: every parameter is overwritten, so the random initialisation never leaks through.
    # A tied lm_head stays tied: load_state_dict copies into the one shared tensor.
    model.load_state_dict(hf_state_dict(config, arrays), strict=True)
    return model.eval(), tokenizer


def boot_llama2c_bridge(bin_path, tokenizer_path=None, device: str = "cpu"):
    """A TransformerLens `TransformerBridge` on a llama2.c checkpoint (path or name), and its tokenizer.

    Booting with `hf_model=` and `tokenizer=` looks nothing up on the hub: the model name (the
    checkpoint's stem) is only a label. boot_transformers itself switches the model to eager
    attention, which hook_pattern needs, and keeps the tokenizer because it already adds BOS.
    """
    from transformer_lens.model_bridge import TransformerBridge

    model, tokenizer = load_llama2c(bin_path, tokenizer_path)
    name = Path(str(bin_path)).stem
    bridge = TransformerBridge.boot_transformers(name, hf_model=model.to(device), tokenizer=tokenizer, device=device)
    return bridge.eval(), tokenizer
