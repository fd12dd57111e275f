"""Export a trained model as a TensorFlow SavedModel, for TF Serving or any TensorFlow runtime.

    python export.py                                  # weights/ -> weights/saved_model/
    python export.py --weights weights --out /srv/models/labels/1
    python export.py --long-text chunk --stride 32    # the text signature reads long texts in windows

Two signatures:
- `serving_default` takes `token_ids` and `segment_ids` (int32, [batch, length], padded with 0)
  and returns `probabilities` (float32, [batch, labels]), the sigmoid scores in the order of
  labels.json.
- `text` takes `texts` (string, [batch], UTF-8) and returns `probabilities` and `labels` (the
  label names, one row per text, so TF Serving's row format pairs them). It tokenizes inside
  the graph with core TensorFlow ops only (graph_tokenizer.py: the same ids as bert4keras'
  Tokenizer), so stock TF Serving runs it on raw text. Texts over maxlen tokens are cut, or
  with --long-text chunk read as overlapping windows whose scores are max-pooled per text.

The model computes in the precision that --precision picks (auto: bfloat16 where the machine
has it, as predict.py decides; `int8` writes the SavedModel in float32 and the int8 TFLite
model beside it, model.int8.tflite, same inputs and output). Beside the SavedModel, the folder
holds what a client needs to decide: labels.json, model.json (maxlen, threshold,
top1_fallback, and the export's precision, long_text and stride), thresholds.json (when
training tuned one threshold per label) and vocab.txt. In Python:

    loaded = tf.saved_model.load('weights/saved_model')
    scores = loaded.signatures['text'](texts=tf.constant(['青岛地铁施工段坍塌致3人遇难']))['probabilities']
"""
import argparse
import os
import shutil

import config
import path

SIGNATURE = 'serving_default'
TEXT_SIGNATURE = 'text'
INT8_NAME = 'model.int8.tflite'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Write a trained model as a TensorFlow SavedModel.')
    parser.add_argument('--weights', default=path.WEIGHTS_DIR, help='trained model folder (default: %(default)s)')
    parser.add_argument('--out', help='SavedModel folder (default: WEIGHTS/saved_model)')
    config.add_inference_precision_flag(parser)
    config.add_flags(parser, 'long_text', 'stride')
    args = parser.parse_args(argv)
    args.out = args.out or os.path.join(args.weights, path.SAVED_MODEL_DIR)
    if args.stride < 0:
        parser.error('--stride must be 0 (half a window) or more')
    return args


def export(weights_dir, out_dir, precision='float32', long_text='truncate', stride=0):
    """Write the SavedModel of the trained model in `weights_dir` to `out_dir`, files beside it."""
    import graph_tokenizer
    import predict
    from compat import tf
    classifier = predict.Classifier(weights_dir, precision='float32' if precision == 'int8' else precision)
    model = classifier.model
    labels = tf.constant(classifier.labels)

    class Serving(tf.Module):
        def __init__(self):
            super().__init__()
            # Only the variables are tracked, not the Keras model: Keras would also try to
            # serialise bert4keras' layers, which serving does not need.
            self.weights = list(model.weights)
            self.tokenizer = graph_tokenizer.GraphTokenizer(classifier.tokenizer, classifier.maxlen)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name='token_ids'),
                                      tf.TensorSpec([None, None], tf.int32, name='segment_ids')])
        def serve(self, token_ids, segment_ids):
            return {'probabilities': model([token_ids, segment_ids], training=False)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='texts')])
        def serve_text(self, texts):
            if long_text == 'chunk':
                windows, text_of_window = self.tokenizer.windows(texts, stride)
                scores = model([windows, tf.zeros_like(windows)], training=False)
                # A label scores its best window: the text holds the event if one window does.
                probabilities = tf.math.unsorted_segment_max(scores, text_of_window, tf.size(texts, tf.int64))
            else:
                token_ids = self.tokenizer.token_ids(texts)
                probabilities = model([token_ids, tf.zeros_like(token_ids)], training=False)
            return {'probabilities': probabilities,
                    'labels': tf.tile(labels[tf.newaxis], [tf.shape(texts)[0], 1])}

    module = Serving()
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)  # a half-old SavedModel would mix two models' variables
    with predict.dtype_policy(predict.POLICIES[classifier.precision]):  # graphs traced in the model's precision
        tf.saved_model.save(module, out_dir, signatures={SIGNATURE: module.serve, TEXT_SIGNATURE: module.serve_text})
    for name in (path.LABELS_NAME, path.VOCAB_NAME, path.THRESHOLDS_NAME):
        if os.path.exists(os.path.join(weights_dir, name)):  # thresholds.json only when training tuned them
            shutil.copyfile(os.path.join(weights_dir, name), os.path.join(out_dir, name))
    meta = path.read_json(os.path.join(weights_dir, path.META_NAME))
    meta.update(precision=precision if precision == 'int8' else classifier.precision, long_text=long_text,
                stride=stride)
    path.write_json(os.path.join(out_dir, path.META_NAME), meta)
    if precision == 'int8':
        with open(os.path.join(out_dir, INT8_NAME), 'wb') as f:
            f.write(predict.int8_model(model))
    return classifier


def main(argv=None):
    args = parse_args(argv)
    import predict
    import run
    if not os.path.isdir(args.weights):
        predict.load_meta(args.weights)  # refused with the reason before the lock would create the folder
    with run.lock(args.weights):  # never export a folder a training run is writing
        classifier = export(args.weights, args.out, args.inference_precision, args.long_text, args.stride)
    threshold = classifier.threshold_json()
    threshold = f'per label, {path.THRESHOLDS_NAME}' if isinstance(threshold, dict) else threshold
    print(f'{args.out}: SavedModel in {classifier.precision}, signatures {SIGNATURE!r}: token_ids, segment_ids '
          f'-> probabilities; {TEXT_SIGNATURE!r}: texts -> probabilities, labels ({args.long_text}'
          + (f', stride {args.stride}' if args.long_text == 'chunk' else '')
          + f'; {len(classifier.labels)} labels, threshold {threshold})')
    if args.inference_precision == 'int8':
        print(f'{os.path.join(args.out, INT8_NAME)}: int8 TFLite model, token_ids, segment_ids -> probabilities')


if __name__ == '__main__':
    config.run_main(main)
