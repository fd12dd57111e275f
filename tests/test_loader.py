"""loader.py: parsing, every error case, the validation split, labels and batches."""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import loader
import path
from conftest import SHARED_DATA


def write(tmp_path, content, name='data.txt'):
    file = tmp_path / name
    file.write_bytes(content if isinstance(content, bytes) else content.encode('utf-8'))
    return str(file)


def test_parses_labels_and_text_on_the_first_ascii_space_only(tmp_path):
    file = write(tmp_path, '人生-死亡|灾害/意外-坍/垮塌 青岛地铁 施工段\u3000坍塌\u00a0致3人遇难\n'
                           '竞赛行为-胜负 中国队击败日本队\n')
    samples = loader.read_samples(file)
    assert samples[0] == loader.Sample(('人生-死亡', '灾害/意外-坍/垮塌'), '青岛地铁 施工段\u3000坍塌\u00a0致3人遇难')
    assert samples[1] == loader.Sample(('竞赛行为-胜负',), '中国队击败日本队')


def test_duplicate_labels_are_merged_keeping_order(tmp_path):
    samples = loader.read_samples(write(tmp_path, 'b|a|b 文本\n'))
    assert samples[0].labels == ('b', 'a')


def test_bom_and_crlf_are_accepted(tmp_path):
    file = write(tmp_path, '\ufeff人生-死亡 某人去世\r\n人生-结婚 某人结婚\r\n')
    assert [s.labels for s in loader.read_samples(file)] == [('人生-死亡',), ('人生-结婚',)]
    assert loader.read_samples(file)[1].text == '某人结婚'


@pytest.mark.parametrize('content, message', [
    ('人生-死亡 好\n没有空格的行\n', ':2: no ASCII space'),
    ('人生-死亡 \n', ':1: empty text'),
    ('人生-死亡 \u3000\n', ':1: empty text'),
    (' 文本\n', ':1: empty label'),
    ('a||b 文本\n', ':1: empty label'),
    ('a|\u3000 文本\n', ':1: empty label'),
    ('a|\u3000b 文本\n', ':1: label'),
    ('a 文本\n\nb 文本\n', ':2: empty line'),
    ('', ': no samples'),
])
def test_malformed_lines_name_file_and_line(tmp_path, content, message):
    file = write(tmp_path, content)
    with pytest.raises(loader.DataError) as error:
        loader.read_samples(file)
    assert str(error.value).startswith(file)
    assert message in str(error.value)


def test_gbk_file_is_an_encoding_error_with_its_line(tmp_path):
    file = write(tmp_path, '人生-死亡 某人去世\n'.encode('gbk'))
    with pytest.raises(loader.DataError, match=r':1: not valid UTF-8'):
        loader.read_samples(file)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_fail_with_the_loaders_error(tmp_path_factory, content):
    file = write(tmp_path_factory.mktemp('fuzz'), content)
    try:
        samples = loader.read_samples(file)
    except loader.DataError:
        return
    for sample in samples:
        assert sample.text.strip() and sample.labels
        assert all(label and label == label.strip() and '|' not in label and ' ' not in label
                   for label in sample.labels)


def test_validation_split_is_fixed_by_the_seed_and_disjoint():
    samples = loader.read_samples(path.SAMPLE_TRAIN)
    train, valid = loader.split_validation(samples, 0.1, seed=7)
    assert (train, valid) == loader.split_validation(samples, 0.1, seed=7)
    assert valid != loader.split_validation(samples, 0.1, seed=8)[1]
    assert len(valid) == round(len(samples) * 0.1)
    assert sorted(train + valid) == sorted(samples)


def test_multi_hot_follows_the_label_list_and_drops_unknown_labels():
    samples = [loader.Sample(('b', 'a'), 'x'), loader.Sample(('c',), 'y')]
    targets = loader.multi_hot(samples, ['a', 'b'])
    np.testing.assert_array_equal(targets, [[1, 1], [0, 0]])
    assert loader.label_list(samples) == ['a', 'b', 'c']


def test_batches_are_padded_to_their_own_longest_text():
    token_ids = [[2, 5, 3], [2, 5, 6, 7, 8, 9, 3], [2, 3], [2, 4, 3]]
    batches = list(loader.make_dataset(token_ids, np.zeros((4, 2)), batch_size=2))
    assert [b[0][0].shape[1] for b in batches] == [7, 3]
    (ids, segments), _ = batches[0]
    np.testing.assert_array_equal(ids.numpy()[0], [2, 5, 3, 0, 0, 0, 0])
    assert not segments.numpy().any()


def test_tokenizer_truncates_to_maxlen_with_cls_and_sep():
    tokenizer = loader.load_tokenizer(os.path.join(path.pretrained_dir('small'), path.VOCAB_NAME))
    [ids] = loader.encode_texts(tokenizer, ['青岛地铁施工段坍塌致3人遇难'], maxlen=8)
    assert len(ids) == 8
    assert ids[0] == tokenizer._token_start_id and ids[-1] == tokenizer._token_end_id


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason='the real corpus (../shared/data) is absent')
def test_real_corpus_parses_with_its_65_labels():
    train = loader.read_samples(os.path.join(SHARED_DATA, 'multi-classification-train.txt'))
    test = loader.read_samples(os.path.join(SHARED_DATA, 'multi-classification-test.txt'))
    assert (len(train), len(test)) == (11958, 1498)
    assert len(loader.label_list(train)) == 65
    assert loader.label_list(test) == loader.label_list(train)
    assert sum(len(s.labels) > 1 for s in train) == 1121


def test_group_by_length_keeps_every_text_once_and_pads_less():
    rng = np.random.default_rng(0)
    token_ids = [[2] + [5] * int(n) + [3] for n in rng.integers(1, 120, size=203)]

    def epochs(group, first_epoch=0):
        data = loader.make_dataset(token_ids, np.zeros((203, 1)), batch_size=8, shuffle=True, seed=3,
                                   first_epoch=first_epoch, epochs=2, group_by_length=group)
        return [ids.numpy() for (ids, _), _ in data]

    plain, grouped = epochs(0), epochs(4)
    assert len(grouped) == len(plain) == 2 * 26
    for epoch in (grouped[:26], grouped[26:]):  # each text once per epoch, the short batch last
        assert sorted((row != 0).sum() for batch in epoch for row in batch) == sorted(map(len, token_ids))
        assert [len(batch) for batch in epoch] == [8] * 25 + [3]
    assert sum(b.size for b in grouped) < 0.8 * sum(b.size for b in plain)  # 0.72 here
    assert grouped[0].tolist() != grouped[26].tolist()  # each epoch its own order
    resumed = epochs(4, first_epoch=1)  # a resumed run sees the unbroken run's second epoch
    assert all((a == b).all() for a, b in zip(resumed, grouped[26:]))


def test_joined_pairs_are_two_training_texts_with_both_label_sets_within_maxlen():
    token_ids = [[2] + [10 + i] * (i + 1) + [3] for i in range(12)]  # text i: i+1 tokens of id 10+i
    targets = np.eye(12, dtype='float32')
    joined, joined_targets = loader.joined_pairs(token_ids, targets, share=0.5, maxlen=30, seed=3)
    assert len(joined) == 6 and joined_targets.shape == (6, 12) and joined_targets.dtype == np.float32
    for ids, row in zip(joined, joined_targets):
        assert ids[0] == 2 and ids[-1] == 3 and 2 not in ids[1:] and 3 not in ids[:-1] and len(ids) <= 30
        first, second = ids[1] - 10, ids[-2] - 10
        assert first != second and ids[1:-1] == [10 + first] * (first + 1) + [10 + second] * (second + 1)
        np.testing.assert_array_equal(row, targets[first] + targets[second])
    again = loader.joined_pairs(token_ids, targets, share=0.5, maxlen=30, seed=3)
    assert again[0] == joined and loader.joined_pairs(token_ids, targets, 0.5, 30, seed=4)[0] != joined


def test_joined_pairs_join_soft_targets_as_either_label_holding_and_skip_what_does_not_fit():
    token_ids = [[2, 5, 3], [2, 6, 3], [2] + [7] * 20 + [3]]
    targets = np.array([[0.5, 0.0], [0.5, 1.0], [1.0, 1.0]], dtype='float32')
    joined, joined_targets = loader.joined_pairs(token_ids, targets, share=10, maxlen=6, seed=0)
    assert joined and all(ids in ([2, 5, 6, 3], [2, 6, 5, 3]) for ids in joined)  # the long text never fits
    np.testing.assert_allclose(joined_targets, [[0.75, 1.0]] * len(joined))
    assert loader.joined_pairs(token_ids, targets, share=0, maxlen=6, seed=0)[0] == []
