"""Where files live: the one source of truth for paths, plus atomic file writing.

No TensorFlow here, so `--help` stays instant.
"""
import json
import os
import shutil
import tempfile

ROOT = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(ROOT, 'data')
WEIGHTS_DIR = os.path.join(ROOT, 'weights')
PRETRAINED_DIR = os.path.join(ROOT, 'pretrained')

# The full corpus, when a user puts it in data/; otherwise the bundled sample.
CORPUS_TRAIN = os.path.join(DATA_DIR, 'multi-classification-train.txt')
CORPUS_TEST = os.path.join(DATA_DIR, 'multi-classification-test.txt')
SAMPLE_TRAIN = os.path.join(DATA_DIR, 'sample-train.txt')
SAMPLE_TEST = os.path.join(DATA_DIR, 'sample-test.txt')
SERVE_PAGE = os.path.join(ROOT, 'multilabel', 'page.html')  # the serve command's page at GET /

PRETRAINED_MODELS = {
    'small': 'chinese_roformer-v2-char_L-6_H-384_A-6',
    'base': 'chinese_roformer-v2-char_L-12_H-768_A-12',
}

# Inside a pretrained folder (the official release's names).
CONFIG_NAME = 'bert_config.json'
VOCAB_NAME = 'vocab.txt'
CHECKPOINT_NAME = 'bert_model.ckpt'

# Inside a weights folder: everything evaluate/predict need, without pretrained/.
WEIGHTS_NAME = 'best_weights.h5'  # Keras' HDF5 format: weights by layer name, no configs
LABELS_NAME = 'labels.json'
META_NAME = 'model.json'
THRESHOLDS_NAME = 'thresholds.json'  # {label: threshold} tuned on the validation split (optional)
NGRAM_NAME = 'ngram.npz'  # the n-gram side's TF-IDF and SVM weights, with train.py --ngram-blend (optional)
POS_WEIGHTS_NAME = 'pos_weights.json'  # {label: weight of its positives in the loss}, with train.py --pos-weight
RESUME_DIR = 'resume'             # the last completed epoch's full training state
RESUME_STATE_NAME = 'state.json'  # epoch, best score, early-stopping counter, checkpoint name
HISTORY_NAME = 'history.csv'      # one row per completed epoch: loss, validation exact match, learning rates
TENSORBOARD_DIR = 'tensorboard'   # train.py --tensorboard without a folder
REPORT_NAME = 'report.json'       # evaluate.py: the whole evaluation, read by multilabel/plot.py
REPORT_CSV_NAME = 'report.csv'    # evaluate.py: precision, recall, F1 and support per label
ERRORS_NAME = 'errors.jsonl'      # evaluate.py: one JSON line per wrongly predicted text
PLOTS_DIR = 'plots'               # multilabel/plot.py's pictures, unless --out says otherwise
SAVED_MODEL_DIR = 'saved_model'   # multilabel/export.py's default output, inside the weights folder
LOCK_NAME = '.lock'               # held by the run writing the folder (run.lock); gone when it ends
SELF_PRETRAINED_DIR = os.path.join(PRETRAINED_DIR, 'self')  # pretrain.py's default output


def corpus_train(folder):
    """The training file of a corpus folder (`--data DIR`), named as the real corpus names it."""
    return os.path.join(folder, os.path.basename(CORPUS_TRAIN))


def corpus_test(folder):
    """The test file of a corpus folder (`--data DIR`)."""
    return os.path.join(folder, os.path.basename(CORPUS_TEST))


def default_train_file():
    return CORPUS_TRAIN if os.path.exists(CORPUS_TRAIN) else SAMPLE_TRAIN


def default_test_file():
    return CORPUS_TEST if os.path.exists(CORPUS_TEST) else SAMPLE_TEST


def pretrained_dir(model_size):
    return os.path.join(PRETRAINED_DIR, PRETRAINED_MODELS[model_size])


def atomic_write(path, write):
    """Call write(temporary_path), then rename it onto `path`.

    The rename is atomic, so a crash mid-write leaves the previous file intact, never a
    half-written one. The temporary file sits in the same folder (same file system) and
    keeps the extension, since Keras picks the weights format from it.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base, dot, extension = os.path.basename(path).partition('.')  # 'a.weights.h5' keeps '.weights.h5'
    handle, temporary = tempfile.mkstemp(prefix='.' + base + '.', suffix='.tmp' + dot + extension, dir=folder)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; the final file gets the usual mode
    try:
        write(temporary)
        with open(temporary, 'rb+') as written:
            os.fsync(written.fileno())  # on disk before the rename, so power loss keeps one whole file
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def atomic_write_folder(folder, write):
    """Call write(temporary_folder), then rename it onto `folder`, replacing the folder there.

    The temporary folder is hidden beside `folder` ('.NAME.random.tmp', which run.LITTER
    recognises), on the same file system, so a failed write leaves the previous folder whole;
    the previous folder is moved aside and removed only once the new one stands in its place.
    """
    folder = os.path.abspath(folder)
    parent, name = os.path.split(folder)
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix='.' + name + '.', suffix='.tmp', dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o777 & ~umask)  # mkdtemp makes it private; a server may read it as another user
    aside = None
    try:
        write(temporary)
        if os.path.lexists(folder):  # a folder cannot be renamed onto a full one: the old one steps aside first
            aside = tempfile.mkdtemp(prefix='.' + name + '.old.', suffix='.tmp', dir=parent)
            os.replace(folder, aside)
        os.replace(temporary, folder)
    except BaseException:
        if aside and not os.path.lexists(folder):
            os.replace(aside, folder)  # the new one did not make it: the old one goes back
            aside = None
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    finally:
        if aside:
            shutil.rmtree(aside, ignore_errors=True)


def write_json(path, value):
    def write(temporary):
        with open(temporary, 'w', encoding='utf-8') as f:
            json.dump(value, f, ensure_ascii=False, indent=2)
            f.write('\n')
    atomic_write(path, write)


def read_json(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def resume_state_file(folder):
    """The resume state of the run writing `folder`: its epoch, best score, settings (`run`) and
    `elapsed`, the seconds it trained with its parts before each resume."""
    return os.path.join(folder, RESUME_DIR, RESUME_STATE_NAME)


def read_resume_state(folder):
    return read_json(resume_state_file(folder))
