"""The linear side alone, read five ways: which of its differences from the character TF-IDF
peer costs exact match. Each variant is TF-IDF (sublinear tf) + one linear SVM per label,
fitted on the training split train.py makes (default seed and ratio) and scored on its
validation split; the test file is not read.

    python bench/sides.py                       # the real corpus beside the clone
    python bench/sides.py --data data/sample    # any folder with multi-classification-train.txt

The variants: the peer (character 1-3-grams of the raw text); the peer on the text cut where
the model's --maxlen cuts it; train.py --ngram-blend's side (token 1-3-grams hashed into
2^18 buckets, multilabel/ngram.py) at --maxlen and at 4 times it; the same token n-grams as
strings, without hashing. Also the share of tokens the vocabulary maps to [UNK]. Prints a
table; results in bench/results/sides.json.
"""
import os
import sys
import time

import numpy as np

# The modules that start TensorFlow (loader...) are imported inside main, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import benchlib  # noqa: E402
import config  # noqa: E402
import path  # noqa: E402
from multilabel import inference  # noqa: E402
from multilabel import ngram  # noqa: E402
from multilabel import teacher as teacher_lib  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'sides.json')


def parse_args(argv=None):
    parser = config.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=benchlib.SHARED_DATA, help='folder with the training file (default: %(default)s)')
    parser.add_argument('--pretrained', default=path.pretrained_dir('small'), help='folder with vocab.txt (default: %(default)s)')
    parser.add_argument('--maxlen', type=int, default=128,
                        help='tokens the model reads, [CLS] and [SEP] included (default: %(default)s, the recipe\'s)')
    parser.add_argument('--out', default=RESULTS, help='JSON results file (default: %(default)s)')
    return parser.parse_args(argv)


def token_ngrams(tokens):
    return [' '.join(tokens[i:i + order]) for order in ngram.ORDERS for i in range(len(tokens) - order + 1)]


def main(argv=None):
    args = parse_args(argv)
    import loader
    from sklearn.metrics import accuracy_score
    cfg = config.Config()
    samples = loader.read_samples(path.corpus_train(args.data))
    train, valid = loader.split_validation(samples, cfg.valid_ratio, cfg.seed)
    labels = loader.label_list(samples)
    train_targets, valid_targets = loader.multi_hot(train, labels), loader.multi_hot(valid, labels)
    tokenizer = loader.load_tokenizer(os.path.join(args.pretrained, path.VOCAB_NAME))
    specials = ngram.special_ids(tokenizer)
    cut = args.maxlen - 2  # [CLS] and [SEP]

    def peer_margins(inputs, **vectorizer):
        """The peer's pipeline (its vectorizer's `vectorizer` settings changed) on inputs(samples)."""
        model = teacher_lib.tfidf_pipeline().set_params(**{f'tfidfvectorizer__{k}': v for k, v in vectorizer.items()})
        return model.fit(inputs(train), train_targets).decision_function(inputs(valid))

    def hashed_margins(maxlen):
        encoded = lambda samples: loader.encode_texts(tokenizer, [s.text for s in samples], maxlen)
        side = ngram.fit(encoded(train), train_targets, specials, cfg.seed)
        return ngram.margins(side, encoded(valid), specials)

    tokens = lambda samples: [tokenizer.tokenize(s.text, maxlen=args.maxlen)[1:-1] for s in samples]
    variants = {
        'character 1-3-grams, whole text (the peer)': lambda: peer_margins(lambda ss: [s.text for s in ss]),
        f'character 1-3-grams, first {cut} characters': lambda: peer_margins(lambda ss: [s.text[:cut] for s in ss]),
        f'token 1-3-grams hashed, maxlen {args.maxlen} (--ngram-blend)': lambda: hashed_margins(args.maxlen),
        f'token 1-3-grams hashed, maxlen {4 * args.maxlen}': lambda: hashed_margins(4 * args.maxlen),
        f'token 1-3-grams as strings, maxlen {args.maxlen}': lambda: peer_margins(tokens, analyzer=token_ngrams, ngram_range=(1, 1)),  # token_ngrams makes the 1-3-grams
    }
    rows = {}
    for name, margins in variants.items():
        start = time.perf_counter()
        exact = accuracy_score(valid_targets, inference.decide(margins(), 0.0))
        rows[name] = {'validation_exact_match': round(float(exact), 4), 'seconds': round(time.perf_counter() - start, 1)}
    ids = loader.encode_texts(tokenizer, [s.text for s in valid], args.maxlen)
    unknown = float(np.mean(np.concatenate(ids) == tokenizer._token_unk_id))
    lengths = np.array([len(s.text) for s in samples])

    results = {'variants': rows, 'unknown_token_share': round(unknown, 5),
               f'share_of_texts_over_{cut}_characters': round(float((lengths > cut).mean()), 4),
               'validation_samples': len(valid), **benchlib.provenance('bench/sides.py', argv)}
    path.write_json(args.out, results)
    print(f'{"the side alone (validation split)":<56}{"exact":>8}{"seconds":>9}')
    for name, row in rows.items():
        print(f'{name:<56}{row["validation_exact_match"]:>8.4f}{row["seconds"]:>9.1f}')
    print(f'\n[UNK] share of tokens {unknown:.4%}; texts over {cut} characters {(lengths > cut).mean():.2%}; '
          f'written: {args.out}')
    return results


if __name__ == '__main__':
    config.run_main(main)
