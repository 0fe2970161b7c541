"""Corpora: local files through `datasets`, reproducible samples, clear errors."""

import json

import pandas as pd
import pytest

from classifier.errors import InputNotice
from classifier.load.corpora import BANANA_PROMPT, BUNDLED_PATH, CorpusError, load_corpus, split_stories

TXT = 'Lily had a red ball.\nShe liked it.\n<|endoftext|>\nTom said, "Hi!"\n<|endoftext|>\n\nBen ran.\n<|endoftext|>\n'


def test_txt_stories_are_split_on_endoftext_lines(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(TXT)
    corpus = load_corpus(str(path), stories=None, seed=0)
    assert corpus.texts == ("Lily had a red ball.\nShe liked it.", 'Tom said, "Hi!"', "Ben ran.")
    assert corpus.total == 3 and corpus.indices == (0, 1, 2)


def test_jsonl_and_parquet_read_the_text_field(tmp_path, monkeypatch):
    import datasets

    home_cache = tmp_path / "home-cache"  # stands for ~/.cache/huggingface/datasets: nothing is left there
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home_cache)
    rows = [{"text": " One. "}, {"text": "Two."}, {"text": "Three."}]
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pd.DataFrame(rows).to_parquet(tmp_path / "s.parquet")
    for name in ("s.jsonl", "s.parquet"):
        assert load_corpus(str(tmp_path / name), stories=None, seed=0).texts == ("One.", "Two.", "Three.")
    assert not home_cache.exists() or not any(home_cache.rglob("*"))


def test_sample_is_reproducible_by_seed_and_changes_with_it(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("".join(f"Story {k}.\n<|endoftext|>\n" for k in range(50)))
    first = load_corpus(str(path), stories=10, seed=1)
    assert first == load_corpus(str(path), stories=10, seed=1)
    assert first.indices != load_corpus(str(path), stories=10, seed=2).indices
    assert first.texts == tuple(f"Story {k}." for k in first.indices)


@pytest.mark.parametrize("content, message", [
    (b"", "no stories found"),
    (b"\n<|endoftext|>\n\n", "no stories found"),
    (b"Fine line.\nbad \xff byte\n", "line 2: not UTF-8"),
])
def test_bad_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=message) as err:
        load_corpus(str(path), stories=None, seed=0)
    assert str(path) in str(err.value)


def test_jsonl_without_text_field_lists_its_fields(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"story": "x"}\n')
    with pytest.raises(CorpusError, match="no 'text' field.*story"):
        load_corpus(str(path), stories=None, seed=0)


def test_unknown_corpus_argument_and_missing_file():
    with pytest.raises(CorpusError, match="expected 'tinystories', 'bundled'"):
        load_corpus("stories.csv", stories=None, seed=0)
    with pytest.raises(CorpusError, match="no such file"):
        load_corpus("missing.txt", stories=None, seed=0)


def test_tinystories_falls_back_to_the_embedded_sample_with_a_notice_when_offline():
    corpus = load_corpus("tinystories", stories=5, seed=0)  # HF_HUB_OFFLINE=1 in tests
    assert corpus.name == "tinystories-sample" and "unreachable" in corpus.notice
    assert len(corpus.texts) == 5


def test_bundled_corpus_has_a_hundred_stories_and_the_banana_prompt():
    texts = split_stories(BUNDLED_PATH.read_text())
    assert len(texts) >= 101
    assert BANANA_PROMPT in texts
    assert sum('"' in t or "“" in t for t in texts) >= 50  # dialogue in speech marks


def test_a_txt_without_separator_lines_reads_blank_line_separated_stories_with_one_note(tmp_path):
    path = tmp_path / "paragraphs.txt"
    path.write_text("Lily saw a cat.\nThe cat was big.\n\nTom had a ball.\n \t\n\nBen ran home.\n")
    with pytest.warns(InputNotice) as caught:
        corpus = load_corpus(str(path), stories=None, seed=0)
    assert corpus.texts == ("Lily saw a cat.\nThe cat was big.", "Tom had a ball.", "Ben ran home.")
    said = [n for n in corpus.notices if "blank lines" in n]
    assert said == [f"{path}: no line reads <|endoftext|>, so stories are read as separated by blank lines (3 stories)."]
    assert sum("blank lines" in str(w.message) for w in caught) == 1
    # with a separator line, blank lines stay inside stories
    path.write_text("One.\n\nStill one.\n<|endoftext|>\nTwo.\n")
    assert split_stories(path.read_text()) == ["One.\n\nStill one.", "Two."]
