"""What the benchmark scripts share: the machine they ran on, and how a step is timed."""
import datetime
import os
import platform
import shlex
import subprocess
import sys
import time

import numpy as np

import path  # the scripts put the repository on sys.path before they import this module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(ROOT, '..', 'shared', 'data')  # the real corpus beside the clone, never committed
SHARED_TEST = path.corpus_test(SHARED_DATA)
# the test file of the scripts that only predict: the real corpus's when it is there, else the bundled sample's
DEFAULT_TEST = SHARED_TEST if os.path.exists(SHARED_TEST) else path.SAMPLE_TEST


def describe():
    """'N cores, CPU model name' (the model name from /proc/cpuinfo where there is one)."""
    name = platform.processor() or platform.machine()
    if os.path.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            name = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), name)
    return f'{os.cpu_count()} cores, {name}'


def held_out_split(weights):
    """(training samples, validation samples) of the file train.py trained the folder `weights` on,
    split as it split them (its --valid-ratio and --seed, from the folder's resume state)."""
    import loader  # starts TensorFlow: imported here so the scripts' --help answers at once
    run = path.read_resume_state(weights)['run']
    samples = loader.read_samples(run['train'])
    return loader.split_validation(samples, run['config']['valid_ratio'], run['config']['seed'])


def timings(function, repeats, warmup):
    """Seconds of each of `repeats` calls of `function`, after `warmup` untimed calls (graph
    tracing and first-call allocation stay out of the figures)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(function, steps, warmup=2):
    """Median seconds of `steps` calls of `function` after `warmup` untimed calls."""
    return float(np.median(timings(function, steps, warmup)))


def best_seconds(function, repeats):
    """Fastest of `repeats` timed calls after one warm-up call: the least disturbed by other work."""
    return min(timings(function, repeats, 1))


def command(script, argv):
    """The command line that ran `script` with `argv` (sys.argv's when None), quoted to paste into a shell."""
    return shlex.join(['python', script] + list(sys.argv[1:] if argv is None else argv))


def provenance(script, argv):
    """What every results JSON records: the command, date, machine, load average and git commit."""
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True)
    # the results files themselves are rewritten by every bench run: they do not make the code dirty
    dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/results'],
                           cwd=ROOT, capture_output=True, text=True)
    return {'command': command(script, argv),
            'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
            'machine': describe(), 'load_average': [round(x, 2) for x in os.getloadavg()],
            'git_commit': commit.stdout.strip() + ('+uncommitted changes' if dirty.stdout.strip() else '')}
