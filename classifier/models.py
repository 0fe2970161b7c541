"""Load a checkpoint into a TransformerLens `TransformerBridge`.

A model argument is a TransformerLens name or alias (`tiny-stories-1L-21M`), a Hugging Face id
(`roneneldan/TinyStories-33M`, with a revision), a local Hugging Face checkpoint directory, or a
llama2.c `.bin` checkpoint (see `classifier.llama2c`). Every failure becomes one `ModelLoadError`
line that says which model, why, and how to pass a local directory instead. This module does not
score anything.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from classifier.corpora import hub_reachable

LOCAL_HINT = "pass a local checkpoint directory with --model PATH (or run `make demo` for an offline report)"


class ModelLoadError(ValueError):
    """A model that cannot be loaded; the message is one line."""


@dataclass(frozen=True)
class LoadedModel:
    """A bridge ready to run, and what a report needs to say about it."""

    name: str  # as the user gave it
    resolved: str  # official Hugging Face id, or the local path
    revision: str | None
    bridge: Any  # transformer_lens.model_bridge.TransformerBridge
    tokenizer: Any
    n_layers: int
    n_heads: int
    n_ctx: int
    bos_token_id: int
    device: str


def tinystories_models() -> dict[str, list[str]]:
    """Official names of the TinyStories checkpoints TransformerLens knows, with their aliases."""
    from transformer_lens.tools.model_registry.registry_io import load_model_aliases

    return {
        name: list(aliases)
        for name, aliases in load_model_aliases().items()
        if "TinyStories" in name or "Instuct" in name
    }


def known_models() -> dict[str, list[str]]:
    """Every model name this tool resolves without a path: TinyStories and llama2.c checkpoints."""
    from classifier.llama2c import LLAMA2C_CHECKPOINTS

    return {**tinystories_models(), **{name: [] for name in LLAMA2C_CHECKPOINTS}}


def embedded_models() -> list[str]:
    """Names whose checkpoint ships inside the package: they load with no hub and no cache."""
    from classifier.llama2c import EMBEDDED_CHECKPOINTS, embedded_checkpoint

    return [name for name in EMBEDDED_CHECKPOINTS if embedded_checkpoint(name) is not None]


# What `head-roles report` (and `make report`) reports without --model when the hub default can
# be neither found in the cache nor downloaded: a real model shipped inside the package.
EMBEDDED_DEFAULT = "stories260K"
DEFAULT_OUT = {"hub": "reports/tinystories-1L-21M", "embedded": "reports/stories260K-embedded"}


@dataclass(frozen=True)
class DefaultChoice:
    """The model, corpus and run directory a report without --model uses, and why (notices)."""

    model: str
    corpus: str
    out_dir: str
    notices: tuple[str, ...] = ()


def hub_model_available(model: str) -> bool:
    """Whether a hub model loads here: in the local Hugging Face cache, or the hub answers."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(resolve_name(model), local_files_only=True)
        return True
    except Exception:
        return hub_reachable()


def choose_default_model(default: str, corpus: str) -> DefaultChoice:
    """`default` when it can be loaded, else the embedded model, on the embedded stories when the
    corpus is the (then unreachable) TinyStories dataset. Only for a report without --model: an
    explicit model never falls back."""
    from classifier.corpora import SAMPLE_NAME

    if hub_model_available(default) or not embedded_models():
        return DefaultChoice(default, corpus, DEFAULT_OUT["hub"])
    corpus = SAMPLE_NAME if corpus == "tinystories" else corpus
    notice = (
        f"No --model given and {default} is neither cached nor downloadable (Hugging Face hub unreachable): "
        f"reporting the embedded {EMBEDDED_DEFAULT} (llama2.c, karpathy/tinyllamas) on --corpus {corpus} instead; "
        "pick a model with --model M (make report MODEL=M)."
    )
    return DefaultChoice(EMBEDDED_DEFAULT, corpus, DEFAULT_OUT["embedded"], (notice,))


def resolve_device(device: str) -> str:
    """`auto` becomes cuda when available, else cpu; anything else must be a valid torch device."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError:
        raise ModelLoadError(f"--device {device!r}: not a torch device (try auto, cpu or cuda)") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"--device {device}: CUDA is not available on this machine (try --device cpu)")
    return device


def resolve_name(model: str) -> str:
    """The official Hugging Face id of a TransformerLens name or alias; `model` itself otherwise."""
    from transformer_lens.tools.model_registry.registry_io import resolve_model_alias

    return resolve_model_alias(model) or model


def load_model(
    model: str, *, revision: str | None = None, device: str = "auto", tokenizer_path: str | None = None
) -> LoadedModel:
    """Load `model` (name, alias, hub id, local directory or llama2.c .bin) on `device`."""
    from classifier import llama2c

    device = resolve_device(device)
    path = Path(model)
    if llama2c.is_llama2c_name(model) or (path.suffix == ".bin" and path.exists()):
        try:
            bridge, tokenizer = llama2c.boot_llama2c_bridge(model, tokenizer_path, device=device)
        except llama2c.Llama2cError as err:
            raise ModelLoadError(str(err)) from None
        return _loaded(model, llama2c.describe_source(model), None, bridge, tokenizer, device)
    if path.exists():
        return _load_directory(model, path, device)
    if model.startswith((".", "/", "~")) or (model.count("/") > 1):
        raise ModelLoadError(f"--model {model}: no such file or directory")
    return _load_hub(model, revision, device)


def _load_directory(model: str, path: Path, device: str) -> LoadedModel:
    if not path.is_dir():
        raise ModelLoadError(f"--model {model}: not a checkpoint directory or a llama2.c .bin file")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"--model {model}: no config.json in this directory (not a Hugging Face checkpoint)")
    bridge = _boot(model, str(path), None, device)
    return _loaded(model, str(path), None, bridge, bridge.tokenizer, device)


def _load_hub(model: str, revision: str | None, device: str) -> LoadedModel:
    from huggingface_hub import snapshot_download

    official = resolve_name(model)
    if "/" not in official:
        known = known_models()
        close = difflib.get_close_matches(model, [*known, *(a for aliases in known.values() for a in aliases)], n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ModelLoadError(
            f"--model {model}: unknown model name; {hint}run `head-roles models` for the known names, "
            f"give a Hugging Face id (org/name), or {LOCAL_HINT}"
        )
    try:  # A model already in the local Hugging Face cache needs no network.
        local = snapshot_download(official, revision=revision, local_files_only=True)
    except Exception:
        local = None
    if local is None and not hub_reachable():
        raise ModelLoadError(
            f"--model {model}: {official} is not in the local Hugging Face cache and the hub is "
            f"unreachable; {LOCAL_HINT}"
        )
    bridge = _boot(model, local or official, revision if local is None else None, device)
    return _loaded(model, official, revision, bridge, bridge.tokenizer, device)


def _boot(model: str, source: str, revision: str | None, device: str):
    from transformer_lens.model_bridge import TransformerBridge

    # TransformerLens and transformers log deprecations and load reports on every boot.
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        return TransformerBridge.boot_transformers(source, device=device, revision=revision)
    except Exception as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelLoadError(f"--model {model}: cannot load ({type(err).__name__}: {first_line}); {LOCAL_HINT}") from None


def _loaded(name: str, resolved: str, revision: str | None, bridge, tokenizer, device: str) -> LoadedModel:
    if tokenizer is None:
        raise ModelLoadError(f"--model {name}: the checkpoint has no tokenizer")
    bos = tokenizer.bos_token_id
    if bos is None:
        raise ModelLoadError(f"--model {name}: the tokenizer has no BOS token, which every scored text starts with")
    bridge.eval()
    return LoadedModel(
        name=name, resolved=resolved, revision=revision, bridge=bridge, tokenizer=tokenizer,
        n_layers=bridge.cfg.n_layers, n_heads=bridge.cfg.n_heads, n_ctx=bridge.cfg.n_ctx,
        bos_token_id=bos, device=device,
    )
