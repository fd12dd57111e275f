"""OpenVINO against the project's own inference paths, on the real test texts, in one process.

    .venv/bin/pip install -r bench/requirements-openvino.txt      # not a dependency of the project
    python bench/openvino_compare.py --weights bench/weights/small-len64

predict.py's int8 engine was picked by measurement; this is the measurement for
OpenVINO (it converts the TensorFlow graph itself; ONNX Runtime through tf2onnx could not
convert the model, README "Fast inference"). Rows, each timed on the same token ids with
inference.predict_scores (length-sorted batches of --batch-size) and compared with TensorFlow's
float32 scores:
- tensorflow float32, bfloat16 (Keras mixed_bfloat16), tflite int8: inference.Classifier's engines;
- openvino f32, bf16: the float32 model traced with compat.openvino_friendly_rope, converted by
  ov.convert_model, compiled for the CPU with that INFERENCE_PRECISION_HINT;
- openvino int8, int8 + bf16: the same graph quantized by NNCF (activations and weights,
  transformer preset) on --calibration texts from the training file, never the test file;
  the ops left unquantized run in f32 or bf16.
The timed passes of all rows are interleaved (best of --repeats). Results in
bench/results/openvino.json.
"""
import argparse
import os
import sys
import time

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import benchlib  # noqa: E402  (beside this script)
import config  # noqa: E402
import path  # noqa: E402
from multilabel import inference  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'openvino.json')


class OpenVINOEngine:
    """A compiled OpenVINO model called like predict's engines: (token_ids, segment_ids) -> scores."""

    def __init__(self, compiled, output_shape):
        self.request = compiled.create_infer_request()
        self.output_shape = output_shape

    def __call__(self, token_ids, segment_ids):
        return self.request.infer({'token_ids': token_ids, 'segment_ids': segment_ids})[0].copy()


def openvino_models(model, calibration_ids):
    """{'f32': ov.Model, 'int8': NNCF-quantized ov.Model} of the Keras `model`."""
    from multilabel import compat
    import loader
    import nncf
    import openvino as ov
    import tensorflow as tf
    spec = [tf.TensorSpec([None, None], tf.int32, name='token_ids'),
            tf.TensorSpec([None, None], tf.int32, name='segment_ids')]
    function = tf.function(lambda token_ids, segment_ids: model([token_ids, segment_ids], training=False),
                           input_signature=spec)
    with compat.openvino_friendly_rope(), compat.tflite_friendly_align():
        converted = ov.convert_model(function.get_concrete_function())
    calibration = nncf.Dataset([loader.pad_batch([ids]) for ids in calibration_ids],
                               lambda batch: {'token_ids': batch[0], 'segment_ids': batch[1]})
    quantized = nncf.quantize(converted.clone(), calibration,  # it rewrites the model it is given model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(calibration_ids))
    return {'f32': converted, 'int8': quantized}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', default=path.WEIGHTS_DIR, help='trained model folder (default: %(default)s)')
    parser.add_argument('--test', default=benchlib.SHARED_TEST,
                        help='labelled test file (default: %(default)s)')
    parser.add_argument('--calibration', default=path.corpus_train(benchlib.SHARED_DATA),
                        help='labelled file whose first --calibration-size texts calibrate int8 (default: %(default)s)')
    parser.add_argument('--calibration-size', type=int, default=300, help='(default: %(default)s)')
    parser.add_argument('--repeats', type=int, default=3, help='timed passes per row (default: %(default)s)')
    parser.add_argument('--out', default=RESULTS, help='JSON results (default: %(default)s)')
    config.add_flags(parser, 'batch_size')
    args = parser.parse_args(argv)
    try:
        import openvino as ov
    except ImportError:
        sys.exit('openvino is not installed: .venv/bin/pip install -r bench/requirements-openvino.txt')
    import loader

    provenance = benchlib.provenance('bench/openvino_compare.py', argv)
    samples = loader.read_samples(args.test)
    classifiers = {p: inference.Classifier(args.weights, precision=p) for p in inference.PRECISIONS}
    base = classifiers['float32']
    token_ids = loader.encode_texts(base.tokenizer, [s.text for s in samples], base.maxlen, progress=False)
    calibration_texts = [s.text for s in loader.read_samples(args.calibration)[:args.calibration_size]]
    calibration_ids = loader.encode_texts(base.tokenizer, calibration_texts, base.maxlen, progress=False)

    engines = {f'tensorflow {p}': c.engine for p, c in classifiers.items()}
    started = time.perf_counter()
    converted = openvino_models(base.model, calibration_ids)
    prepare_seconds = time.perf_counter() - started
    core = ov.Core()
    for name, model, hint in (('f32', converted['f32'], 'f32'), ('bf16', converted['f32'], 'bf16'),
                              ('int8', converted['int8'], 'f32'), ('int8 + bf16', converted['int8'], 'bf16')):
        compiled = core.compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': hint})
        engines[f'openvino {name}'] = OpenVINOEngine(compiled, base.model.output_shape)

    def run(engine):
        return inference.predict_scores(engine, token_ids, args.batch_size)
    scores = {name: run(engine) for name, engine in engines.items()}  # warm-up, and the scores compared
    best = {name: float('inf') for name in engines}
    for _ in range(args.repeats):
        for name, engine in engines.items():
            start = time.perf_counter()
            run(engine)
            best[name] = min(best[name], time.perf_counter() - start)

    targets = loader.multi_hot(samples, base.labels).astype('int32')
    reference = inference.decide(scores['tensorflow float32'], base.threshold, base.top1_fallback)
    rows = []
    for name in engines:
        decided = inference.decide(scores[name], base.threshold, base.top1_fallback)
        rows.append({'path': name, 'sentences_per_second': round(len(samples) / best[name], 1),
                     'ratio_to_tensorflow_float32': round(best['tensorflow float32'] / best[name], 2),
                     'agreement_with_float32': round(float((decided == reference).all(axis=1).mean()), 4),
                     'exact_match': round(float((decided == targets).all(axis=1).mean()), 4)})
    result = dict(provenance, openvino=ov.__version__, weights=os.path.relpath(os.path.abspath(args.weights), ROOT),
                  texts=len(samples), batch_size=args.batch_size, repeats=args.repeats,
                  convert_and_quantize_seconds=round(prepare_seconds, 1), rows=rows)
    path.write_json(args.out, result)
    print(f'{len(samples)} texts, {result["machine"]}, load average {result["load_average"]}, '
          f'OpenVINO {ov.__version__}')
    print('| path | sentences/s | ratio to TF float32 | agreement with float32 | exact match |')
    print('| --- | --- | --- | --- | --- |')
    for r in rows:
        print(f'| {r["path"]} | {r["sentences_per_second"]} | {r["ratio_to_tensorflow_float32"]:.2f} | '
              f'{r["agreement_with_float32"]:.4f} | {r["exact_match"]:.4f} |')
    print(f'written: {args.out}')
    return result


if __name__ == '__main__':
    config.run_main(main)
