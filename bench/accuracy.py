"""Accuracy on the real corpus: our RoFormer-v2 (random init, bounded CPU time) against the
peer a practitioner would otherwise use, TF-IDF over character 1-3-grams + one-vs-rest
LinearSVC, trained on the same split and scored on the same test file.

    python bench/accuracy.py                                   # 60-minute budget, small architecture
    python bench/accuracy.py --name cnn-focal --budget 15 -- --head cnn --loss focal
    python bench/accuracy.py --budget 0.5 --max-samples 400 --max-test 200 --out /tmp/a.json  # smoke run
    python bench/accuracy.py --name l4h256_pretrain --pretrain "--layers 4 --hidden 256 --heads 4" -- --maxlen 64
    python bench/accuracy.py --name low10_pretrain --labelled-fraction 0.1 --reuse-pretrained l4h256_pretrain -- ...
    python bench/accuracy.py --name recipe_self_pretrained --recipe configs/self-pretrained.toml

Everything after `--` goes to train.py unchanged. Each run adds (or replaces) its system
under --name in the JSON file, so ablations accumulate in one place; the peer is re-run
every time (seconds). Besides the decision rule saved with the model, our model's test
scores are also decided three other ways (one threshold without/with the top-1 fallback,
the tuned per-label thresholds), which costs no training.

--pretrain "FLAGS" first runs pretrain.py (on the training texts without the validation split)
and fine-tunes from its checkpoint; the row's train_seconds then counts both. With
--labelled-fraction F only a seeded share F of the training lines keeps its labels: train.py
and the peer (row tfidf_linearsvc_<F%>) learn from that file alone, while --pretrain still
reads all training texts (--reuse-pretrained NAME takes the checkpoint of an earlier
--pretrain row, and its pretraining seconds). Every row records the process CPU seconds and
the load average, since wall time on a shared machine says little alone. --recipe FILE runs
`main.py recipe FILE` end to end (the one command users without weights run) and scores its model.
--resume finishes an interrupted row under the same --name and flags: a finished pretraining is
kept, a cut stage continues where its last epoch ended (pretrain.py / train.py --resume), and the
row's stage seconds are the minutes its resume states trained (the cut epoch's are lost).
"""
import argparse
import os
import random
import resource
import shlex
import sys
import time

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import benchlib  # noqa: E402  (beside this script)
import config  # noqa: E402
import path  # noqa: E402
from multilabel import history as history_lib  # noqa: E402
from multilabel import inference  # noqa: E402
from multilabel import teacher as teacher_lib  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'accuracy.json')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=benchlib.SHARED_DATA, help='folder with multi-classification-{train,test}.txt '
                                                            '(default: %(default)s)')
    parser.add_argument('--pretrained', default=path.pretrained_dir('small'),
                        help='architecture and vocab (and weights, if a checkpoint is there) (default: %(default)s)')
    parser.add_argument('--budget', type=float, default=60, help='training time budget in minutes (default: %(default)s)')
    parser.add_argument('--name', default='roformer_v2', help='system name in the results (default: %(default)s)')
    parser.add_argument('--max-samples', type=int, help='use only the first N training lines (smoke runs)')
    parser.add_argument('--max-test', type=int, help='score only the first N test lines (smoke runs)')
    parser.add_argument('--skip-ours', action='store_true', help='only run the peer')
    parser.add_argument('--pretrain', metavar='"FLAGS"', help='run pretrain.py with these flags first and '
                                                             'fine-tune from its checkpoint (WEIGHTS-pretrained)')
    parser.add_argument('--reuse-pretrained', metavar='NAME', help='fine-tune from the checkpoint of the earlier '
                                                                   '--pretrain row NAME (its seconds are counted)')
    parser.add_argument('--labelled-fraction', type=float, help='keep the labels of only this seeded share of the '
                                                                'training lines (low-resource rows)')
    parser.add_argument('--recipe', metavar='FILE', help='run this recipe (configs/*.toml) end to end with '
                                                        'main.py recipe --out WEIGHTS --data DATA instead of the '
                                                        'flags here, and score what it wrote')
    parser.add_argument('--seed', type=int, help="with --recipe: the seed of both its training stages "
                                                 "(main.py recipe --seed); without it, train.py's --seed goes after --")
    parser.add_argument('--resume', action='store_true',
                        help='finish an interrupted row (same --name and flags): keep a finished pretraining and '
                             'continue a cut stage with --resume instead of starting it afresh')
    parser.add_argument('--weights', help='where our model is saved (default: bench/weights/NAME)')
    parser.add_argument('--out', default=RESULTS, help='JSON results file (default: %(default)s)')
    parser.add_argument('train_flags', nargs=argparse.REMAINDER, help='-- then flags for train.py')
    args = parser.parse_args(argv)
    args.train_flags = [flag for flag in args.train_flags if flag != '--']
    if args.recipe:
        given = [flag for flag, value in (('--pretrain', args.pretrain), ('--reuse-pretrained', args.reuse_pretrained),
                                          ('--labelled-fraction', args.labelled_fraction),
                                          ('--max-samples', args.max_samples), ('--skip-ours', args.skip_ours),
                                          ('--resume (a recipe resumes by itself)', args.resume),
                                          ('flags for train.py', args.train_flags)) if value]
        if given:
            parser.error(f'--recipe runs the stages of its file: {given[0]} cannot be combined with it')
    elif args.seed is not None:
        parser.error("--seed is the recipe's: without --recipe, give train.py's --seed after --")
    # Each stage gets --resume or --overwrite from here; one given again would clash only after the pretraining.
    restart = sorted({'--resume', '--overwrite'} & set(args.train_flags + shlex.split(args.pretrain or '')))
    if restart:
        parser.error(f"{restart[0]} is bench/accuracy.py's own: give --resume before -- and outside --pretrain "
                     "(without it, a rerun replaces the row's folders)")
    args.weights = args.weights or os.path.join(ROOT, 'bench', 'weights', args.name)
    return args


def scores_of(targets, predictions, train_seconds):
    return {'exact_match': round(float(accuracy_score(targets, predictions)), 4),
            **{f'{average}_f1': round(float(f1_score(targets, predictions, average=average, zero_division=0)), 4)
               for average in ('micro', 'macro', 'samples')},
            'train_seconds': round(train_seconds, 3)}


def run_peer(train_samples, test_samples, labels):
    """The peer fitted on `train_samples`, scored on `test_samples`, at least one label per text."""
    import loader
    peer = teacher_lib.tfidf_pipeline()  # the model train.py --teacher tfidf learns from
    start = time.perf_counter()
    peer.fit([s.text for s in train_samples], loader.multi_hot(train_samples, labels))
    seconds = time.perf_counter() - start
    margins = peer.decision_function([s.text for s in test_samples])
    predictions = inference.decide(margins, 0.0, top1_fallback=True)  # the SVM's margin threshold is 0
    return scores_of(loader.multi_hot(test_samples, labels), predictions, seconds)


def cpu_seconds():
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def labelled_share(train_file, fraction, out_dir):
    """A file holding a seeded random `fraction` of train_file's lines, in file order."""
    with open(train_file, encoding='utf-8') as f:
        lines = f.read().splitlines()
    keep = sorted(random.Random(42).sample(range(len(lines)), round(len(lines) * fraction)))
    share = os.path.join(out_dir, f'labelled-{fraction:g}.txt')

    def write(temporary):
        with open(temporary, 'w', encoding='utf-8') as f:
            f.writelines(lines[i] + '\n' for i in keep)
    path.atomic_write(share, write)
    return share


def run_pretraining(args):
    """pretrain.py on all training texts (never the test file) -> (checkpoint folder, facts for the row)."""
    import pretrain
    out = args.weights + '-pretrained'
    flags = ['--train', args.corpus_train, '--out', out, restart_flag(args)] + shlex.split(args.pretrain)
    continued = args.resume and os.path.exists(path.resume_state_file(out))
    start, cpu = time.perf_counter(), cpu_seconds()
    pretrain.main(flags)
    seconds = path.read_resume_state(out)['elapsed'] if args.resume else round(time.perf_counter() - start, 3)
    return out, {**pretraining_facts(out, shlex.split(args.pretrain), seconds),
                 **cpu_of_this_process('pretrain', continued, cpu)}


def cpu_of_this_process(stage, continued, cpu):
    """{STAGE_cpu_seconds: ...} since `cpu`, or {} for a stage `continued` from a cut run, whose
    earlier CPU seconds ended with the process that spent them."""
    return {} if continued else {f'{stage}_cpu_seconds': round(cpu_seconds() - cpu, 1)}


def restart_flag(args):
    """How pretrain.py and train.py treat the row's folders: a rerun under the same --name replaces
    its own folder, and with --resume it continues the run in it (a finished stage does nothing)."""
    return '--resume' if args.resume else '--overwrite'


def pretraining_facts(folder, flags, seconds):
    """What a row keeps of the pretraining run in `folder`: its flags, seconds, epochs, best
    held-out masked-token accuracy and epoch history."""
    state = path.read_resume_state(folder)
    return {'pretrain_seconds': seconds, 'pretrain_flags': flags, 'pretrain_epochs': state['epoch'],
            'pretrain_held_out_masked_accuracy': round(float(state['best']), 4),
            'pretrain_history': epoch_rows(folder), 'pretrained_dir': os.path.relpath(folder, ROOT)}


def epoch_rows(folder):
    """The run's history.csv (one row per epoch) as the results JSON keeps it: the folder is not committed."""
    rows = history_lib.read_history(os.path.join(folder, path.HISTORY_NAME))
    return [{key: round(value, 6) if isinstance(value, float) else value for key, value in row.items()} for row in rows]


def widen(predictions, own_labels, labels):
    """[n, len(own_labels)] 0/1 -> [n, len(labels)]: a label the model never saw is never predicted."""
    wide = np.zeros((len(predictions), len(labels)), dtype=predictions.dtype)
    wide[:, [labels.index(label) for label in own_labels]] = predictions
    return wide


def run_ours(args, test_samples, labels, pretraining=None):
    """Train with train.py under the time budget, then score the test file with the saved model.

    pretraining: the facts of the pretraining run the checkpoint came from; its seconds count."""
    import model as model_lib
    import train
    flags = ['--train', args.train, '--pretrained', args.pretrained, '--weights', args.weights, restart_flag(args),
             '--time-budget', str(args.budget)] + (['--max-samples', str(args.max_samples)] if args.max_samples else [])
    continued = args.resume and os.path.exists(path.resume_state_file(args.weights))
    start, cpu = time.perf_counter(), cpu_seconds()
    train.main(flags + args.train_flags)
    seconds = path.read_resume_state(args.weights)['elapsed'] if args.resume else time.perf_counter() - start
    fine_tune = {'fine_tune_seconds': round(seconds, 3), **cpu_of_this_process('fine_tune', continued, cpu)}
    if pretraining:
        seconds += pretraining['pretrain_seconds']
    return {**score_model(args.weights, test_samples, labels, seconds), 'train_flags': args.train_flags,
            'pretrained': os.path.relpath(args.pretrained, ROOT),
            'init': 'checkpoint' if model_lib.find_checkpoint(args.pretrained) else 'random',
            **fine_tune, **(pretraining or {})}


def run_recipe(args, test_samples, labels):
    """`main.py recipe FILE --out WEIGHTS --data DATA`, the one command for users without weights,
    then the test scores of the folder it wrote; the recipe's record gives each stage's flags and
    seconds. Run again after an interruption, it resumes (the row then times the last run only)."""
    from multilabel import recipe
    start, cpu = time.perf_counter(), cpu_seconds()
    seed = [] if args.seed is None else ['--seed', str(args.seed)]
    recipe.main([args.recipe, '--out', args.weights, '--data', args.data, *seed])
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    record = path.read_json(os.path.join(args.weights, recipe.RECORD_NAME))
    result = {**score_model(args.weights, test_samples, labels, seconds), 'recipe': os.path.relpath(args.recipe, ROOT),
              'recipe_cpu_seconds': round(cpu, 1), 'train_flags': relative_paths(record['train']['flags']),
              'fine_tune_seconds': record['train']['seconds']}
    if 'pretrain' in record:
        result.update(pretraining_facts(args.weights + '-pretrained', relative_paths(record['pretrain']['flags']),
                                        record['pretrain']['seconds']))
    return result


def relative_paths(flags):
    """The flags with each absolute path made relative to the repository, as the rows keep paths."""
    return [os.path.relpath(flag, ROOT) if os.path.isabs(flag) else flag for flag in flags]


def score_model(weights, test_samples, labels, seconds):
    """The test scores of the model folder `weights` (its own decision rule and three others) and
    the facts of its training run; `seconds`: what producing it cost."""
    import loader
    state = path.read_resume_state(weights)
    classifier = inference.Classifier(weights)
    targets = loader.multi_hot(test_samples, labels)  # all labels of the training file, seen or not
    scores = classifier.scores([s.text for s in test_samples], progress=config.interactive())
    single = classifier.meta['threshold']
    rules = {'threshold, no fallback': (single, False), 'threshold + top-1 fallback': (single, True),
             'per-label thresholds + top-1 fallback': (classifier.threshold, True)}
    decide = lambda threshold, fallback: widen(inference.decide(scores, threshold, fallback), classifier.labels, labels)
    result = scores_of(targets, decide(classifier.threshold, classifier.top1_fallback), seconds)
    result['decision_rules'] = {rule: scores_of(targets, decide(threshold, fallback), seconds)
                                for rule, (threshold, fallback) in rules.items()}
    result.update(epochs_completed=state['epoch'], best_validation_exact_match=round(state['best'], 4),
                  history=epoch_rows(weights), settings=state['run']['config'],
                  **({'teachers': teachers_of(state['run']['teachers'])} if 'teachers' in state['run'] else {}))
    return result


def teachers_of(fingerprint):
    """A distilled run's teachers and their weights, the folders relative to the repository."""
    folders = [t if t == teacher_lib.TFIDF else os.path.relpath(t, ROOT) for t in fingerprint['teachers']]
    return {**fingerprint, 'teachers': folders}


def main(argv=None):
    args = parse_args(argv)
    import loader
    args.train = args.corpus_train = path.corpus_train(args.data)
    test_file = path.corpus_test(args.data)
    for needed in (args.train, test_file):
        if not os.path.exists(needed):
            raise config.InputError(f'{needed}: missing; pass --data with the real corpus folder')
    if args.labelled_fraction:
        os.makedirs(os.path.dirname(args.weights), exist_ok=True)
        args.train = labelled_share(args.corpus_train, args.labelled_fraction, os.path.dirname(args.weights))
    cfg = config.Config()  # the split below is the one train.py makes with its default seed and ratio
    samples = loader.read_samples(args.train)[:args.max_samples]
    train_samples, _ = loader.split_validation(samples, cfg.valid_ratio, cfg.seed)
    test_samples = loader.read_samples(test_file)[:args.max_test]
    labels = loader.label_list(loader.read_samples(args.corpus_train))  # scored over all labels, also low-resource
    load_before = os.getloadavg()[0]

    results = path.read_json(args.out) if os.path.exists(args.out) else {'systems': {}}
    provenance = benchlib.provenance('bench/accuracy.py', argv)
    common = {'command': provenance['command'], 'date': time.strftime('%Y-%m-%d'), 'machine': benchlib.describe(),
              'git_commit': provenance['git_commit'],
              'train_samples': len(train_samples), 'test_samples': len(test_samples)}
    peer = 'tfidf_linearsvc' + (f'_{100 * args.labelled_fraction:g}pct' if args.labelled_fraction else '')
    results['systems'][peer] = {**run_peer(train_samples, test_samples, labels), **common}
    if args.recipe:
        row = run_recipe(args, test_samples, labels)
    elif not args.skip_ours:
        pretraining = None
        if args.pretrain:
            args.pretrained, pretraining = run_pretraining(args)
        elif args.reuse_pretrained:
            earlier = results['systems'][args.reuse_pretrained]
            pretraining = {k: v for k, v in earlier.items() if k.startswith('pretrain_') or k == 'pretrained_dir'}
            args.pretrained = os.path.join(ROOT, earlier['pretrained_dir'])
        row = run_ours(args, test_samples, labels, pretraining)
    if not args.skip_ours:
        # A resumed row's seconds are the trained minutes of its resume states.
        results['systems'][args.name] = {**row, **common, **({'resumed': True} if args.resume else {}),
                                         'load_average_before_and_after': [round(load_before, 2),
                                                                           round(os.getloadavg()[0], 2)],
                                         'load_average_1_5_15_after': [round(x, 2) for x in os.getloadavg()]}
    ours = {name: results['systems'][name] for name in (peer, None if args.skip_ours else args.name) if name}
    results = path.read_json(args.out) if os.path.exists(args.out) else {'systems': {}}
    results['systems'].update(ours)  # re-read: another bench run may have written its row meanwhile
    path.write_json(args.out, results)

    print(f'\n{"system":<46}{"exact":>7}{"micro":>7}{"macro":>7}{"samples":>8}{"train s":>9}')
    for name, row in results['systems'].items():
        rows = [(name, row)] + [(f'  {name}: {rule}', r) for rule, r in row.get('decision_rules', {}).items()]
        for label, r in rows:
            print(f'{label:<46}{r["exact_match"]:>7.4f}{r["micro_f1"]:>7.4f}{r["macro_f1"]:>7.4f}'
                  f'{r["samples_f1"]:>8.4f}{r["train_seconds"]:>9.1f}')
    print(f'written: {args.out}')
    return results


if __name__ == '__main__':
    config.run_main(main)
