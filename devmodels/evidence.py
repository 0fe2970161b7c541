"""Print the evidence a researcher reads before labelling heads by hand, for one checkpoint.

For a Hugging Face checkpoint directory this writes a Markdown page with, per head:
- shares of attention on targets (self, previous, 2 back, BOS, latest delimiter, other
  delimiters, clause start, word start, names, earlier copies, induction, 5-token window) over
  held-out stories, each beside its value under uniform attention and the ratio (lift), and the
  same shares with the BOS sink removed (rows renormalised over keys 1..i);
- the shape of the pattern: normalised entropy, max weight, distance, most common argmax offset;
- duplicate and induction shares on a repeated random-token sequence;
- argmax key of every query on a few stories and the banana prompt, top-3 keys on the prompt,
  and one PNG per layer of the prompt's patterns.
It is independent of classifier/label/roles.py and classifier/measure/scoring.py (its own token classes,
written from design section 3), and assigns no roles.

    python -m devmodels.evidence devmodels/tinystories-4L-dev --out devmodels/evidence
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from devmodels.train import read_stories, STORIES_PATH

BANANA_PROMPT = 'One day, Lucy asks Tom: "I am looking for a banana but I can\'t find it". Tom says: "Don\'t'
DELIM_CHARS = set('.,!?;:"“”…')
CONJUNCTIONS = {"and", "but", "or", "so", "because", "yet", "nor"}
TARGETS = ["self", "prev", "back2", "bos", "last_delim", "other_delims", "clause_start", "word_start",
           "names", "duplicate", "induction", "window5"]


# --- token classes (design section 3) ----------------------------------------------------------

def piece_texts(tokenizer, ids: list[int]) -> list[str]:
    """Each token's own text, a word-start marker rendered as a leading space."""
    pieces = tokenizer.convert_ids_to_tokens(ids)
    if any("\u2581" in p for p in pieces):  # SentencePiece: ▁ marks a word start; <0x0A> is a byte
        out = []
        for p in pieces:
            if p.startswith("<0x") and p.endswith(">"):
                b = int(p[3:-1], 16)
                out.append(chr(b) if b < 0x80 else f"<{p[3:-1]}>")
            else:
                out.append(p.replace("\u2581", " "))
        return out
    return [tokenizer.decode([i]) for i in ids]


def token_classes(texts: list[str]) -> dict[str, np.ndarray]:
    """Boolean arrays over positions (position 0 is BOS) and per-position target indices."""
    n = len(texts)
    delim, glue, word_start, name = (np.zeros(n, bool) for _ in range(4))
    boundary = np.zeros(n, bool)
    boundary[0] = True
    for k in range(1, n):
        t, s = texts[k], texts[k].strip()
        glue[k] = t != "" and s == ""
        delim[k] = "\n" in t or (s != "" and set(s) <= DELIM_CHARS)
        prev = k - 1
        after_break = prev == 0 or "\n" in texts[prev] or glue[prev]
        word_start[k] = not glue[k] and (t[:1].isspace() or delim[k] or after_break)
        boundary[k] = delim[k] or (word_start[k] and s.lower() in CONJUNCTIONS)
        before = texts[prev].strip().rstrip('"”')
        name[k] = (word_start[k] and s[:1].isupper() and s != "I" and not after_break
                   and texts[prev].strip() not in ('"', "“") and not before.endswith((".", "!", "?")))
    return {"delim": delim, "glue": glue, "word_start": word_start, "boundary": boundary, "name": name}


def target_masks(ids: np.ndarray, texts: list[str]) -> dict[str, np.ndarray]:
    """(T, T) masks of each query's targets; a query with an empty row is not eligible."""
    n = len(ids)
    cls = token_classes(texts)
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    causal = j <= i
    q = np.arange(n) >= 1  # query 0 is never counted
    m = {
        "self": (j == i) & q[:, None],
        "prev": (j == i - 1) & (i >= 2),
        "back2": (j == i - 2) & (i >= 3),
        "bos": (j == 0) & q[:, None],
        "window5": (j >= i - 4) & causal & (i >= 5),
    }
    # Latest delimiter, clause start and word start: one target position per query (or none).
    last_d, clause, wstart = np.full(n, -1), np.full(n, -1), np.full(n, -1)
    latest_d, latest_b, latest_w = -1, 0, -1
    for k in range(1, n):
        last_d[k] = latest_d
        c = latest_b + 1
        while c < k and cls["glue"][c]:
            c += 1
        clause[k] = c
        if not cls["word_start"][k] and not cls["glue"][k]:
            wstart[k] = latest_w
        latest_d = k if cls["delim"][k] else latest_d
        latest_b = k if cls["boundary"][k] else latest_b
        latest_w = k if cls["word_start"][k] else latest_w
    ks = np.arange(n)
    far = lambda p: (p >= 1) & (p <= ks - 2)  # noqa: E731  keep off the current and previous token
    m["last_delim"] = (j == last_d[:, None]) & far(last_d)[:, None]
    m["other_delims"] = cls["delim"][None, :] & (j >= 1) & (j <= i - 2) & (j != last_d[:, None])
    m["clause_start"] = (j == clause[:, None]) & far(clause)[:, None]
    m["word_start"] = (j == wstart[:, None]) & far(wstart)[:, None]
    m["names"] = cls["name"][None, :] & (j >= 1) & (j <= i - 2)
    same = (ids[:, None] == ids[None, :]) & (j < i)
    m["duplicate"] = same & q[:, None]
    m["induction"] = np.zeros((n, n), bool)
    m["induction"][:, 1:] = same[:, :-1] & (j[:, :-1] < i - 1)
    return m


# --- attention ---------------------------------------------------------------------------------

def load(directory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager").eval()
    return model, AutoTokenizer.from_pretrained(directory)


def encode(tokenizer, text: str, n_ctx: int) -> np.ndarray:
    return np.array([tokenizer.bos_token_id, *tokenizer(text.strip(), add_special_tokens=False)["input_ids"]][:n_ctx])


@torch.no_grad()
def attention(model, ids: np.ndarray) -> np.ndarray:
    """(L, H, T, T) attention patterns, query 0 forced onto BOS."""
    out = model(input_ids=torch.from_numpy(ids)[None], output_attentions=True)
    a = torch.stack(out.attentions)[:, 0].double().numpy()
    a[:, :, 0, :] = 0.0
    a[:, :, 0, 0] = 1.0
    return a


class Tally:
    """Token-weighted sums of shares and of uniform-attention shares, per metric and head."""

    def __init__(self):
        self.share, self.uniform, self.count = {}, {}, {}

    def add(self, name: str, per_query: np.ndarray, uniform: np.ndarray, eligible: np.ndarray) -> None:
        self.share[name] = self.share.get(name, 0) + per_query[..., eligible].sum(-1)
        self.uniform[name] = self.uniform.get(name, 0) + uniform[eligible].sum()
        self.count[name] = self.count.get(name, 0) + eligible.sum()

    def mean(self, name):
        c = max(self.count[name], 1)
        return self.share[name] / c, self.uniform[name] / c


def tally_story(tally: Tally, no_bos: Tally, a: np.ndarray, masks: dict[str, np.ndarray]) -> None:
    n = a.shape[-1]
    pos = np.arange(n)
    keys = pos + 1.0  # keys 0..i under uniform attention
    rest = a.copy()
    rest[..., 0] = 0.0
    mass = rest.sum(-1, keepdims=True)
    rest = np.divide(rest, mass, out=np.zeros_like(rest), where=mass > 0)  # rows over keys 1..i
    for name, mask in masks.items():
        eligible = mask.any(-1)
        tally.add(name, (a * mask).sum(-1), mask.sum(-1) / keys, eligible)
        if name != "bos":
            nb = mask.copy()
            nb[:, 0] = False
            e = nb.any(-1) & (pos >= 1)
            no_bos.add(name, (rest * nb).sum(-1), nb.sum(-1) / np.maximum(pos, 1), e)
    q = pos >= 1
    ent = -(np.where(a > 0, a * np.log(np.where(a > 0, a, 1)), 0)).sum(-1) / np.log(np.maximum(keys, 2))
    tally.add("entropy", ent, np.ones(n), q)
    tally.add("max_weight", a.max(-1), 1 / keys, q)
    tally.add("distance", (a * (pos[:, None] - pos[None, :])).sum(-1), pos / 2, q)
    argmax_off = pos - a.argmax(-1)  # (L, H, T)
    for off in range(4):
        tally.add(f"argmax_off{off}", (argmax_off == off).astype(float), np.zeros(n), q)
    tally.add("argmax_bos", (a.argmax(-1) == 0).astype(float), np.zeros(n), q)


# --- rendering ---------------------------------------------------------------------------------

def show(text: str) -> str:
    return text.replace("\n", "\\n").replace(" ", "▁").replace("|", "\\|") or "∅"


def fmt(share: float, uniform: float) -> str:
    lift = share / uniform if uniform > 0 else float("nan")
    return f"{share:.2f} (x{lift:.1f})"


def head_ids(L, H):
    return [(l, h) for l in range(L) for h in range(H)]


def write_png(a: np.ndarray, texts: list[str], layer: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    H, n = a.shape[0], a.shape[-1]
    cols = 4
    rows = (H + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 4.2, rows * 4.2))
    labels = [show(t) for t in texts]
    labels[0] = "BOS"
    for h, ax in enumerate(np.ravel(axes)):
        if h >= H:
            ax.axis("off")
            continue
        ax.imshow(a[h], cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"head {layer}.{h}", fontsize=9)
        ax.set_xticks(range(n), labels, rotation=90, fontsize=4)
        ax.set_yticks(range(n), labels, fontsize=4)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def evidence(directory: Path, out_dir: Path, *, n_stories: int = 100, n_shown: int = 3, shown_tokens: int = 50) -> Path:
    """Write out_dir/<name>.md (and <name>-layerN.png) for the checkpoint in `directory`."""
    torch.manual_seed(0)
    model, tokenizer = load(directory)
    name = Path(directory).name
    n_ctx = model.config.max_position_embeddings
    held = read_stories(STORIES_PATH)[-200:]  # the held-out stories of devmodels.train
    tally, no_bos = Tally(), Tally()
    for story in held[:n_stories]:
        ids = encode(tokenizer, story, n_ctx)
        tally_story(tally, no_bos, attention(model, ids), target_masks(ids, piece_texts(tokenizer, ids)))
    a_prompt_ids = encode(tokenizer, BANANA_PROMPT, n_ctx)
    a_prompt = attention(model, a_prompt_ids)
    L, H = a_prompt.shape[:2]
    heads = head_ids(L, H)

    lines = [f"# Evidence: {name}", "",
             f"Checkpoint `{directory}`; {n_stories} held-out stories (the last 200 of "
             "tinystories-train-2316.txt, first {0}); BOS prepended; query 0 never counted. "
             "Cells: token-weighted mean share (lift = share / share under uniform attention).".format(n_stories), ""]
    lines += ["## Shares of attention on targets", "",
              "| head | " + " | ".join(TARGETS) + " |", "|---" * (len(TARGETS) + 1) + "|"]
    uniform_row = "| uniform | " + " | ".join(f"{tally.mean(t)[1]:.3f}" for t in TARGETS) + " |"
    for k, (l, h) in enumerate(heads):
        lines.append(f"| {l}.{h} | " + " | ".join(fmt(tally.mean(t)[0][l, h], tally.mean(t)[1]) for t in TARGETS) + " |")
    lines += [uniform_row, ""]
    nb_targets = [t for t in TARGETS if t != "bos"]
    lines += ["## The same, BOS sink removed (each row renormalised over keys 1..i)", "",
              "| head | bos share | " + " | ".join(nb_targets) + " |", "|---" * (len(nb_targets) + 2) + "|"]
    for l, h in heads:
        lines.append(f"| {l}.{h} | {tally.mean('bos')[0][l, h]:.2f} | "
                     + " | ".join(fmt(no_bos.mean(t)[0][l, h], no_bos.mean(t)[1]) for t in nb_targets) + " |")
    lines += ["", "## Shape of the pattern", "",
              "| head | entropy (norm.) | max weight | distance (uniform) | argmax=self | argmax=prev | argmax=2 back | argmax=3 back | argmax=BOS |",
              "|---|---|---|---|---|---|---|---|---|"]
    for l, h in heads:
        cells = [f"{tally.mean('entropy')[0][l, h]:.2f}", fmt(*[x if np.ndim(x) == 0 else x[l, h] for x in tally.mean("max_weight")]),
                 f"{tally.mean('distance')[0][l, h]:.1f} ({tally.mean('distance')[1]:.1f})"]
        cells += [f"{tally.mean(f'argmax_off{o}')[0][l, h]:.2f}" for o in range(4)]
        cells += [f"{tally.mean('argmax_bos')[0][l, h]:.2f}"]
        lines.append(f"| {l}.{h} | " + " | ".join(cells) + " |")

    # Repeated random tokens: an induction head attends to the token after the earlier copy.
    g = torch.Generator().manual_seed(0)
    vocab_ids = np.unique(np.concatenate([encode(tokenizer, s, n_ctx) for s in held[:50]]))
    vocab_ids = vocab_ids[vocab_ids != tokenizer.bos_token_id]
    half = vocab_ids[torch.randperm(len(vocab_ids), generator=g)[:40].numpy()]
    rep_ids = np.array([tokenizer.bos_token_id, *half, *half])
    rep_a = attention(model, rep_ids)
    second = np.arange(len(rep_ids)) > len(half)
    pos = np.arange(len(rep_ids))
    ind = rep_a[..., pos[second], pos[second] - len(half) + 1].mean(-1)
    dup = rep_a[..., pos[second], pos[second] - len(half)].mean(-1)
    prev = rep_a[..., pos[second], pos[second] - 1].mean(-1)
    bos = rep_a[..., pos[second], 0].mean(-1)
    lines += ["", "## Repeated random tokens (40 random story tokens, twice; queries in the second copy)", "",
              "| head | induction (token after the earlier copy) | duplicate (earlier copy) | previous | BOS |",
              "|---|---|---|---|---|"]
    for l, h in heads:
        lines.append(f"| {l}.{h} | {ind[l, h]:.2f} | {dup[l, h]:.2f} | {prev[l, h]:.2f} | {bos[l, h]:.2f} |")
    lines.append(f"\nUniform attention in the second copy gives about {np.mean(1 / (pos[second] + 1)):.3f} per key.")

    # Argmax keys on a few stories and the prompt; top-3 keys on the prompt.
    shown = [(f"held-out story {k + 1} (first {shown_tokens} tokens)", encode(tokenizer, held[k], shown_tokens + 1))
             for k in range(n_shown)] + [("banana prompt", a_prompt_ids)]
    patterns = [(title, ids, piece_texts(tokenizer, ids), attention(model, ids)) for title, ids in shown]
    lines += ["", "## Argmax key of every query (`query -> key (offset)`)", ""]
    for l, h in heads:
        lines.append(f"### head {l}.{h}")
        for title, ids, texts, a in patterns:
            am = a[l, h].argmax(-1)
            items = [f"{show(texts[i])}->{'BOS' if am[i] == 0 else show(texts[am[i]])}({i - am[i]})"
                     for i in range(1, len(ids))]
            lines.append(f"- {title}: " + "  ".join(items))
        lines.append("")
    lines += ["## Banana prompt: top-3 keys per query (weight)", ""]
    texts = piece_texts(tokenizer, a_prompt_ids)
    for l, h in heads:
        rows = []
        for i in range(1, len(a_prompt_ids)):
            top = np.argsort(-a_prompt[l, h, i, : i + 1])[:3]
            rows.append(f"{show(texts[i])}: " + ", ".join(f"{'BOS' if j == 0 else show(texts[j])}({i - j}) {a_prompt[l, h, i, j]:.2f}" for j in top))
        lines.append(f"- **{l}.{h}**: " + " · ".join(rows))
    out_dir.mkdir(parents=True, exist_ok=True)
    for l in range(L):
        png = out_dir / f"{name}-layer{l}.png"
        write_png(a_prompt[l], texts, l, png)
        lines.append(f"\n![layer {l} on the banana prompt]({png.name})")
    page = out_dir / f"{name}.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write the hand-labelling evidence page of a checkpoint.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "evidence")
    parser.add_argument("--stories", type=int, default=100)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    print(evidence(args.directory, args.out, n_stories=args.stories))


if __name__ == "__main__":
    main()
