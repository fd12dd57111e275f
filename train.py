"""Fine-tune RoFormer-v2 for multi-label classification.

    python train.py                                           # bundled sample (or data/multi-classification-*.txt)
    python train.py --data ../shared/data --model-size small  # the full corpus
    python train.py --from-model weights --input new-labels.txt --weights weights-grown  # add labels
    python train.py --help

Layered learning rates (small for the encoder, larger for the head), Adam with an EMA of
the weights, FGM on the token embeddings. After each epoch the EMA weights are swapped in,
exact-match accuracy on the validation split is measured (a sample counts only when its
whole label set is right), the best weights are saved to weights/, and the training
weights come back. Training stops after `patience` epochs without improvement (or when
--time-budget runs out); with --tune-thresholds, one threshold per label is then fitted to
the validation split.

--from-model DIR continues a trained model instead of a pretrained checkpoint: its encoder
and head are loaded, the labels of the new data that the model lacks are appended to its
labels (the old ones keep their rows and order; a new row starts at its label's prior), and
the folder written is an ordinary model folder. Mix some of the old training lines into the
new file (a replay share), or the labels absent from it fade.

--teacher DIR|tfidf ... distils: each training target becomes the text's labels mixed with the
teachers' scores (trained model folders, or a TF-IDF + linear SVM fitted out of fold;
multilabel/teacher.py), so one RoFormer-v2 learns what an ensemble or a blend knows and is
served alone.

TensorFlow starts with loader, model and multilabel's run, scale and compat, and scikit-learn
takes a second to import: they are imported inside the functions, after the flags are read,
so --help and a wrong flag answer at once.
"""
import os
import shutil

import numpy as np

import config
import path
from multilabel import calibration
from multilabel import history as history_lib
from multilabel import inference
from multilabel import model_folder
from multilabel import ngram
from multilabel import teacher as teacher_lib


def parse_args(argv=None):
    parser = config.ArgumentParser(description='Fine-tune RoFormer-v2 for multi-label text classification.')
    parser.add_argument('--data', metavar='DIR', help='folder holding multi-classification-train.txt (e.g. ../shared/data)')
    parser.add_argument('--input', dest='train', aliases=['--train'], metavar='FILE',
                        help='labelled training file (default: data/multi-classification-train.txt '
                             'if present, else the bundled data/sample-train.txt)')
    parser.add_argument('--valid', metavar='FILE', help='validation file (default: a --valid-ratio share of the training file)')
    parser.add_argument('--pretrained', metavar='DIR', help='pretrained folder with bert_config.json, vocab.txt and, '
                                             'if available, bert_model.ckpt.* (default: from --model-size)')
    parser.add_argument('--from-model', metavar='DIR',
                        help='continue this trained model folder (its architecture, vocabulary, encoder and head) '
                             'instead of --pretrained; labels of the training file it lacks are added')
    parser.add_argument('--teacher', nargs='+', metavar='DIR|tfidf',
                        help='distil: learn the labels mixed with these teachers\' scores (trained model folders, '
                             'and/or tfidf: a TF-IDF + linear SVM fitted out of fold on the training lines); the '
                             'folder written is one ordinary model (see --teacher-weight)')
    parser.add_argument('--weights', default=path.WEIGHTS_DIR, type=config.folder, metavar='DIR',
                        help='the trained model folder it writes (default: %(default)s)')
    parser.add_argument('--max-samples', type=config.limited(int, 'max_samples'),
                        help='use only the first N training lines (quick runs)')
    config.add_output_flags(parser, 'model')
    parser.add_argument('--time-budget', type=config.limited(float, 'time_budget'), metavar='MINUTES',
                        help='stop training after this many minutes of the whole run, resumes included: the '
                             'epoch under way ends early, is validated, and the best weights are kept '
                             '(default: no limit)')
    parser.add_argument('--tensorboard', nargs='?', const='', metavar='DIR',
                        help=f'write TensorBoard logs to DIR (default DIR: WEIGHTS/{path.TENSORBOARD_DIR}); '
                             'view them with `tensorboard --logdir DIR`')
    config.add_flags(parser, 'model_size', 'maxlen', 'batch_size', 'epochs', 'encoder_lr', 'head_lr',
                     'ema_momentum', 'fgm_epsilon', 'rdrop_alpha', 'joined_share', 'threshold', 'top1_fallback', 'patience',
                     'valid_ratio', 'dropout', 'encoder_dropout', 'head', 'loss', 'pos_weight', 'pos_weight_cap', 'calibration',
                     'tune_thresholds', 'ngram_blend', 'teacher_weight', 'tfidf_beta', 'group_by_length', 'seed', 'strategy',
                     'precision', 'budget_decay')
    config.add_config_flag(parser, 'train')
    parser.set_defaults(maxlen=None)  # the --from-model model's own, else config's
    args = parser.parse_args(argv)
    if args.budget_decay and not args.time_budget:
        parser.error('--budget-decay needs --time-budget: it decays the learning rate over the budget')
    if args.from_model and args.pretrained:
        parser.error('--from-model takes the architecture and weights of its model: drop --pretrained')
    if args.data and not args.train:
        args.train = path.corpus_train(args.data)
    args.train = args.train or path.default_train_file()
    args.pretrained = args.from_model or args.pretrained or path.pretrained_dir(args.model_size)
    if args.maxlen is None:
        args.maxlen = config.DEFAULTS.maxlen
        if args.from_model and os.path.exists(os.path.join(args.from_model, path.META_NAME)):
            args.maxlen = model_folder.read_meta(args.from_model)['maxlen']
    if args.tensorboard == '':
        args.tensorboard = os.path.join(args.weights, path.TENSORBOARD_DIR)
    return args


def finish(classifier, cfg, labels, valid_ids, valid_targets, out_dir, shown_dir, ngram_side):
    """After the last epoch, on the validation split with the best weights: with --ngram-blend the
    n-gram side (multilabel/ngram.py) fitted on the training split, `ngram_side` = (token ids,
    targets, special ids), and its beta chosen here; then the temperature (multilabel/calibration.py)
    saved in model.json, then the per-label thresholds, both on the blended logits, since those are
    the ones every command decides on."""
    from sklearn.metrics import accuracy_score
    logits = inference.model_logits(classifier, valid_ids, cfg.batch_size)
    if cfg.ngram_blend:
        train_ids, train_targets, specials = ngram_side
        side = ngram.fit(train_ids, train_targets, specials, cfg.seed)
        margins = ngram.margins(side, valid_ids, specials)
        beta, exact = inference.blend_weight(logits, margins, valid_targets, calibration.logit(cfg.threshold),
                                        cfg.top1_fallback)
        model_folder.write_ngram(out_dir, side, beta)
        logits = logits + beta * margins
        print(f'n-gram side: beta {beta:g} (validation exact match {exact[0.0]:.4f} alone -> {exact[beta]:.4f}), '
              f'{os.path.join(shown_dir, path.NGRAM_NAME) if beta else "not kept"}')
    else:
        model_folder.write_ngram(out_dir, None, 0)  # a resumed run without the flag: no side of an earlier finish
    raw = calibration.expit(logits)
    temperature = 1.0
    if cfg.calibration != 'none':
        temperature = calibration.fit_temperature(logits, valid_targets, per_label=cfg.calibration == 'per_label')
    scores = calibration.apply(raw, temperature)
    model_folder.update_meta(out_dir, temperature=calibration.as_json(temperature, labels))
    before = calibration.summary(raw, valid_targets)['ece']
    after = calibration.summary(scores, valid_targets)['ece']
    decided = lambda s, threshold: accuracy_score(valid_targets, inference.decide(s, threshold, cfg.top1_fallback))
    print(f'calibration ({cfg.calibration}): validation ECE {before:.4f} -> {after:.4f}, exact match '
          f'{decided(raw, cfg.threshold):.4f} -> {decided(scores, cfg.threshold):.4f}'
          + (f', T {temperature:.3f}' if np.ndim(temperature) == 0 else ''))
    if cfg.tune_thresholds:
        thresholds = inference.tune_thresholds(scores, valid_targets, cfg.threshold, cfg.top1_fallback)
        model_folder.write_thresholds(out_dir, labels, thresholds)
        print(f'per-label thresholds: {os.path.join(shown_dir, path.THRESHOLDS_NAME)} '
              f'(validation acc {decided(scores, thresholds):.4f} with them)')


def main(argv=None):
    args = parse_args(argv)
    cfg = config.from_args(args)

    from multilabel import run as run_lib
    from multilabel import scale
    from multilabel.compat import tf

    run_lib.refuse_finished_output(args.weights, (path.WEIGHTS_NAME, path.META_NAME), args.resume, args.overwrite)
    config.refuse_writing_into_an_input(args.weights, '--weights', [('--from-model', args.from_model)]
                                         + [('--teacher', teacher) for teacher in args.teacher or []]
                                         + [('--pretrained', args.pretrained)])
    if args.teacher:
        if cfg.loss == 'zlpr':
            raise config.InputError("--teacher: the teachers' scores are soft targets, which --loss zlpr does not "
                                    'take; use bce or focal')
        teacher_lib.check_teachers(args.teacher)
    strategy = scale.make_strategy(cfg.strategy)  # first: multi-worker set-up precedes other TensorFlow work
    requested_precision, cfg.precision = cfg.precision, scale.set_precision(cfg.precision)  # the fingerprint's: resolved
    precision_line = scale.describe_precision(requested_precision, cfg.precision)
    # Every worker saves (saving may need collective ops), but only the chief into --weights.
    out_dir = scale.output_dir(args.weights, strategy)
    if args.tensorboard and out_dir != args.weights:
        args.tensorboard = os.path.join(out_dir, path.TENSORBOARD_DIR)  # one writer per log folder
    if args.time_budget and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Each worker would read its own clock and stop at another step, leaving the rest waiting.
        raise config.InputError('--time-budget does not work with several workers; use --epochs')
    with run_lib.lock(out_dir):  # one run per folder, released even by kill -9
        run_lib.clean_litter(out_dir)
        return fine_tune(args, cfg, strategy, out_dir, precision_line)


def fine_tune(args, cfg, strategy, out_dir, precision_line):
    import loader
    import model as model_lib
    from multilabel import run as run_lib
    from multilabel import scale
    from multilabel.compat import keras
    from sklearn.metrics import accuracy_score

    keras.utils.set_random_seed(cfg.seed)
    print(f'data: {args.train}' + (' (bundled sample)' if args.train == path.SAMPLE_TRAIN else ''))
    samples = loader.read_samples(args.train)[:args.max_samples]
    if args.valid:
        train_samples, valid_samples = samples, loader.read_samples(args.valid)
    else:
        train_samples, valid_samples = loader.split_validation(samples, cfg.valid_ratio, cfg.seed)
    labels = loader.label_list(samples)
    old_labels = None
    if args.from_model:
        meta = model_folder.read(args.from_model, '--from-model')
        if (cfg.head, cfg.dropout) != (meta['head'], meta['dropout']):
            raise config.InputError(f'--from-model {args.from_model}: its head is {meta["head"]} with dropout '
                                    f'{meta["dropout"]}; pass --head {meta["head"]} --dropout {meta["dropout"]}')
        old_labels = meta['labels']
        labels = old_labels + [label for label in labels if label not in old_labels]
        print(f'from model {args.from_model}: {len(old_labels)} labels, {len(labels) - len(old_labels)} new: '
              + ', '.join(labels[len(old_labels):]))
    print(f'{len(train_samples)} training / {len(valid_samples)} validation samples, {len(labels)} labels')

    config_path = os.path.join(args.pretrained, path.CONFIG_NAME)
    model_lib.check_pretrained(args.pretrained)
    checkpoint = None if args.from_model else model_lib.find_checkpoint(args.pretrained)
    print(f'pretrained: {args.pretrained}')
    if checkpoint is None and not args.from_model:
        model_lib.warn_random_init(args.pretrained)

    tokenizer = loader.load_tokenizer(os.path.join(args.pretrained, path.VOCAB_NAME))
    if cfg.ngram_blend:
        ngram.check_vocabulary(tokenizer._vocab_size)
    train_ids = loader.encode_texts(tokenizer, [s.text for s in train_samples], cfg.maxlen, config.interactive())
    valid_ids = loader.encode_texts(tokenizer, [s.text for s in valid_samples], cfg.maxlen, config.interactive())
    train_targets = loader.multi_hot(train_samples, labels)
    learned_targets = train_targets
    if args.teacher:
        print(f'teachers: {teacher_lib.describe(args.teacher)}, weight {cfg.teacher_weight}')
        logits = teacher_lib.teacher_logits(args.teacher, [s.text for s in train_samples], train_targets, labels,
                                            cfg.tfidf_beta, cfg.seed)
        learned_targets = teacher_lib.soft_targets(train_targets, logits, cfg.teacher_weight)
    fit_ids, fit_targets = train_ids, learned_targets  # what the batches hold; the n-gram side fits the texts alone
    if cfg.joined_share:
        joined_ids, joined_targets = loader.joined_pairs(train_ids, learned_targets, cfg.joined_share, cfg.maxlen,
                                                         cfg.seed)
        print(f'joined pairs: {len(joined_ids)} extra training samples of two texts each')
        fit_ids, fit_targets = train_ids + joined_ids, np.concatenate([learned_targets, joined_targets])
    valid_targets = loader.multi_hot(valid_samples, labels).astype('int32')
    pos_weights = model_lib.positive_weights(cfg.pos_weight, labels, train_targets, cfg.pos_weight_cap)
    pos_weights_path = os.path.join(out_dir, path.POS_WEIGHTS_NAME)
    if pos_weights is not None:
        model_lib.build_loss(cfg.loss, pos_weights)  # refuses zlpr before any model is built
        path.write_json(pos_weights_path, dict(zip(labels, map(float, pos_weights))))
        print(f'positive weights ({cfg.pos_weight}): {pos_weights.min():.2f} to {pos_weights.max():.2f}, '
              f'in {os.path.join(args.weights, path.POS_WEIGHTS_NAME)}')
    elif os.path.exists(pos_weights_path):
        os.remove(pos_weights_path)  # an earlier run's, not this model's

    print(scale.describe_strategy(strategy))
    print(precision_line)
    with strategy.scope():
        classifier = model_lib.build_classifier(config_path, len(labels), checkpoint, cfg.dropout, cfg.fgm_epsilon,
                                                cfg.head, cfg.rdrop_alpha, cfg.encoder_dropout)
        model_lib.compile_for_training(classifier, cfg, pos_weights)
        if args.from_model:
            model_lib.load_grown(classifier, model_folder.weights_path(args.from_model), old_labels, labels,
                                 train_targets.mean(axis=0)[len(old_labels):])

    # Everything a resumed run needs, saved after every epoch: weights, optimizer slots (EMA
    # included), step count, best score, early-stopping counter. The data order of epoch e is
    # a function of (seed, e) and the validation split of the seed, so they come back as well.
    # The settings of the concerns that shape fine-tuning: epochs, patience and the devices may
    # change on resume, and how the model will be used does not touch training.
    settings = config.settings_of(cfg, 'fine-tuning')
    fingerprint = {'train': os.path.abspath(args.train), 'labels': labels, 'config': settings}
    if args.from_model:
        fingerprint['from_model'] = os.path.abspath(args.from_model)
    if args.teacher:
        fingerprint['teachers'] = {'teachers': [t if t == teacher_lib.TFIDF else os.path.abspath(t)
                                                for t in args.teacher],
                                   'teacher_weight': cfg.teacher_weight, 'tfidf_beta': cfg.tfidf_beta}
    run = run_lib.Run(out_dir, fingerprint, {'model': classifier, 'optimizer': classifier.optimizer}, args.resume,
                      history_lib.COLUMNS, metric='acc', read_dir=args.weights)

    def evaluate(model):
        """Validation exact match (the Evaluator has swapped the EMA weights in), and the epoch's learning rates."""
        scores = inference.predict_scores(model, valid_ids, cfg.batch_size, progress=config.interactive())
        accuracy = accuracy_score(valid_targets, inference.decide(scores, cfg.threshold, cfg.top1_fallback))
        encoder_lr, head_lr = model_lib.learning_rates(model_lib.ema_optimizer(model))
        return accuracy, {'val_exact_match': accuracy, 'encoder_lr': encoder_lr, 'head_lr': head_lr}

    def save_best(first):
        if first:
            model_folder.write(out_dir, cfg, labels, args.pretrained)
        model_folder.save_weights(out_dir, classifier)

    if run.finished(cfg.epochs, cfg.patience, args.time_budget):
        print('this run had already finished')
    else:
        train_data = loader.make_dataset(fit_ids, fit_targets, cfg.batch_size, shuffle=True, seed=cfg.seed,
                                         first_epoch=run.epoch, epochs=cfg.epochs,
                                         group_by_length=cfg.group_by_length)
        steps = loader.batches_per_epoch(len(fit_ids), cfg.batch_size)
        # First: the others see its val_exact_match and the learning rates.
        optimizer = model_lib.ema_optimizer(classifier)
        callbacks = run.callbacks(cfg.epochs, steps, evaluate, save_best, cfg.patience, args.time_budget, ema=optimizer,
                                  budget_decay=model_lib.budget_decay(optimizer, cfg) if cfg.budget_decay else None)
        if args.tensorboard:  # tf.summary event files; the tensorboard package is needed only to view them
            callbacks.append(keras.callbacks.TensorBoard(args.tensorboard, write_graph=False, profile_batch=0))
        classifier.fit(train_data, epochs=cfg.epochs, initial_epoch=run.epoch, steps_per_epoch=steps,
                       callbacks=callbacks, verbose=0)
    state = run.state
    best_weights = model_folder.weights_path(out_dir)

    if os.path.exists(best_weights):
        classifier.load_weights(best_weights)
        finish(classifier, cfg, labels, valid_ids, valid_targets, out_dir, args.weights,
               (train_ids, train_targets, ngram.special_ids(tokenizer)))
    if out_dir != args.weights:
        shutil.rmtree(out_dir, ignore_errors=True)
    print(f'best weights: {os.path.join(args.weights, path.WEIGHTS_NAME)} (acc {state["best"]:.4f})')
    return state['best']


if __name__ == '__main__':
    config.run_main(main)
