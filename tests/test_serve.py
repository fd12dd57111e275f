"""serve.py, the real server on a loopback port: answers, errors, batching, and a bounded load
test (bench/serve_load.py's code) whose every answer must equal predict.Classifier's."""
import json
import os
import sys
import urllib.error
import urllib.request

import pytest

import path
from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, 'bench'))
import serve_load  # noqa: E402


@pytest.fixture(scope='module')
def server(trained):
    weights, _ = trained
    with serve_load.running_server(weights, '--max-body-bytes', '20000', '--max-texts', '4',
                                   '--max-text-chars', '1000') as url:
        yield url


def call(url, body, method='POST'):
    """(status, JSON answer); `body` is bytes, sent as is."""
    request = urllib.request.Request(url, data=body, method=method, headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_health(server, trained):
    status, answer = call(server + '/health', None, 'GET')
    assert status == 200 and answer['status'] == 'ok' and answer['labels'] == 12
    assert answer['threshold'] == path.read_json(os.path.join(trained[0], path.THRESHOLDS_NAME))


def test_one_text_and_a_list_get_the_labels_and_scores_of_predict(server, trained):
    import predict
    classifier = predict.Classifier(trained[0])
    texts = ['青岛地铁施工段坍塌致3人遇难', '某汽车品牌宣布召回两万辆新车', '']
    _, label_lists, scores = classifier.predict_batch(texts)
    status, one = call(server + '/predict', json.dumps({'text': texts[0]}).encode())
    assert status == 200 and one['labels'] == label_lists[0]
    assert one['scores'] == pytest.approx(dict(zip(classifier.labels, scores[0].tolist())), abs=1e-5)
    status, many = call(server + '/predict', json.dumps({'texts': texts}, ensure_ascii=False).encode())
    assert status == 200 and [r['labels'] for r in many['results']] == label_lists


@pytest.mark.parametrize('body, status, message', [
    (b'{"text": ', 400, 'not valid JSON'),
    (b'\xff\xfe{}', 400, 'not valid JSON'),
    (b'{}', 422, 'give either "text"'),
    (b'{"text": "a", "texts": ["b"]}', 422, 'give either "text"'),
    (b'{"texts": []}', 422, 'at least 1 item'),
    (b'{"texts": ["a", "b", "c", "d", "e"]}', 422, 'at most 4 items'),
    (b'{"text": 3}', 422, 'valid string'),
    (b'{"text": "a", "extra": 1}', 422, 'Extra inputs'),
    (json.dumps({'text': 'a' * 1001}).encode(), 422, 'at most 1000 characters'),
    (json.dumps({'text': 'a' * 30000}).encode(), 413, 'over 20000 bytes'),
])
def test_bad_requests_get_a_clear_4xx(server, body, status, message):
    got, answer = call(server + '/predict', body)
    assert got == status and message in str(answer)


def test_load_every_answer_right_and_concurrent_requests_batched(trained):
    numbers = serve_load.measure(trained[0], requests=1000, threads=8)
    assert numbers['answered'] == 1000 and numbers['wrong'] == 0, numbers['first_wrong']
    assert numbers['model_batches'] < numbers['server_requests'] == 1000  # requests shared model calls
    assert json.load(open(serve_load.RESULTS))['requests_per_s'] == numbers['requests_per_s']
    print(f"\nserve: {numbers['requests_per_s']} req/s, p50 {numbers['p50_ms']} ms, p99 {numbers['p99_ms']} ms, "
          f"{numbers['model_batches']} model batches for 1000 requests")
