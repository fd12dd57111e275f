"""pretrain.py: MLM pretraining writes an official-layout checkpoint that train.py loads; the loss
falls; a killed run resumes; bad input is reported by file and line."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from multilabel import history
import path
from conftest import ROOT, run_script

FAST = ['--maxlen', '32', '--batch-size', '16']


def completed_epochs(folder):
    state_file = os.path.join(folder, path.RESUME_DIR, path.RESUME_STATE_NAME)
    return path.read_json(state_file)['epoch'] if os.path.exists(state_file) else 0


@pytest.fixture(scope='module')
def self_pretrained(tmp_path_factory):
    """A 2-epoch pretraining from random weights (1 layer, hidden 32, the official vocabulary) on the sample."""
    import pretrain
    out = str(tmp_path_factory.mktemp('self') / 'pretrained')
    best = pretrain.main(['--out', out, '--layers', '1', '--hidden', '32', '--heads', '2', '--epochs', '2',
                          '--max-samples', '120', *FAST])
    return out, best


def test_pretraining_writes_the_official_layout_and_its_history(self_pretrained):
    out, best = self_pretrained
    for name in (path.CONFIG_NAME, path.VOCAB_NAME, path.CHECKPOINT_NAME + '.index',
                 path.CHECKPOINT_NAME + '.data-00000-of-00001', path.CHECKPOINT_NAME + '.meta'):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    bert_config = path.read_json(os.path.join(out, path.CONFIG_NAME))
    assert (bert_config['num_hidden_layers'], bert_config['hidden_size'], bert_config['intermediate_size'],
            bert_config['num_attention_heads'], bert_config['vocab_size']) == (1, 32, 128, 2, 12000)
    import tensorflow as tf
    names = {name for name, _ in tf.train.list_variables(os.path.join(out, path.CHECKPOINT_NAME))}
    assert {'bert/embeddings/word_embeddings', 'bert/embeddings/token_type_embeddings',
            'bert/encoder/layer_0/attention/self/query/kernel',
            'bert/encoder/layer_0/intermediate/dense/kernel'} <= names
    rows = history.read_history(os.path.join(out, path.HISTORY_NAME))
    assert [row['epoch'] for row in rows] == [1, 2]
    assert set(rows[0]) == {'epoch', 'loss', 'masked_acc', 'val_loss', 'val_masked_acc', 'lr'}
    assert max(row['val_masked_acc'] for row in rows) == pytest.approx(best)
    assert not [name for name in os.listdir(out) if name.startswith('.')]  # no temporary or lock left


def test_the_written_checkpoint_loads_through_train_py_bit_identical(self_pretrained, tmp_path):
    from multilabel import compat
    from multilabel import mlm
    import model as model_lib
    import tensorflow as tf
    out, _ = self_pretrained
    checkpoint = model_lib.find_checkpoint(out)
    stored = {name: tf.train.load_variable(checkpoint, name) for name, _ in tf.train.list_variables(checkpoint)}
    # train.py's road: check_pretrained, find_checkpoint, build_classifier.
    model_lib.check_pretrained(out)
    classifier = model_lib.build_classifier(os.path.join(out, path.CONFIG_NAME), 3, checkpoint)
    table = classifier.get_layer('Embedding-Token').get_weights()[0]
    assert np.array_equal(table, stored['bert/embeddings/word_embeddings'])
    kernel = classifier.get_layer('Transformer-0-FeedForward').get_weights()[0]
    assert np.array_equal(kernel, stored['bert/encoder/layer_0/intermediate/dense/kernel'])
    # And the other way: what mlm.write_checkpoint writes is exactly the model's values.
    encoder = model_lib.build_encoder(os.path.join(out, path.CONFIG_NAME), checkpoint)
    values = model_lib.checkpoint_values(encoder)
    assert set(values) == set(stored)
    mlm.write_checkpoint(encoder, str(tmp_path / path.CHECKPOINT_NAME))
    for name, value in values.items():
        assert np.array_equal(tf.train.load_variable(str(tmp_path / path.CHECKPOINT_NAME), name), value), name
        assert np.array_equal(value, stored[name]), name
    assert compat  # tf-keras before TensorFlow


def test_train_py_fine_tunes_from_the_pretrained_folder(self_pretrained, tmp_path):
    out, _ = self_pretrained
    result = run_script('train.py', '--pretrained', out, '--weights', str(tmp_path / 'w'), '--epochs', '1',
                        '--max-samples', '60', *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'RANDOM weights' not in result.stderr  # the checkpoint was loaded
    assert ' best acc: ' in result.stdout


@pytest.mark.parametrize('mask_span', ['1', '4'])
def test_the_mlm_loss_falls_on_a_tiny_repeated_corpus(tiny_pretrained, tmp_path, mask_span):
    import loader
    import pretrain
    texts = [s.text[:24] for s in loader.read_samples(path.SAMPLE_TRAIN)[:4]]
    corpus = tmp_path / 'repeated.txt'
    corpus.write_text('\n'.join(texts * 60) + '\n', encoding='utf-8')
    out = str(tmp_path / 'out')
    pretrain.main(['--texts', str(corpus), '--init', tiny_pretrained, '--out', out, '--epochs', '16',
                   '--mlm-lr', '5e-3', '--warmup', '0.1', '--patience', '50', '--maxlen', '32', '--batch-size', '8',
                   '--mask-span', mask_span])
    rows = history.read_history(os.path.join(out, path.HISTORY_NAME))
    assert rows[-1]['loss'] < 0.4 * rows[0]['loss']  # measured: 6.66 -> 1.66
    assert rows[-1]['val_loss'] < 0.5 * rows[0]['val_loss']  # the held-out copies of the same texts
    assert rows[-1]['val_masked_acc'] > rows[0]['val_masked_acc'] + 0.3  # measured: 0.03 -> 0.65


def test_budget_decay_moves_the_schedule_on_to_the_share_of_the_budget_spent():
    from multilabel import mlm
    schedule = mlm.WarmupLinearDecay(1.0, warmup_steps=10, total_steps=100)
    assert float(schedule(5)) == pytest.approx(0.5) and float(schedule(50)) == pytest.approx(50 / 90)
    schedule.budget_spent.assign(0.8)  # the budget is further along than the steps: it leads
    assert float(schedule(50)) == pytest.approx(20 / 90)
    assert float(schedule(90)) == pytest.approx(10 / 90)  # the steps further along: they lead
    schedule.budget_spent.assign(0.05)  # the warm-up runs on the budget's clock too
    assert float(schedule(0)) == pytest.approx(0.5)
    schedule.budget_spent.assign(1.0)
    assert float(schedule(3)) == 0.0


def test_pretrain_py_with_budget_decay_ends_its_budget_near_a_rate_of_0(tiny_pretrained, tmp_path, ticking_clock):
    import pretrain
    out = str(tmp_path / 'out')
    pretrain.main(['--init', tiny_pretrained, '--out', out, '--max-samples', '40', '--epochs', '1000', '--warmup', '0',
                   '--mlm-lr', '1e-3', '--patience', '1000', '--time-budget', '0.15', '--budget-decay', *FAST])
    rates = [row['lr'] for row in history.read_history(os.path.join(out, path.HISTORY_NAME))]
    # Planned over 1000 epochs, the rate would still be above 0.99e-3.
    assert len(rates) >= 2 and rates[0] > rates[-1] and rates[-1] < 0.3e-3


def kill_and_resume(command, out, epochs, epoch_line):
    """Kill `command` (a pretraining of `epochs` epochs into `out`) with SIGKILL after its 2nd epoch,
    then run it again with --resume: it goes on from the last completed epoch to the planned end."""
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while completed_epochs(out) < 2 and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    assert first.poll() is None, 'pretraining ended before it could be killed'
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = completed_epochs(out)
    assert 2 <= killed_at < epochs

    result = run_script(*command[1:], '--resume')  # command[0] is python
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'resumed after epoch {killed_at}' in result.stdout
    assert result.stdout.count(epoch_line) == epochs - killed_at
    rows = history.read_history(os.path.join(out, path.HISTORY_NAME))
    assert [row['epoch'] for row in rows] == list(range(1, epochs + 1))
    assert rows[-1]['lr'] == 0.0  # the schedule went on from the restored step count to its planned end
    assert not [name for name in os.listdir(out) if name.startswith('.')]


def test_a_killed_pretraining_resumes_from_its_last_epoch(tiny_pretrained, tmp_path):
    out = str(tmp_path / 'out')
    kill_and_resume([sys.executable, 'pretrain.py', '--init', tiny_pretrained, '--out', out, '--epochs', '6',
                     '--patience', '50', '--max-samples', '120', '--maxlen', '32', '--batch-size', '4'],
                    out, 6, 'best held-out acc:')


def test_bad_input_names_the_file_and_line(tmp_path):
    bad = tmp_path / 'texts.txt'
    bad.write_text('第一句话\n\n第三句话\n', encoding='utf-8')
    result = subprocess.run([sys.executable, 'pretrain.py', '--texts', str(bad), '--out', str(tmp_path / 'o')],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f'error: {bad}:2: empty line'


@pytest.fixture(scope='module')
def rtd_pretrained(tmp_path_factory):
    """A 2-epoch replaced-token-detection pretraining from random weights (1 layer, hidden 32)."""
    import pretrain
    out = str(tmp_path_factory.mktemp('rtd') / 'pretrained')
    pretrain.main(['--objective', 'rtd', '--out', out, '--layers', '1', '--hidden', '32', '--heads', '2',
                   '--epochs', '2', '--max-samples', '120', *FAST])
    return out


def test_rtd_writes_the_discriminator_in_the_official_layout(rtd_pretrained, tmp_path):
    import model as model_lib
    import tensorflow as tf
    out = rtd_pretrained
    bert_config = path.read_json(os.path.join(out, path.CONFIG_NAME))
    assert (bert_config['num_hidden_layers'], bert_config['hidden_size']) == (1, 32)  # the discriminator's
    checkpoint = model_lib.find_checkpoint(out)
    stored = {name: tf.train.load_variable(checkpoint, name) for name, _ in tf.train.list_variables(checkpoint)}
    encoder = model_lib.build_encoder(os.path.join(out, path.CONFIG_NAME), checkpoint)
    values = model_lib.checkpoint_values(encoder)
    assert set(stored) == set(values)  # the encoder alone: no generator or detection-head variables
    assert stored['bert/embeddings/word_embeddings'].shape == (12000, 32)
    classifier = model_lib.build_classifier(os.path.join(out, path.CONFIG_NAME), 3, checkpoint)
    kernel = classifier.get_layer('Transformer-0-FeedForward').get_weights()[0]
    assert np.array_equal(kernel, stored['bert/encoder/layer_0/intermediate/dense/kernel'])
    rows = history.read_history(os.path.join(out, path.HISTORY_NAME))
    assert [row['epoch'] for row in rows] == [1, 2]
    assert {'rtd_loss', 'rtd_acc', 'replaced_recall', 'val_masked_acc', 'val_rtd_acc', 'val_replaced_recall'} <= set(rows[0])
    assert not [name for name in os.listdir(out) if name.startswith('.')]


def test_rtd_generator_shares_the_token_table_and_is_narrower(tiny_pretrained):
    import loader
    from multilabel import mlm
    from multilabel import rtd
    import config
    bert_config = path.read_json(os.path.join(tiny_pretrained, path.CONFIG_NAME))
    tokenizer = loader.load_tokenizer(os.path.join(tiny_pretrained, path.VOCAB_NAME))
    masker = mlm.Masker(tokenizer, bert_config['vocab_size'], 0.15)
    _, model = rtd.build(bert_config, None, config.Config(generator_size=0.5), masker.maskable)
    table = model.discriminator.get_layer('Embedding-Token')
    assert model.generator.get_layer('Embedding-Token') is table  # the layer itself, under its own name
    assert model.generator.output_shape[-1] == bert_config['hidden_size'] // 2
    shared = [v for v in model.trainable_variables if v is table.embeddings]
    assert len(shared) == 1  # one table, trained by both losses


def test_the_rtd_loss_falls_on_a_tiny_repeated_corpus(tiny_pretrained, tmp_path):
    import loader
    import pretrain
    texts = [s.text[:24] for s in loader.read_samples(path.SAMPLE_TRAIN)[:4]]
    corpus = tmp_path / 'repeated.txt'
    corpus.write_text('\n'.join(texts * 60) + '\n', encoding='utf-8')
    out = str(tmp_path / 'out')
    pretrain.main(['--objective', 'rtd', '--texts', str(corpus), '--init', tiny_pretrained, '--out', out,
                   '--epochs', '24', '--mlm-lr', '5e-3', '--warmup', '0.1', '--maxlen', '32', '--batch-size', '8'])
    rows = history.read_history(os.path.join(out, path.HISTORY_NAME))
    assert rows[-1]['loss'] < 0.5 * rows[0]['loss']
    assert rows[-1]['val_loss'] < 0.6 * rows[0]['val_loss']
    assert rows[-1]['val_masked_acc'] > rows[0]['val_masked_acc'] + 0.3  # the generator learned the texts
    assert rows[-1]['val_replaced_recall'] > rows[0]['val_replaced_recall'] + 0.2  # the detector finds replacements


def test_a_killed_rtd_pretraining_resumes_from_its_last_epoch(tiny_pretrained, tmp_path):
    out = str(tmp_path / 'out')
    kill_and_resume([sys.executable, 'pretrain.py', '--objective', 'rtd', '--init', tiny_pretrained, '--out', out,
                     '--epochs', '6', '--max-samples', '120', '--maxlen', '32', '--batch-size', '4'],
                    out, 6, 'kept: this epoch')


def test_span_masking_masks_runs_of_tokens_at_about_the_same_rate(tiny_pretrained):
    import loader
    from multilabel import mlm
    from multilabel.compat import tf
    tokenizer = loader.load_tokenizer(os.path.join(tiny_pretrained, path.VOCAB_NAME))
    vocab_size = path.read_json(os.path.join(tiny_pretrained, path.CONFIG_NAME))['vocab_size']
    ordinary = np.random.default_rng(0).choice(mlm.Masker(tokenizer, vocab_size, 0.15).replacements, (64, 200))
    ids = tf.constant(np.pad(ordinary, [[0, 0], [1, 0]], constant_values=tokenizer._token_start_id), tf.int32)
    ids = tf.pad(tf.concat([ids, tf.fill([64, 1], tokenizer._token_end_id)], 1), [[0, 0], [0, 5]])  # [PAD]s
    seed = tf.constant([3, 4], tf.int64)

    def chosen(span):
        return mlm.Masker(tokenizer, vocab_size, 0.15, span).choose(ids, seed).numpy()

    def run_lengths(mask):
        edges = np.diff(np.pad(mask.astype(int), [[0, 0], [1, 1]]), axis=1)
        return np.flatnonzero(edges.ravel() == -1) - np.flatnonzero(edges.ravel() == 1)

    single = chosen(1)  # BERT's draw, unchanged: a run started before span masking resumes as it was
    maskable = tf.gather(mlm.Masker(tokenizer, vocab_size, 0.15).maskable, ids).numpy()
    assert (single == (maskable & (tf.random.stateless_uniform(ids.shape, seed) < 0.15).numpy())).all()
    spans = chosen(4)
    for mask in (single, spans):
        assert not mask[~maskable].any()  # never [CLS], [SEP] or [PAD]
        assert 0.14 < mask.sum() / maskable.sum() < 0.16
    assert run_lengths(single).mean() < 1.25
    assert 2.0 < run_lengths(spans).mean() < 2.6  # lengths 1-4 drawn 40/30/20/10%: 2.0, a little more where runs touch
    assert np.mean(run_lengths(spans) > 4) < 0.05


def test_whole_word_marks_keep_the_ids_and_follow_the_segmenter():
    import loader
    from multilabel import mlm
    tokenizer = loader.load_tokenizer(os.path.join(path.pretrained_dir('small'), path.VOCAB_NAME))  # the official one
    texts = ['北京大学发布OpenAI评测', '公司 收购', '长' * 40]
    segmenter = {texts[0]: {0, 2, 4, 6, 12}, texts[1]: {0, 2, 3}, texts[2]: {0}}
    marked = mlm.mark_words(tokenizer, texts, 16, word_starts=segmenter.get)
    assert [[abs(i) for i in ids] for ids in marked] == loader.encode_texts(tokenizer, texts, 16)

    def continued(text, ids):
        return [token for token, token_id in zip(tokenizer.tokenize(text, maxlen=16), ids) if token_id < 0]
    # words 北京 大学 发布 OpenAI 评测 (OpenAI is 'open' '##ai'): a word's later tokens continue it
    assert continued(texts[0], marked[0]) == ['京', '学', '布', '##ai', '测']
    assert continued(texts[1], marked[1]) == ['司', '购']  # the space starts a word of its own
    assert continued(texts[2], marked[2]) == ['长'] * 13  # one long word, cut at maxlen; [CLS], [SEP] never


def test_a_text_the_tokenizer_cannot_map_back_is_masked_token_by_token(monkeypatch):
    import loader
    from multilabel import mlm
    tokenizer = loader.load_tokenizer(os.path.join(path.pretrained_dir('small'), path.VOCAB_NAME))

    def unmappable(text, tokens):
        raise ValueError('substring not found')
    monkeypatch.setattr(tokenizer, 'rematch', unmappable)
    assert mlm.mark_words(tokenizer, ['北京大学'], 16, word_starts=lambda text: {0}) == \
        loader.encode_texts(tokenizer, ['北京大学'], 16)  # no mark: nothing continues a word


def test_whole_word_masking_masks_every_token_of_a_word_or_none(tiny_pretrained):
    import loader
    from multilabel import mlm
    from multilabel.compat import tf
    tokenizer = loader.load_tokenizer(os.path.join(tiny_pretrained, path.VOCAB_NAME))
    vocab_size = path.read_json(os.path.join(tiny_pretrained, path.CONFIG_NAME))['vocab_size']
    rng = np.random.default_rng(0)
    ordinary = rng.choice(mlm.Masker(tokenizer, vocab_size, 0.15).replacements, (64, 200))
    continues = rng.random((64, 200)) < 0.5  # words of 1, 2, 3 ... tokens
    continues[:, 0] = False
    ids = np.pad(np.where(continues, -ordinary, ordinary), [[0, 0], [1, 0]], constant_values=tokenizer._token_start_id)
    ids = tf.constant(np.pad(ids, [[0, 0], [0, 5]]), tf.int32)  # [PAD]s
    masker = mlm.Masker(tokenizer, vocab_size, 0.15, whole_words=True)
    chosen = masker.choose(tf.abs(ids), tf.constant([3, 4], tf.int64), ids < 0).numpy()
    word = np.cumsum(~continues, axis=1)
    for row in range(64):
        for number in np.unique(word[row]):
            in_word = chosen[row, 1:201][word[row] == number]
            assert in_word.all() or not in_word.any()
    assert not chosen[:, 0].any() and not chosen[:, 201:].any()
    assert 0.13 < chosen.sum() / (64 * 200) < 0.17
    masked, targets = masker.mask(ids, tf.constant([5, 6], tf.int64))
    assert (masked.numpy() >= 0).all()  # the marks never reach the model
    assert (targets.numpy()[targets.numpy() > 0] == np.abs(ids.numpy())[targets.numpy() > 0]).all()


def test_whole_word_masking_without_jieba_says_how_to_get_it(monkeypatch):
    from multilabel import mlm
    import config
    monkeypatch.setitem(sys.modules, 'jieba', None)  # import jieba raises ImportError
    with pytest.raises(config.InputError, match=r'^--whole-word-masking needs the jieba package: pip install jieba=='):
        mlm.jieba_segmenter()


def test_whole_word_masking_pretrains_with_jieba(tiny_pretrained, tmp_path):
    pytest.importorskip('jieba')
    import pretrain
    out = str(tmp_path / 'out')
    pretrain.main(['--init', tiny_pretrained, '--out', out, '--epochs', '1', '--max-samples', '40', *FAST,
                   '--whole-word-masking'])
    rows = history.read_history(os.path.join(out, path.HISTORY_NAME))
    assert len(rows) == 1 and rows[0]['masked_acc'] >= 0
    assert os.path.exists(os.path.join(out, path.CHECKPOINT_NAME + '.index'))


def test_pretraining_uses_its_own_dropout_rate_not_the_configs(tiny_pretrained):
    """--mlm-dropout replaces the 0.1 of bert_config.json inside the encoder (MLM) and in both
    Transformers of RTD; 0 by default (bert4keras then adds no Dropout layer)."""
    import loader
    from multilabel import mlm
    from multilabel import rtd
    import config
    from multilabel.compat import keras
    bert_config = path.read_json(os.path.join(tiny_pretrained, path.CONFIG_NAME))
    assert bert_config['hidden_dropout_prob'] == 0.1

    def rates(keras_model):
        return {layer.rate for layer in keras_model.layers if isinstance(layer, keras.layers.Dropout)}
    assert rates(mlm.build(bert_config, None, config.Config())[0].model) <= {0.0}
    assert rates(mlm.build(bert_config, None, config.Config(mlm_dropout=0.2))[0].model) == {0.2}
    tokenizer = loader.load_tokenizer(os.path.join(tiny_pretrained, path.VOCAB_NAME))
    masker = mlm.Masker(tokenizer, bert_config['vocab_size'], 0.15)
    _, model = rtd.build(bert_config, None, config.Config(mlm_dropout=0.2), masker.maskable)
    assert rates(model.discriminator) == rates(model.generator) == {0.2}
