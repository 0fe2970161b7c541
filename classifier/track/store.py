"""The run store of `track`: which finished run a model argument maps to, and putting one there.

The store (`--store`, default OUT/runs/ beside the track it serves) holds one run directory per key: the model's
identity (a hub id and the commit in the local cache, or a local checkpoint's file sizes and
modification times and its config.json), the hash of the sampled story texts, every
ScoreSettings field but SPEED_SETTINGS, and the hash of the source of every module
`classifier.pipeline` imports, directly or not (classifier.sources.closure), so that a changed
role rule or ablation never serves a stale run and no hand list can miss a module. Batch size and
device are left out: they change the speed, not the result (per-text sums merge exactly, padding
is excluded exactly). This module scores one model at a time; classifier.track.tracking schedules them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Sequence

from classifier.errors import InputError, one_line
from classifier.load.models import ModelRef
from classifier.settings import ScoreSettings
from classifier.sources import closure, module_path

STORE_FORMAT = 3
# The module whose import closure computes a stored run's numbers and roles.
CODE_ROOT = "classifier.pipeline"
# Settings that change how fast a run is made, not its numbers; every other field is in the key.
SPEED_SETTINGS = ("batch_size", "device")
KEY_SETTINGS = tuple(f.name for f in fields(ScoreSettings) if f.name not in SPEED_SETTINGS)


def default_store(out_dir: str | Path) -> Path:
    """The run store when none is named: `runs/` inside the track's output folder."""
    return Path(out_dir) / "runs"


@dataclass(frozen=True)
class ModelSpec:
    """One model argument: `model` as load_model takes it, and the revision after `@`; `ref` is
    the model parsed and checked (classifier.load.models.parse_model) once `track` has done so."""

    argument: str
    model: str
    revision: str | None
    ref: ModelRef | None = None


def model_spec(argument: str) -> ModelSpec:
    """Split `name@revision` on the last `@`; an existing path is never split."""
    if not argument.strip():
        raise InputError("empty model argument")
    if "@" not in argument or Path(argument).exists():
        return ModelSpec(argument, argument, None)
    model, revision = argument.rsplit("@", 1)
    if not model or not revision:
        raise InputError(f"{argument}: expected MODEL@REVISION")
    if Path(model).exists():
        raise InputError(f"{argument}: a revision applies to Hugging Face models, not to the local path {model}")
    return ModelSpec(argument, model, revision)


def model_labels(specs: Sequence[ModelSpec], series: Sequence[str | None] | None = None) -> list[str]:
    """Short unique labels: the last path component (with @revision), after `run/` for a
    checkpoint of a run; the full argument on a clash."""
    arguments = [str(Path(s.argument).resolve()) if Path(s.argument).exists() else s.argument for s in specs]
    repeated = sorted({s.argument for s, a in zip(specs, arguments) if arguments.count(a) > 1})
    if repeated:
        raise InputError(f"model(s) given more than once: {', '.join(repeated)}")
    series = series or [None] * len(specs)
    short = [
        (f"{run}/" if run else "") + Path(s.model.rstrip("/")).name + (f"@{s.revision}" if s.revision else "")
        for s, run in zip(specs, series)
    ]
    return [label if short.count(label) == 1 else spec.argument for label, spec in zip(short, specs)]


# --- the store -------------------------------------------------------------------------------


def _file_stamp(path: Path) -> list:
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


def model_identity(spec: ModelSpec, tokenizer: str | None = None) -> dict:
    """What a stored run of this model is keyed on; `complete` is False when a hub model is not in
    the local cache yet (its commit is known only after the download, so that is always a miss)."""
    path = Path(spec.model)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        config = path / "config.json"
        return {
            "kind": "directory", "path": str(path.resolve()), "files": [_file_stamp(p) for p in files],
            "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None,
            "complete": True,
        }
    if path.is_file():  # a llama2.c .bin; without --tokenizer its tokenizer is found beside it
        tokenizers = [Path(tokenizer)] if tokenizer else sorted(path.parent.glob("*.model"))
        return {
            "kind": "file", "path": str(path.resolve()), "file": _file_stamp(path),
            "tokenizer": [_file_stamp(t) + [str(t.resolve())] for t in tokenizers], "complete": True,
        }
    if spec.model.startswith((".", "/", "~")) or spec.model.count("/") > 1:
        return {"kind": "missing", "path": spec.model, "complete": False}
    from classifier.load.llama2c import LLAMA2C_CHECKPOINTS
    from classifier.load.models import resolve_name

    if spec.model in LLAMA2C_CHECKPOINTS:  # named llama2.c checkpoint: its embedded or cached hub files
        from classifier.load.packaged import embedded_checkpoint

        repo, filename, tok_repo, tok_filename = LLAMA2C_CHECKPOINTS[spec.model]
        files = list(embedded_checkpoint(spec.model) or (_cached_file(repo, filename), _cached_file(tok_repo, tok_filename)))
        complete = all(f is not None for f in files)
        stamps = [_file_stamp(f) + [str(f)] for f in files] if complete else None
        return {"kind": "llama2c", "name": spec.model, "files": stamps, "complete": complete}

    official = resolve_name(spec.model)
    commit = _cached_commit(official, spec.revision)
    return {"kind": "hub", "id": official, "revision": spec.revision, "commit": commit, "complete": commit is not None}


def _cached_commit(official: str, revision: str | None) -> str | None:
    """The commit load_model would use from the local Hugging Face cache, or None if not cached."""
    from classifier.load.models import cached_snapshot

    local = cached_snapshot(official, revision) if "/" in official else None
    return Path(local).name if local else None


def _cached_file(repo: str, filename: str) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except Exception:
        return None


def corpus_identity(corpus) -> dict:
    """The sample itself, not how it was asked for: the hash of its texts."""
    digest = hashlib.sha256()
    for text in corpus.texts:
        digest.update(text.encode("utf-8") + b"\0")
    return {"stories": len(corpus.texts), "texts_sha256": digest.hexdigest()}


def code_identity() -> str:
    """sha256 over the source of every module CODE_ROOT reaches: a run made by other code is a store miss."""
    digest = hashlib.sha256()
    for name in closure(CODE_ROOT):
        digest.update(name.encode() + b"\0" + module_path(name).read_bytes() + b"\0")
    return digest.hexdigest()


def store_key(identity: dict, corpus, settings: ScoreSettings) -> dict:
    try:
        version = metadata.version("head-roles")
    except metadata.PackageNotFoundError:
        version = "unknown"
    settings_json = settings.to_json()
    return {
        "format": STORE_FORMAT, "head_roles": version,
        "model": {k: v for k, v in identity.items() if k != "complete"},
        "corpus": corpus_identity(corpus),
        "settings": {name: settings_json[name] for name in KEY_SETTINGS},
        "code": code_identity(),
    }


def run_path(store: Path, spec: ModelSpec, key: dict) -> Path:
    """store/<model's last path component>[@revision]-<first 12 hex digits of the key's hash>.
    The name is for people; the hash alone tells runs apart."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    name = Path(spec.model.rstrip("/")).name + (f"@{spec.revision}" if spec.revision else "")
    slug = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)[:60].strip("._") or "model"
    return store / f"{slug}-{digest}"


def stored_run(spec: ModelSpec, corpus, settings: ScoreSettings, *, store: Path, tokenizer: str | None = None):
    """(run, its directory) of this key from the store, or None (never stored, or damaged)."""
    from classifier.run import load_run

    identity = model_identity(spec, tokenizer)
    if not identity["complete"]:
        return None
    stored = run_path(store, spec, store_key(identity, corpus, settings))
    if not stored.is_dir():
        return None
    try:
        return load_run(stored), str(stored)
    except ValueError:  # InputError: unreadable files; recomputed and replaced
        return None


def score_model(spec: ModelSpec, corpus, settings: ScoreSettings, *, tokenizer: str | None = None,
                progress: bool = True):
    """Load and score one model: (its Run, its identity for the store key). Needs no store, so it
    runs wherever the model can be loaded (a Ray task on another machine, say)."""
    from classifier.load.models import load_model
    from classifier.pipeline import analyse

    # An unparsed spec (library callers) is parsed by load_model, with revision and tokenizer;
    # a parsed one already holds them.
    model = spec.ref or spec.model
    loaded = load_model(model, revision=spec.revision, device=settings.device, tokenizer_path=tokenizer)
    analysis = analyse(loaded, corpus, settings, progress=progress)
    del loaded
    return analysis, model_identity(spec, tokenizer)  # a hub model now has its cached commit


def put_in_store(run, identity: dict, spec: ModelSpec, corpus, settings: ScoreSettings, *, store: Path,
                 figures: bool = False) -> str:
    """Write a scored run into the store under its key; returns its directory."""
    from classifier.render.report import write_report

    key = store_key(identity, corpus, settings)
    destination = run_path(store, spec, key)
    # key.json goes in before the directory gets its final name, in one rename.
    staging = store / f".staging-{destination.name}-{os.getpid()}"
    try:
        write_report(run, staging, figures=figures)
        (staging / "key.json").write_text(json.dumps(key, indent=1) + "\n")
        if destination.exists():  # a damaged entry
            shutil.rmtree(destination)
        os.replace(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(destination)


def score_and_store(
    spec: ModelSpec, corpus, settings: ScoreSettings, *, store: Path, tokenizer: str | None = None,
    progress: bool = True, figures: bool = False,
) -> str:
    """Score the model and put its run directory into the store; returns that directory."""
    run, identity = score_model(spec, corpus, settings, tokenizer=tokenizer, progress=progress)
    return put_in_store(run, identity, spec, corpus, settings, store=store, figures=figures)


def limit_threads(threads: int) -> None:
    """In a worker: share the cores among the jobs instead of each job taking all of them."""
    import torch

    torch.set_num_threads(threads)


def score_in_worker(spec, corpus, settings, store, tokenizer, figures):
    try:
        return score_and_store(spec, corpus, settings, store=store, tokenizer=tokenizer, progress=False, figures=figures), None
    except Exception as err:  # returned as text: some exceptions do not survive pickling
        return None, one_line(err)
