"""One rule for progress output: live bars only when stderr is a terminal, in every command
(config.interactive); a log or a pipe gets lines, never carriage returns."""
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading

from conftest import ROOT
from test_audit import crafted_file


def run(arguments, stderr=subprocess.PIPE):
    # Bytes, not text: text mode would turn each '\r' into '\n' and hide the bars.
    return subprocess.run([sys.executable, *arguments], cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, timeout=600)


def test_evaluate_and_audit_draw_no_bar_into_a_pipe(trained, tmp_path):
    weights, _ = trained
    for arguments in (['evaluate.py', '--weights', weights, '--report-dir', str(tmp_path)],
                      ['main.py', 'audit', crafted_file(tmp_path)[0], '--folds', '3'],
                      ['main.py', 'stats', crafted_file(tmp_path)[0]]):
        result = run(arguments)
        assert result.returncode == 0, result.stderr[-3000:]
        assert b'\r' not in result.stderr and b'\x1b[' not in result.stderr, (arguments, result.stderr[-500:])


def test_on_a_terminal_evaluate_still_shows_its_bar(trained, tmp_path):
    weights, _ = trained
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 80, 0, 0))  # a terminal 80 wide: tqdm draws
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: _read(main), b'')), daemon=True)
    reader.start()
    result = run(['evaluate.py', '--weights', weights, '--report-dir', str(tmp_path)], stderr=terminal)
    os.close(terminal)
    reader.join(30)
    os.close(main)
    assert result.returncode == 0
    assert b'\r' in b''.join(seen) and b'predict' in b''.join(seen)


def _read(fd):
    try:
        return os.read(fd, 4096)
    except OSError:  # the terminal's other end closed
        return b''
