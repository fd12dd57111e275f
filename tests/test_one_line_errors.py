"""One rule for input errors in every command: `file:line: reason` or `--flag: reason`, exit status
1, one line, no traceback, before any model loads; blank and labelled-looking lines of a predict
input file are named once, with their line numbers."""
import contextlib
import importlib
import io
import subprocess
import sys

import pytest

import config
import path
import predict
from conftest import ROOT

NO_MODEL = ['--weights', 'no/such/folder']  # a check that passes only when it comes before the model loads


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('inputs')
    (folder / 'gbk.txt').write_bytes('青岛地铁施工段坍塌\n'.encode('gbk'))
    (folder / 'empty.txt').write_bytes(b'')
    (folder / 'binary.png').write_bytes(b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe')
    (folder / 'a folder').mkdir()
    return folder


CASES = [
    ('predict.py', [*NO_MODEL, '--file', '{files}/missing.txt'], '{files}/missing.txt: no such file'),
    ('predict.py', [*NO_MODEL, '--file', '{files}/a folder'], '{files}/a folder: a folder, not a file'),
    ('predict.py', [*NO_MODEL, '--file', '{files}/gbk.txt'], '{files}/gbk.txt:1: not valid UTF-8'),
    ('predict.py', [*NO_MODEL, '--file', '{files}/binary.png'], '{files}/binary.png:1: not valid UTF-8'),
    ('predict.py', [*NO_MODEL, '--file', '{files}/empty.txt'], '{files}/empty.txt: no texts in the file'),
    ('predict.py', [*NO_MODEL, '--threshold', '1.5', 'a'], '--threshold: must be more than 0 and at most 1, not 1.5'),
    ('predict.py', [*NO_MODEL, '--threshold', '-1', 'a'], '--threshold: must be more than 0 and at most 1, not -1'),
    ('predict.py', [*NO_MODEL, '--threshold', '0', 'a'], '--threshold: must be more than 0'),
    ('predict.py', [*NO_MODEL, '--threshold', 'nan', 'a'], '--threshold: must be more than 0'),
    ('predict.py', [*NO_MODEL, '--batch-size', '0', 'a'], '--batch-size: must be at least 1, not 0'),
    ('predict.py', [*NO_MODEL, '--batch-size', 'many', 'a'], "--batch-size: invalid int value: 'many'"),
    ('predict.py', [*NO_MODEL, '--stride', '5', 'a'], '--stride 5: means something only with --long-text chunk'),
    ('predict.py', [*NO_MODEL, '--long-text', 'chunk', '--stride', '-1', 'a'], '--stride: must be 0 (half a window)'),
    ('predict.py', NO_MODEL, 'give texts as arguments or --input FILE'),
    ('predict.py', [*NO_MODEL, '--input', '{files}/missing.txt'], '{files}/missing.txt: no such file'),
    ('main.py', ['predict', *NO_MODEL, '--threshold', '2', 'a'], '--threshold: must be more than 0 and at most 1'),
    ('evaluate.py', [*NO_MODEL, '--test', '{files}/missing.txt'], '{files}/missing.txt: no such file'),
    ('evaluate.py', [*NO_MODEL, '--test', '{files}/gbk.txt'], '{files}/gbk.txt:1: not valid UTF-8'),
    ('evaluate.py', [*NO_MODEL, '--input', '{files}/gbk.txt'], '{files}/gbk.txt:1: not valid UTF-8'),
    ('evaluate.py', [*NO_MODEL, '--threshold', '1.01'], '--threshold: must be more than 0 and at most 1'),
    ('evaluate.py', [*NO_MODEL, '--stride', '8'], '--stride 8: means something only with --long-text chunk'),
    ('main.py', ['export', *NO_MODEL, '--threshold', '7'], '--threshold: must be more than 0 and at most 1'),
    ('main.py', ['export', *NO_MODEL, '--stride', '8'], '--stride 8: means something only with --long-text chunk'),
    ('main.py', ['serve', *NO_MODEL, '--port', '70000'], '--port: must be a port number from 1 to 65535, not 70000'),
    ('main.py', ['serve', *NO_MODEL, '--port', '-1'], '--port: must be a port number'),
    ('main.py', ['serve', *NO_MODEL, '--max-texts', '0'], '--max-texts: must be at least 1, not 0'),
    ('main.py', ['serve', *NO_MODEL, '--max-body-bytes', '-5'], '--max-body-bytes: must be at least 1'),
    ('main.py', ['serve', *NO_MODEL, '--max-text-chars', '0'], '--max-text-chars: must be at least 1'),
    ('main.py', ['serve', *NO_MODEL, '--max-batch', '0'], '--max-batch: must be at least 1'),
    ('main.py', ['serve', *NO_MODEL, '--max-queue', '0'], '--max-queue: must be at least 1'),
    ('main.py', ['serve', *NO_MODEL, '--max-wait-ms', '-1'], '--max-wait-ms: must be from 0 to 60000'),
    ('main.py', ['serve', *NO_MODEL, '--timeout-s', '0'], '--timeout-s: must be more than 0'),
    ('main.py', ['serve', *NO_MODEL, '--threshold', '1.5'], '--threshold: must be more than 0 and at most 1'),
    ('train.py', ['--batch-size', '0'], '--batch-size: must be at least 1, not 0'),
    ('train.py', ['--threshold', '1.5'], '--threshold: must be more than 0 and at most 1'),
    ('train.py', ['--epochs', '0'], '--epochs: must be at least 1'),
    ('train.py', ['--maxlen', '2'], '--maxlen: must be at least 3'),
    ('train.py', ['--budget-decay'], '--budget-decay needs --time-budget'),
    ('pretrain.py', ['--budget-decay', '--epochs', '3'], '--budget-decay needs --time-budget'),
    ('pretrain.py', ['--mask-rate', '1.5'], '--mask-rate: must be more than 0 and less than 1, not 1.5'),
    ('pretrain.py', ['--mask-span', '0'], '--mask-span: must be from 1 to 10, not 0'),
    ('pretrain.py', ['--whole-word-masking', '--mask-span', '2'], '--whole-word-masking masks single words'),
    ('pretrain.py', ['--init', 'x', '--layers', '2'], '--pretrained takes the architecture of its checkpoint'),
    ('pretrain.py', ['--pretrained', 'x', '--heads', '2'], '--pretrained takes the architecture of its checkpoint'),
    ('train.py', ['--precision', 'half'], "--precision: must be one of float32, float16, bfloat16, auto, not 'half'"),
    ('main.py', ['audit', '{files}/gbk.txt', '--folds', '1'], '--folds: must be at least 2, not 1'),
    ('main.py', ['stats', '{files}/gbk.txt', '--maxlen', '-4'], '--maxlen: must be at least 3'),
    ('main.py', ['stats', '--input', '{files}/gbk.txt'], '{files}/gbk.txt:1: not valid UTF-8'),
    ('main.py', ['stats'], 'the following arguments are required: --input FILE'),
    ('main.py', ['plot', '--no-such-flag'], 'unrecognized arguments: --no-such-flag'),
    # A folder flag naming a file: refused before anything reads or writes in it.
    ('train.py', ['--weights', '{files}/empty.txt'], '--weights: {files}/empty.txt is a file, not a folder'),
    ('pretrain.py', ['--out', '{files}/empty.txt'], '--out: {files}/empty.txt is a file, not a folder'),
    ('evaluate.py', [*NO_MODEL, '--out', '{files}/empty.txt'], '--out: {files}/empty.txt is a file, not a folder'),
    ('predict.py', ['--weights', '{files}/empty.txt', 'a'], '--weights: {files}/empty.txt is a file, not a folder'),
    ('main.py', ['plot', '--out', '{files}/empty.txt'], '--out: {files}/empty.txt is a file, not a folder'),
    ('main.py', ['recipe', 'configs/demo.toml', '--out', '{files}/empty.txt'],
     '--out: {files}/empty.txt is a file, not a folder'),
]


@pytest.mark.parametrize('script, flags, message', CASES, ids=[' '.join([c[0], *c[1]]) for c in CASES])
def test_every_bad_input_is_one_line_exit_1_before_any_model_loads(files, script, flags, message, capsys):
    # In this process, through config.run_main as the script runs it: its SystemExit carries the
    # line the interpreter prints on stderr before it exits with status 1.
    command = importlib.import_module(script.removesuffix('.py'))
    with pytest.raises(SystemExit) as exit:
        config.run_main(lambda: command.main([flag.format(files=files) for flag in flags]))
    assert isinstance(exit.value.code, str) and exit.value.code.startswith('error: '), exit.value.code
    assert '\n' not in exit.value.code and message.format(files=files) in exit.value.code
    assert 'no trained model' not in exit.value.code  # said before the model, which is not there, is looked for
    assert capsys.readouterr().err == ''


@pytest.mark.parametrize('script, flags, message', [
    ('predict.py', [*NO_MODEL, '--file', '{files}/gbk.txt'], '{files}/gbk.txt:1: not valid UTF-8'),
    ('main.py', ['predict', *NO_MODEL, '--threshold', '2', 'a'], '--threshold: must be more than 0 and at most 1'),
    ('evaluate.py', [*NO_MODEL, '--test', '{files}/missing.txt'], '{files}/missing.txt: no such file'),
    ('main.py', ['serve', *NO_MODEL, '--port', '70000'], '--port: must be a port number from 1 to 65535, not 70000'),
    ('train.py', ['--batch-size', '0'], '--batch-size: must be at least 1, not 0'),
])
def test_a_script_says_it_in_one_line_on_stderr_and_exits_1(files, script, flags, message):
    flags = [flag.format(files=files) for flag in flags]
    result = subprocess.run([sys.executable, script, *flags], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr[-3000:]
    assert message.format(files=files) in lines[0]


def test_predict_names_blank_and_labelled_lines_once_with_their_numbers(trained, tmp_path, monkeypatch):
    weights, _ = trained
    labels = path.read_json(f'{weights}/{path.LABELS_NAME}')
    lines = ['青岛地铁施工段坍塌致3人遇难', '', f'{labels[0]}|{labels[1]} 某地发生地震', '某车企召回两万辆汽车', '   ',
             f'{labels[2]} 中国队夺冠', '没有标签的句子 含空格']
    texts = tmp_path / 'texts.txt'
    texts.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    monkeypatch.setattr(predict, 'STREAM_CHUNK', 2)  # several chunks: still one note of each kind
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        predict.main(['--weights', weights, '--file', str(texts)])
    assert len(out.getvalue().splitlines()) == len(lines)  # one answer per line, blank ones included
    notes = err.getvalue().splitlines()
    assert len(notes) == 2, notes
    assert notes[0].startswith('note: empty text at lines 2, 5 of ' + str(texts)), notes
    assert notes[1].startswith(f'note: lines 3, 6 of {texts} look labelled'), notes


def test_predict_names_a_bad_byte_of_standard_input_by_its_line(trained):
    weights, _ = trained
    stream = '青岛地铁施工段坍塌致3人遇难\n'.encode() + '青岛地铁\n'.encode('gbk')
    result = subprocess.run([sys.executable, 'predict.py', '--weights', weights, '--file', '-'], cwd=ROOT,
                            input=stream, capture_output=True, timeout=300)
    assert result.returncode == 1
    [line] = result.stderr.decode().strip().splitlines()
    assert line.startswith('error: standard input:2: not valid UTF-8 (') and 'Traceback' not in line
