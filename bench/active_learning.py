"""What labelling by `suggest` is worth, simulated on the real corpus: from a seeded 10% of the
training lines labelled, 10% more of them chosen by suggest.rank against 10% chosen at
random, twice (10% -> 20% -> 30%), each model fine-tuned anew from --pretrained under the
same --budget, exact match on the test file at each point.

    python bench/active_learning.py --pretrained bench/weights/l4h256_pretrain_90min-pretrained --budget 9 \
        -- --maxlen 128 --batch-size 32 --encoder-lr 1e-4 --head-lr 1e-3 --ema-momentum 0.99 --fgm-epsilon 0.5 \
        --epochs 30 --patience 5 --precision mixed_bfloat16 --group-by-length 50
    python bench/active_learning.py --data D --pretrained P --budget 0.05 --weights /tmp/w --out /tmp/s.json -- --epochs 1

Everything after `--` goes to train.py unchanged, as with bench/accuracy.py, whose training
and scoring this reuses (run_ours: the saved model's decision rule on the test file, every
label of the training file counted). The 10% start is the share `bench/accuracy.py
--labelled-fraction 0.1` labels (seed 42), so its point is that row's recipe. Both arms
start from that one model. The simulated annotator labels a chosen line with its labels in
the training file; the suggest arm ranks the still-unlabelled lines with its latest model
(suggest.rank, --diversity), the random arm draws them with --seed. Each point records the
fine-tuning's wall and CPU seconds and the epochs it completed; the suggest arm also its
ranking seconds. Prints the curves; results in bench/results/active_learning.json.
"""
import argparse
import os
import random
import sys
import time

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import accuracy  # noqa: E402  (beside this script: its fine-tuning and scoring)
import benchlib  # noqa: E402
import config  # noqa: E402
import path  # noqa: E402
from multilabel import suggest  # noqa: E402
from multilabel import inference  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'active_learning.json')
START_SEED = 42  # bench/accuracy.py's labelled share


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=benchlib.SHARED_DATA,
                        help='folder with multi-classification-{train,test}.txt (default: %(default)s)')
    parser.add_argument('--pretrained', default=path.pretrained_dir('small'),
                        help='checkpoint every model is fine-tuned from (default: %(default)s)')
    parser.add_argument('--budget', type=float, default=60, help='minutes of each fine-tuning (default: %(default)s)')
    parser.add_argument('--fraction', type=float, default=0.1,
                        help='share of the training lines labelled at the start and added per round (default: %(default)s)')
    parser.add_argument('--rounds', type=int, default=2, help='additions per arm (default: %(default)s)')
    parser.add_argument('--diversity', type=float, default=suggest.DIVERSITY,
                        help='suggest.rank diversity weight (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='the random arm\'s draws (default: %(default)s)')
    parser.add_argument('--max-test', type=int, help='score only the first N test lines (smoke runs)')
    parser.add_argument('--weights', default=os.path.join(ROOT, 'bench', 'weights', 'active_learning'),
                        help='folder for the models and labelled files (default: %(default)s)')
    parser.add_argument('--out', default=RESULTS, help='JSON results file (default: %(default)s)')
    parser.add_argument('train_flags', nargs=argparse.REMAINDER, help='-- then flags for train.py')
    args = parser.parse_args(argv)
    args.train_flags = [flag for flag in args.train_flags if flag != '--']
    if not 0 < args.fraction * (1 + args.rounds) <= 1:
        parser.error('--fraction x (1 + --rounds) must be within (0, 1]')
    return args


def fine_tune(args, samples, chosen, name, test_samples, labels):
    """Fine-tune on samples[chosen] under the budget; the test point (accuracy.run_ours' row, trimmed)."""
    train_file = os.path.join(args.weights, f'labelled-{name}.txt')
    suggest.write_lines(train_file, [{'labels': samples[i].labels, 'text': samples[i].text} for i in sorted(chosen)])
    run = argparse.Namespace(train=train_file, pretrained=args.pretrained, weights=os.path.join(args.weights, name),
                             budget=args.budget, max_samples=None, train_flags=args.train_flags, resume=False)
    row = accuracy.run_ours(run, test_samples, labels)
    keep = ('exact_match', 'micro_f1', 'macro_f1', 'samples_f1', 'fine_tune_seconds', 'fine_tune_cpu_seconds',
            'epochs_completed', 'best_validation_exact_match', 'init')
    point = {'labelled_lines': len(chosen), 'labelled_share': round(len(chosen) / len(samples), 4),
             **{key: row[key] for key in keep}}
    print(f'{name}: {len(chosen)} lines labelled, test exact match {point["exact_match"]:.4f}', flush=True)
    return point


def main(argv=None):
    args = parse_args(argv)
    import loader
    train_file = path.corpus_train(args.data)
    test_file = path.corpus_test(args.data)
    for needed in (train_file, test_file):
        if not os.path.exists(needed):
            raise config.InputError(f'{needed}: missing; pass --data with the real corpus folder')
    samples = loader.read_samples(train_file)
    test_samples = loader.read_samples(test_file)[:args.max_test]
    labels = loader.label_list(samples)
    step = round(len(samples) * args.fraction)
    start = set(random.Random(START_SEED).sample(range(len(samples)), step))
    load_before = os.getloadavg()[0]

    first = fine_tune(args, samples, start, f'start-{100 * args.fraction:g}pct', test_samples, labels)
    arms = {'suggest': [first], 'random': [first]}
    draws = random.Random(args.seed)
    for arm in arms:
        chosen, model = set(start), os.path.join(args.weights, f'start-{100 * args.fraction:g}pct')
        for round_ in range(1, args.rounds + 1):
            pool = sorted(set(range(len(samples))) - chosen)
            began = time.perf_counter()
            if arm == 'suggest':
                classifier = inference.Classifier(model)
                ranked = suggest.rank(classifier, [samples[i].text for i in pool], step, args.diversity)
                picks = [pool[row['index']] for row in ranked]
            else:
                picks = draws.sample(pool, min(step, len(pool)))
            seconds = time.perf_counter() - began
            chosen |= set(picks)
            name = f'{arm}-{100 * args.fraction * (round_ + 1):g}pct'
            point = fine_tune(args, samples, chosen, name, test_samples, labels)
            if arm == 'suggest':
                point['rank_seconds'] = round(seconds, 3)
            arms[arm].append(point)
            model = os.path.join(args.weights, name)

    result = {'train_lines': len(samples), 'test_samples': len(test_samples), 'lines_per_step': step,
              'rounds': args.rounds, 'diversity': args.diversity, 'seed': args.seed, 'budget_minutes': args.budget,
              'pretrained': os.path.relpath(args.pretrained, ROOT), 'train_flags': args.train_flags, 'arms': arms,
              **benchlib.provenance('bench/active_learning.py', argv),
              'load_average_before_and_after': [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    path.write_json(args.out, result)

    print(f'\n{"labelled":>9}{"suggest":>9}{"random":>9}   test exact match, {len(test_samples)} texts')
    for mine, theirs in zip(arms['suggest'], arms['random']):
        print(f'{100 * mine["labelled_share"]:>8.1f}%{mine["exact_match"]:>9.4f}{theirs["exact_match"]:>9.4f}')
    print(f'written: {args.out}')
    return result


if __name__ == '__main__':
    config.run_main(main)
