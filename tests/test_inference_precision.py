"""Inference --precision (predict.py decides): auto's choice, bfloat16 and int8 scoring close to
float32, the scripts' flag, and multilabel/export.py's int8 model file."""
import os

import numpy as np
import pytest

import config
import loader
import path
import predict
from multilabel.compat import keras
from multilabel import inference


@pytest.fixture(scope='module')
def texts():
    return [s.text for s in loader.read_samples(path.SAMPLE_TEST)[:40]] + ['', 'MiXeD 😀', '青岛' * 100]


@pytest.fixture(scope='module')
def float32_scores(trained, texts):
    return predict.Classifier(trained[0], precision='float32').scores(texts)


def test_auto_is_bfloat16_exactly_where_the_hardware_has_it():
    expected = 'bfloat16' if inference.bfloat16_hardware() else 'float32'
    assert inference.resolve_precision('auto') == expected
    assert [inference.resolve_precision(p) for p in inference.PRECISIONS] == list(inference.PRECISIONS)
    with pytest.raises(config.InputError, match='--precision float16'):
        inference.resolve_precision('float16')


@pytest.fixture(scope='module')
def int8_classifier(trained):
    return predict.Classifier(trained[0], precision='int8')  # converted once for the tests below


@pytest.mark.parametrize('precision', ['bfloat16', 'int8'])
def test_reduced_precision_scores_close_to_float32(trained, texts, float32_scores, int8_classifier, precision):
    classifier = int8_classifier if precision == 'int8' else predict.Classifier(trained[0], precision=precision)
    assert classifier.precision == precision
    assert keras.mixed_precision.global_policy().name == 'float32'  # the policy is put back after loading
    scores = classifier.scores(texts, batch_size=8)  # several batch shapes: the int8 interpreter resizes
    assert scores.shape == float32_scores.shape
    np.testing.assert_allclose(scores, float32_scores, atol=0.05)
    if precision == 'bfloat16':
        assert classifier.model.get_layer('Embedding-Token').compute_dtype == 'bfloat16'


def test_scripts_take_the_precision_flag(trained, capsys, tmp_path):
    import evaluate
    evaluate.main(['--weights', trained[0], '--precision', 'bfloat16', '--report-dir', str(tmp_path)])
    assert 'precision: bfloat16' in capsys.readouterr().out
    predict.main(['--weights', trained[0], '--precision', 'float32', '青岛地铁施工段坍塌致3人遇难'])
    assert capsys.readouterr().out.strip()


def test_export_int8_writes_a_tflite_model_that_scores_as_the_int8_path(trained, texts, int8_classifier, tmp_path):
    from multilabel import export
    import tensorflow as tf
    export.export(trained[0], str(tmp_path), 'int8')
    assert path.read_json(str(tmp_path / path.META_NAME))['precision'] == 'int8'
    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / export.INT8_NAME))
    classifier = int8_classifier
    token_ids, segment_ids = loader.pad_batch(loader.encode_texts(classifier.tokenizer, texts[:4], classifier.maxlen))
    inputs = {d['name']: d['index'] for d in interpreter.get_input_details()}
    for name, value in (('token_ids', token_ids), ('segment_ids', segment_ids)):
        interpreter.resize_tensor_input(next(i for n, i in inputs.items() if name in n), value.shape)
    interpreter.allocate_tensors()
    for name, value in (('token_ids', token_ids), ('segment_ids', segment_ids)):
        interpreter.set_tensor(next(i for n, i in inputs.items() if name in n), value)
    interpreter.invoke()
    exported = interpreter.get_tensor(interpreter.get_output_details()[0]['index'])
    np.testing.assert_allclose(exported, classifier.engine(token_ids, segment_ids), atol=1e-6)
    assert os.path.getsize(tmp_path / export.INT8_NAME) > 0
