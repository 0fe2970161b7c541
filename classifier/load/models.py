"""Load a checkpoint into a TransformerLens `TransformerBridge`.

A model argument is a TransformerLens name or alias (`tiny-stories-1L-21M`), a Hugging Face id
(`roneneldan/TinyStories-33M`, with a revision), a local Hugging Face checkpoint directory, or a
llama2.c `.bin` checkpoint (see `classifier.load.llama2c`). Every failure becomes one `ModelLoadError`
line that says which model, why, and how to pass a local directory instead. This module does not
score anything.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from dataclasses import dataclass
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Literal

from classifier.console import quiet_kernel_probe
from classifier.errors import InputError, one_line
from classifier.load.hub import hub_reachable
from classifier.load.packaged import EMBEDDED_CHECKPOINTS, SAMPLE_NAME, embedded_checkpoint

LOCAL_HINT = "pass a local checkpoint directory with --model PATH (or run `make demo` for an offline report)"


def local_hint(option: str) -> str:
    """What to do instead of a hub model, in the words of the option the model came by."""
    return LOCAL_HINT if option == "--model" else "pass a local checkpoint directory instead"


# The TinyStories checkpoints TransformerLens knows by name, with its aliases (official spelling
# `Instuct` kept). Written out so that `head-roles models` needs no torch or transformer_lens
# import (seconds); tests/test_models.py checks it against TransformerLens' registry.
TINYSTORIES_MODELS: dict[str, tuple[str, ...]] = {
    "roneneldan/TinyStories-1M": ("tiny-stories-1M",),
    "roneneldan/TinyStories-3M": ("tiny-stories-3M",),
    "roneneldan/TinyStories-8M": ("tiny-stories-8M",),
    "roneneldan/TinyStories-28M": ("tiny-stories-28M",),
    "roneneldan/TinyStories-33M": ("tiny-stories-33M",),
    "roneneldan/TinyStories-1Layer-21M": ("tiny-stories-1L-21M",),
    "roneneldan/TinyStories-2Layers-33M": ("tiny-stories-2L-33M",),
    "roneneldan/TinyStories-Instruct-1M": ("tiny-stories-instruct-1M",),
    "roneneldan/TinyStories-Instruct-3M": ("tiny-stories-instruct-3M",),
    "roneneldan/TinyStories-Instruct-8M": ("tiny-stories-instruct-8M",),
    "roneneldan/TinyStories-Instruct-28M": ("tiny-stories-instruct-28M",),
    "roneneldan/TinyStories-Instruct-33M": ("tiny-stories-instruct-33M",),
    "roneneldan/TinyStories-Instuct-1Layer-21M": ("tiny-stories-instruct-1L-21M",),
    "roneneldan/TinyStories-Instruct-2Layers-33M": ("tiny-stories-instruct-2L-33M",),
}
# llama2.c checkpoints known by name (classifier.load.llama2c.LLAMA2C_CHECKPOINTS, which imports
# torch); tests/test_models.py checks the two agree.
LLAMA2C_NAMES = ("stories15M", "stories42M", "stories110M", "stories260K")


class ModelLoadError(InputError):
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
    tokenizer_path: str | None = None  # a llama2.c tokenizer file, given or found next to the .bin


ModelKind = Literal["hub", "directory", "llama2c", "embedded"]


@dataclass(frozen=True)
class ModelRef:
    """A model argument parsed and checked once (`parse_model`), then passed down to `load_model`.

    kind: "hub" (a Hugging Face id or a TransformerLens name or alias), "directory" (a local
    Hugging Face checkpoint), "llama2c" (a llama2.c .bin file, or a named one from the hub) or
    "embedded" (a named llama2.c checkpoint shipped inside the package).
    """

    argument: str  # as the user gave it
    kind: ModelKind
    revision: str | None = None  # hub models only
    tokenizer: str | None = None  # a llama2.c tokenizer file given with the model
    option: str = "--model"  # how the argument was passed, for messages


def parse_model(
    model: str, *, revision: str | None = None, tokenizer: str | None = None, option: str = "--model"
) -> ModelRef:
    """Parse a model argument into a `ModelRef`, saying at once (ModelLoadError, one line) what is
    wrong with it: an unknown name, a missing or broken local file, a revision for a model that
    has none, a hub model neither cached nor reachable. Loads nothing; imports no torch unless a
    llama2.c file's header has to be read."""
    kind = check_model_argument(model, option=option)
    if kind == "llama2c" and embedded_checkpoint(model) is not None and not Path(model).exists():
        kind = "embedded"
    if revision is not None and kind != "hub":
        raise ModelLoadError(f"--revision {revision}: applies to Hugging Face hub models, not to {model}")
    ref = ModelRef(model, kind, revision, tokenizer, option)
    _check_files(ref)
    if kind == "hub" and not hub_model_available(model, revision):
        raise ModelLoadError(
            f"{option} {model}: {resolve_name(model)} is not in the local Hugging Face cache and the hub is "
            f"unreachable; {local_hint(option)}"
        )
    return ref


def tinystories_models() -> dict[str, list[str]]:
    """Official names of the TinyStories checkpoints TransformerLens knows, with their aliases."""
    return {name: list(aliases) for name, aliases in TINYSTORIES_MODELS.items()}


def registry_tinystories_models() -> dict[str, list[str]]:
    """The same list read from TransformerLens' own registry (slow: imports transformer_lens)."""
    from transformer_lens.tools.model_registry.registry_io import load_model_aliases

    return {
        name: list(aliases)
        for name, aliases in load_model_aliases().items()
        if "TinyStories" in name or "Instuct" in name
    }


def known_models() -> dict[str, list[str]]:
    """Every model name this tool resolves without a path: TinyStories and llama2.c checkpoints."""
    return {**tinystories_models(), **{name: [] for name in LLAMA2C_NAMES}}


def embedded_models() -> list[str]:
    """Names whose checkpoint ships inside the package: they load with no hub and no cache."""
    return [name for name in EMBEDDED_CHECKPOINTS if embedded_checkpoint(name) is not None]


# What `head-roles report` (and `make report`) reports without --model, and what it reports when
# that can be neither found in the cache nor downloaded: a real model shipped inside the package.
DEFAULT_MODEL = "roneneldan/TinyStories-1Layer-21M"
EMBEDDED_DEFAULT = "stories260K"
DEFAULT_OUT = {"hub": "reports/tinystories-1L-21M", "embedded": "reports/stories260K-embedded"}


@dataclass(frozen=True)
class DefaultChoice:
    """The model, corpus and run directory a report without --model uses, and why (notices)."""

    model: str
    corpus: str
    out_dir: str
    notices: tuple[str, ...] = ()


def hub_model_available(model: str, revision: str | None = None) -> bool:
    """Whether a hub model loads here: in the local Hugging Face cache, or the hub answers."""
    return cached_snapshot(resolve_name(model), revision) is not None or hub_reachable()


def cached_snapshot(official: str, revision: str | None) -> str | None:
    """The local Hugging Face cache's folder of a hub model (None when it is not cached)."""
    from huggingface_hub import snapshot_download

    try:  # A model already in the local Hugging Face cache needs no network.
        return snapshot_download(official, revision=revision, local_files_only=True)
    except Exception:
        return None


def _check_files(ref: ModelRef) -> None:
    """Read what a local model argument points at just far enough to refuse a broken one (a llama2.c
    header, a tokenizer file, a config.json without a model type) before any corpus is read."""
    import json

    model, option, kind, tokenizer_path = ref.argument, ref.option, ref.kind, ref.tokenizer
    path = Path(model)
    if kind == "directory":
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ModelLoadError(f"{option} {model}: config.json cannot be read ({type(err).__name__})") from None
        if not isinstance(config, dict) or not config.get("model_type"):
            raise ModelLoadError(f"{option} {model}: config.json has no model_type (not a transformers checkpoint)")
        weights = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
        if not any((path / name).is_file() for name in weights):
            raise ModelLoadError(f"{option} {model}: no weights in this directory (model.safetensors or pytorch_model.bin)")
    if kind in ("llama2c", "embedded"):
        from classifier.load import llama2c

        if path.is_file():
            llama2c.read_llama2c_header(path)
        if tokenizer_path is not None:
            llama2c.read_sentencepiece_model(tokenizer_path)


def choose_default_model(default: str, corpus: str) -> DefaultChoice:
    """`default` when it can be loaded, else the embedded model, on the embedded stories when the
    corpus is the (then unreachable) TinyStories dataset. Only for a report without --model: an
    explicit model never falls back."""

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
    import torch

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
    for name, aliases in {**TINYSTORIES_MODELS, **_transformer_lens_aliases()}.items():
        if model == name or model in aliases:
            return name
    return model


def load_model(
    model: str | ModelRef, *, revision: str | None = None, device: str = "auto", tokenizer_path: str | None = None
) -> LoadedModel:
    """Load `model` on `device`: a `ModelRef` as parsed, or an argument (name, alias, hub id, local
    directory or llama2.c .bin, with `revision` / `tokenizer_path`) parsed here."""
    device = resolve_device(device)
    ref = model if isinstance(model, ModelRef) else parse_model(model, revision=revision, tokenizer=tokenizer_path)
    quiet_kernel_probe()
    if ref.kind in ("llama2c", "embedded"):
        from classifier.load import llama2c

        try:
            bridge, tokenizer = llama2c.boot_llama2c_bridge(ref.argument, ref.tokenizer, device=device)
        except llama2c.Llama2cError as err:
            raise ModelLoadError(str(err)) from None
        found = ref.tokenizer or getattr(tokenizer, "vocab_file", None) or getattr(tokenizer, "name_or_path", None)
        loaded = _loaded(ref, llama2c.describe_source(ref.argument), bridge, tokenizer, device)
        return dataclasses.replace(loaded, tokenizer_path=llama2c.describe_tokenizer(ref.argument, found))
    if ref.kind == "directory":
        bridge = _boot(ref, ref.argument, None, device)
        return _loaded(ref, ref.argument, bridge, bridge.tokenizer, device)
    official = resolve_name(ref.argument)  # parse_model refused unknown names and unreachable models
    local = cached_snapshot(official, ref.revision)
    bridge = _boot(ref, local or official, ref.revision if local is None else None, device)
    return _loaded(ref, official, bridge, bridge.tokenizer, device)


def check_model_argument(model: str, *, option: str = "--model") -> str:
    """What `model` is ("llama2c", "directory" or "hub"), checked without loading anything or
    importing torch, so a bad argument is said before a corpus is read or a model loaded."""
    path = Path(model)
    if model in LLAMA2C_NAMES or (path.suffix == ".bin" and path.is_file()):
        return "llama2c"
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{option} {model}: not a checkpoint directory or a llama2.c .bin file")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{option} {model}: no config.json in this directory (not a Hugging Face checkpoint)")
        return "directory"
    if model.startswith((".", "/", "~")) or (model.count("/") > 1):
        raise ModelLoadError(f"{option} {model}: no such file or directory")
    if "/" not in resolve_name(model):
        known = known_models()
        close = difflib.get_close_matches(model, [*known, *(a for aliases in known.values() for a in aliases)], n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ModelLoadError(
            f"{option} {model}: unknown model name; {hint}run `head-roles models` for the known names, "
            f"give a Hugging Face id (org/name), or {local_hint(option)}"
        )
    return "hub"


def _transformer_lens_aliases() -> dict[str, list[str]]:
    """TransformerLens' alias table, read from its data file without importing the package
    (which imports torch); through its registry module when the file is not where expected."""
    import importlib.util
    import json

    spec = importlib.util.find_spec("transformer_lens")
    if spec is not None and spec.origin:
        data = Path(spec.origin).parent / "tools" / "model_registry" / "data" / "model_aliases.json"
        if data.is_file():
            return json.loads(data.read_text())
    if spec is None:
        return {}
    from transformer_lens.tools.model_registry.registry_io import load_model_aliases

    return load_model_aliases()


def _boot(ref: ModelRef, source: str, revision: str | None, device: str):
    from transformer_lens.model_bridge import TransformerBridge

    # TransformerLens and transformers log deprecations and load reports on every boot.
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        return TransformerBridge.boot_transformers(source, device=device, revision=revision)
    except Exception as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        # A local checkpoint that does not load is damaged: pointing at another option would mislead.
        hint = "" if ref.kind == "directory" else f"; {local_hint(ref.option)}"
        raise ModelLoadError(f"{ref.option} {ref.argument}: cannot load ({type(err).__name__}: {first_line}){hint}") from None


def _loaded(ref: ModelRef, resolved: str, bridge, tokenizer, device: str) -> LoadedModel:
    name = ref.argument
    if tokenizer is None:
        raise ModelLoadError(f"{ref.option} {name}: the checkpoint has no tokenizer")
    bos = tokenizer.bos_token_id
    if bos is None:
        raise ModelLoadError(f"{ref.option} {name}: the tokenizer has no BOS token, which every scored text starts with")
    check_attention_hooks(bridge, f"{ref.option} {name}")
    bridge.eval()
    return LoadedModel(
        name=name, resolved=resolved, revision=ref.revision, bridge=bridge, tokenizer=tokenizer,
        n_layers=bridge.cfg.n_layers, n_heads=bridge.cfg.n_heads, n_ctx=bridge.cfg.n_ctx,
        bos_token_id=bos, device=device,
    )


def pattern_hook_name(layer: int) -> str:
    """The hook every attention pattern is read from."""
    return f"blocks.{layer}.attn.hook_pattern"


def check_attention_hooks(bridge, label: str) -> None:
    """Refuse (one line) a model whose layers do not all expose their attention pattern."""
    hooks = getattr(bridge, "hook_dict", {})
    missing = [layer for layer in range(bridge.cfg.n_layers) if pattern_hook_name(layer) not in hooks]
    if missing:
        raise ModelLoadError(
            f"{label}: no attention-pattern hook ({pattern_hook_name(missing[0])}) in {len(missing)} of "
            f"{bridge.cfg.n_layers} layers; head roles are read from attention patterns"
        )


def wrap_model(model: Any, *, tokenizer: Any = None, device: str | None = None, name: str | None = None) -> LoadedModel:
    """A model object already in memory as a `LoadedModel`, with the checks `load_model` makes.

    model: a booted `TransformerBridge` (its own tokenizer unless `tokenizer` is given) or a Hugging
    Face `PreTrainedModel` with `tokenizer`, wrapped by `TransformerBridge.boot_transformers(...,
    hf_model=...)`: the same weights (no copy), its attention modules replaced in place by
    TransformerLens' hooked ones. device: where it runs during a call (`eval_mode` moves it there and
    back); None: where its weights are. name: how reports name it (default: its config's name)."""
    if tokenizer is not None:  # said before a Hugging Face model is booted
        _bos_token_id(tokenizer)
    bridge = _as_bridge(model, tokenizer, name)
    tokenizer = tokenizer if tokenizer is not None else getattr(bridge, "tokenizer", None)
    if tokenizer is None:
        raise ModelLoadError("model: no tokenizer; pass tokenizer= (the one the model was trained with)")
    bos = _bos_token_id(tokenizer)
    check_attention_hooks(bridge, "model")
    here = _weights_device(bridge)
    device = here if device is None else resolve_device(device)
    source = name or _model_name(bridge)
    return LoadedModel(
        name=source, resolved=source, revision=None, bridge=bridge, tokenizer=tokenizer,
        n_layers=bridge.cfg.n_layers, n_heads=bridge.cfg.n_heads, n_ctx=bridge.cfg.n_ctx,
        bos_token_id=bos, device=device,
    )


@contextmanager
def eval_mode(model: LoadedModel) -> Iterator[LoadedModel]:
    """`model` on its device, in eval mode, without gradients and with eager attention for the
    block; afterwards every module's training flag, the weights' device and the attention
    implementation are as they were (a model under training goes on training)."""
    import torch

    bridge = model.bridge
    hf_model = getattr(bridge, "original_model", None)
    modules = {*bridge.modules(), *(hf_model.modules() if hf_model is not None else ())}
    training = {module: module.training for module in modules}
    device = _weights_device(bridge)
    attention = getattr(getattr(hf_model, "config", None), "_attn_implementation", None)
    try:
        if attention not in (None, "eager"):
            hf_model.set_attn_implementation("eager")
        if device != model.device:
            bridge.to(model.device)
        bridge.eval()
        with torch.no_grad():
            yield model
    finally:
        if _weights_device(bridge) != device:
            bridge.to(device)
        for module, flag in training.items():
            module.training = flag
        if attention not in (None, "eager"):
            hf_model.set_attn_implementation(attention)


def _as_bridge(model: Any, tokenizer: Any, name: str | None):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import PreTrainedModel

    if isinstance(model, TransformerBridge):
        return model
    if isinstance(model, PreTrainedModel):
        if tokenizer is None:
            raise ModelLoadError(
                f"model: a {type(model).__name__} needs its tokenizer; pass tokenizer= (the one it was trained with)"
            )
        logging.getLogger("transformers").setLevel(logging.ERROR)
        label = name or getattr(model, "name_or_path", "") or type(model).__name__
        # Booting switches the model to eager attention; `eval_mode` does that only for a call.
        attention = getattr(model.config, "_attn_implementation", None)
        try:
            bridge = TransformerBridge.boot_transformers(label, hf_model=model, tokenizer=tokenizer)
        except Exception as err:
            raise ModelLoadError(f"model: TransformerLens cannot wrap this {type(model).__name__} ({one_line(err)})") from None
        if attention not in (None, "eager"):
            model.set_attn_implementation(attention)
        return bridge
    raise ModelLoadError(
        f"model: a {type(model).__name__} is neither a TransformerBridge nor a Hugging Face PreTrainedModel "
        "(nor a model name or path); boot it with TransformerBridge.boot_transformers"
    )


def _bos_token_id(tokenizer) -> int:
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        raise ModelLoadError("model: the tokenizer has no BOS token, which every scored text starts with")
    return bos


def _weights_device(bridge) -> str:
    parameter = next(bridge.parameters(), None)
    return "cpu" if parameter is None else str(parameter.device)


def _model_name(bridge) -> str:
    hf_model = getattr(bridge, "original_model", None)
    return (
        getattr(hf_model, "name_or_path", "") or getattr(bridge.cfg, "model_name", "") or type(hf_model).__name__
    )
