"""Load test of multilabel/serve.py: start the real server, hold C concurrent client connections over
loopback for each C of --concurrency, check every answer against inference.Classifier, report
throughput, latency, status counts and the server's peak memory.

    python bench/serve_load.py                                  # small architecture, random weights
    python bench/serve_load.py --weights weights --concurrency 1 8 64 512 --requests 2000

Without --weights the server runs the small architecture (L-6/H-384, 65 labels) with random
weights: only the shapes matter for speed. The server runs with its defaults (--precision auto,
--max-queue, --timeout-s) unless flags after `--` say otherwise. Texts come from the bundled
sample test file; every tenth request carries a list of three texts, the others one text.

Per concurrency: throughput is 200 answers per second of the whole level; p50/p99 are the
latencies of the accepted (200) requests, from sending to having read the answer; every
request ends as 200 (its labels and scores checked against inference.Classifier in the same
precision), 503 (shed, with Retry-After) or `other` (any other status or a broken
connection), so sent = 200 + 503 + other: nothing is lost without an answer. Peak RSS is the
server process's high-water mark (VmHWM) after the level. The client is one asyncio thread, so
512 connections do not need 512 threads. Prints a table and writes bench/results/serve.json.
tests/test_serve.py runs the same code.
"""
import argparse
import asyncio
import contextlib
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import benchlib  # noqa: E402  (beside this script)
import path  # noqa: E402
from multilabel import inference  # noqa: E402
from multilabel import model_folder  # noqa: E402
import config  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'serve.json')
NUM_LABELS = 65
TOLERANCE = {'float32': 1e-4, 'bfloat16': 1e-2, 'int8': 1e-2}  # scores: server's batches vs the client's own


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server_process(weights, *flags, timeout=180, output=None):
    """multilabel/serve.py in a subprocess on a free loopback port; yields (base URL, process) once /health answers.

    Its stdout and stderr (the access log among them) go to `output`, a file open for writing and
    reading (default: a temporary file), never to a pipe: a server writing a line per request
    would fill a pipe nobody reads and block on it.
    """
    port = free_port()
    command = [sys.executable, os.path.join(ROOT, 'main.py'), 'serve', '--weights', weights, '--port', str(port), *flags]
    log = output or tempfile.TemporaryFile('w+')
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                log.seek(0)
                raise RuntimeError(f'multilabel/serve.py exited with {server.returncode}: {log.read()[-3000:]}')
            try:
                urllib.request.urlopen(url + '/health', timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # not listening to SIGTERM yet (still loading): don't hide the error
            server.kill()
            server.wait()
        if not output:
            log.close()


@contextlib.contextmanager
def running_server(weights, *flags, timeout=180, output=None):
    """multilabel/serve.py in a subprocess; yields its base URL once /health answers."""
    with server_process(weights, *flags, timeout=timeout, output=output) as (url, _):
        yield url


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else None


def peak_rss_mb(pid):
    """The process's resident-memory high-water mark in MiB (Linux), or None."""
    try:
        with open(f'/proc/{pid}/status') as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith('VmHWM'))
    except OSError:
        return None


async def post(reader, writer, port, body):
    """(status, headers, body bytes) of POST /predict on an open keep-alive connection."""
    writer.write(b'POST /predict HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n'
                 b'Content-Length: %d\r\n\r\n%s' % (port, len(body), body))
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError('connection closed before an answer')
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b'\r\n', b''):
            break
        name, _, value = line.decode('latin-1').partition(':')
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, await reader.readexactly(int(headers.get('content-length', 0)))


def run_load(url, texts, expected, requests=1000, concurrency=8, tolerance=1e-4):
    """Send `requests` requests over `concurrency` connections at once; check each 200 against
    `expected` ({text: (labels, {label: score})}) and each 503 for a Retry-After."""
    port = int(url.rsplit(':', 1)[1])
    accepted, counts, wrong = [], {'200': 0, '503': 0, 'other': 0, 'texts': 0}, []
    next_request = iter(range(requests))

    def right(text, answer):
        labels, scores = expected[text]
        return answer['labels'] == labels and all(abs(answer['scores'][l] - s) <= tolerance for l, s in scores.items())

    async def client():
        connection = None
        for i in next_request:
            batch = [texts[(i + k) % len(texts)] for k in range(3)] if i % 10 == 0 else [texts[i % len(texts)]]
            body = json.dumps({'texts': batch} if len(batch) > 1 else {'text': batch[0]}, ensure_ascii=False)
            start = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection('127.0.0.1', port)
                status, headers, data = await asyncio.wait_for(post(*connection, port, body.encode()), 120)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError) as error:
                counts['other'] += 1
                wrong.append((i, 'no answer', repr(error)))
                connection = None
                continue
            elapsed = time.perf_counter() - start
            if status == 200:
                answer = json.loads(data)
                results = answer['results'] if len(batch) > 1 else [answer]
                counts['200'] += 1
                counts['texts'] += len(batch)
                accepted.append(elapsed)
                if len(results) != len(batch) or not all(map(right, batch, results)):
                    wrong.append((i, status, answer))
            elif status == 503 and headers.get('retry-after', '').isdigit():
                counts['503'] += 1
            else:
                counts['other'] += 1
                wrong.append((i, status, data[:200].decode('utf-8', 'replace')))
            if headers.get('connection', '').lower() == 'close':
                connection = None
        if connection is not None:
            connection[1].close()

    async def all_clients():
        await asyncio.gather(*(client() for _ in range(concurrency)))

    started = time.perf_counter()
    asyncio.run(all_clients())
    seconds = time.perf_counter() - started
    health = json.loads(urllib.request.urlopen(url + '/health', timeout=30).read())
    wrong_answers = sum(1 for w in wrong if w[1] == 200)
    return {
        'concurrency': concurrency, 'requests': requests, 'status_200': counts['200'], 'status_503': counts['503'],
        'status_other': counts['other'], 'wrong': wrong_answers,
        'unanswered': requests - counts['200'] - counts['503'] - counts['other'],
        'first_problems': wrong[:3], 'seconds': round(seconds, 3),
        'requests_per_s': round(counts['200'] / seconds, 1), 'texts_per_s': round(counts['texts'] / seconds, 1),
        # The time the server takes to score a full queue at this level's speed: the goal is
        # a p99 of accepted requests within about twice that.
        'full_queue_drain_ms': round(1000 * health['max_queue'] / (counts['texts'] / seconds), 1)
        if counts['texts'] else None,
        'p50_ms': round(1000 * percentile(accepted, 0.50), 1) if accepted else None,
        'p99_ms': round(1000 * percentile(accepted, 0.99), 1) if accepted else None,
        'model_batches': health['batches'], 'server_requests': health['requests'],
    }


def random_weights(folder):
    """A weights folder with the small architecture, 65 labels and random weights (speed only)."""
    import model as model_lib
    from multilabel.compat import keras
    pretrained = path.pretrained_dir('small')
    labels = [f'label-{i:02d}' for i in range(NUM_LABELS)]
    model_folder.write(folder, config.Config(maxlen=64), labels, pretrained)
    keras.utils.set_random_seed(0)
    model = model_lib.build_classifier(os.path.join(pretrained, path.CONFIG_NAME), NUM_LABELS)
    model_folder.save_weights(folder, model)
    return folder


def measure(weights, requests=1000, concurrency=(8,), results=RESULTS, server_flags=()):
    """The whole benchmark: expected answers from inference.Classifier in the server's precision,
    the server, one load per concurrency; writes `results` (JSON) and returns the numbers."""
    import loader
    texts = [s.text for s in loader.read_samples(path.SAMPLE_TEST)]
    levels = []
    with server_process(weights, *server_flags) as (url, server):
        health = json.loads(urllib.request.urlopen(url + '/health', timeout=30).read())
        classifier = inference.Classifier(weights, precision=health['precision'])
        _, label_lists, scores = classifier.predict_batch(texts)
        expected = {t: (labels, dict(zip(classifier.labels, map(float, row))))
                    for t, labels, row in zip(texts, label_lists, scores)}
        del classifier
        for level in concurrency:
            numbers = run_load(url, texts, expected, requests, level, TOLERANCE[health['precision']])
            numbers['peak_rss_mb'] = peak_rss_mb(server.pid)
            levels.append(numbers)
            print(numbers, file=sys.stderr, flush=True)
    meta = path.read_json(os.path.join(weights, path.META_NAME))
    result = {'date': datetime.date.today().isoformat(), 'machine': benchlib.describe(),
              'load_average': os.getloadavg(), 'model': meta['pretrained'], 'precision': health['precision'],
              'max_queue': health['max_queue'], 'server_flags': list(server_flags), 'levels': levels}
    if results:
        path.write_json(results, result)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description='Load test of multilabel/serve.py over loopback.',
                                     epilog='Flags after -- go to multilabel/serve.py, e.g. -- --max-queue 128 --precision float32')
    parser.add_argument('--weights', help='trained model folder (default: small architecture, random weights)')
    parser.add_argument('--requests', type=int, default=1000, help='requests per concurrency level (default: %(default)s)')
    parser.add_argument('--concurrency', type=int, nargs='+', default=[1, 8, 64, 512],
                        help='concurrent connections, one level each (default: %(default)s)')
    parser.add_argument('--out', default=RESULTS, help='JSON results (default: %(default)s)')
    parser.add_argument('server_flags', nargs='*', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        weights = args.weights or random_weights(folder)
        result = measure(weights, args.requests, args.concurrency, None, args.server_flags)
    result['command'] = benchlib.command('bench/serve_load.py', argv)
    path.write_json(args.out, result)
    print(f'{result["model"]}, precision {result["precision"]}, --max-queue {result["max_queue"]}, '
          f'{result["machine"]}, load average {result["load_average"][0]:.1f}')
    print('| clients | requests | 200 | 503 | other | wrong | req/s (200) | p50 ms | p99 ms | full-queue drain ms '
          '| peak RSS MiB |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for n in result['levels']:
        print(f'| {n["concurrency"]} | {n["requests"]} | {n["status_200"]} | {n["status_503"]} | {n["status_other"]} | '
              f'{n["wrong"]} | {n["requests_per_s"]} | {n["p50_ms"]} | {n["p99_ms"]} | {n["full_queue_drain_ms"]} | '
              f'{n["peak_rss_mb"]:.0f} |')
    print(f'results: {args.out}')


if __name__ == '__main__':
    import config
    config.run_main(main)
