"""Story corpora: the TinyStories validation split, the bundled stories, the embedded sample of
real TinyStories stories, or a local file.

Everything is read through Hugging Face `datasets`; this module only picks the source, checks
the input and draws a reproducible sample. It does not tokenize.

A .txt file's stories are separated by lines that read `<|endoftext|>`; a file with no such line
but with blank lines reads its blank-line-separated paragraphs as stories (a common format).
Input that works but not as the user may think (a .txt without separator lines, fewer stories
than asked, too few stories for the bootstrap intervals, the bundled corpus standing in for an
unreachable hub) is said at once: each becomes one `classifier.errors.InputNotice` warning when
the corpus is read, before any model is loaded, and is kept in `Corpus.notices` (which the run
records in run.json and the report header).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.errors import InputError, notify
from classifier.load.hub import hub_reachable
from classifier.load.packaged import BUNDLED_PATH, SAMPLE_NAME, SAMPLE_PATH  # noqa: F401 (re-exported)
from classifier.thresholds import MIN_STORIES_FOR_BOOTSTRAP

TINYSTORIES_DATASET = "roneneldan/TinyStories"
STORY_SEPARATOR = "<|endoftext|>"
SAMPLE_SOURCE = "roneneldan/TinyStories train split, first 300 stories (embedded copy, CDLA-Sharing-1.0)"
BANANA_PROMPT = (
    'One day, Lucy asks Tom: "I am looking for a banana but I can\'t find it". Tom says: "Don\'t'
)
# The validation split has ~22k stories; a shuffle buffer this size keeps the streamed sample
# well mixed while reading only a few MB.
STREAM_SHUFFLE_BUFFER = 10_000
LOCAL_SUFFIXES = (".txt", ".jsonl", ".parquet")
# A line holding only white space between two stories of a file with no separator line.
BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


class CorpusError(InputError):
    """Bad corpus input; the message is one line naming the file or argument."""


@dataclass(frozen=True)
class Corpus:
    """A sample of stories. `indices` are positions in the source (None when streamed);
    `notices` are one-line remarks about the input, said (as warnings) when it was read."""

    name: str
    source: str
    texts: tuple[str, ...]
    indices: tuple[int, ...] | None
    total: int | None
    notices: tuple[str, ...] = ()

    @property
    def notice(self) -> str | None:
        """All notices as one line (None when there are none)."""
        return " ".join(self.notices) or None

    def __repr__(self) -> str:
        total = f" of {self.total}" if self.total is not None else ""
        return (f"Corpus({self.name!r}, {len(self.texts)}{total} stories from {self.source!r}"
                + (f", notices={list(self.notices)}" if self.notices else "") + ")")

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "stories": len(self.texts),
            "stories_in_source": self.total,
            "sample_indices": list(self.indices) if self.indices is not None else None,
            "notice": self.notice,
            "notices": list(self.notices),
        }


def load_corpus(spec: str, *, stories: int | None, seed: int) -> Corpus:
    """Load `spec` ("tinystories", "bundled", "tinystories-sample" or a .txt/.jsonl/.parquet path)
    and sample it; "tinystories" falls back to the embedded sample when the hub is unreachable.

    Every remark about the input is warned (`InputNotice`) here and kept in `Corpus.notices`.
    """
    if stories == 0:
        stories = None
    if stories is not None and stories < 0:
        raise CorpusError(f"--stories must be 0 (all) or more, got {stories}")
    corpus = _load(spec, stories=stories, seed=seed)
    notices = corpus.notices + sample_notices(corpus, stories)
    for notice in notices:
        notify(notice)
    return Corpus(**{**corpus.__dict__, "notices": notices})


def sample_notices(corpus: Corpus, stories: int | None) -> tuple[str, ...]:
    """Remarks about the sample's size: fewer stories than asked, too few for intervals."""
    notices = []
    n = len(corpus.texts)
    if stories is not None and n < stories:
        notices.append(f"--stories {stories}: {corpus.source} has only {n} stories; using all {n}.")
    if n < MIN_STORIES_FOR_BOOTSTRAP:
        notices.append(
            f"only {n} stor{'y' if n == 1 else 'ies'}: the 95% intervals, stability and confidence come from a bootstrap "
            f"over stories, which needs at least {MIN_STORIES_FOR_BOOTSTRAP}; the report shows them as n/a."
        )
    return tuple(notices)


def _load(spec: str, *, stories: int | None, seed: int) -> Corpus:
    if spec == "tinystories":
        if not hub_reachable():
            corpus = load_sample(stories=stories, seed=seed)
            notice = f"Hugging Face hub unreachable: using the {SAMPLE_NAME} corpus (real stories, embedded) instead of tinystories."
            return Corpus(**{**corpus.__dict__, "notices": (notice, *corpus.notices)})
        return _load_tinystories(stories=stories, seed=seed)
    if spec == "bundled":
        return _load_local(BUNDLED_PATH, "bundled", stories=stories, seed=seed)
    if spec == SAMPLE_NAME:
        return load_sample(stories=stories, seed=seed)
    path = check_corpus_spec(spec)
    return _load_local(path, path.name, stories=stories, seed=seed)


def check_corpus_spec(spec: str) -> Path | None:
    """The file a corpus argument names (None for a corpus name); a bad argument is a
    `CorpusError` here, before anything is loaded or any notice said."""
    if spec in ("tinystories", "bundled", SAMPLE_NAME):
        return None
    path = Path(spec)
    if path.suffix not in LOCAL_SUFFIXES:
        raise CorpusError(
            f"--corpus {spec!r}: expected 'tinystories', 'bundled', '{SAMPLE_NAME}' or a path ending in "
            f"{', '.join(LOCAL_SUFFIXES)}"
        )
    if not path.is_file():
        raise CorpusError(f"{spec}: no such file")
    return path


def load_sample(*, stories: int | None, seed: int) -> Corpus:
    """The embedded sample of real TinyStories stories, named and sourced as such."""
    corpus = _load_local(SAMPLE_PATH, SAMPLE_NAME, stories=stories, seed=seed)
    return Corpus(**{**corpus.__dict__, "source": SAMPLE_SOURCE})


def has_separator_line(text: str) -> bool:
    return any(line.strip() == STORY_SEPARATOR for line in text.split("\n"))


def split_stories(text: str) -> list[str]:
    """Stories of a TinyStories .txt file: separated by lines that read `<|endoftext|>`, or,
    in a file without such a line, by blank lines."""
    if not has_separator_line(text):
        return [s.strip() for s in BLANK_LINE.split(text) if s.strip()]
    stories, current = [], []
    for line in text.split("\n"):
        if line.strip() == STORY_SEPARATOR:
            stories.append("\n".join(current))
            current = []
        else:
            current.append(line)
    stories.append("\n".join(current))
    return [s.strip() for s in stories if s.strip()]


def _check_utf8(path: Path) -> None:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise CorpusError(f"{path}: line {line}: not UTF-8 text ({err.reason} at byte {err.start})") from None


@contextlib.contextmanager
def _quiet_datasets():
    """Hide `datasets`' "Generating train split" bar for a local file (it takes well under a
    second) and its own log of a malformed file (our one-line error says it); earlier settings
    are restored."""
    import logging

    from datasets.utils import logging as datasets_logging

    was_enabled = datasets_logging.is_progress_bar_enabled()
    datasets_logger = logging.getLogger("datasets")
    level = datasets_logger.level
    datasets_logging.disable_progress_bar()
    datasets_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        datasets_logger.setLevel(level)
        if was_enabled:
            datasets_logging.enable_progress_bar()


def unsplit_notice(path: Path, text: str, texts: list[str]) -> str | None:
    """A remark when a .txt file's `text` has no `<|endoftext|>` separator line: its stories
    (`texts`) were read as separated by blank lines, or, with no blank line either, the whole
    file is one story."""
    if has_separator_line(text):
        return None
    if len(texts) > 1:
        return (f"{path}: no line reads {STORY_SEPARATOR}, so stories are read as separated by blank lines "
                f"({len(texts):,} stories).")
    inline = " (it appears inside lines, which does not count)" if STORY_SEPARATOR in texts[0] else ""
    return (
        f"{path}: no line reads {STORY_SEPARATOR}{inline}, so the whole file ({len(texts[0]):,} characters) "
        f"is one story; put a line {STORY_SEPARATOR} after each story."
    )


def _read_local(path: Path) -> tuple[list[str], str | None]:
    """The stories of a local file, and `unsplit_notice`'s remark on a .txt file (read once)."""
    if path.stat().st_size == 0:
        raise CorpusError(f"{path}: empty file, no stories found")
    if path.suffix != ".parquet":
        _check_utf8(path)
    if path.suffix == ".txt":
        # Split on the separator lines ourselves: `datasets`' text builder knows lines and
        # paragraphs, not `<|endoftext|>` separators, and would only hand the file back whole
        # (after caching a copy of it). Universal newlines, as `datasets` reads it too.
        text = path.read_text(encoding="utf-8")
        texts = split_stories(text)
        return texts, unsplit_notice(path, text, texts) if texts else None
    from datasets import load_dataset

    try:
        with _quiet_datasets():
            rows = _load_rows(path, load_dataset)
    except Exception as err:  # datasets raises many types for a malformed file
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CorpusError(f"{path}: cannot read as {path.suffix[1:]}: {message}") from None
    if "text" not in rows.column_names:
        raise CorpusError(f"{path}: no 'text' field (fields: {', '.join(rows.column_names) or 'none'})")
    texts = [t.strip() for t in rows["text"] if isinstance(t, str)]
    return [t for t in texts if t], None


def _load_rows(path: Path, load_dataset):
    """The rows of a .jsonl/.parquet file (a Dataset, in memory). `datasets` converts a file to
    Arrow in a cache before reading it; that copy goes to a temporary folder, removed here, not
    to ~/.cache/huggingface/datasets, where each file read (each test run) left another copy."""
    builder = "json" if path.suffix == ".jsonl" else "parquet"
    with tempfile.TemporaryDirectory(prefix="head-roles-rows-") as cache:
        return load_dataset(builder, data_files=str(path), split="train", cache_dir=cache, keep_in_memory=True)


def _load_local(path: Path, name: str, *, stories: int | None, seed: int) -> Corpus:
    """A sample of a local file; the bundled file is named by its place in the project."""
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    texts, notice = _read_local(path)
    if not texts:
        raise CorpusError(f"{path}: no stories found")
    indices = sample_indices(len(texts), stories, seed)
    return Corpus(
        name=name, source="classifier/data/bundled.txt" if path == BUNDLED_PATH else str(path),
        texts=tuple(texts[i] for i in indices),
        indices=tuple(int(i) for i in indices), total=len(texts),
        notices=(notice,) if notice else (),
    )


def sample_indices(total: int, stories: int | None, seed: int) -> np.ndarray:
    """`stories` distinct indices of `total`, drawn by `seed`, in source order (all if None)."""
    if stories is None or stories >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=stories, replace=False))


def _load_tinystories(*, stories: int | None, seed: int) -> Corpus:
    from datasets import load_dataset

    try:
        stream = load_dataset(TINYSTORIES_DATASET, split="validation", streaming=True)
        stream = stream.shuffle(seed=seed, buffer_size=STREAM_SHUFFLE_BUFFER)
        rows = stream.take(stories) if stories is not None else stream
        texts = [row["text"].strip() for row in rows if row["text"].strip()]
    except Exception as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CorpusError(f"--corpus tinystories: cannot stream {TINYSTORIES_DATASET}: {message}") from None
    if not texts:
        raise CorpusError(f"--corpus tinystories: {TINYSTORIES_DATASET} returned no stories")
    return Corpus(
        name="tinystories", source=f"{TINYSTORIES_DATASET} (validation, streamed, shuffle seed {seed})",
        texts=tuple(texts), indices=None, total=None,
    )


# A corpus argument of the Python API that is a string: a corpus name or a file, never a story.
CORPUS_NAMES = ("tinystories", "bundled", SAMPLE_NAME)


def stories_corpus(texts: list[str] | None, spec, *, n_stories: int | None, seed: int,
                   default_stories: int | None) -> Corpus:
    """The Python API's `stories` after `check_stories`: its list of story strings `texts`
    (sampled to `n_stories`, all when None) or, when `texts` is None, the corpus name or file
    `spec` as `--corpus` takes it (sampled to `n_stories`, `default_stories` when None). The same
    sampling and notices (warned, and kept) as the command line."""
    if texts is None:
        return load_corpus(str(spec), stories=default_stories if n_stories is None else n_stories, seed=seed)
    indices = sample_indices(len(texts), n_stories or None, seed)
    listed = Corpus(name="stories", source=f"a list of {len(texts)} stories", texts=tuple(texts[i] for i in indices),
                    indices=tuple(int(i) for i in indices), total=len(texts))
    notices = sample_notices(listed, n_stories or None)
    for notice in notices:
        notify(notice)
    return Corpus(**{**listed.__dict__, "notices": notices})


def check_stories(stories) -> list[str] | None:
    """The Python API's `stories` checked without reading a corpus: a list (or any iterable) of
    non-blank strings (returned), or a corpus name or file (None); CorpusError (one line) otherwise."""
    if isinstance(stories, (str, Path)):
        spec = str(stories)
        if spec not in CORPUS_NAMES and Path(spec).suffix not in LOCAL_SUFFIXES:
            raise CorpusError(
                f"stories: one string that is not a corpus name ({', '.join(CORPUS_NAMES)}) or a "
                f"{'/'.join(LOCAL_SUFFIXES)} file; pass a list of stories ([text] for one)"
            )
        check_corpus_spec(spec)
        return None
    try:
        texts = list(stories)
    except TypeError:
        raise CorpusError(
            f"stories: not a list of stories, a corpus name or a file ({type(stories).__name__})"
        ) from None
    if not texts:
        raise CorpusError("stories: an empty list; give at least one story")
    for k, text in enumerate(texts):
        if not isinstance(text, str):
            raise CorpusError(f"stories[{k}]: not a string ({type(text).__name__})")
        if not text.strip():
            raise CorpusError(f"stories[{k}]: a blank story")
    return texts
