from hypothesis import given, settings
from hypothesis import strategies as st

from ie_service.extraction.chunking import chunk_text, sentences
from ie_service.extraction.grounding import locate


def test_locate_exact_case_and_whitespace():
    text = "Barack Obama visited the U.S . Congress ."
    assert locate("Obama", text) == (7, 12)
    assert locate("barack obama", text) == (0, 12)
    s, e = locate("U.S. Congress", text)
    assert text[s:e] == "U.S . Congress"
    assert locate("Merkel", text) is None
    assert locate("   ", text) is None


def test_locate_chinese_and_start():
    text = "张三质押了股份，张三又减持。"
    assert locate("张三", text) == (0, 2)
    assert locate("张三", text, start=1) == (8, 10)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.text(max_size=200))
def test_locate_never_raises_and_is_a_real_match(span, text):
    where = locate(span, text)
    if where is not None:
        s, e = where
        assert 0 <= s <= e <= len(text)
        assert "".join(text[s:e].split()).lower() == "".join(span.split()).lower()


def words(text):
    return len(text.split())


def test_short_text_is_one_chunk():
    assert [(c.text, c.offset) for c in chunk_text("One. Two.", 100, words)] == [("One. Two.", 0)]


def test_chunks_fit_budget_and_keep_offsets():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    chunks = chunk_text(text, 20, words)
    assert len(chunks) > 1
    for c in chunks:
        assert words(c.text) <= 20
        assert text[c.offset:c.offset + len(c.text)] == c.text
    # every sentence lands in exactly one chunk
    assert sum(c.text.count("Sentence") for c in chunks) == 40


def test_chinese_sentences_and_overlong_sentence_split():
    text = "张三质押了股份。李四减持了股票！" + "很长" * 50
    assert [s.text for s in sentences(text)][:2] == ["张三质押了股份。", "李四减持了股票！"]
    chunks = chunk_text(text, 10, len)
    assert all(len(c.text) <= 10 for c in chunks)
    assert "".join(c.text for c in chunks) == text
