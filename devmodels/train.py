"""Train the small TinyStories development models on two CPU cores, with checkpoints on the way.

Two models (see MODELS): `tinystories-1L-dev`, a one-layer GPT-Neo with the GPT-2 BPE tokenizer
(shaped like TinyStories-1Layer-21M, much narrower), and `tinystories-4L-dev`, a four-layer Llama
with llama2.c's 512-piece SentencePiece tokenizer. Every checkpoint is a plain Hugging Face
directory (config.json, model.safetensors, tokenizer files). Beside them, training.json records
the seed, data split, time, held-out loss against a unigram baseline and a greedy sample.

The 1L model trains on a compact vocabulary (only the token ids the training stories use) and
is saved with the full 50,257-row embedding; unused rows are zero, and the training loss already
counts them (each has logit 0), so the saved model's loss equals the trained one's.

    python -m devmodels.train                     # both models, skipping any already trained as configured
    python -m devmodels.train --model tinystories-4L-dev --force

This file does not label heads (see devmodels/evidence.py and devmodels/labels/).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from classifier import console
from classifier.console import quiet_kernel_probe
from classifier.track.tracking import notices_once

ROOT = Path(__file__).resolve().parents[1]
# Everything training reads is committed (licences beside each file), so a clone rebuilds the
# models: the 2,316 real stories, the GPT-2 BPE files, and llama2.c's tok512 embedded in the package.
STORIES_PATH = ROOT / "corpora" / "tinystories-train-2316.txt"
GPT2_TOKENIZER_DIR = ROOT / "devmodels" / "gpt2-tokenizer"
TOK512_PATH = ROOT / "classifier" / "data" / "tok512.model"
SEPARATOR = "<|endoftext|>"


@dataclass(frozen=True)
class TrainConfig:
    """One model's architecture, optimisation and output place."""

    name: str
    arch: str  # "gpt-neo" (GPT-2 BPE) or "llama" (tok512 SentencePiece)
    out_dir: str  # relative to the repository root
    n_layers: int
    n_heads: int
    d_model: int
    d_mlp: int
    n_ctx: int = 256
    batch_size: int = 16
    steps: int = 1000
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.1
    seed: int = 0
    held_out: int = 200  # the last stories of the file, never trained on
    checkpoints: tuple[int, ...] = (0, 25, 50, 100, 200, 400, 800)  # plus the final step
    sample_tokens: int = 80


MODELS = {
    "tinystories-1L-dev": TrainConfig(
        name="tinystories-1L-dev", arch="gpt-neo", out_dir="devmodels/build/tinystories-1L-dev",
        n_layers=1, n_heads=16, d_model=128, d_mlp=512, steps=800, lr=3e-3, warmup=40,
        checkpoints=(0, 25, 50, 100, 200, 300, 400, 600),
    ),
    "tinystories-4L-dev": TrainConfig(
        name="tinystories-4L-dev", arch="llama", out_dir="devmodels/tinystories-4L-dev",
        n_layers=4, n_heads=8, d_model=64, d_mlp=172, steps=2500, lr=5e-3, warmup=50,
        checkpoints=(0, 25, 50, 100, 200, 400, 800, 1500),
    ),
}


# --- data -------------------------------------------------------------------------------------

def read_stories(path: Path = STORIES_PATH) -> list[str]:
    """Stories of a `<|endoftext|>`-separated file, stripped, in file order."""
    text = Path(path).read_text(encoding="utf-8")
    return [s.strip() for s in text.split(SEPARATOR) if s.strip()]


def load_tokenizer(arch: str):
    """The Hugging Face tokenizer saved with the model; BOS is its first token of every text."""
    if arch == "gpt-neo":
        from transformers import GPT2TokenizerFast

        tokenizer = GPT2TokenizerFast.from_pretrained(str(GPT2_TOKENIZER_DIR))
        tokenizer.bos_token = tokenizer.eos_token = tokenizer.unk_token = SEPARATOR
        return tokenizer
    from classifier.load.llama2c import load_sentencepiece_tokenizer

    return load_sentencepiece_tokenizer(TOK512_PATH)


def _sha256(*paths: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def tokenizer_digest(arch: str) -> str:
    """sha256 of the tokenizer files an architecture trains with (their bytes, in a fixed order)."""
    if arch == "gpt-neo":
        return _sha256(GPT2_TOKENIZER_DIR / "vocab.json", GPT2_TOKENIZER_DIR / "merges.txt")
    return _sha256(TOK512_PATH)


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# Records written before the data was committed name the ../shared copy of the stories and carry no
# digests; that copy and its tokenizers are byte-identical to the committed files (sha256 in
# corpora/NOTICE.md, devmodels/gpt2-tokenizer/NOTICE.md, classifier/data/NOTICE.md).
LEGACY_STORIES = {"shared/data/tinystories/tinystories-train-2316.txt":
                  "ba02237f5747a07d420cb7329f721fdc51b6f5c35a81788b9c4bb871e15ff30a"}


def trained_as_configured(record: dict, config: TrainConfig) -> bool:
    """Whether a training.json records this configuration on the same data (by content: the
    stories' and the tokenizer's sha256), so the model it sits beside need not be retrained."""
    if record.get("config") != json.loads(json.dumps(asdict(config))):
        return False
    data = record.get("data", {})
    stories = data.get("sha256") or LEGACY_STORIES.get(data.get("file"))
    tokenizer = data.get("tokenizer_sha256", tokenizer_digest(config.arch))  # legacy: the same files
    return stories == _sha256(STORIES_PATH) and tokenizer == tokenizer_digest(config.arch)


def encode(tokenizer, stories: list[str]) -> list[np.ndarray]:
    """Each story as BOS + its pieces (no special tokens), as the head-roles metrics see it."""
    bos = tokenizer.bos_token_id
    ids = tokenizer(stories, add_special_tokens=False)["input_ids"]
    return [np.array([bos, *row], dtype=np.int64) for row in ids]


def batches(stream: torch.Tensor, starts: torch.Tensor, config: TrainConfig):
    """Endless (B, T+1) windows of the token stream, each starting at a story's BOS (seeded order)."""
    g = torch.Generator().manual_seed(config.seed)
    offsets = torch.arange(config.n_ctx + 1)
    usable = starts[starts + config.n_ctx + 1 <= len(stream)]
    while True:
        pick = usable[torch.randint(len(usable), (config.batch_size,), generator=g)]
        yield stream[pick[:, None] + offsets]  # (B, T+1)


# --- models -----------------------------------------------------------------------------------

def build_model(config: TrainConfig, vocab_size: int, bos: int, eos: int):
    """A freshly initialised model (seeded by the caller) with `vocab_size` embedding rows."""
    if bos >= vocab_size:  # the compact training model: special ids are not its row numbers
        bos = eos = None
    quiet_kernel_probe()  # offline, transformers' model classes log a hub-kernel note per kernel
    if config.arch == "gpt-neo":
        from transformers import GPTNeoConfig, GPTNeoForCausalLM

        hf = GPTNeoConfig(
            vocab_size=vocab_size, max_position_embeddings=config.n_ctx, hidden_size=config.d_model,
            num_layers=config.n_layers, num_heads=config.n_heads,
            attention_types=[[["global"], config.n_layers]], intermediate_size=config.d_mlp,
            embed_dropout=0.0, attention_dropout=0.0, resid_dropout=0.0, bos_token_id=bos, eos_token_id=eos,
        )
        return GPTNeoForCausalLM(hf)
    from transformers import LlamaConfig, LlamaForCausalLM

    hf = LlamaConfig(
        vocab_size=vocab_size, hidden_size=config.d_model, intermediate_size=config.d_mlp,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads, head_dim=config.d_model // config.n_heads,
        max_position_embeddings=config.n_ctx, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=True, bos_token_id=bos, eos_token_id=2, pad_token_id=0,
    )
    return LlamaForCausalLM(hf)


def embedding(model) -> torch.nn.Embedding:
    return model.get_input_embeddings()


def full_logits(model, ids: torch.Tensor, n_unused: int) -> torch.Tensor:
    """Logits over the used rows plus one column standing for all unused (zero) rows together.

    A zero row has logit 0, so n_unused of them add n_unused * e^0 to the softmax: one extra
    column of logit ln(n_unused) carries exactly that mass.
    """
    hidden = model.base_model(input_ids=ids).last_hidden_state  # (B, T, d)
    logits = model.lm_head(hidden)  # (B, T, V_used); lm_head is tied to the embedding
    if n_unused == 0:
        return logits
    rest = torch.full_like(logits[..., :1], math.log(n_unused))
    return torch.cat([logits, rest], dim=-1)


def full_model(model, config: TrainConfig, tokenizer, used: torch.Tensor):
    """`model` as an ordinary full-vocabulary model: used rows in place, the rest zero (the model
    itself when it trains on the full vocabulary)."""
    vocab = len(tokenizer)
    if len(used) == vocab:
        return model
    full = build_model(config, vocab, tokenizer.bos_token_id, tokenizer.eos_token_id)
    state = {k: v for k, v in model.state_dict().items() if "wte" not in k and "lm_head" not in k}
    full.load_state_dict(state, strict=False)
    with torch.no_grad():
        embedding(full).weight.zero_()
        embedding(full).weight[used] = embedding(model).weight
    return full


def save_full(model, config: TrainConfig, tokenizer, used: torch.Tensor, directory: Path):
    """Save `model` as an ordinary full-vocabulary checkpoint; returns that full model."""
    directory.mkdir(parents=True, exist_ok=True)
    full = full_model(model, config, tokenizer, used)
    full.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return full


# --- measurement ------------------------------------------------------------------------------

@torch.no_grad()
def eval_loss(model, stories: list[np.ndarray], n_ctx: int) -> float:
    """Mean nats per predicted token over held-out stories (each BOS + pieces, truncated to n_ctx)."""
    total, count = 0.0, 0
    for ids in stories:
        x = torch.from_numpy(ids[:n_ctx])[None]  # (1, T)
        logits = model(input_ids=x[:, :-1]).logits[0]  # (T-1, V)
        total += F.cross_entropy(logits, x[0, 1:], reduction="sum").item()
        count += x.shape[1] - 1
    return total / count


def unigram_loss(train: list[np.ndarray], held: list[np.ndarray], vocab: int, n_ctx: int) -> float:
    """Cross-entropy of held-out tokens under add-one-smoothed train unigram frequencies."""
    counts = np.bincount(np.concatenate([s[1:] for s in train]), minlength=vocab) + 1.0
    logp = np.log(counts / counts.sum())
    targets = np.concatenate([s[1:n_ctx] for s in held])
    return float(-logp[targets].mean())


@torch.no_grad()
def greedy_sample(model, tokenizer, n_tokens: int) -> str:
    """Greedy continuation of BOS alone, decoded."""
    ids = torch.tensor([[tokenizer.bos_token_id]])
    for _ in range(n_tokens):
        nxt = model(input_ids=ids).logits[0, -1].argmax()
        ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    return tokenizer.decode(ids[0, 1:])


def check_tokenizer(directory: Path, stories: list[str]) -> dict:
    """The saved-and-reloaded tok512 tokenizer against the sentencepiece library, story by story."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(str(directory))
    sp = spm.SentencePieceProcessor(model_file=str(TOK512_PATH))
    hf_ids = reloaded(stories, add_special_tokens=False)["input_ids"]
    same = sum(a == b for a, b in zip(hf_ids, sp.encode(stories)))
    with_bos = reloaded(stories[0])["input_ids"]
    return {"stories": len(stories), "identical": same, "bos_id": reloaded.bos_token_id,
            "bos_prepended": with_bos[0] == 1 and with_bos[1:] == hf_ids[0]}


# --- training ---------------------------------------------------------------------------------

def watcher(config: TrainConfig, out_dir: Path, tokenizer, stories_path: Path = STORIES_PATH):
    """Head roles of every checkpoint as the model trains, into out_dir/track/ (track.html opens
    mid-run): the real stories the model trains on, within its context, lighter than `make
    track-training` (64 stories, not 200)."""
    from classifier.track import RoleWatcher

    return RoleWatcher(out_dir / "track", stories=str(stories_path), n_stories=64, max_tokens=config.n_ctx,
                       bootstrap=200, tokenizer=tokenizer, device="cpu", name=config.name)


def train(config: TrainConfig, out_dir: Path, stories_path: Path = STORIES_PATH, *, verbose: bool = True,
          watch: bool = True) -> dict:
    """Train one model, writing out_dir/checkpoints/step-NNNNNN/, the final model in out_dir and
    out_dir/training.json; with `watch`, the head roles of each checkpoint into out_dir/track/
    as it is saved (classifier.track.RoleWatcher: training is unchanged by it). Returns what
    training.json holds."""
    started = time.time()
    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(config.arch)
    stories = read_stories(stories_path)
    train_stories, held_stories = stories[: -config.held_out], stories[-config.held_out:]
    train_ids, held_ids = encode(tokenizer, train_stories), encode(tokenizer, held_stories)
    vocab = len(tokenizer)

    stream = torch.from_numpy(np.concatenate(train_ids))
    starts = torch.from_numpy(np.cumsum([0] + [len(s) for s in train_ids[:-1]]))
    if config.arch == "gpt-neo":  # compact vocabulary: the ids the training stories use
        used = torch.unique(stream)
        to_compact = torch.zeros(vocab, dtype=torch.long)
        to_compact[used] = torch.arange(len(used))
    else:
        used, to_compact = torch.arange(vocab), None
    n_unused = vocab - len(used)
    compact = (lambda t: to_compact[t]) if to_compact is not None else (lambda t: t)

    model = build_model(config, len(used), tokenizer.bos_token_id, tokenizer.eos_token_id)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:  # linear warmup, cosine decay to a tenth
        if step < config.warmup:
            return config.lr * (step + 1) / config.warmup
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        return config.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))

    save_at = sorted({s for s in config.checkpoints if s < config.steps} | {config.steps})
    ckpt_dir = out_dir / "checkpoints"
    log, data = [], batches(stream, starts, config)
    roles = watcher(config, out_dir, tokenizer, stories_path) if watch else None
    watch_seconds = 0.0
    for step in range(config.steps + 1):
        if step in save_at:
            full = save_full(model, config, tokenizer, used, ckpt_dir / f"step-{step:06d}")
            if roles is not None:
                roles.step(full, step)
                watch_seconds += roles.seconds
                if verbose:
                    print(f"{config.name} step {step:5d} head roles scored in {roles.seconds:.1f} s "
                          f"({out_dir / 'track' / 'track.html'})", flush=True)
        if step == config.steps:
            break
        xy = compact(next(data))  # (B, T+1)
        model.train()
        logits = full_logits(model, xy[:, :-1], n_unused)
        loss = F.cross_entropy(logits.flatten(0, 1), xy[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.step()
        if step % 50 == 0 or step == config.steps - 1:
            log.append({"step": step, "loss": round(loss.item(), 4), "seconds": round(time.time() - started, 1)})
            if verbose:
                print(f"{config.name} step {step:5d} loss {loss.item():.3f} ({time.time() - started:.0f} s)", flush=True)
    train_seconds = time.time() - started

    save_full(model, config, tokenizer, used, out_dir)
    # Measure the saved full-vocabulary model, which is what every later tool loads.
    from transformers import AutoModelForCausalLM

    final = AutoModelForCausalLM.from_pretrained(out_dir).eval()
    result = {
        "model": config.name,
        "config": asdict(config),
        "data": {"file": _relative(stories_path), "sha256": _sha256(stories_path), "stories": len(stories),
                 "train_stories": len(train_stories), "held_out_stories": f"last {config.held_out}",
                 "train_tokens": int(len(stream)), "used_token_ids": int(len(used)), "vocab_size": vocab,
                 "tokenizer_sha256": tokenizer_digest(config.arch)},
        "train_seconds": round(train_seconds - watch_seconds, 1),
        "watch_seconds": round(watch_seconds, 1),
        "threads": torch.get_num_threads(),
        "eval_loss_nats": round(eval_loss(final, held_ids, config.n_ctx), 4),
        "unigram_loss_nats": round(unigram_loss(train_ids, held_ids, vocab, config.n_ctx), 4),
        "greedy_sample": greedy_sample(final, tokenizer, config.sample_tokens),
        "checkpoints": [f"checkpoints/step-{s:06d}" for s in save_at],
        "log": log,
    }
    if config.arch == "llama":
        result["tokenizer_check"] = check_tokenizer(out_dir, held_stories)
    (out_dir / "training.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    if verbose:  # the rest (data, sample, checkpoints, log) is in training.json
        print(f"{config.name}: trained in {result['train_seconds']:.0f} s; held-out loss {result['eval_loss_nats']:.3f} "
              f"nats (unigram {result['unigram_loss_nats']:.3f}); {out_dir / 'training.json'}", flush=True)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train the TinyStories development models.")
    parser.add_argument("--model", choices=[*MODELS, "all"], default="all")
    parser.add_argument("--force", action="store_true", help="retrain even if training.json exists")
    parser.add_argument("--steps", type=int, help="override the number of steps (for quick trials)")
    parser.add_argument("--out", type=Path, help="output directory (one model only)")
    parser.add_argument("--no-watch", action="store_true", help="do not score head roles at each checkpoint")
    # One thread: on two shared cores, two threads lose up to 10x to a competing process (4L: 0.22 s
    # a step on one thread beside another job, 3.7 s on two), and results depend on the count.
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = list(MODELS) if args.model == "all" else [args.model]
    # As the CLI says things: no other library's bars ("Writing model shards" at every save), and a
    # notice about the stories as one `Note:` line, once (not again at every checkpoint watched).
    with console.configured(), notices_once():
        for name in names:
            config = MODELS[name] if args.steps is None else replace(MODELS[name], steps=args.steps)
            out_dir = args.out if args.out is not None else ROOT / config.out_dir
            record = out_dir / "training.json"
            if record.exists() and not args.force:
                if trained_as_configured(json.loads(record.read_text()), config):
                    print(f"{name}: found {out_dir} (use --force to retrain)")
                    continue
                print(f"{name}: {out_dir} was trained with another configuration; retraining")
            if out_dir.exists():
                shutil.rmtree(out_dir)
            try:
                train(config, out_dir, watch=not args.no_watch)
            except KeyboardInterrupt:  # one line, not a traceback from inside torch
                print(f"interrupted: {out_dir} is half-written (no training.json); "
                      "the next `make devmodels` trains it again", file=sys.stderr)
                raise SystemExit(130) from None


if __name__ == "__main__":
    main()
