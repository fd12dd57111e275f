"""Export a trained model as a TensorFlow SavedModel, for TF Serving or any TensorFlow runtime.

    python main.py export                                  # weights/ -> weights/saved_model/
    python main.py export --weights weights --out serving/labels/1
    python main.py export --threshold 0.4 --no-top1-fallback   # the decision the `text` signature makes
    python main.py export --long-text chunk --stride 32    # the text signature reads long texts in windows

Three signatures:
- `serving_default` takes `token_ids` and `segment_ids` (int32, [batch, length], padded with 0)
  and returns `probabilities` (float32, [batch, labels]), the sigmoid scores in the order of
  labels.json.
- `text` takes `texts` (string, [batch], UTF-8) and returns, one row per text (so TF Serving's
  row format pairs them): `probabilities` (float32, [batch, labels]); `predictions` (int32,
  [batch, labels], 1 for each label decided); `labels` (string, [batch], the decided label names
  joined by '|', as `python predict.py` prints them). The decision is the one rule of multilabel/inference.py
  (inference.decide_graph), computed in the graph: --threshold, else the per-label thresholds
  training tuned, else the model's own threshold; then the top-1 fallback as saved with the
  model, unless --top1-fallback / --no-top1-fallback says otherwise. It tokenizes inside the
  graph with core TensorFlow ops only (multilabel/graph_tokenizer.py: the same ids as bert4keras'
  Tokenizer), so stock TF Serving runs it on raw text. Texts over maxlen tokens are cut, or
  with --long-text chunk read as overlapping windows whose scores are max-pooled per text.
- `label_names` takes nothing and returns `label_names` (string, [labels]): the names of the
  columns of `probabilities` and `predictions`, given once.

The model computes in the precision that --precision picks (auto: bfloat16 where the machine
has it, as predict.py decides; `int8` writes the SavedModel in float32 and the int8 TFLite
model beside it, model.int8.tflite, same inputs and output). Beside the SavedModel, the folder
holds labels.json, model.json (maxlen, the decision: threshold and top1_fallback, the export's
precision, long_text and stride, and the "export" mark), thresholds.json (when the decision
uses one threshold per label) and vocab.txt. In Python:

    loaded = tf.saved_model.load('weights/saved_model')
    loaded.signatures['text'](texts=tf.constant(['青岛地铁施工段坍塌致3人遇难']))['labels']

The export is written into a hidden folder beside --out and renamed into place once whole, so
a failed export leaves the previous one as it was. Only an earlier export (model.json carries
the "export" mark) is replaced; anything else is refused in one line: a folder holding other
files, the weights folder, a folder that holds it, or one inside it other than WEIGHTS/saved_model.
"""
import os

import config
import path
from multilabel import calibration
from multilabel import inference
from multilabel import model_folder

SIGNATURE = 'serving_default'
TEXT_SIGNATURE = 'text'
NAMES_SIGNATURE = 'label_names'
INT8_NAME = 'model.int8.tflite'
EXPORT_MARK = 'export'  # the key of model.json that makes a folder an export this script may replace


def parse_args(argv=None):
    parser = config.ArgumentParser(description='Write a trained model as a TensorFlow SavedModel.')
    config.add_trained_model_flags(parser, path.WEIGHTS_DIR)
    parser.add_argument('--out', help='SavedModel folder: new, empty, or an earlier export '
                                      '(default: WEIGHTS/saved_model)')
    config.add_inference_precision_flag(parser)
    config.add_flags(parser, 'long_text', 'stride')
    args = parser.parse_args(argv)
    args.out = args.out or os.path.join(args.weights, path.SAVED_MODEL_DIR)
    return args


def is_export(folder):
    """Whether `folder` holds an export of this script: a SavedModel and the mark in model.json."""
    try:
        meta = model_folder.read_meta(folder)
    except (OSError, ValueError):
        return False
    return os.path.isfile(os.path.join(folder, 'saved_model.pb')) and isinstance(meta, dict) and EXPORT_MARK in meta


def check_out(weights_dir, out_dir):
    """config.InputError unless `out_dir` may receive the export: a new or empty folder, or an
    earlier export. The weights folder, a folder holding it and a folder inside it other than
    WEIGHTS/saved_model are refused: they hold the trained model and what came with it."""
    weights, out = os.path.realpath(weights_dir), os.path.realpath(out_dir)
    default = os.path.join(weights, path.SAVED_MODEL_DIR)
    if os.path.commonpath([weights, out]) == out:
        what = 'is the trained model folder' if out == weights else f'holds the trained model folder {weights_dir}'
        raise config.InputError(f'--out {out_dir}: {what}; export into a new folder, or leave --out out for '
                                f'{os.path.join(weights_dir, path.SAVED_MODEL_DIR)}')
    if os.path.commonpath([weights, out]) == weights and out != default:
        raise config.InputError(f'--out {out_dir}: inside the trained model folder {weights_dir}, where only '
                                f'{path.SAVED_MODEL_DIR}/ is the export\'s; export outside it, or leave --out out')
    if os.path.lexists(out) and not os.path.isdir(out):
        raise config.InputError(f'--out {out_dir}: a file, not a folder')
    if os.path.isdir(out) and os.listdir(out) and not is_export(out):
        raise config.InputError(f'--out {out_dir}: holds files and is not an export of this project (no '
                                f'"{EXPORT_MARK}" in {path.META_NAME}), so it is not replaced; choose a new or '
                                'empty folder, or remove it yourself')


def export(weights_dir, out_dir, precision='float32', long_text='truncate', stride=0, threshold=None,
           top1_fallback=None):
    """Write the SavedModel of the trained model in `weights_dir` to `out_dir`, files beside it;
    threshold/top1_fallback: the decision of the text signature (None: the model's own)."""
    check_out(weights_dir, out_dir)
    from multilabel import graph_tokenizer  # these start TensorFlow: imported on use, so --help answers at once
    from multilabel import run
    from multilabel.compat import tf
    classifier = inference.Classifier(weights_dir, threshold, top1_fallback,
                                    precision='float32' if precision == 'int8' else precision)
    model = classifier.model
    names = tf.constant(classifier.labels)

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
            return {'probabilities': calibration.apply_graph(model([token_ids, segment_ids], training=False),
                                                             classifier.temperature)}

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
            probabilities = calibration.apply_graph(probabilities, classifier.temperature)
            predictions = inference.decide_graph(probabilities, classifier.threshold, classifier.top1_fallback)
            chosen = tf.ragged.boolean_mask(tf.broadcast_to(names, tf.shape(predictions)), predictions > 0)
            return {'probabilities': probabilities, 'predictions': predictions,
                    'labels': tf.strings.reduce_join(chosen, axis=1, separator='|')}

        @tf.function(input_signature=[])
        def label_names(self):
            return {'label_names': names}

    module = Serving()
    meta = model_folder.read_meta(weights_dir)
    per_label = isinstance(classifier.threshold_json(), dict)
    meta.update(precision=precision if precision == 'int8' else classifier.precision, long_text=long_text,
                stride=stride, top1_fallback=classifier.top1_fallback,
                **({} if per_label else {'threshold': classifier.threshold_json()}))
    meta[EXPORT_MARK] = {'written_by': 'multilabel/export.py', 'signatures': [SIGNATURE, TEXT_SIGNATURE, NAMES_SIGNATURE]}

    def write(folder):
        with inference.dtype_policy(inference.POLICIES[classifier.precision]):  # graphs traced in the model's precision
            tf.saved_model.save(module, folder, signatures={SIGNATURE: module.serve, TEXT_SIGNATURE: module.serve_text,
                                                            NAMES_SIGNATURE: module.label_names})
        if precision == 'int8':
            with open(os.path.join(folder, INT8_NAME), 'wb') as f:
                f.write(inference.int8_model(model))
        model_folder.copy_for_export(weights_dir, folder, meta, per_label)  # model.json last: the mark says whole

    out = os.path.realpath(out_dir)  # through a link, the folder it points to is replaced
    run.clean_litter(os.path.dirname(out), only=os.path.basename(out))  # a killed export's temporaries
    path.atomic_write_folder(out, write)
    return classifier


def main(argv=None):
    args = parse_args(argv)
    check_out(args.weights, args.out)  # before anything is loaded, or written by the lock
    from multilabel import run  # as in export()
    if not os.path.isdir(args.weights):
        model_folder.read(args.weights)  # refused with the reason before the lock would create the folder
    with run.lock(args.weights):  # never export a folder a training run is writing
        classifier = export(args.weights, args.out, args.inference_precision, args.long_text, args.stride,
                            args.threshold, args.top1_fallback)
    threshold = classifier.threshold_json()
    threshold = f'per label, {path.THRESHOLDS_NAME}' if isinstance(threshold, dict) else threshold
    print(f'{args.out}: SavedModel in {classifier.precision}, signatures {SIGNATURE!r}: token_ids, segment_ids '
          f'-> probabilities; {TEXT_SIGNATURE!r}: texts -> probabilities, predictions, labels ({args.long_text}'
          + (f', stride {args.stride}' if args.long_text == 'chunk' else '')
          + f'; {len(classifier.labels)} labels, threshold {threshold}, top-1 fallback '
          + ('on' if classifier.top1_fallback else 'off') + f'); {NAMES_SIGNATURE!r}: -> label_names')
    if args.inference_precision == 'int8':
        print(f'{os.path.join(args.out, INT8_NAME)}: int8 TFLite model, token_ids, segment_ids -> probabilities')


if __name__ == '__main__':
    config.run_main(main)
