"""multilabel/serve.py, the real server on a loopback port: answers, errors, batching, a bounded load
test (bench/serve_load.py's code) whose every answer must equal predict.Classifier's, overload
shed with 503 + Retry-After, per-request timeouts, and SIGTERM answering what is in flight;
hostile bodies answered with a short 4xx that echoes nothing, a busy port said in one line,
the decision flags, no API page that loads from elsewhere, and one access-log line a request."""
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import loader
import path
from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, 'bench'))
import serve_load  # noqa: E402
from multilabel import explain


@pytest.fixture(scope='module')
def quiet_log(tmp_path_factory):
    return tmp_path_factory.mktemp('serve') / 'quiet.log'


@pytest.fixture(scope='module')
def server(trained, quiet_log):
    weights, _ = trained
    with open(quiet_log, 'w+') as output, serve_load.running_server(
            weights, '--max-body-bytes', '20000', '--max-texts', '4', '--max-text-chars', '1000',
            '--precision', 'float32', '--quiet', output=output) as url:
        yield url


def raw_call(url, body, method='POST'):
    """(status, answer bytes); `body` is bytes, sent as is."""
    request = urllib.request.Request(url, data=body, method=method, headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def call(url, body, method='POST'):
    """(status, JSON answer); `body` is bytes, sent as is."""
    status, answer = raw_call(url, body, method)
    return status, json.loads(answer)


def test_health(server, trained):
    status, answer = call(server + '/health', None, 'GET')
    assert status == 200 and answer['status'] == 'ok' and answer['labels'] == 12
    assert answer['threshold'] == path.read_json(os.path.join(trained[0], path.THRESHOLDS_NAME))
    assert answer['precision'] == 'float32' and answer['queued_texts'] == 0 and answer['max_queue'] == 256
    call(server + '/predict', b'{"text": "a"}')
    status, answer = call(server + '/health', None, 'GET')
    assert answer['recent_latency']['window'] >= 1 and answer['recent_latency']['p99_ms'] > 0


def test_one_text_and_a_list_get_the_labels_and_scores_of_predict(server, trained):
    import predict
    classifier = predict.Classifier(trained[0])
    texts = ['青岛地铁施工段坍塌致3人遇难', '某汽车品牌宣布召回两万辆新车', 'Apple 😀']
    _, label_lists, scores = classifier.predict_batch(texts)
    status, one = call(server + '/predict', json.dumps({'text': texts[0]}).encode())
    assert status == 200 and one['labels'] == label_lists[0]
    assert one['scores'] == pytest.approx(dict(zip(classifier.labels, scores[0].tolist())), abs=1e-5)
    status, many = call(server + '/predict', json.dumps({'texts': texts}, ensure_ascii=False).encode())
    assert status == 200 and [r['labels'] for r in many['results']] == label_lists


def test_explain_answers_the_spans_of_predict_explain(server, trained):
    import predict
    classifier = predict.Classifier(trained[0])
    text = '青岛地铁施工段坍塌致3人遇难'
    status, answer = call(server + '/predict', json.dumps({'text': text, 'explain': True}).encode())
    assert status == 200 and set(answer['explanations']) == set(answer['labels'])
    expected = explain.explained_spans(classifier, text)
    for label, spans in answer['explanations'].items():
        assert [s['text'] for s in spans] == [s['text'] for s in expected[label]]
        assert [s['weight'] for s in spans] == pytest.approx([s['weight'] for s in expected[label]], abs=1e-5)
    status, plain = call(server + '/predict', json.dumps({'text': text}).encode())
    assert status == 200 and 'explanations' not in plain


@pytest.mark.parametrize('body, status, message', [
    (b'{"text": ', 400, 'not valid JSON'),
    (b'\xff\xfe{}', 400, 'not valid JSON'),
    (b'{}', 422, 'give either "text"'),
    (b'{"text": "a", "texts": ["b"]}', 422, 'give either "text"'),
    (b'{"texts": []}', 422, 'at least 1 item'),
    (b'{"texts": ["a", "b", "c", "d", "e"]}', 422, 'at most 4 items'),
    (b'{"text": 3}', 422, 'valid string'),
    (b'{"text": "a", "extra": 1}', 422, 'Extra inputs'),
    (b'{"texts": ["a"], "explain": true}', 422, '"explain" is for one "text"'),
    (json.dumps({'text': 'a' * 1001}).encode(), 422, 'at most 1000 characters'),
    (json.dumps({'text': 'a' * 30000}).encode(), 413, 'over 20000 bytes'),
])
def test_bad_requests_get_a_clear_4xx(server, body, status, message):
    got, answer = call(server + '/predict', body)
    assert got == status and message in str(answer)


ECHO = 'ZZ-ECHO-ZZ'  # in every hostile body: an answer must not hand it back
HOSTILE = [
    (b'[1, 2]', 422, 'a JSON object'), (b'"text"', 422, 'a JSON object'), (b'null', 422, 'a JSON object'),
    (b'3', 422, 'a JSON object'), (b'', 400, 'not valid JSON'), (b'[' * 5000, 400, 'not valid JSON'),
    (b'{"text": NaN}', 422, 'text: Input should be a valid string'),
    (json.dumps({'text': {'nested': [1, {'a': ECHO}]}}).encode(), 422, 'text: Input should be a valid string'),
    (json.dumps({'texts': ['a', 3]}).encode(), 422, 'texts[1]: Input should be a valid string'),
    (json.dumps({'texts': ECHO}).encode(), 422, 'texts: Input should be a valid list'),
    (json.dumps({'texts': [[ECHO]]}).encode(), 422, 'texts[0]: Input should be a valid string'),
    (json.dumps({'text': ECHO * 101}).encode(), 422, 'text: String should have at most 1000 characters'),
    (json.dumps({'texts': [ECHO] * 257}).encode(), 422, 'texts: List should have at most 4 items'),
    (json.dumps({ECHO * 40: 1, 'text': 'a'}).encode(), 422, 'Extra inputs are not permitted'),
    (json.dumps({'texts': [{'x': ECHO}] * 4}).encode(), 422, 'texts[2]: Input should be a valid string; and 1 more'),
    (json.dumps({'text': ''}).encode(), 422, 'text: empty'),
    (json.dumps({'text': ' \u3000\n'}).encode(), 422, 'text: empty'),
    (json.dumps({'texts': ['地震', '  ']}).encode(), 422, 'texts[1]: empty'),
    (b'{"text": "\xff\xfe' + ECHO.encode() + b'"}', 400, 'not valid JSON'),
    (json.dumps({'text': '\ud800' + ECHO}).encode(), 422, 'text: Input should be a valid string'),  # lone surrogate
]


@pytest.mark.parametrize('body, status, message', HOSTILE, ids=[repr(b[:30]) for b, _, _ in HOSTILE])
def test_hostile_bodies_get_a_short_4xx_that_names_the_field_and_echoes_nothing(server, body, status, message):
    got, answer = raw_call(server + '/predict', body)
    assert got == status, answer[:500]
    assert len(answer) <= 400, answer[:500]
    parsed = json.loads(answer)
    assert list(parsed) == ['detail'] and isinstance(parsed['detail'], str), parsed
    assert message in parsed['detail'] and ECHO not in parsed['detail']
    for internal in ('"loc"', '"ctx"', '"input"', 'PredictRequest'):
        assert internal not in answer.decode(), answer


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                                                children, max_size=4),
                           max_leaves=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(JSON_VALUES, st.fixed_dictionaries({'text': JSON_VALUES}), st.fixed_dictionaries({'texts': JSON_VALUES}),
                 st.fixed_dictionaries({'texts': st.lists(st.text(max_size=30), max_size=6)}),
                 st.fixed_dictionaries({'text': st.text(max_size=50)})))
def test_no_body_a_client_sends_is_answered_500(server, payload):
    status, answer = raw_call(server + '/predict', json.dumps(payload).encode())
    assert status == 200 or (400 <= status < 500 and len(answer) <= 400), (status, answer[:300])


def test_odd_but_valid_texts_are_scored(server):
    for text in ['a\u0000b', '\U0010ffff', '\u202e右到左', '\ufeff 地震']:
        status, answer = call(server + '/predict', json.dumps({'text': text}).encode())
        assert status == 200 and answer['labels'], (text, answer)


def test_no_api_page_loads_anything_from_elsewhere_and_the_schema_stays(server):
    for page in ('/docs', '/redoc'):  # FastAPI's pages load Swagger UI and ReDoc from a CDN: not served
        assert raw_call(server + page, None, 'GET')[0] == 404
    status, schema = call(server + '/openapi.json', None, 'GET')
    assert status == 200 and '/predict' in schema['paths']


def test_a_busy_port_is_one_line_before_any_serving_line(trained):
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, 'main.py', 'serve', '--weights', trained[0], '--port', str(port)], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and 'serving' not in result.stdout, result.stdout
    assert result.stderr.strip().splitlines() == [
        f'error: 127.0.0.1:{port}: port {port} is in use; stop the other server or choose another --port']


def test_the_decision_flags_reach_the_server_and_each_request_is_one_access_log_line(trained, tmp_path, quiet_log,
                                                                                   server):
    import predict
    log = tmp_path / 'serve.log'
    texts = ['青岛地铁施工段坍塌致3人遇难', '某汽车品牌宣布召回两万辆新车', '中国队3比1击败日本队']
    with open(log, 'w+') as output, serve_load.server_process(trained[0], '--threshold', '0.3', '--no-top1-fallback',
                                                             '--precision', 'float32', output=output) as (url, _):
        status, health = call(url + '/health', None, 'GET')
        assert health['threshold'] == 0.3 and health['top1_fallback'] is False
        status, answer = call(url + '/predict', json.dumps({'texts': texts}).encode())
        assert status == 200
        _, label_lists, _ = predict.Classifier(trained[0], 0.3, False).predict_batch(texts)
        assert [r['labels'] for r in answer['results']] == label_lists
        assert call(url + '/predict', b'{"text": ""}')[0] == 422
    lines = [line for line in log.read_text().splitlines() if not line.startswith('serving ')]
    requests = [line for line in lines if re.fullmatch(r'(GET|POST) /\S* \d{3} \d+\.\d ms', line)]
    assert [line.rsplit(' ', 2)[0] for line in requests[-3:]] == [
        'GET /health 200', 'POST /predict 200', 'POST /predict 422'], lines
    assert lines == requests, 'a line that is not an access-log line'
    # --quiet: the server of the other tests answered many requests and logged none.
    assert [line for line in quiet_log.read_text().splitlines() if not line.startswith('serving ')] == []


def test_load_every_answer_right_and_concurrent_requests_batched(trained, tmp_path):
    # The server's default precision (auto): the answers are checked against predict.Classifier in it.
    out = tmp_path / 'serve.json'
    result = serve_load.measure(trained[0], requests=600, concurrency=(8,), results=str(out))
    numbers = result['levels'][0]
    assert numbers['status_200'] == 600 and numbers['wrong'] == 0, numbers['first_problems']
    assert numbers['model_batches'] < numbers['server_requests'] == 600  # requests shared model calls
    assert json.loads(out.read_text())['levels'][0]['requests_per_s'] == numbers['requests_per_s']
    assert numbers['peak_rss_mb'] > 0
    print(f"\nserve ({result['precision']}): {numbers['requests_per_s']} req/s, p50 {numbers['p50_ms']} ms, "
          f"p99 {numbers['p99_ms']} ms, {numbers['model_batches']} model batches for 600 requests")


def test_overload_is_shed_with_503_and_retry_after_nothing_lost_and_sigterm_drains(trained):
    with serve_load.server_process(trained[0], '--max-queue', '4', '--max-wait-ms', '100',
                                   '--precision', 'float32') as (url, server):
        import predict
        classifier = predict.Classifier(trained[0])
        texts = [s.text for s in loader.read_samples(path.SAMPLE_TEST)]
        _, label_lists, scores = classifier.predict_batch(texts)
        expected = {t: (l, dict(zip(classifier.labels, map(float, r)))) for t, l, r in zip(texts, label_lists, scores)}
        numbers = serve_load.run_load(url, texts, expected, requests=200, concurrency=64)
        assert numbers['status_503'] > 0 and numbers['status_200'] > 0, numbers
        assert numbers['status_other'] == numbers['wrong'] == numbers['unanswered'] == 0, numbers['first_problems']
        health = json.loads(urllib.request.urlopen(url + '/health').read())
        assert health['rejected'] == numbers['status_503']

        # SIGTERM while requests wait in the batcher: each still gets its answer, then the server exits.
        answers = []

        def one(text):
            answers.append(call(url + '/predict', json.dumps({'text': text}).encode()))

        threads = [threading.Thread(target=one, args=(text,)) for text in texts[:4]]
        for t in threads:
            t.start()
        time.sleep(0.05)  # the requests are in, waiting out --max-wait-ms
        server.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert [status for status, _ in answers] == [200] * 4
        assert sorted(a['labels'] for _, a in answers) == sorted(expected[t][0] for t in texts[:4])
        # uvicorn re-raises the SIGTERM it caught once it has drained, so the exit status says SIGTERM.
        assert server.wait(60) in (0, -signal.SIGTERM)


class SlowClassifier:
    """Stands in for predict.Classifier: every batch takes `seconds`."""
    labels = ['a', 'b']

    def __init__(self, seconds):
        self.seconds = seconds
        self.scored = []

    def predict_batch(self, texts, batch_size):
        time.sleep(self.seconds)
        self.scored.extend(texts)
        return None, [['a']] * len(texts), np.zeros((len(texts), 2))


def test_batcher_sheds_a_full_queue_at_once_and_times_out_slow_answers():
    from multilabel import serve

    async def scenario():
        classifier = SlowClassifier(0.3)
        batcher = serve.Batcher(classifier, max_batch=2, max_wait_s=0.001, max_queue=3, timeout_s=0.5)
        runner = asyncio.create_task(batcher.run())
        # 2 texts enter the first batch (0.3 s), 3 fill the queue; the 6th request is refused at once.
        requests = [asyncio.create_task(batcher.predict([f't{i}'])) for i in range(2)]
        await asyncio.sleep(0.05)
        requests += [asyncio.create_task(batcher.predict([f't{i}'])) for i in range(2, 5)]
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        with pytest.raises(serve.Overloaded, match='--max-queue 3') as refused:
            await batcher.predict(['t5'])
        assert time.perf_counter() - started < 0.05 and refused.value.retry_after >= 1
        results = await asyncio.gather(*requests, return_exceptions=True)
        # Batches of 2 at 0.3 s: t0, t1 at 0.3 s, t2, t3 at 0.6 s (past the 0.5 s timeout), t4 later.
        assert [type(r).__name__ for r in results] == ['tuple', 'tuple', 'Overloaded', 'Overloaded', 'Overloaded']
        assert 'not answered within 0.5 s' in str(results[2])
        await asyncio.sleep(0.4)
        assert 't4' not in classifier.scored  # a timed-out request's texts leave the queue unscored
        health = batcher.health()
        assert health['rejected'] == 1 and health['timed_out'] == 3 and health['queued_texts'] == 0
        runner.cancel()
        batcher.executor.shutdown(wait=True)

    asyncio.run(scenario())
