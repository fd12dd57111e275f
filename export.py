"""Export a trained model as a TensorFlow SavedModel, for TF Serving or any TensorFlow runtime.

    python export.py                                  # weights/ -> weights/saved_model/
    python export.py --weights weights --out /srv/models/labels/1

The SavedModel's `serving_default` signature takes `token_ids` and `segment_ids` (int32,
[batch, length], padded with 0) and returns `probabilities` (float32, [batch, labels]), the
sigmoid scores in the order of labels.json. Beside it, the folder holds what a client needs
to tokenize and decide: labels.json, model.json (maxlen, threshold, top1_fallback),
thresholds.json (when training tuned one threshold per label) and
vocab.txt. In Python:

    loaded = tf.saved_model.load('weights/saved_model')
    scores = loaded.signatures['serving_default'](token_ids=ids, segment_ids=segments)['probabilities']
"""
import argparse
import os
import shutil

import config
import path

SIGNATURE = 'serving_default'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Write a trained model as a TensorFlow SavedModel.')
    parser.add_argument('--weights', default=path.WEIGHTS_DIR, help='trained model folder (default: %(default)s)')
    parser.add_argument('--out', help='SavedModel folder (default: WEIGHTS/saved_model)')
    args = parser.parse_args(argv)
    args.out = args.out or os.path.join(args.weights, path.SAVED_MODEL_DIR)
    return args


def export(weights_dir, out_dir):
    """Write the SavedModel of the trained model in `weights_dir` to `out_dir`, files beside it."""
    import predict
    from compat import tf
    classifier = predict.Classifier(weights_dir)
    model = classifier.model

    class Serving(tf.Module):
        def __init__(self):
            super().__init__()
            # Only the variables are tracked, not the Keras model: Keras would also try to
            # serialise bert4keras' layers, which serving does not need.
            self.weights = list(model.weights)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name='token_ids'),
                                      tf.TensorSpec([None, None], tf.int32, name='segment_ids')])
        def serve(self, token_ids, segment_ids):
            return {'probabilities': model([token_ids, segment_ids], training=False)}

    module = Serving()
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)  # a half-old SavedModel would mix two models' variables
    tf.saved_model.save(module, out_dir, signatures={SIGNATURE: module.serve})
    for name in (path.LABELS_NAME, path.META_NAME, path.VOCAB_NAME, path.THRESHOLDS_NAME):
        if os.path.exists(os.path.join(weights_dir, name)):  # thresholds.json only when training tuned them
            shutil.copyfile(os.path.join(weights_dir, name), os.path.join(out_dir, name))
    return classifier


def main(argv=None):
    args = parse_args(argv)
    import run
    with run.lock(args.weights):  # never export a folder a training run is writing
        classifier = export(args.weights, args.out)
    threshold = classifier.threshold_json()
    threshold = f'per label, {path.THRESHOLDS_NAME}' if isinstance(threshold, dict) else threshold
    print(f'{args.out}: SavedModel, signature {SIGNATURE!r}: token_ids, segment_ids -> probabilities '
          f'({len(classifier.labels)} labels, threshold {threshold})')


if __name__ == '__main__':
    config.run_main(main)
