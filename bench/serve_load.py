"""Load test of serve.py: start the real server, send many requests from several threads over
loopback, check every answer against predict.Classifier, report throughput and latency.

    python bench/serve_load.py                          # the model in weights/
    python bench/serve_load.py --weights weights --requests 1000 --threads 8

Texts come from the bundled sample test file; every tenth request carries a list of three
texts, the others one text. A request's latency is from sending it to having read the
answer; throughput is requests answered per second of the whole run. Prints a table and
writes bench/results/serve.json. tests/test_serve.py runs the same code.
"""
import argparse
import contextlib
import datetime
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import path  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'serve.json')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(weights, *flags, timeout=120):
    """serve.py in a subprocess on a free loopback port; yields its base URL once /health answers."""
    port = free_port()
    command = [sys.executable, os.path.join(ROOT, 'serve.py'), '--weights', weights, '--port', str(port), *flags]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f'serve.py exited with {server.returncode}: {server.stdout.read()[-3000:]}')
            try:
                urllib.request.urlopen(url + '/health', timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # not listening to SIGTERM yet (still loading): don't hide the error
            server.kill()
            server.wait()


def post(connection, body):
    """(status, parsed JSON answer) of POST /predict on an open connection."""
    connection.request('POST', '/predict', body=body, headers={'Content-Type': 'application/json'})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run_load(url, texts, expected, requests=1000, threads=8, tolerance=1e-4):
    """Send `requests` requests from `threads` threads; check each answer against `expected`
    ({text: (labels, {label: score})}). Returns the numbers and the count of wrong answers."""
    host, port = url.removeprefix('http://').split(':')
    latencies, wrong, lock = [], [], threading.Lock()

    def check(text, answer):
        labels, scores = expected[text]
        return answer['labels'] == labels and all(abs(answer['scores'][l] - s) <= tolerance for l, s in scores.items())

    def worker(indices):
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        for i in indices:
            batch = [texts[(i + k) % len(texts)] for k in range(3)] if i % 10 == 0 else None
            body = json.dumps({'texts': batch} if batch else {'text': texts[i % len(texts)]}, ensure_ascii=False)
            start = time.perf_counter()
            status, answer = post(connection, body.encode('utf-8'))
            elapsed = time.perf_counter() - start
            if batch:
                ok = status == 200 and len(answer['results']) == 3 and all(map(check, batch, answer['results']))
            else:
                ok = status == 200 and check(texts[i % len(texts)], answer)
            with lock:
                latencies.append(elapsed)
                if not ok:
                    wrong.append((i, status, answer))
        connection.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(range(t, requests, threads),)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - started
    health = json.loads(urllib.request.urlopen(url + '/health', timeout=10).read())
    return {
        'requests': requests, 'threads': threads, 'answered': len(latencies), 'wrong': len(wrong),
        'first_wrong': wrong[:3], 'seconds': round(seconds, 3),
        'requests_per_s': round(len(latencies) / seconds, 1),
        'p50_ms': round(1000 * percentile(latencies, 0.50), 2), 'p99_ms': round(1000 * percentile(latencies, 0.99), 2),
        'model_batches': health['batches'], 'server_requests': health['requests'],
    }


def measure(weights, requests=1000, threads=8, results=RESULTS, server_flags=()):
    """The whole benchmark: expected answers from predict.Classifier, the server, the load;
    writes `results` (JSON) and returns the numbers."""
    import loader
    import predict
    texts = [s.text for s in loader.read_samples(path.SAMPLE_TEST)]
    classifier = predict.Classifier(weights)
    _, label_lists, scores = classifier.predict_batch(texts)
    expected = {t: (labels, dict(zip(classifier.labels, map(float, row))))
                for t, labels, row in zip(texts, label_lists, scores)}
    with running_server(weights, *server_flags) as url:
        numbers = run_load(url, texts, expected, requests, threads)
    meta = path.read_json(os.path.join(weights, path.META_NAME))
    numbers.update(date=datetime.date.today().isoformat(), machine=f'{platform.machine()}, {os.cpu_count()} CPUs',
                   model=meta['pretrained'], server_flags=list(server_flags))
    path.write_json(results, numbers)
    return numbers


def main(argv=None):
    parser = argparse.ArgumentParser(description='Load test of serve.py over loopback.')
    parser.add_argument('--weights', default=path.WEIGHTS_DIR, help='trained model folder (default: %(default)s)')
    parser.add_argument('--requests', type=int, default=1000, help='(default: %(default)s)')
    parser.add_argument('--threads', type=int, default=8, help='client threads (default: %(default)s)')
    parser.add_argument('--out', default=RESULTS, help='JSON results (default: %(default)s)')
    args = parser.parse_args(argv)
    numbers = measure(args.weights, args.requests, args.threads, args.out)
    print(f'| requests | threads | wrong | req/s | p50 ms | p99 ms | model batches |\n'
          f'| --- | --- | --- | --- | --- | --- | --- |\n'
          f'| {numbers["answered"]} | {numbers["threads"]} | {numbers["wrong"]} | {numbers["requests_per_s"]} | '
          f'{numbers["p50_ms"]} | {numbers["p99_ms"]} | {numbers["model_batches"]} |')
    print(f'results: {args.out}')


if __name__ == '__main__':
    import config
    config.run_main(main)
