"""Predict the labels of texts with a trained model.

    python predict.py "青岛地铁施工段坍塌致3人遇难"            # labels, joined by '|'
    python predict.py --input texts.txt --json              # one JSON line per text, with scores
    cat texts.txt | python predict.py --input - --threshold 0.4

In Python, the model is loaded once and reused:

    from predict import predict
    one_hot, labels = predict('青岛地铁施工段坍塌致3人遇难')

or `Classifier(weights_dir)` for another folder, a precision or a threshold. The command is
this file; the model, the scoring and the decision rule (threshold, per-label thresholds,
top-1 fallback, the one rule every command decides by) are multilabel/inference.py's.
"""
import json
import sys

import config
from multilabel import explain
from multilabel.inference import Classifier  # noqa: F401  (predict.Classifier is the documented API)
import path

STREAM_CHUNK = 1024  # lines read, predicted and written at a time: memory stays flat on huge files


_default_classifier = None


def predict(text):
    """(multi-hot vector, labels) for one text, with the model in weights/ (loaded on first call)."""
    global _default_classifier
    if _default_classifier is None:
        _default_classifier = Classifier(path.WEIGHTS_DIR)
    return _default_classifier.predict(text)


def read_chunks(lines, size):
    """Lists of up to `size` lines, read as they come: memory stays flat on any input."""
    chunk = []
    for line in lines:
        chunk.append(line.rstrip('\r\n'))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class InputNotes:
    """The input lines worth a word, said once at the end, whatever the number of chunks: blank
    ones (scored as empty texts, to keep one answer per line) and ones that look labelled
    (`label|label text` with this model's labels: a training or test file given as texts)."""
    SHOWN = 10  # line numbers listed in a note; beyond them, counted

    def __init__(self, labels, source):
        self.labels, self.source = set(labels), source
        self.count = 0
        self.found = {'blank': [], 'labelled': []}
        self.totals = {'blank': 0, 'labelled': 0}

    def looks_labelled(self, text):
        labels, space, rest = text.partition(' ')
        return bool(space and rest.strip()) and all(label in self.labels for label in labels.split('|'))

    def read(self, texts):
        for text in texts:
            self.count += 1
            kind = 'blank' if not text.strip() else 'labelled' if self.looks_labelled(text) else None
            if kind:
                self.totals[kind] += 1
                if len(self.found[kind]) < self.SHOWN:
                    self.found[kind].append(self.count)

    def where(self, kind):
        """'lines 2, 5 of FILE', 'argument 1', ... with '(N in all)' past SHOWN."""
        numbers, total = self.found[kind], self.totals[kind]
        listed = ', '.join(map(str, numbers)) + (f', ... ({total} in all)' if total > len(numbers) else '')
        if self.source is None:
            return f'argument{"s" if total > 1 else ""} {listed}'
        return f'line{"s" if total > 1 else ""} {listed} of {self.source}'

    def say(self):
        if self.totals['blank']:
            print(f"note: empty text at {self.where('blank')}; its labels are only the model's prior guess",
                  file=sys.stderr)
        if self.totals['labelled']:
            print(f"note: {self.where('labelled')} look{'s' if self.totals['labelled'] == 1 else ''} labelled "
                  '("label|label text" with this model\'s labels), read whole as text; give the texts alone, '
                  'or score a labelled file with evaluate.py --input', file=sys.stderr)


def parse_args(argv=None):
    parser = config.ArgumentParser(description='Predict labels of texts with a trained model.')
    parser.add_argument('texts', nargs='*', help='texts to classify')
    parser.add_argument('--input', dest='file', aliases=['--file'], metavar='FILE',
                        help="file with one text per line, UTF-8 ('-' for standard input)")
    parser.add_argument('--json', action='store_true', help='print one JSON object per text, with scores')
    parser.add_argument('--explain', action='store_true',
                        help='for each predicted label, the characters that raised its score most (multilabel/explain.py: '
                             'integrated gradients); after a tab, or under "explanations" with --json')
    config.add_trained_model_flags(parser, path.WEIGHTS_DIR)
    config.add_flags(parser, 'batch_size', helps=config.SCORING_HELP)
    config.add_inference_precision_flag(parser)
    config.add_flags(parser, 'long_text', 'stride')
    args = parser.parse_args(argv)
    if not args.texts and not args.file:
        parser.error('give texts as arguments or --input FILE (- for standard input)')
    return args


def main(argv=None):
    args = parse_args(argv)
    import loader  # bert4keras' tokenizer module starts TensorFlow: imported on use, so --help answers at once
    source = 'standard input' if args.file == '-' else args.file  # None: the texts are arguments
    if args.file and args.file != '-':
        # The whole file is read once before the model loads, so a bad byte on its last line is
        # an error now, not after an hour of predictions (standard input is checked as it comes).
        if not sum(1 for _ in loader.decoded_lines(args.file)):
            raise loader.DataError(f'{args.file}: no texts in the file')
    classifier = Classifier(args.weights, args.threshold, args.top1_fallback, args.inference_precision,
                            long_text=args.long_text, stride=args.stride)
    if args.file:
        stream = sys.stdin.buffer if args.file == '-' else None
        lines = (line for _, line in loader.decoded_lines(source, stream))
    else:
        lines = args.texts
    notes = InputNotes(classifier.labels, source)
    for texts in read_chunks(lines, STREAM_CHUNK):
        notes.read(texts)
        _, label_lists, scores = classifier.predict_batch(texts, args.batch_size)
        for text, labels, row in zip(texts, label_lists, scores):
            spans = explain.explained_spans(classifier, text, labels) if args.explain else None
            if args.json:
                print(json.dumps({'text': text, 'labels': labels,
                                  'scores': {l: round(float(s), 6) for l, s in zip(classifier.labels, row)},
                                  **({'explanations': spans} if args.explain else {})}, ensure_ascii=False))
            elif args.explain:
                print('|'.join(labels) + '\t' + '; '.join(f'{label}: ' + ' '.join(s['text'] for s in found)
                                                          for label, found in spans.items()))
            else:
                print('|'.join(labels))
        sys.stdout.flush()
    notes.say()


if __name__ == '__main__':
    config.run_main(main)
