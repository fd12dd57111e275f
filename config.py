"""Settings: the one source of truth, and the command-line flags that override them.

The settings are dataclasses, one per concern (data, model, fine-tuning, pretraining,
inference, and the run's length and devices), each field with its default, help and accepted
values beside it (`setting`); `Config` inherits them all, flat, for every module. A training
run's resume fingerprint is the settings of the concerns that shape it (`settings_of`), so a
setting added to another concern leaves an interrupted run resumable; a fine-tuning or
pretraining setting added later joins it only when it is on (`LaterFineTuningSettings`,
`LaterPretrainingSettings`), so earlier runs still resume.

Each script asks for the flags it uses with `add_flags(parser, 'maxlen', ...)`, so a value is
never written twice. Every command parses with `ArgumentParser`, so a bad flag is answered
the same way everywhere: one line, `error: --flag: reason`, exit status 1. A concept has one
flag name in every command (docs/design.md, "Flags"); a renamed flag's older name is an alias
that still parses but is not shown.

Recipes (configs/*.toml) are files of flags: one section per command ([pretrain], [train],
[evaluate]), each key one of its flags with underscores (`encoder_lr = 1e-4`,
`tune_thresholds = true`, `input = "data/sample-train.txt"`; paths from the current folder,
as on the command line). `add_config_flag` gives a command `--config FILE`, whose section sets
the flags' defaults, so a flag given on the command line overrides the file; multilabel/recipe.py runs
the sections in turn. A key no flag has, or a value its flag would refuse, is one line naming
the file and the key.
No TensorFlow here, so `--help` stays instant.
"""
import argparse
import contextlib
import os
import sys
import tomllib
from dataclasses import dataclass, field, fields


class InputError(ValueError):
    """A problem with the user's files or flags: reported in one line, without a traceback."""


def interactive():
    """Live progress bars only on a terminal: logs, pipes and nohup get one line per epoch."""
    return sys.stderr.isatty()


def run_main(main):
    """Run a script's main(); an InputError ends it with `error: ...` on stderr and exit status 1."""
    try:
        main()
    except InputError as error:
        sys.exit(f'error: {error}')


_program = None  # the name usage lines give the command; None: the script's own file name


@contextlib.contextmanager
def program(name):
    """Inside the block, the commands' usage lines say `name` (main.py runs `main.py train`)."""
    global _program
    previous, _program = _program, name
    try:
        yield
    finally:
        _program = previous


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the suite's rule for bad flags: an InputError (one line, exit status 1 through
    run_main) instead of the usage text and exit status 2; and the checks between flags."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('prog', _program)
        self.aliases = {}  # {an older name of a flag: the action it still parses as}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, aliases=(), **kwargs):
        """argparse's, and `aliases`: older names of the flag that still parse as it, so an old
        command line keeps working, but that --help does not show (one name per concept)."""
        action = super().add_argument(*args, **kwargs)
        for old in aliases:
            if old in self._option_string_actions:
                raise ValueError(f'{old}: already a flag')
            # Parsing looks flags up here; --help lists action.option_strings, which lack it.
            self._option_string_actions[old] = action
            self.aliases[old] = action
        return action

    def error(self, message):
        raise InputError(f'{message.removeprefix("argument ")} (see {self.prog} --help)')

    def parse_known_args(self, args=None, namespace=None):
        if _building:
            raise _Built(self)
        section = getattr(self, 'recipe_section', None)
        if section:  # the file's values fill the namespace first: a flag on the command line replaces them
            first = ArgumentParser(add_help=False, prog=self.prog)
            first.add_argument('--config')
            recipe = first.parse_known_args(args)[0].config
            if recipe:
                namespace = namespace or argparse.Namespace()
                for dest, value in recipe_section(self, recipe, section).items():
                    if not hasattr(namespace, dest):
                        setattr(namespace, dest, value)
        parsed, rest = super().parse_known_args(args, namespace)
        # Truncated texts have no windows: a stride there would be ignored without a word.
        if getattr(parsed, 'stride', 0) and getattr(parsed, 'long_text', None) != 'chunk':
            self.error(f'--stride {parsed.stride}: means something only with --long-text chunk')
        return parsed, rest


def setting(default, help, choices=None, limit=None, shown_as=None, aliases=None, kind=None):
    """A settings field: its default, the help of its flag and the values the flag accepts, side by side.

    choices: the values it takes; shown_as: {value: the spelling --help shows for it} (the value
    is still accepted); aliases: {an older spelling, still accepted, not shown: the value};
    limit: (test, what the error says the value must be) for a number; kind: the type of a
    value given, where the default (None: unset) does not say it.
    """
    return field(default=default, metadata={'help': help, 'choices': choices, 'limit': limit, 'kind': kind,
                                            'shown_as': shown_as or {}, 'aliases': aliases or {}})


# One dataclass per concern. A run's resume fingerprint is the fields of the concerns that shape
# it (`shaping`): a field added to, or re-defaulted in, another concern leaves it resumable.

@dataclass
class DataSettings:
    """How texts become batches: shared by fine-tuning and pretraining."""
    maxlen: int = setting(200, 'maximum tokens per text, [CLS] and [SEP] included; longer texts are truncated',
                          limit=(lambda v: v >= 3, 'at least 3 ([CLS], one token, [SEP])'))
    batch_size: int = setting(64, 'samples per batch (global batch when several devices train)',
                              limit=(lambda v: v >= 1, 'at least 1'))
    valid_ratio: float = setting(0.1, 'fraction of the training file held out as validation split',
                                 limit=(lambda v: 0 <= v < 1, 'at least 0 and less than 1'))
    group_by_length: int = setting(0, 'training batches: sort each run of N batches worth of shuffled texts by length, '
                                      'cut it into batches and shuffle those, so a batch pads little (same batches per '
                                      'epoch; 0: off)', limit=(lambda v: v >= 0, '0 (off) or more'))
    seed: int = setting(42, 'random seed (validation split, shuffling, initialisation)')


@dataclass
class ModelSettings:
    """The encoder a training run starts from, and the dtype policy it computes in."""
    model_size: str = setting('small', 'pretrained model under pretrained/: small (L-6/H-384) or base (L-12/H-768)',
                              choices=('small', 'base'))
    # The values are Keras' policy names (scale.set_precision, the resume fingerprints of earlier
    # runs); --help spells them as the inference --precision does.
    precision: str = setting('float32', 'training precision: float32, float16 (Keras mixed_float16: GPUs), bfloat16 '
                                        '(mixed_bfloat16: CPUs with AVX512-BF16 or AMX, TPUs, recent GPUs; emulated and '
                                        'slower than float32 elsewhere) or auto (bfloat16 where the hardware computes '
                                        'it, else float32); the head and the loss stay float32',
                             choices=('float32', 'mixed_float16', 'mixed_bfloat16', 'auto'),
                             shown_as={'mixed_float16': 'float16', 'mixed_bfloat16': 'bfloat16'})


@dataclass
class FineTuningSettings:
    """The classifier and how train.py teaches it."""
    encoder_lr: float = setting(5e-5, 'learning rate of the RoFormer-v2 encoder', limit=(lambda v: v > 0, 'more than 0'))
    # The randomly initialised head learns faster than the pretrained encoder.
    head_lr: float = setting(1e-3, 'learning rate of the classification head', limit=(lambda v: v > 0, 'more than 0'))
    ema_momentum: float = setting(0.999, 'momentum of the exponential moving average of the weights',
                                  limit=(lambda v: 0 <= v < 1, 'at least 0 and less than 1'))
    fgm_epsilon: float = setting(0.5, 'FGM adversarial perturbation size on Embedding-Token; 0 disables FGM',
                                 limit=(lambda v: v >= 0, '0 (off) or more'))
    # 0 would predict every label; 1 predicts none, so with the top-1 fallback exactly the best one.
    threshold: float = setting(0.5, 'sigmoid score a label must pass to be predicted, more than 0 and at most 1 (1: no '
                                    'score passes, so the top-1 fallback gives each text its best label)',
                               limit=(lambda v: 0 < v <= 1, 'more than 0 and at most 1'))
    top1_fallback: bool = setting(True, 'when no label passes the threshold, predict the best-scoring one')
    dropout: float = setting(0.1, "dropout rate before the cls head's Dense layer (the cnn head has its seed's 0.2)",
                             limit=(lambda v: 0 <= v < 1, 'at least 0 and less than 1'))
    head: str = setting('cls', "classification head: cls ([CLS] vector -> Dense) or cnn (the seed's head: [CLS] + "
                               'Conv1D kernels 3/4/5 with masked max pooling -> Dense 256 -> Dense)',
                        choices=('cls', 'cnn'))
    loss: str = setting('bce', 'training loss: bce (binary cross-entropy), focal (binary focal loss, alpha 0.25, gamma '
                               "2) or zlpr (Su 2020's multi-label categorical cross-entropy, bert4keras' "
                               'multilabel_categorical_crossentropy, on the logits; its decision logit > 0 is '
                               'sigmoid > 0.5)', choices=('bce', 'focal', 'zlpr'))
    pos_weight: str = setting('none', 'weight of the positive term of each label in the bce/focal loss: none; auto '
                                      "(sqrt of the most frequent training label's count over this label's count, "
                                      'capped by --pos-weight-cap: rare labels count more); or a JSON file {label: '
                                      'weight} (missing labels 1); saved as pos_weights.json')
    pos_weight_cap: float = setting(10.0, 'largest positive weight --pos-weight auto gives a label',
                                    limit=(lambda v: v >= 1, 'at least 1'))
    # Opt-in: on the real corpus it raised validation, not test, exact match (BENCHMARKS.md).
    tune_thresholds: bool = setting(False, 'after training, tune one threshold per label on the validation split and '
                                           'save them beside the weights (evaluate/predict use them unless '
                                           '--threshold is given)')


@dataclass
class LaterFineTuningSettings:
    """Fine-tuning settings added after runs had been saved, each off by default: one shapes a run
    only when it is on, so the fingerprints of the runs saved before it existed still match."""
    rdrop_alpha: float = setting(0.0, 'R-Drop weight: every step runs each batch twice with other dropout masks and '
                                      "adds this times the symmetric KL divergence of the two passes' scores "
                                      '(averaged over labels, as the loss is); doubles the cost of a step; 0 disables '
                                      'R-Drop', limit=(lambda v: v >= 0, '0 (off) or more'))
    joined_share: float = setting(0.0, 'add this share of extra training samples, each two training texts joined '
                                       "into one and labelled with both texts' labels (pairs that would pass maxlen "
                                       'tokens are skipped), drawn once with --seed; 0 disables it',
                                  limit=(lambda v: v >= 0, '0 (off) or more'))
    encoder_dropout: float = setting(None, 'dropout rate inside the encoder (hidden and attention) while '
                                           "fine-tuning; None: the rates of the checkpoint's bert_config.json",
                                     limit=(lambda v: 0 <= v < 1, 'at least 0 and less than 1'), kind=float)


@dataclass
class DistillationSettings:
    """How train.py --teacher mixes the teachers' scores into the targets (multilabel/teacher.py).
    They shape a run only when it has teachers, so its fingerprint holds them only then."""
    teacher_weight: float = setting(0.5, "with --teacher: the teachers' share of each training target (the text's "
                                         "labels have the rest); 1: the teachers' sigmoid scores alone",
                                    limit=(lambda v: 0 < v <= 1, 'more than 0 and at most 1'))
    tfidf_beta: float = setting(8.0, 'with --teacher tfidf: the weight of the TF-IDF SVM margins beside the model '
                                     "teachers' logits", limit=(lambda v: v > 0, 'more than 0'))


@dataclass
class PretrainingSettings:
    """pretrain.py's objective and optimizer (masked language model or replaced-token detection)."""
    mlm_lr: float = setting(1e-3, 'peak learning rate of the MLM pretraining (AdamW), after the warm-up',
                            limit=(lambda v: v > 0, 'more than 0'))
    warmup: float = setting(0.06, 'share of the planned steps (epochs x batches) spent warming the learning rate up '
                                  'from 0; it then decays linearly to 0 at the last planned step',
                            limit=(lambda v: 0 <= v < 1, 'at least 0 and less than 1'))
    weight_decay: float = setting(0.01, "AdamW's decoupled weight decay during pretraining",
                                  limit=(lambda v: v >= 0, '0 or more'))
    mask_rate: float = setting(0.15, 'share of the tokens the MLM predicts (of those: 80%% [MASK], 10%% a random '
                                     'token, 10%% unchanged)', limit=(lambda v: 0 < v < 1, 'more than 0 and less than 1'))
    # Short budgets underfit, so no dropout learns faster.
    mlm_dropout: float = setting(0.0, 'dropout inside the encoder while pretraining (the written bert_config.json '
                                      "keeps the architecture's own rate for fine-tuning)",
                                 limit=(lambda v: 0 <= v < 1, 'at least 0 and less than 1'))
    objective: str = setting('mlm', 'pretraining task: mlm (predict the masked tokens) or rtd (ELECTRA: a small '
                                    'generator fills the masked tokens in, the model written learns for every token '
                                    'whether it was replaced)', choices=('mlm', 'rtd'))
    generator_size: float = setting(0.25, "rtd: the generator's hidden size as a share of the model's (same depth, "
                                          'shared embeddings)')
    rtd_weight: float = setting(50.0, "rtd: weight of the replaced-token loss beside the generator's MLM loss")  # ELECTRA: 50


@dataclass
class LaterPretrainingSettings:
    """Pretraining settings added after checkpoints had been written, each off by default (as
    LaterFineTuningSettings): one shapes a run only when it is on."""
    # A character model: most Chinese words are two or more characters, and masking one of them
    # alone lets its neighbours give it away.
    mask_span: int = setting(1, 'longest run of consecutive tokens masked together (1: single tokens, as BERT; N: '
                                'spans of 1 to N tokens, shorter ones likelier (N, N-1, ..., 1), as MacBERT\'s n-gram '
                                'masking with 4); about --mask-rate of the tokens are masked either way',
                             limit=(lambda v: 1 <= v <= 10, 'from 1 to 10'))
    # The same idea with a segmenter's words (Chinese BERT-wwm): a dependency of its own, jieba.
    whole_word_masking: bool = setting(False, "mask whole words (jieba's segmentation; a Latin word's pieces "
                                              'together): each word is masked with all its tokens or not at all, '
                                              'about --mask-rate of the tokens either way; needs jieba')


@dataclass
class InferenceSettings:
    """How a trained model is used, or finished after its last epoch (--calibration): never how
    its epochs train (training always truncates)."""
    inference_precision: str = setting('auto', 'inference precision: auto (bfloat16 on CPUs with AVX512-BF16 or AMX '
                                               'and on GPUs of compute capability 8.0 or more, else float32), float32, '
                                               'bfloat16 (Keras mixed_bfloat16), or int8 (TFLite dynamic-range '
                                               'quantization; docs/inference.md)',
                                       choices=('auto', 'float32', 'bfloat16', 'int8'),
                                       aliases={'mixed_bfloat16': 'bfloat16'})
    long_text: str = setting('truncate', 'texts longer than maxlen tokens: truncate (keep the first maxlen) or chunk '
                                         '(windows of maxlen tokens, --stride apart; a label scores its highest window)',
                             choices=('truncate', 'chunk'))
    stride: int = setting(0, 'with --long-text chunk: tokens between the starts of two windows; 0 = half a window',
                          limit=(lambda v: v >= 0, '0 (half a window) or more'))
    calibration: str = setting('temperature', 'after training, scale the logits so the scores mean what they say, '
                                              'fitted on the validation split: temperature (one T, decisions at 0.5 '
                                              'unchanged), per_label (one T per label) or none',
                               choices=('temperature', 'per_label', 'none'))
    ngram_blend: bool = setting(False, 'after training, fit TF-IDF over the token 1-3-grams + a linear SVM per label on '
                                       "the training split and add its margins to the model's logits, weighted by "
                                       'the beta with the best validation exact match (0: the transformer alone); '
                                       'saved in the model folder as ngram.npz, used by every command that loads it')


@dataclass
class RunSettings:
    """How long a training run goes and on which devices: these may change when a run resumes."""
    epochs: int = setting(50, 'maximum number of epochs', limit=(lambda v: v >= 1, 'at least 1'))
    patience: int = setting(5, 'early stopping: epochs without improvement of validation exact match',
                            limit=(lambda v: v >= 1, 'at least 1'))
    # Without it a run the clock ends stops wherever a schedule planned over --epochs stood: a
    # constant rate (fine-tuning), or a decay that had not reached 0 (pretraining).
    budget_decay: bool = setting(False, 'with --time-budget: the learning rate falls linearly to 0 at the end of the '
                                        "budget, resumes included (pretraining: its warm-up and decay follow the "
                                        'further along of the planned steps and the budget spent)')
    strategy: str = setting('auto', 'tf.distribute strategy: auto (multiworker with a TF_CONFIG cluster, mirrored with '
                                    'several GPUs, else default), default (one device), mirrored, multiworker',
                            choices=('auto', 'default', 'mirrored', 'multiworker'))


@dataclass
class Config(DataSettings, ModelSettings, FineTuningSettings, LaterFineTuningSettings, DistillationSettings,
             PretrainingSettings, LaterPretrainingSettings, InferenceSettings, RunSettings):
    """Every setting, flat (`cfg.maxlen`, `cfg.encoder_lr`): what every module reads."""


def shaping(run):
    """The concerns whose settings shape a 'fine-tuning' (train.py) or 'pretraining' (pretrain.py) run."""
    return {'fine-tuning': (DataSettings, ModelSettings, FineTuningSettings),
            'pretraining': (DataSettings, ModelSettings, PretrainingSettings)}[run]


def setting_names(run):
    """The names of the settings that shape `run` (see shaping)."""
    return [item.name for concern in shaping(run) for item in fields(concern)]


def settings_of(cfg, run):
    """{name: value} of the settings of `cfg` that shape `run`: its resume fingerprint, which
    holds the run's later settings only when they are on."""
    later_settings = {'fine-tuning': LaterFineTuningSettings, 'pretraining': LaterPretrainingSettings}[run]
    later = {item.name: getattr(cfg, item.name) for item in fields(later_settings)
             if getattr(cfg, item.name) != item.default}
    return {**{name: getattr(cfg, name) for name in setting_names(run)}, **later}


def _metadata(name):
    return next(item.metadata for item in fields(Config) if item.name == name)


# {setting: its values}, for the code that checks a value itself (predict.Classifier, the benchmarks).
CHOICES = {item.name: item.metadata['choices'] for item in fields(Config) if item.metadata['choices']}

# The values a flag of a single command accepts: (test, what the error says it must be), like a
# setting's `limit`. Checked as the flag is parsed, so nonsense is refused before any file is
# read or any model loads.
LIMITS = {
    'max_samples': (lambda v: v >= 1, 'at least 1'),
    'time_budget': (lambda v: v > 0, 'more than 0 minutes'),
    'layers': (lambda v: v >= 1, 'at least 1'),
    'hidden': (lambda v: v >= 1, 'at least 1'),
    'heads': (lambda v: v >= 1, 'at least 1'),
    'port': (lambda v: 1 <= v <= 65535, 'a port number from 1 to 65535'),
    'max_batch': (lambda v: v >= 1, 'at least 1'),
    'max_wait_ms': (lambda v: 0 <= v <= 60_000, 'from 0 to 60000 milliseconds'),
    'max_body_bytes': (lambda v: v >= 1, 'at least 1'),
    'max_texts': (lambda v: v >= 1, 'at least 1'),
    'max_text_chars': (lambda v: v >= 1, 'at least 1'),
    'max_queue': (lambda v: v >= 1, 'at least 1'),
    'timeout_s': (lambda v: 0 < v <= 3600, 'more than 0 and at most 3600 seconds'),
    'folds': (lambda v: v >= 2, 'at least 2'),
    'similarity': (lambda v: 0 < v <= 1, 'more than 0 and at most 1'),
    'min_count': (lambda v: v >= 1, 'at least 1'),
    'min_f1': (lambda v: 0 <= v <= 1, 'from 0 to 1'),
    'top': (lambda v: v >= 0, '0 or more'),
}


def folder(text):
    """An argparse type of a folder flag: a file of that name is refused in one line, before
    anything loads, rather than a traceback once the command tries to read or write in it."""
    if os.path.isfile(text):
        raise argparse.ArgumentTypeError(f'{text} is a file, not a folder')
    return text


def limited(kind, name):
    """An argparse type: the flag's text as `kind`, refused unless the limit of the setting `name`
    (or LIMITS[name], a flag of one command) holds for it."""
    holds, words = LIMITS[name] if name in LIMITS else _metadata(name)['limit']

    def parse(text):
        value = kind(text)
        if not holds(value):  # NaN fails every test, so it is refused too
            raise argparse.ArgumentTypeError(f'must be {words}, not {text}')
        return value
    parse.__name__ = kind.__name__  # argparse's "invalid int value: 'x'" names the type
    return parse


# Where a Config field means something else in a command than in train.py.
PRETRAIN_HELP = {
    'model_size': 'architecture and vocabulary to pretrain, from pretrained/: small (L-6/H-384) or base '
                  '(L-12/H-768); --layers, --hidden and --heads change the architecture',
    'batch_size': 'texts per batch',
    'patience': 'early stopping: epochs without improvement of the held-out masked-token accuracy',
    'valid_ratio': "share of each input file held out to measure masked-token accuracy (on a labelled file, "
                   "train.py's validation split with the same --seed)",
    'seed': 'random seed (held-out split, shuffling, masks, initialisation)',
    'precision': 'training precision: float32, float16 (Keras mixed_float16: GPUs), bfloat16 (mixed_bfloat16: '
                 'CPUs with AVX512-BF16 or AMX, TPUs, recent GPUs; emulated and slower than float32 elsewhere) or '
                 'auto (bfloat16 where the hardware computes it, else float32); the MLM logits and the loss stay '
                 'float32',
}
SCORING_HELP = {'batch_size': 'texts scored per batch'}  # evaluate.py, predict.py

DEFAULTS = Config()


def chosen(name):
    """An argparse type for the setting `name` with choices: the text as the value it stands for
    (a spelling of shown_as or aliases included), refused unless it is one of them."""
    meta = _metadata(name)
    spellings = {**{shown: value for value, shown in meta['shown_as'].items()}, **meta['aliases'],
                 **{value: value for value in meta['choices']}}
    shown = shown_choices(name)

    def parse(text):
        if text not in spellings:
            raise argparse.ArgumentTypeError(f'must be one of {", ".join(shown)}, not {text!r}')
        return spellings[text]
    parse.__name__ = 'str'  # a string to a recipe (recipe_value)
    return parse


def shown_choices(name):
    """The values of the setting `name` as --help spells them."""
    meta = _metadata(name)
    return [meta['shown_as'].get(value, value) for value in meta['choices']]


def add_setting(parser, flag, name, help=None, **kwargs):
    """The flag of the setting `name`: its default, help (or `help`) and accepted values from its field."""
    meta = _metadata(name)
    help = (help or meta['help']) + ' (default: %(default)s)'
    default = kwargs.pop('default', getattr(DEFAULTS, name))
    if isinstance(getattr(DEFAULTS, name), bool):
        return parser.add_argument(flag, dest=name, default=default, action=argparse.BooleanOptionalAction,
                                   help=help, **kwargs)
    if meta['choices']:
        kind, kwargs['metavar'] = chosen(name), '{' + ','.join(shown_choices(name)) + '}'
        if default in meta['shown_as']:
            default = meta['shown_as'][default]  # --help's default in the spelling it shows
    else:
        kind = meta['kind'] or type(default)
        kind = limited(kind, name) if meta['limit'] else kind
    action = parser.add_argument(flag, dest=name, type=kind, default=default, help=help, **kwargs)
    action.shown_as = meta['shown_as']  # multilabel/recipe.py writes a value as --help spells it
    return action


def add_flags(parser, *names, helps=None):
    """Add --flag-name options for the named Config fields, defaults, help and accepted values from
    their fields. helps: {name: help} where a flag means something of its own in this command
    (PRETRAIN_HELP)."""
    for name in names:
        add_setting(parser, '--' + name.replace('_', '-'), name, (helps or {}).get(name))


def add_input_file_flag(parser):
    """--input FILE of a command that reads one labelled file (stats, audit); the file given
    alone, its older spelling, still works (take_input_file)."""
    parser.add_argument('--input', metavar='FILE', help='labelled file (`label1|label2 text` lines)')
    parser.add_argument('file', nargs='?', help=argparse.SUPPRESS)


def take_input_file(parser, args):
    """args.file: the parsed --input FILE, or the FILE given alone."""
    if args.input and args.file:
        parser.error(f'give the file once: --input {args.input}')
    args.file = args.input = args.input or args.file
    if not args.file:
        parser.error('the following arguments are required: --input FILE')


def add_output_flags(parser, finished):
    """--resume and --overwrite of a training command whose output folder may already hold a
    finished `finished` (run.refuse_finished_output refuses such a folder without one of them)."""
    parser.add_argument('--resume', action='store_true',
                        help='continue an interrupted run from its last completed epoch (same command otherwise)')
    parser.add_argument('--overwrite', action='store_true',
                        help=f'start afresh in an output folder that holds a finished {finished}, replacing it '
                             '(without --overwrite or --resume such a folder is refused)')


def add_output_file_flags(parser, help, required=False):
    """--out FILE and its --overwrite, of a command that writes one file (refuse_replacing checks them)."""
    parser.add_argument('--out', metavar='FILE', required=required, help=help)
    parser.add_argument('--overwrite', action='store_true', help='replace --out if it exists')


def refuse_writing_into_an_input(out, flag, inputs):
    """InputError when the output `out` (a file or folder given by `flag`) is one of the run's
    inputs, [(their flag, path)]: writing it would replace what the run reads, --overwrite or not."""
    for input_flag, source in inputs:
        if source and os.path.exists(source) and os.path.exists(out) and os.path.samefile(source, out):
            raise InputError(f'{flag} {out}: the {input_flag} this run reads; choose another {flag}')


def refuse_replacing(out, overwrite, read):
    """An output file never replaces the --input file the command reads, and an existing one only
    with --overwrite: called before anything loads, so nothing is lost and no time is spent."""
    refuse_writing_into_an_input(out, '--out', [('--input', read)])
    if os.path.exists(out) and not overwrite:
        raise InputError(f'{out}: already exists; pass --overwrite to replace it')


def add_trained_model_flags(parser, weights_dir):
    """--weights, and the decision-rule overrides of a trained model (evaluate, predict, serve, export)."""
    parser.add_argument('--weights', default=weights_dir, type=folder, metavar='DIR', help='trained model folder (default: %(default)s)')
    threshold = _metadata('threshold')['help']
    parser.add_argument('--threshold', type=limited(float, 'threshold'), default=None,
                        help=threshold + f' (default: the value saved with the model, normally {DEFAULTS.threshold})')
    parser.add_argument('--top1-fallback', default=None, action=argparse.BooleanOptionalAction,
                        help=_metadata('top1_fallback')['help'] + ' (default: as saved with the model)')


def add_inference_precision_flag(parser):
    """--precision of the inference scripts (train.py's --precision is the training policy; both
    spell their values alike)."""
    add_setting(parser, '--precision', 'inference_precision')


def from_args(args):
    """A Config with every field the parsed arguments carry, the rest at their defaults."""
    values = {field.name: getattr(args, field.name) for field in fields(Config) if hasattr(args, field.name)}
    return Config(**values)


class _Built(Exception):
    """parser_of's stop, carrying the parser a command built."""


_building = False  # parser_of: parsers hand themselves over instead of parsing


def parser_of(parse_args):
    """The parser a command's parse_args builds, taken before it parses anything: multilabel/recipe.py checks
    a section against the flags of its command, and builds that command's flags."""
    global _building
    _building = True
    try:
        parse_args([])
    except _Built as built:
        return built.args[0]
    finally:
        _building = False
    raise RuntimeError(f'{parse_args.__module__}.parse_args does not parse with config.ArgumentParser')


RECIPE_SECTIONS = ('pretrain', 'train', 'evaluate')
NOT_IN_RECIPES = ('help', 'config', 'resume', 'overwrite')  # how one run starts, not what it trains


def add_config_flag(parser, section):
    """--config FILE: the recipe's [section] sets the defaults of this parser's flags (see above)."""
    parser.add_argument('--config', metavar='FILE',
                        help=f'recipe file (TOML, e.g. configs/self-pretrained.toml) whose [{section}] section '
                             'sets these flags, keys named like them with underscores; flags given here override it')
    parser.recipe_section = section


def read_recipe(file):
    """{section: {key: value}} of a recipe file; InputError naming the file when it cannot be read,
    is not TOML or has a section of no command."""
    try:
        with open(file, 'rb') as f:
            recipe = tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f'{file}: no such file') from None
    except IsADirectoryError:
        raise InputError(f'{file}: a folder, not a file') from None
    except UnicodeDecodeError:
        raise InputError(f'{file}: not valid UTF-8') from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f'{file}: not valid TOML: {error}') from None
    for name, section in recipe.items():
        if name not in RECIPE_SECTIONS or not isinstance(section, dict):
            raise InputError(f'{file}: {name}: not a section of a recipe ([{"], [".join(RECIPE_SECTIONS)}])')
    return recipe


def long_flag(action):
    """--name of an argparse action (the first of its long option strings)."""
    return next(option for option in action.option_strings if option.startswith('--'))


def recipe_keys(parser):
    """{key: argparse action} of the flags a recipe may set for `parser`: --encoder-lr is encoder_lr."""
    named = [(long_flag(action), action) for action in parser._actions if action.option_strings]
    named += list(getattr(parser, 'aliases', {}).items())  # a recipe of the older names still reads
    return {flag[2:].replace('-', '_'): action for flag, action in named
            if flag.startswith('--') and action.dest not in NOT_IN_RECIPES}


def recipe_section(parser, file, section):
    """{dest: value} that the recipe `file`'s [section] gives `parser`'s flags, each value checked
    as the flag's text would be; InputError `FILE: [section] key: reason` for a key no flag has
    or a value of the wrong type, out of range or not among the choices."""
    values = {}
    for key, value in read_recipe(file).get(section, {}).items():
        dest, checked = recipe_entry(parser, section, key, value, f'{file}: [{section}] {key}')
        values[dest] = checked
    return values


def recipe_entry(parser, section, key, value, where):
    """(dest, checked value) of one recipe key of [section] for `parser`'s flags (a key of the file, or
    main.py recipe --set); InputError `where: reason` for a key no flag has or a value recipe_value refuses."""
    keys = recipe_keys(parser)
    if key not in keys:
        raise InputError(f'{where}: {section}.py has no flag --{key.replace("_", "-")}')
    return keys[key].dest, recipe_value(keys[key], value, where)


def recipe_value(action, value, where):
    """A recipe's value for `action`'s flag, checked: TOML's type must be the flag's (a whole
    number is also a float; a flag of several values takes a list, or one string), then the
    flag's own test (LIMITS) and choices."""
    if action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise InputError(f'{where}: must be true or false, not {value!r}')
        return value
    several = action.nargs in ('+', '*')
    if several and isinstance(value, str):
        value = [value]
    kind = getattr(action.type, '__name__', 'str')  # limited() keeps the name of its type
    accepted, words = {'int': (int, 'a whole number'), 'float': ((int, float), 'a number')}.get(kind, (str, 'a string'))
    if several and not isinstance(value, list):
        raise InputError(f'{where}: must be a list, not {value!r}')
    checked = []
    for item in value if several else [value]:
        if isinstance(item, bool) or not isinstance(item, accepted):
            raise InputError(f'{where}: must be {words}, not {item!r}')
        try:
            item = action.type(str(item)) if action.type else item
        except (argparse.ArgumentTypeError, ValueError) as error:
            raise InputError(f'{where}: {error}') from None
        if action.choices and item not in action.choices:
            raise InputError(f'{where}: must be one of {", ".join(map(str, action.choices))}, not {item!r}')
        checked.append(item)
    return checked if several else checked[0]
