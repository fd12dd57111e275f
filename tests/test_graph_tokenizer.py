"""multilabel/graph_tokenizer.py: the in-graph tokenizer gives bert4keras' token ids on hard cases, on every
code point of Unicode's first three planes, on the bundled sample and (where ../shared exists)
on every text of the real corpus; its long-text windows follow config.py's rule."""
import os

import numpy as np
import pytest
import tensorflow as tf

from multilabel import graph_tokenizer
import loader
import path
from conftest import SHARED_DATA

MAXLEN = 64
HARD_CASES = [
    'Hello World', 'MiXeD CaSe WORDS and unbelievable', '123 4567 3.14 2024年10月', 'ＡＢＣ１２３，！（全角）',
    '😀 emoji 🎉中文 👨‍👩‍👧', '中\u3000文', 'a\u00a0b', 'Café naïve ÀÉÎ résumé', 'İstanbul ΣΑΣ ς', '',
    '   \t\n', 'x' * 250, 'tab\there\r\nline', 'zero\u200bwidth\u200djoiner', 'line\u2028separator',
    '한국어 텍스트', '\uf900\uf901 compatibility ideographs', '𠀀𠀁 extension B', 'control\x00\x01\x7f\ufffd',
    '青岛地铁施工段坍塌致3人遇难', 'e\u0301 combining', 'ﬁ ligature ①②', '«quotes» “双引号” ——破折号…',
]


@pytest.fixture(scope='module')
def tokenizer():
    return loader.load_tokenizer(os.path.join(path.pretrained_dir('small'), path.VOCAB_NAME))


@pytest.fixture(scope='module')
def graph(tokenizer):
    return graph_tokenizer.GraphTokenizer(tokenizer, MAXLEN)


def mismatches(tokenizer, graph, texts, batch=512):
    """Texts whose graph ids differ from bert4keras' `encode(text, maxlen=MAXLEN)`."""
    wrong = []
    for start in range(0, len(texts), batch):
        chunk = texts[start:start + batch]
        got = graph.token_ids(tf.constant(chunk)).numpy()
        for text, row in zip(chunk, got):
            expected = tokenizer.encode(text, maxlen=MAXLEN)[0]
            if row[:len(expected)].tolist() != expected or row[len(expected):].any():
                wrong.append(text)
    return wrong


def test_hard_cases(tokenizer, graph):
    assert mismatches(tokenizer, graph, HARD_CASES) == []


def test_every_code_point_of_the_first_three_planes_in_context(tokenizer, graph):
    # Runs of 256 consecutive code points: each one alone and next to its neighbours.
    codes = [c for c in range(0x30000) if not 0xD800 <= c <= 0xDFFF]
    texts = [''.join(map(chr, codes[i:i + 256])) for i in range(0, len(codes), 256)]
    got = graph.content_ids(tf.constant(texts))
    wrong = [text[:20] for text, row in zip(texts, got.to_list())
             if row != tokenizer.tokens_to_ids(tokenizer.tokenize(text)[1:-1])]
    assert wrong == []


def test_bundled_sample(tokenizer, graph):
    texts = [s.text for f in (path.SAMPLE_TRAIN, path.SAMPLE_TEST) for s in loader.read_samples(f)]
    assert mismatches(tokenizer, graph, texts) == []


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason='the real corpus (../shared/data) is not here')
@pytest.mark.parametrize('name', ['multi-classification-train.txt', 'multi-classification-test.txt'])
def test_every_text_of_the_real_corpus(tokenizer, graph, name):
    texts = [s.text for s in loader.read_samples(os.path.join(SHARED_DATA, name))]
    assert mismatches(tokenizer, graph, texts) == []


def reference_windows(content, maxlen, stride):
    """config.py's long_text='chunk' rule, in plain Python."""
    window = maxlen - 2
    stride = stride or window // 2
    n = len(content)
    starts = [0] if n <= window else list(range(0, n - window, stride)) + [n - window]
    return [content[s:s + window] for s in starts]


@pytest.mark.parametrize('stride', [0, 5, 62])
def test_windows_follow_the_chunk_rule(tokenizer, graph, stride):
    texts = ['', '短', '青' * 62, '岛' * 63, '地铁' * 40, '施工' * 100 + 'end', '中文 English 混合 ' * 30]
    ids, text_of_window = graph.windows(tf.constant(texts), stride)
    expected, owners = [], []
    for i, text in enumerate(texts):
        content = tokenizer.tokens_to_ids(tokenizer.tokenize(text)[1:-1])
        for window in reference_windows(content, MAXLEN, stride):
            expected.append([tokenizer._token_start_id] + window + [tokenizer._token_end_id])
            owners.append(i)
    assert text_of_window.numpy().tolist() == owners
    assert [row[:len(e)].tolist() for row, e in zip(ids.numpy(), expected)] == expected
    assert all(not row[len(e):].any() for row, e in zip(ids.numpy(), expected))
    assert ids.shape[1] == max(map(len, expected)) <= MAXLEN


def test_a_text_within_one_window_is_one_window_equal_to_truncation(graph):
    texts = tf.constant(['青岛地铁施工段坍塌致3人遇难', '某汽车品牌宣布召回两万辆新车'])
    ids, owners = graph.windows(texts, 0)
    np.testing.assert_array_equal(ids.numpy(), graph.token_ids(texts).numpy())
    assert owners.numpy().tolist() == [0, 1]
