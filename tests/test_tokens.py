"""Token classes on real GPT-2 BPE tokens, checked by hand."""

import torch

from classifier.load.tokens import classify_text, sequence_classes, vocab_classes


def test_fused_punctuation_and_newlines_are_delimiters():
    for text in ['."', ' "', '",', '!"', "\n", ".\n\n", "…", "“", "?”"]:
        assert classify_text(text)["delimiter"], text
    for text in [" Lily", " and", "'t", " ", "ily"]:
        assert not classify_text(text)["delimiter"], text


def test_glue_piece_is_only_spaces_and_never_a_delimiter():
    assert classify_text(" ")["glue"] and classify_text("   ")["glue"]
    assert not classify_text(" a")["glue"] and not classify_text("\n")["glue"]


def test_gpt2_tokens_get_the_right_classes(gpt2_tokenizer):
    vocab = vocab_classes(gpt2_tokenizer)
    text = 'Lily saw Tom. Lily said, "Hi!" and\nBen ran.'
    ids = [50256] + gpt2_tokenizer.encode(text, add_special_tokens=False)
    texts = [vocab.texts[k] for k in ids]
    assert texts == ["<|endoftext|>", "L", "ily", " saw", " Tom", ".", " Lily", " said", ",", ' "', "Hi", '!"',
                     " and", "\n", "Ben", " ran", "."]
    classes = sequence_classes(torch.tensor([ids]), torch.tensor([len(ids)]), vocab)
    positions = lambda flags: [i for i, f in enumerate(flags[0].tolist()) if f]
    assert positions(classes.delimiter) == [5, 8, 9, 11, 13, 16]
    # " Tom" mid-sentence is a name; " Lily" after a full stop, "L" after BOS and "Ben" after a
    # newline are not.
    assert positions(classes.name) == [4]
    assert positions(classes.boundary) == [0, 5, 8, 9, 11, 12, 13, 16]
    # "ily" continues "L"; "Hi" follows the delimiter ' "', which by the rule is not a word start.
    assert positions(classes.continuation) == [2, 10]
    assert classes.word_first_piece[0, 2].item() == 1
    # latest delimiter before "Ben" (14) is the newline (13); clause start after " and" (12) is 13?
    # No: c(i) is the first non-glue position after the latest boundary < i; for i = 15 (" ran")
    # the latest boundary is the newline at 13, so c = 14 ("Ben").
    assert classes.last_delimiter[0, 14].item() == 13
    assert classes.clause_start[0, 15].item() == 14
    assert classes.clause_start[0, 7].item() == 6  # " said": after the full stop at 5


def test_glue_piece_makes_the_next_piece_a_word_start_and_is_skipped_before_names():
    # SentencePiece style: "▁" "J" "ack" rendered as " ", "J", "ack".
    from classifier.load.tokens import classes_from_texts

    vocab = classes_from_texts(["<s>", " saw", " ", "J", "ack", "."])
    tokens = torch.tensor([[0, 1, 2, 3, 4, 5]])
    classes = sequence_classes(tokens, torch.tensor([6]), vocab)
    assert classes.glue[0].tolist() == [False, False, True, False, False, False]
    assert classes.word_start[0, 3] and classes.continuation[0, 4]
    assert classes.name[0, 3]  # the token before "J", skipping glue, is " saw"
    assert not classes.word_start[0, 2] and not classes.continuation[0, 2]
