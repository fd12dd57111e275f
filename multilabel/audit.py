"""Data audit: the lines of a labelled file whose labels look wrong, before training on it.

    python main.py audit --input ../shared/data/multi-classification-train.txt
    python main.py audit --input FILE --top 50 --out audit.json     # table of 50, all of it as JSON
    python main.py audit --input FILE --json                        # the JSON on stdout instead of the table

Three checks, ranked together:
1. Likely mislabelled lines. A fast model (TF-IDF over character 1-3-grams + one
   class-balanced logistic regression per label) is trained k times, each time scoring the fold it did not see, so
   every line gets out-of-fold label probabilities. cleanlab's multi-label
   `find_label_issues` (confident learning, Northcutt et al. 2021) flags the lines whose
   given labels disagree with them beyond each label's estimated noise rate.
2. Near-duplicates with different label sets: texts whose TF-IDF cosine similarity is at
   least --similarity (1.0: the same text) but whose labels differ. One of them is wrong, or
   the labels depend on something the text does not show.
3. Labels too rare to learn: fewer than --min-count lines, or an out-of-fold F1 of the fast
   model under --min-f1.

Flagged lines are ranked by cleanlab's label quality score (lowest first: the most
suspicious), each with its reasons: the given labels the model doubts, the labels it
expects instead, its near-duplicates. The fast model is a screen, not a judge: read the
lines before changing them.
"""
import collections
import json
import sys

import numpy as np
from tqdm import tqdm

import config
import path


def parse_args(argv=None):
    parser = config.ArgumentParser(description='Find likely mislabelled lines, conflicting near-duplicates and '
                                                 'too-rare labels in a labelled file.')
    config.add_input_file_flag(parser)
    parser.add_argument('--folds', type=config.limited(int, 'folds'), default=5, help='cross-validation folds (default: %(default)s)')
    parser.add_argument('--similarity', type=config.limited(float, 'similarity'), default=0.9,
                        help='TF-IDF cosine from which two texts are near-duplicates (default: %(default)s)')
    parser.add_argument('--min-count', type=config.limited(int, 'min_count'), default=10,
                        help='labels on fewer lines are too rare to learn (default: %(default)s)')
    parser.add_argument('--min-f1', type=config.limited(float, 'min_f1'), default=0.5,
                        help="labels whose out-of-fold F1 (fast model) is lower are flagged (default: %(default)s)")
    parser.add_argument('--top', type=config.limited(int, 'top'), default=30, help='lines shown in the table (default: %(default)s)')
    parser.add_argument('--json', action='store_true', help='print the whole audit as JSON instead of the table')
    config.add_output_file_flags(parser, 'also write the whole audit as JSON to this file')
    parser.add_argument('--seed', type=int, default=config.DEFAULTS.seed, help='fold assignment (default: %(default)s)')
    args = parser.parse_args(argv)
    config.take_input_file(parser, args)
    return args


def vectorizer(min_df=1):
    from sklearn.feature_extraction.text import TfidfVectorizer  # scikit-learn takes a second: not before --help
    return TfidfVectorizer(analyzer='char', ngram_range=(1, 3), sublinear_tf=True, min_df=min_df)


def out_of_fold_probabilities(texts, targets, folds, seed):
    """[n, labels] probabilities, each row from the model trained on the other folds."""
    from sklearn.linear_model import LogisticRegression  # as in vectorizer()
    from sklearn.model_selection import KFold
    texts = np.array(texts, dtype=object)
    probabilities = np.zeros(targets.shape, dtype='float64')
    splits = list(KFold(folds, shuffle=True, random_state=seed).split(texts))
    with tqdm(total=folds * targets.shape[1], desc='cross-validation', unit=' label fits', leave=False,
              disable=not config.interactive()) as bar:
        for train, held_out in splits:
            features = vectorizer(min_df=2)  # n-grams of one line only cannot generalise; a quarter of the time
            train_features, held_out_features = features.fit_transform(texts[train]), features.transform(texts[held_out])
            for label in range(targets.shape[1]):
                if targets[train, label].min() == targets[train, label].max():  # no positives in these folds
                    probabilities[held_out, label] = targets[train, label][0]
                else:
                    # dual: far faster with many more n-grams than lines. Balanced class weights:
                    # without them a rare label's probabilities stay under 0.5 and it is never
                    # expected (every 8th label of the real corpus: held-out macro F1 0.82 instead of 0.50).
                    model = LogisticRegression(C=10.0, solver='liblinear', dual=True, class_weight='balanced')
                    model.fit(train_features, targets[train, label])
                    probabilities[held_out, label] = model.predict_proba(held_out_features)[:, 1]
                bar.update()
    return probabilities


def conflicting_near_duplicates(texts, label_sets, threshold, chunk=512):
    """{line index: [(other index, cosine)]} for texts at least `threshold` alike with other labels."""
    features = vectorizer().fit_transform(texts)  # rows are L2-normalised: a dot product is the cosine
    found = collections.defaultdict(list)
    for start in tqdm(range(0, len(texts), chunk), desc='near-duplicates', unit=' chunks', leave=False,
                      disable=not config.interactive()):
        similarity = (features[start:start + chunk] @ features.T).toarray()
        for row, other in zip(*np.nonzero(similarity >= threshold - 1e-9)):
            line = start + int(row)
            if line != other and label_sets[line] != label_sets[other]:
                found[line].append((int(other), round(float(similarity[row, other]), 4)))
    return found


def audit(samples, folds=5, similarity=0.9, min_count=10, min_f1=0.5, seed=42):
    """The audit of `samples` (line i+1 is samples[i]) as a dict: flagged lines ranked, rare labels."""
    import loader  # bert4keras' tokenizer module starts TensorFlow: imported on use, so --help answers at once
    from cleanlab.multilabel_classification.filter import find_label_issues  # cleanlab and scikit-learn: likewise
    from cleanlab.multilabel_classification.rank import get_label_quality_scores
    from sklearn.metrics import f1_score
    labels = loader.label_list(samples)
    targets = loader.multi_hot(samples, labels).astype('int32')
    texts = [s.text for s in samples]
    probabilities = out_of_fold_probabilities(texts, targets, folds, seed)
    given = [list(np.flatnonzero(row)) for row in targets]
    quality = get_label_quality_scores(given, probabilities)
    issues = set(find_label_issues(given, probabilities).nonzero()[0].tolist())
    duplicates = conflicting_near_duplicates(texts, [frozenset(s.labels) for s in samples], similarity)

    flagged = []
    for i in sorted(issues | set(duplicates), key=lambda i: (quality[i], i)):
        reasons = []
        if i in issues:
            doubted = [f'{labels[j]} ({probabilities[i, j]:.2f})' for j in given[i] if probabilities[i, j] < 0.5]
            expected = [f'{labels[j]} ({probabilities[i, j]:.2f})' for j in np.flatnonzero(probabilities[i] >= 0.5)
                        if not targets[i, j]]
            reasons += ['label issue (cleanlab)'] + (['doubted: ' + ', '.join(doubted)] if doubted else []) + (
                ['expected: ' + ', '.join(expected)] if expected else [])
        for other, cosine in duplicates.get(i, []):
            reasons.append(f'near-duplicate of line {other + 1} (cosine {cosine:.2f}) labelled '
                           f'{"|".join(samples[other].labels)}')
        flagged.append({'line': i + 1, 'labels': list(samples[i].labels), 'text': samples[i].text,
                        'quality': round(float(quality[i]), 4), 'reasons': reasons})

    counts = targets.sum(axis=0)
    predicted = (probabilities >= 0.5).astype('int32')
    per_label_f1 = f1_score(targets, predicted, average=None, zero_division=0)
    rare = [{'label': label, 'lines': int(count), 'out_of_fold_f1': round(float(f1), 4)}
            for label, count, f1 in sorted(zip(labels, counts, per_label_f1), key=lambda row: (row[1], row[0]))
            if count < min_count or f1 < min_f1]
    return {
        'lines': len(samples),
        'labels': len(labels),
        'fast_model': {'folds': folds, 'out_of_fold_exact_match': round(float((predicted == targets).all(axis=1).mean()), 4),
                       'out_of_fold_macro_f1': round(float(per_label_f1.mean()), 4)},
        'flagged_lines': len(flagged),
        'label_issues': len(issues),
        'conflicting_near_duplicates': len(duplicates),
        'rare_labels': rare,
        'flagged': flagged,
    }


def format_audit(report, name, top):
    """The audit as the text `python main.py audit` prints: counts, the rare labels, the top lines."""
    fast = report['fast_model']
    out = [f'{name}: {report["lines"]} lines, {report["labels"]} labels',
           f'fast model, {fast["folds"]}-fold out-of-fold: exact match {fast["out_of_fold_exact_match"]:.4f}, '
           f'macro F1 {fast["out_of_fold_macro_f1"]:.4f}',
           f'flagged lines: {report["flagged_lines"]} ({report["label_issues"]} label issues by cleanlab, '
           f'{report["conflicting_near_duplicates"]} in conflicting near-duplicates)',
           f'labels too rare or too hard to learn: {len(report["rare_labels"])}']
    out += [f'  {row["label"]}: {row["lines"]} lines, out-of-fold F1 {row["out_of_fold_f1"]:.2f}'
            for row in report['rare_labels']]
    out += ['', f'{"rank":>4} {"line":>6} {"quality":>7}  labels / text / reasons']
    for rank, row in enumerate(report['flagged'][:top], 1):
        out.append(f'{rank:>4} {row["line"]:>6} {row["quality"]:>7.4f}  {"|".join(row["labels"])}  {row["text"][:60]}')
        out += [f'{"":>21}- {reason}' for reason in row['reasons']]
    if report['flagged_lines'] > top:
        out.append(f'... {report["flagged_lines"] - top} more (--top N, or --json / --out FILE for all)')
    return '\n'.join(out)


def main(argv=None):
    args = parse_args(argv)
    if args.out:
        config.refuse_replacing(args.out, args.overwrite, args.file)
    import loader  # as in audit()
    samples = loader.read_samples(args.file)
    if len(samples) < args.folds:
        raise config.InputError(f'{args.file}: {len(samples)} lines, fewer than --folds {args.folds}')
    report = audit(samples, args.folds, args.similarity, args.min_count, args.min_f1, args.seed)
    if args.out:
        path.write_json(args.out, report)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        print(format_audit(report, args.file, args.top))
        if args.out:
            print(f'written: {args.out}', file=sys.stderr)
    return report


if __name__ == '__main__':
    config.run_main(main)
