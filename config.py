"""Hyper-parameters: the one source of truth, and the command-line flags that override them.

Each script asks for the flags it uses with `add_flags(parser, 'maxlen', ...)`; the
default, the help text and the values a flag accepts (LIMITS) come from here, so a value is
never written twice. Every command parses with `ArgumentParser`, so a bad flag is answered
the same way everywhere: one line, `error: --flag: reason`, exit status 1.

Recipes (configs/*.toml) are files of flags: one section per command ([pretrain], [train],
[evaluate]), each key one of its flags with underscores (`encoder_lr = 1e-4`,
`tune_thresholds = true`, `train = "data/sample-train.txt"`; paths from the current folder,
as on the command line). `add_config_flag` gives a command `--config FILE`, whose section sets
the flags' defaults, so a flag given on the command line overrides the file; multilabel/recipe.py runs
the sections in turn. A key no flag has, or a value its flag would refuse, is one line naming
the file and the key.
No TensorFlow here, so `--help` stays instant.
"""
import argparse
import contextlib
import sys
import tomllib
from dataclasses import dataclass, fields


class InputError(ValueError):
    """A problem with the user's files or flags: reported in one line, without a traceback."""


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
        super().__init__(*args, **kwargs)

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


@dataclass
class Config:
    model_size: str = 'small'      # pretrained/ folder: small (L-6/H-384) or base (L-12/H-768)
    maxlen: int = 200              # tokens per text, [CLS] and [SEP] included
    batch_size: int = 64
    epochs: int = 50
    encoder_lr: float = 5e-5       # fine-tuning rate of the pretrained encoder
    head_lr: float = 1e-3          # the randomly initialised head learns faster
    ema_momentum: float = 0.999
    fgm_epsilon: float = 0.5       # size of the adversarial step on the token embeddings; 0 turns FGM off
    threshold: float = 0.5         # a label is predicted when its sigmoid score passes this
    top1_fallback: bool = True     # every sample has a label: when none passes, take the best one
    inference_precision: str = 'auto'  # predict/evaluate/serve/export --precision: auto, float32, bfloat16, int8
    patience: int = 5              # epochs without a better validation exact match before stopping
    valid_ratio: float = 0.1       # share of the training file held out for early stopping
    dropout: float = 0.1           # dropout before the head
    head: str = 'cls'              # cls: [CLS] -> Dense; cnn: the seed's [CLS] + Conv1D 3/4/5 head
    loss: str = 'bce'              # bce: binary cross-entropy; focal: binary focal loss (alpha 0.25, gamma 2);
                                   # zlpr: Su's multi-label categorical cross-entropy on the logits
    pos_weight: str = 'none'       # bce/focal: none, auto (per-label weights of the positives from the training
                                   # frequencies), or a JSON file {label: weight}
    pos_weight_cap: float = 10.0   # auto: the largest positive weight a rare label gets
    tune_thresholds: bool = False  # after training, fit one threshold per label on the validation split (opt-in:
                                   # on the real corpus it raised validation, not test, exact match; BENCHMARKS.md)
    calibration: str = 'temperature'  # after training, fit on the validation split: temperature (one T),
                                   # per_label (one T per label) or none; applied wherever scores leave the model
    group_by_length: int = 0       # training batches: sort each run of N batches' texts by length (0: off)
    seed: int = 42
    strategy: str = 'auto'         # tf.distribute: auto, default, mirrored or multiworker (multilabel/scale.py)
    precision: str = 'float32'     # Keras dtype policy: float32, mixed_float16 (GPU) or mixed_bfloat16
    long_text: str = 'truncate'    # truncate: the first maxlen tokens; chunk: overlapping windows of maxlen, scores max-pooled per text
    stride: int = 0               # chunk: tokens between window starts; 0 = half a window
    # pretrain.py only (masked-language-model pretraining):
    mlm_lr: float = 1e-3           # peak learning rate of AdamW, reached after the warm-up
    warmup: float = 0.06           # share of the planned steps spent warming up; then linear decay to 0
    weight_decay: float = 0.01     # AdamW's decoupled weight decay
    mask_rate: float = 0.15        # share of tokens to predict: 80% [MASK], 10% a random token, 10% kept
    mlm_dropout: float = 0.0       # encoder dropout while pretraining (short budgets underfit; 0 learns faster)
    objective: str = 'mlm'         # mlm: masked language model; rtd: ELECTRA's replaced-token detection
    generator_size: float = 0.25   # rtd: the generator's width as a share of the discriminator's
    rtd_weight: float = 50.0       # rtd: weight of the discriminator's loss beside the generator's (ELECTRA: 50)


PRETRAINING_ONLY = ('mlm_lr', 'warmup', 'weight_decay', 'mask_rate', 'mlm_dropout', 'objective', 'generator_size',
                    'rtd_weight')  # not train.py settings
# How a trained model is used (or finished after its last epoch), not how it is trained (training always truncates): left out of
# train.py's resume fingerprint, so a run started before one of them existed still resumes.
INFERENCE_ONLY = ('inference_precision', 'long_text', 'stride', 'calibration')


HELP = {
    'model_size': 'pretrained model under pretrained/: small (L-6/H-384) or base (L-12/H-768)',
    'maxlen': 'maximum tokens per text, [CLS] and [SEP] included; longer texts are truncated',
    'batch_size': 'samples per batch (global batch when several devices train)',
    'epochs': 'maximum number of epochs',
    'encoder_lr': 'learning rate of the RoFormer-v2 encoder',
    'head_lr': 'learning rate of the classification head',
    'ema_momentum': 'momentum of the exponential moving average of the weights',
    'fgm_epsilon': 'FGM adversarial perturbation size on Embedding-Token; 0 disables FGM',
    'threshold': 'sigmoid score a label must pass to be predicted, more than 0 and at most 1 (1: no score passes, '
                 'so the top-1 fallback gives each text its best label)',
    'top1_fallback': 'when no label passes the threshold, predict the best-scoring one',
    'inference_precision': 'inference precision: auto (bfloat16 on CPUs with AVX512-BF16 or AMX and on GPUs of '
                           'compute capability 8.0 or more, else float32), float32, bfloat16 (Keras mixed_bfloat16), '
                           'or int8 (TFLite dynamic-range quantization; docs/inference.md)',
    'patience': 'early stopping: epochs without improvement of validation exact match',
    'valid_ratio': 'fraction of the training file held out as validation split',
    'dropout': 'dropout rate before the classification head',
    'head': "classification head: cls ([CLS] vector -> Dense) or cnn (the seed's head: [CLS] + Conv1D "
            'kernels 3/4/5 with masked max pooling -> Dense 256 -> Dense)',
    'loss': 'training loss: bce (binary cross-entropy), focal (binary focal loss, alpha 0.25, gamma 2) or zlpr '
            "(Su 2020's multi-label categorical cross-entropy, bert4keras' multilabel_categorical_crossentropy, "
            'on the logits; its decision logit > 0 is sigmoid > 0.5)',
    'pos_weight': 'weight of the positive term of each label in the bce/focal loss: none; auto (sqrt of the most '
                  'frequent training label\'s count over this label\'s count, capped by --pos-weight-cap: rare labels '
                  'count more); or a JSON file {label: weight} (missing labels 1); saved as pos_weights.json',
    'pos_weight_cap': 'largest positive weight --pos-weight auto gives a label',
    'calibration': 'after training, scale the logits so the scores mean what they say, fitted on the validation '
                   'split: temperature (one T, decisions at 0.5 unchanged), per_label (one T per label) or none',
    'tune_thresholds': 'after training, tune one threshold per label on the validation split and save them '
                       'beside the weights (evaluate/predict use them unless --threshold is given)',
    'group_by_length': 'training batches: sort each run of N batches worth of shuffled texts by length, cut it '
                       'into batches and shuffle those, so a batch pads little (same batches per epoch; 0: off)',
    'seed': 'random seed (validation split, shuffling, initialisation)',
    'strategy': 'tf.distribute strategy: auto (multiworker with a TF_CONFIG cluster, mirrored with several '
                'GPUs, else default), default (one device), mirrored, multiworker',
    'precision': 'Keras dtype policy: float32, mixed_float16 (GPUs) or mixed_bfloat16 (CPUs with AVX512-BF16, '
                 'TPUs, recent GPUs); the head and the loss stay float32',
    'long_text': 'texts longer than maxlen tokens: truncate (keep the first maxlen) or chunk (windows of maxlen '
                 'tokens, --stride apart; a label scores its highest window)',
    'stride': 'with --long-text chunk: tokens between the starts of two windows; 0 = half a window',
    'mlm_lr': 'peak learning rate of the MLM pretraining (AdamW), after the warm-up',
    'warmup': 'share of the planned steps (epochs x batches) spent warming the learning rate up from 0; '
              'it then decays linearly to 0 at the last planned step',
    'weight_decay': "AdamW's decoupled weight decay during pretraining",
    'mask_rate': 'share of the tokens the MLM predicts (of those: 80%% [MASK], 10%% a random token, 10%% unchanged)',
    'mlm_dropout': 'dropout inside the encoder while pretraining (the written bert_config.json keeps the '
                   "architecture's own rate for fine-tuning)",
    'objective': 'pretraining task: mlm (predict the masked tokens) or rtd (ELECTRA: a small generator fills the '
                 'masked tokens in, the model written learns for every token whether it was replaced)',
    'generator_size': "rtd: the generator's hidden size as a share of the model's (same depth, shared embeddings)",
    'rtd_weight': "rtd: weight of the replaced-token loss beside the generator's MLM loss",
}

# The values a flag accepts: (test, what the error says it must be). Checked as the flag is
# parsed, so nonsense is refused before any file is read or any model loads.
LIMITS = {
    'maxlen': (lambda v: v >= 3, 'at least 3 ([CLS], one token, [SEP])'),
    'batch_size': (lambda v: v >= 1, 'at least 1'),
    'epochs': (lambda v: v >= 1, 'at least 1'),
    'patience': (lambda v: v >= 1, 'at least 1'),
    'encoder_lr': (lambda v: v > 0, 'more than 0'),
    'head_lr': (lambda v: v > 0, 'more than 0'),
    'mlm_lr': (lambda v: v > 0, 'more than 0'),
    'ema_momentum': (lambda v: 0 <= v < 1, 'at least 0 and less than 1'),
    'fgm_epsilon': (lambda v: v >= 0, '0 (off) or more'),
    # 0 would predict every label; 1 predicts none, so with the top-1 fallback exactly the best one.
    'threshold': (lambda v: 0 < v <= 1, 'more than 0 and at most 1'),
    'valid_ratio': (lambda v: 0 <= v < 1, 'at least 0 and less than 1'),
    'dropout': (lambda v: 0 <= v < 1, 'at least 0 and less than 1'),
    'mlm_dropout': (lambda v: 0 <= v < 1, 'at least 0 and less than 1'),
    'pos_weight_cap': (lambda v: v >= 1, 'at least 1'),
    'group_by_length': (lambda v: v >= 0, '0 (off) or more'),
    'stride': (lambda v: v >= 0, '0 (half a window) or more'),
    'warmup': (lambda v: 0 <= v < 1, 'at least 0 and less than 1'),
    'weight_decay': (lambda v: v >= 0, '0 or more'),
    'mask_rate': (lambda v: 0 < v < 1, 'more than 0 and less than 1'),
    # Flags of single commands, checked the same way (`limited`):
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


def limited(kind, name):
    """An argparse type: the flag's text as `kind`, refused unless LIMITS[name] holds for it."""
    holds, words = LIMITS[name]

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
    'precision': 'Keras dtype policy: float32, mixed_float16 (GPUs) or mixed_bfloat16 (CPUs with AVX512-BF16, '
                 'TPUs, recent GPUs); the MLM logits and the loss stay float32',
}
SCORING_HELP = {'batch_size': 'texts scored per batch'}  # evaluate.py, predict.py


CHOICES = {
    'model_size': ('small', 'base'),
    'inference_precision': ('auto', 'float32', 'bfloat16', 'int8'),
    'head': ('cls', 'cnn'),
    'loss': ('bce', 'focal', 'zlpr'),
    'calibration': ('temperature', 'per_label', 'none'),
    'strategy': ('auto', 'default', 'mirrored', 'multiworker'),
    'precision': ('float32', 'mixed_float16', 'mixed_bfloat16'),
    'long_text': ('truncate', 'chunk'),
    'objective': ('mlm', 'rtd'),
}

DEFAULTS = Config()


def add_flags(parser, *names, helps=None):
    """Add --flag-name options for the named Config fields, defaults and help from here.

    helps: {name: help} where a flag means something of its own in this command (PRETRAIN_HELP).
    """
    types = {field.name: field.type for field in fields(Config)}
    helps = {**HELP, **(helps or {})}
    for name in names:
        flag = '--' + name.replace('_', '-')
        default = getattr(DEFAULTS, name)
        if types[name] in (bool, 'bool'):
            parser.add_argument(flag, dest=name, default=default, action=argparse.BooleanOptionalAction,
                                help=helps[name] + ' (default: %(default)s)')
        else:
            kind = limited(type(default), name) if name in LIMITS else type(default)
            parser.add_argument(flag, dest=name, type=kind, default=default, choices=CHOICES.get(name),
                                help=helps[name] + ' (default: %(default)s)')


def add_output_flags(parser, finished):
    """--resume and --overwrite of a training command whose output folder may already hold a
    finished `finished` (run.refuse_finished_output refuses such a folder without one of them)."""
    parser.add_argument('--resume', action='store_true',
                        help='continue an interrupted run from its last completed epoch (same command otherwise)')
    parser.add_argument('--overwrite', action='store_true',
                        help=f'start afresh in an output folder that holds a finished {finished}, replacing it '
                             '(without --overwrite or --resume such a folder is refused)')


def add_trained_model_flags(parser, weights_dir):
    """--weights, and the decision-rule overrides of a trained model (evaluate, predict, serve, export)."""
    parser.add_argument('--weights', default=weights_dir, help='trained model folder (default: %(default)s)')
    parser.add_argument('--threshold', type=limited(float, 'threshold'), default=None,
                        help=HELP['threshold'] + f' (default: the value saved with the model, normally {DEFAULTS.threshold})')
    parser.add_argument('--top1-fallback', default=None, action=argparse.BooleanOptionalAction,
                        help=HELP['top1_fallback'] + ' (default: as saved with the model)')


def add_inference_precision_flag(parser):
    """--precision of the inference scripts (train.py's --precision is the training policy)."""
    parser.add_argument('--precision', dest='inference_precision', default=DEFAULTS.inference_precision,
                        choices=CHOICES['inference_precision'],
                        help=HELP['inference_precision'] + ' (default: %(default)s)')


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
    return {long_flag(action)[2:].replace('-', '_'): action for action in parser._actions
            if action.option_strings and action.dest not in NOT_IN_RECIPES}


def recipe_section(parser, file, section):
    """{dest: value} that the recipe `file`'s [section] gives `parser`'s flags, each value checked
    as the flag's text would be; InputError `FILE: [section] key: reason` for a key no flag has
    or a value of the wrong type, out of range or not among the choices."""
    keys = recipe_keys(parser)
    values = {}
    for key, value in read_recipe(file).get(section, {}).items():
        where = f'{file}: [{section}] {key}'
        if key not in keys:
            raise InputError(f'{where}: {section}.py has no flag --{key.replace("_", "-")}')
        values[keys[key].dest] = recipe_value(keys[key], value, where)
    return values


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
