"""What to label next: unlabelled texts ranked for labelling, written in the data format with
the model's labels pre-filled, so a person only corrects them.

    python main.py suggest --weights weights --input unlabelled.txt -n 200 --out to-label.txt
    python main.py suggest --weights weights --input unlabelled.txt -n 200 --out to-label.txt --overwrite

In Python:

    from multilabel import suggest
    suggest.rank(classifier, texts, n, diversity=suggest.DIVERSITY)
    # -> [{'index': 17, 'text': ..., 'labels': [...], 'uncertainty': 0.83}, ...] best first

Uncertainty: the probability that the label set the decision rule gives (inference.decide:
thresholds, top-1 fallback) is wrong, reading each score as the probability of its label:
1 - prod over labels of (score if decided, else 1 - score). It is what exact match counts
(one wrong label makes the whole text wrong), it weighs all labels at once (two borderline
labels doubt a text more than one) and it follows the thresholds through the decided set.
It is only as good as the scores are honest: on a calibrated model (multilabel/calibration.py) they are.

Diversity: the top N are chosen greedily; each pick is the text of highest
uncertainty - DIVERSITY x (its highest cosine similarity to the texts already picked), on
TF-IDF over character 1-3-grams (multilabel/audit.py's features): cheap, independent of the model,
and what near-duplicates share (a news item reworded), which the model's uncertainty would
rank side by side. At DIVERSITY 1 a near-duplicate (cosine 0.9) of a pick loses more than
nearly any text's uncertainty, so near-duplicates come last; 0 ranks by uncertainty alone.

A text the rule gives no label (--no-top1-fallback) is written with its best-scoring label,
so every line of the output parses as data.
"""

import numpy as np

import config
import path
from multilabel import audit
from multilabel import inference

DIVERSITY = 1.0


def uncertainty(scores, threshold, top1_fallback):
    """(probability that each row's decided label set is wrong [n], the decided multi-hot [n, labels])."""
    decided = inference.decide(scores, threshold, top1_fallback)
    scores = np.asarray(scores, dtype='float64')
    right = np.where(decided == 1, scores, 1 - scores)  # the probability each label's decision is right
    return 1 - right.prod(axis=1), decided


def select(doubt, features, n, diversity=DIVERSITY):
    """Indices of the n texts picked greedily by doubt - diversity x highest cosine to those
    picked before (`features`: L2-normalised rows, so a dot product is the cosine)."""
    count = min(n, len(doubt))
    closest = np.zeros(len(doubt))
    available = np.ones(len(doubt), dtype=bool)
    chosen = []
    for _ in range(count):
        pick = int(np.argmax(np.where(available, doubt - diversity * closest, -np.inf)))
        chosen.append(pick)
        available[pick] = False
        if diversity:
            closest = np.maximum(closest, (features @ features[pick].T).toarray().ravel())
    return chosen


def rank(classifier, texts, n, diversity=DIVERSITY, batch_size=64, progress=False):
    """The n texts (or all, when fewer) to label next, best first: {index, text, labels, uncertainty}."""
    scores = classifier.scores(texts, batch_size, progress)
    doubt, decided = uncertainty(scores, classifier.threshold, classifier.top1_fallback)
    features = audit.vectorizer().fit_transform(texts) if diversity else None
    ranked = []
    for i in select(doubt, features, n, diversity):
        labels = np.flatnonzero(decided[i]) if decided[i].any() else [int(np.argmax(scores[i]))]
        ranked.append({'index': i, 'text': texts[i], 'labels': [classifier.labels[j] for j in labels],
                       'uncertainty': float(doubt[i])})
    return ranked


def write_lines(out, ranked):
    """`label1|label2 text` lines in rank order, written atomically."""
    def write(temporary):
        with open(temporary, 'w', encoding='utf-8') as f:
            f.writelines(f'{"|".join(row["labels"])} {row["text"]}\n' for row in ranked)
    path.atomic_write(out, write)


def parse_args(argv=None):
    parser = config.ArgumentParser(description='Rank unlabelled texts for labelling and write the top N '
                                                 "in the data format, the model's labels pre-filled.")
    parser.add_argument('--input', dest='texts', aliases=['--texts'], metavar='FILE', required=True,
                        help='unlabelled texts, one per line')
    parser.add_argument('-n', type=int, required=True, help='how many texts to suggest')
    config.add_output_file_flags(parser, 'output file (`label1|label2 text` lines, best first)', required=True)
    parser.add_argument('--diversity', type=float, default=DIVERSITY,
                        help='weight of the similarity to texts already suggested, against the uncertainty; '
                             '0 ranks by uncertainty alone (default: %(default)s)')
    config.add_trained_model_flags(parser, path.WEIGHTS_DIR)
    config.add_flags(parser, 'batch_size')
    config.add_inference_precision_flag(parser)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error('-n must be 1 or more')
    if args.diversity < 0:
        parser.error('--diversity must be 0 or more')
    return args


def main(argv=None):
    args = parse_args(argv)
    config.refuse_replacing(args.out, args.overwrite, args.texts)
    import loader  # bert4keras' tokenizer module starts TensorFlow: imported on use, so --help answers at once
    texts = loader.read_texts(args.texts)
    print(f'read {len(texts)} texts from {args.texts}', flush=True)
    classifier = inference.Classifier(args.weights, args.threshold, args.top1_fallback, args.inference_precision)
    ranked = rank(classifier, texts, args.n, args.diversity, args.batch_size, progress=config.interactive())
    print(f'ranked them with {args.weights} ({classifier.precision}); chose {len(ranked)}, diversity {args.diversity:g}',
          flush=True)
    write_lines(args.out, ranked)
    print(f'wrote {args.out}: {len(ranked)} lines, best first, labels pre-filled by the model')
    return ranked


if __name__ == '__main__':
    config.run_main(main)
