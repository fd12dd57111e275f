"""Pretraining of RoFormer-v2 on your own texts: masked language model (MLM) or ELECTRA's
replaced-token detection (`--objective rtd`, multilabel/rtd.py).

    python pretrain.py                                     # bundled sample -> pretrained/self/
    python pretrain.py --data ../shared/data --out pretrained/self-small --maxlen 64 --epochs 12
    python pretrain.py --texts more.txt --pretrained pretrained/self-small --out pretrained/self-small-2
    python pretrain.py --objective rtd --layers 4 --hidden 256 --heads 4   # ELECTRA-style
    python pretrain.py --config configs/self-pretrained.toml --out pretrained/self-4l  # a recipe's [pretrain]
    python train.py --pretrained pretrained/self-small ...  # fine-tune from it
    python pretrain.py --help

The output folder has exactly the layout of the official releases: bert_config.json,
vocab.txt and bert_model.ckpt.{index,data-00000-of-00001,meta} with the official variable
names, so `train.py --pretrained DIR` loads it through the same code as the official
checkpoints. Pretraining on the task's own texts recovers much of what downloaded weights
give (Krishna et al., ACL 2023); continuing an official checkpoint with --pretrained is
domain-adaptive pretraining (Gururangan et al., ACL 2020).

Input: labelled files (`label1|label2 text`: the texts are used, the labels ignored) or,
with --plain, one text per line. By default the training file, without the validation split
train.py holds out with the same --valid-ratio and --seed: fine-tuning's early stopping then
scores texts pretraining never saw. The test file is never read. From every input file the
same share is held out to measure masked-token accuracy after each epoch; the checkpoint of
the best epoch is the one kept.

Masking is dynamic: every batch draws its own 15% of tokens (80% [MASK], 10% a random token,
10% unchanged), a pure function of (seed, step), so a resumed run sees the same masks.
Batches are padded to their own longest text. AdamW with a linear warm-up and a linear
decay to 0 at the last planned step (--epochs x batches per epoch) or, with --time-budget and
--budget-decay, at the end of the budget if that comes first. The MLM head is
bert4keras' RoFormer-v2 one (`with_mlm`): dropout, then the transposed token-embedding
table (tied, no extra variables), applied here to the masked positions only, which skips
the 12000-way softmax at the 85% of positions without a target.

With --objective rtd the same masks go to a small generator (multilabel/rtd.py) whose samples replace
the masked tokens; the model written learns for every token whether it was replaced. Its
held-out figures (generator masked-token accuracy, replaced-token accuracy and recall) are
recorded, but they measure a task that hardens as the generator learns, so the checkpoint
of the last epoch is the one kept (as in ELECTRA) and --patience does not apply.

TensorFlow starts with loader, model and multilabel's run, scale, mlm, rtd and compat: they
are imported inside the functions, after the flags are read, so --help and a wrong flag
answer at once.
"""
import os
import shutil

import numpy as np

import config
import path


def parse_args(argv=None):
    parser = config.ArgumentParser(description='Masked-language-model pretraining of RoFormer-v2; writes a '
                                                 'folder in the official checkpoint layout.')
    parser.add_argument('--data', metavar='DIR', help='folder holding multi-classification-train.txt (e.g. ../shared/data)')
    parser.add_argument('--input', dest='train', aliases=['--train'], nargs='+', metavar='FILE',
                        help='labelled files whose texts are used (default: data/multi-classification-train.txt '
                             'if present, else the bundled data/sample-train.txt)')
    parser.add_argument('--texts', nargs='+', metavar='FILE', help='plain-text files, one text per line '
                                                                   '(instead of the labelled training file)')
    parser.add_argument('--out', default=path.SELF_PRETRAINED_DIR, type=config.folder, metavar='DIR',
                        help='the checkpoint folder it writes (default: %(default)s)')
    parser.add_argument('--pretrained', dest='init', aliases=['--init'], metavar='DIR',
                        help='continue pretraining this checkpoint folder (its architecture and vocabulary) '
                             'instead of random weights')
    parser.add_argument('--layers', type=config.limited(int, 'layers'),
                        help='encoder layers (default: those of --model-size)')
    parser.add_argument('--hidden', type=config.limited(int, 'hidden'),
                        help='hidden size; the feed-forward size is 4x (default: --model-size)')
    parser.add_argument('--heads', type=config.limited(int, 'heads'),
                        help='attention heads (default: those of --model-size)')
    parser.add_argument('--max-samples', type=config.limited(int, 'max_samples'),
                        help='use only the first N lines of each file (quick runs)')
    config.add_output_flags(parser, 'checkpoint')
    parser.add_argument('--time-budget', type=config.limited(float, 'time_budget'), metavar='MINUTES',
                        help='stop after this many minutes of the whole run, resumes included: the epoch under '
                             'way ends early and is scored (the learning-rate decay is planned over --epochs, or '
                             'over the budget with --budget-decay)')
    config.add_flags(parser, *config.setting_names('pretraining'), 'mask_span', 'whole_word_masking', 'epochs',
                     'patience', 'budget_decay',
                     helps=config.PRETRAIN_HELP)
    config.add_config_flag(parser, 'pretrain')
    parser.set_defaults(maxlen=128, epochs=10)  # texts are short; a sample-sized first run ends in minutes
    args = parser.parse_args(argv)
    if args.whole_word_masking and args.mask_span > 1:
        parser.error('--whole-word-masking masks single words: drop --mask-span')
    if args.budget_decay and not args.time_budget:
        parser.error('--budget-decay needs --time-budget: it decays the learning rate over the budget')
    if args.init and (args.layers or args.hidden or args.heads):
        parser.error('--pretrained takes the architecture of its checkpoint: drop --layers/--hidden/--heads')
    if args.data and not args.train:
        args.train = [path.corpus_train(args.data)]
    if not args.train and not args.texts:
        args.train = [path.default_train_file()]
    args.train, args.texts = args.train or [], args.texts or []
    return args


def architecture(args):
    """(bert_config dict, vocab path, checkpoint prefix or None) of the model to pretrain."""
    import model as model_lib
    source = args.init or path.pretrained_dir(args.model_size)
    model_lib.check_pretrained(source)
    bert_config = path.read_json(os.path.join(source, path.CONFIG_NAME))
    checkpoint = None
    if args.init:
        checkpoint = model_lib.find_checkpoint(args.init)
        if checkpoint is None:
            raise config.InputError(f'{args.init}: no {path.CHECKPOINT_NAME}.* to continue from')
    if args.layers:
        bert_config['num_hidden_layers'] = args.layers
    if args.hidden:
        bert_config.update(hidden_size=args.hidden, intermediate_size=4 * args.hidden)
    if args.heads:
        bert_config['num_attention_heads'] = args.heads
    if bert_config['hidden_size'] % bert_config['num_attention_heads']:
        raise config.InputError(f'--hidden {bert_config["hidden_size"]} is not a multiple of '
                                f'--heads {bert_config["num_attention_heads"]}')
    return bert_config, os.path.join(source, path.VOCAB_NAME), checkpoint


def read_inputs(args, cfg):
    """(pretraining texts, held-out texts): from each file, the share train.py validates on is held out."""
    import loader
    texts, held_out = [], []
    for file_name, plain in [(f, False) for f in args.train] + [(f, True) for f in args.texts]:
        file_texts = loader.read_texts(file_name) if plain else [s.text for s in loader.read_samples(file_name)]
        # split_validation draws by position only, so this is train.py's split of a labelled file.
        kept, held = loader.split_validation(file_texts[:args.max_samples], cfg.valid_ratio, cfg.seed)
        texts += kept
        held_out += held
    return texts, held_out


def main(argv=None):
    args = parse_args(argv)
    cfg = config.from_args(args)
    from multilabel import run as run_lib
    run_lib.refuse_finished_output(args.out, (path.CHECKPOINT_NAME + '.index',), args.resume, args.overwrite)
    config.refuse_writing_into_an_input(args.out, '--out', [('--pretrained', args.init)])
    with run_lib.lock(args.out):  # one run per folder, released even by kill -9
        run_lib.clean_litter(args.out)
        return pretrain(args, cfg)


def pretrain(args, cfg):
    import loader
    from multilabel import mlm
    from multilabel import rtd
    from multilabel import run as run_lib
    from multilabel import scale
    from multilabel.compat import keras

    requested_precision, cfg.precision = cfg.precision, scale.set_precision(cfg.precision)
    keras.utils.set_random_seed(cfg.seed)
    bert_config, vocab_path, checkpoint = architecture(args)
    texts, held_out = read_inputs(args, cfg)
    inputs = ', '.join(args.train + [f'{f} (plain)' for f in args.texts])
    print(f'texts: {inputs}: {len(texts)} to pretrain on, {len(held_out)} held out')
    print(f'architecture: {bert_config["num_hidden_layers"]} layers, hidden {bert_config["hidden_size"]}, '
          f'{bert_config["num_attention_heads"]} heads, vocabulary {bert_config["vocab_size"]} ({vocab_path}); '
          + (f'continuing {checkpoint}' if checkpoint else 'random initialisation'))
    print(scale.describe_precision(requested_precision, cfg.precision))

    tokenizer = loader.load_tokenizer(vocab_path)
    encode = mlm.mark_words if cfg.whole_word_masking else loader.encode_texts  # marked ids carry the word boundaries
    train_ids = encode(tokenizer, texts, cfg.maxlen, progress=config.interactive())
    held_out_ids = encode(tokenizer, held_out, cfg.maxlen, progress=config.interactive())
    steps = loader.batches_per_epoch(len(train_ids), cfg.batch_size)

    masker = mlm.Masker(tokenizer, bert_config['vocab_size'], cfg.mask_rate, cfg.mask_span, cfg.whole_word_masking)
    if cfg.objective == 'rtd':
        transformer, model = rtd.build(bert_config, checkpoint, cfg, masker.maskable)
        columns, metric, held_out_score = rtd.HISTORY_COLUMNS, 'held-out replaced-token acc', 'rtd_acc'
    else:
        transformer, model = mlm.build(bert_config, checkpoint, cfg)
        columns, metric, held_out_score = mlm.HISTORY_COLUMNS, 'held-out acc', 'masked_acc'
    mlm.compile_pretraining(model, cfg, total_steps=cfg.epochs * steps)

    fingerprint = {'train': [os.path.abspath(f) for f in args.train], 'texts': [os.path.abspath(f) for f in args.texts],
                   'max_samples': args.max_samples, 'architecture': bert_config,
                   'vocab': os.path.abspath(vocab_path), 'init': args.init and os.path.abspath(args.init),
                   'config': config.settings_of(cfg, 'pretraining')}  # epochs and patience may grow
    run = run_lib.Run(args.out, fingerprint, {'model': model, 'optimizer': model.optimizer}, args.resume,
                      columns, metric=metric, keep='last' if cfg.objective == 'rtd' else 'best')
    held_out_data = masker.batches(held_out_ids, cfg.batch_size, cfg.seed + 1)  # the same masks every epoch

    def evaluate(model):
        scores = model.evaluate(held_out_data, verbose=0, return_dict=True)
        lr = float(model.schedule(model.optimizer.iterations))  # the rate of the last step
        return scores[held_out_score], {**{'val_' + name: value for name, value in scores.items()},
                                        'lr': float(f'{lr:.7g}')}

    def save_best(first):
        if first:  # the architecture and vocabulary of the checkpoint beside it
            path.write_json(os.path.join(args.out, path.CONFIG_NAME), bert_config)
            path.atomic_write(os.path.join(args.out, path.VOCAB_NAME),
                              lambda temporary: shutil.copyfile(vocab_path, temporary))
        mlm.write_checkpoint(transformer, os.path.join(args.out, path.CHECKPOINT_NAME))

    if run.finished(cfg.epochs, cfg.patience, args.time_budget):
        print('this run had already finished')
    else:
        train_data = masker.batches(train_ids, cfg.batch_size, cfg.seed, shuffle=True, first_epoch=run.epoch,
                                    epochs=cfg.epochs, group_by_length=cfg.group_by_length)
        callbacks = run.callbacks(cfg.epochs, steps, evaluate, save_best, cfg.patience, args.time_budget,
                                  budget_decay=model.schedule.budget_spent.assign if cfg.budget_decay else None)
        model.fit(train_data, epochs=cfg.epochs, initial_epoch=run.epoch, steps_per_epoch=steps,
                  callbacks=callbacks, verbose=0)
    print(f'pretrained checkpoint: {args.out} ({metric} {run.best:.4f}); '
          f'fine-tune with: python train.py --pretrained {args.out}')
    return np.float64(run.best)


if __name__ == '__main__':
    config.run_main(main)
