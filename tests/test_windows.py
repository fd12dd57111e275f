"""One window rule for long texts: the in-graph tokenizer's windows are loader's, window for
window, at the smallest maxlen (3: a one-token window) and beyond, for every stride."""
import os

import pytest
import tensorflow as tf

from multilabel import graph_tokenizer
import loader
import path

TEXTS = ['', '短', '青岛', '青岛地', '青岛地铁施工段发生坍塌', '某汽车品牌宣布召回两万辆新车 recall',
         '中文 English 混合 ' * 3]


@pytest.fixture(scope='module')
def tokenizer():
    return loader.load_tokenizer(os.path.join(path.pretrained_dir('small'), path.VOCAB_NAME))


@pytest.mark.parametrize('maxlen', [3, 4, 5])
@pytest.mark.parametrize('stride', [0, 1, 2, 3, 7])  # 0: the default, half a window
def test_the_graph_windows_are_the_loaders(tokenizer, maxlen, stride):
    expected, owners = loader.encode_windows(tokenizer, TEXTS, maxlen, stride)
    ids, text_of_window = graph_tokenizer.GraphTokenizer(tokenizer, maxlen).windows(tf.constant(TEXTS), stride)
    assert text_of_window.numpy().tolist() == owners.tolist()
    assert [row[:len(window)].tolist() for row, window in zip(ids.numpy(), expected)] == expected
    assert all(not row[len(window):].any() for row, window in zip(ids.numpy(), expected))  # only padding after


def test_the_stride_rule():
    assert [loader.window_stride(window, 0) for window in (1, 2, 3, 4, 126)] == [1, 1, 1, 2, 63]
    assert loader.window_stride(1, 5) == 5  # a stride given is kept
