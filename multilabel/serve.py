"""Serve a trained model over HTTP: JSON in, labels and scores out (FastAPI + uvicorn).

    python main.py serve                                   # weights/, http://127.0.0.1:8000
    # then open http://127.0.0.1:8000/ in a browser: a page to try the model (multilabel/page.html)
    python main.py serve --weights weights --port 8080 --max-batch 64 --max-wait-ms 5

    curl -s localhost:8000/predict -d '{"text": "青岛地铁施工段坍塌致3人遇难"}'
    curl -s localhost:8000/predict -d \
         '{"texts": ["某汽车品牌召回两万辆新车", "中国队3比1击败日本队"]}'
    curl -s localhost:8000/health

`POST /predict` takes {"text": "..."} and answers {"labels": [...], "scores": {label: score}},
or takes {"texts": [...]} and answers {"results": [{"labels": ..., "scores": ...}, ...]} in
the same order. The decision rule is multilabel/inference.py's: --threshold, else the per-label thresholds
tuned at training, else the threshold saved with the model; the top-1 fallback as saved, or as
--top1-fallback / --no-top1-fallback say.

Concurrent requests are batched: texts that arrive within --max-wait-ms of each other (up to
--max-batch of them) go through the model together, which is what makes a CPU or GPU
server fast under load. Overload is shed, not queued without end: when --max-queue texts
already wait, a request gets 503 with Retry-After at once; a request not answered within
--timeout-s gets 503 too (its texts leave the queue). On SIGTERM the server stops accepting
connections, answers the requests it holds, then exits. The model computes in the precision
that --precision picks (auto: bfloat16 where the CPU or GPU has it; multilabel/inference.py).

Errors are {"detail": "one short line"} naming the field and the reason, never repeating the
input: 400 for a body that is not JSON, 413 for a body over --max-body-bytes, 422 for JSON that
is not an object or of the wrong shape, more than --max-texts texts, a text over
--max-text-chars characters, or an empty text (nothing to classify: refused, not guessed).
No client input is answered 500. A port in use is one line, exit status 1, before the model
loads. Each request is one access-log line on stdout (method, path, status, ms); --quiet turns
it off. FastAPI's /docs and /redoc are off (they load their scripts from a CDN); the schema is
at /openapi.json.
"""
import asyncio
import collections
import concurrent.futures
import contextlib
import errno
import json
import math
import socket
import time
from typing import Annotated, Optional

import pydantic
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse

import config
import path
from multilabel import explain
from multilabel import inference
from multilabel import model_folder


def parse_args(argv=None):
    parser = config.ArgumentParser(description='HTTP JSON server for a trained model.')
    config.add_trained_model_flags(parser, path.WEIGHTS_DIR)
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on; 0.0.0.0 listens on every interface (default: %(default)s)')
    parser.add_argument('--port', type=config.limited(int, 'port'), default=8000,
                        help='TCP port to listen on (default: %(default)s)')
    parser.add_argument('--max-batch', type=config.limited(int, 'max_batch'), default=64,
                        help='most texts scored together (default: %(default)s)')
    parser.add_argument('--max-wait-ms', type=config.limited(float, 'max_wait_ms'), default=5.0,
                        help='how long the first request of a batch waits for others (default: %(default)s)')
    parser.add_argument('--max-body-bytes', type=config.limited(int, 'max_body_bytes'), default=1_000_000,
                        help='largest request body read; a larger one gets 413 (default: %(default)s)')
    parser.add_argument('--max-texts', type=config.limited(int, 'max_texts'), default=256,
                        help='texts per request; more get 422 (default: %(default)s)')
    parser.add_argument('--max-text-chars', type=config.limited(int, 'max_text_chars'), default=10_000,
                        help='characters per text; the model reads only its first maxlen tokens (default: %(default)s)')
    parser.add_argument('--max-queue', type=config.limited(int, 'max_queue'), default=256,
                        help='most texts waiting to be scored; a request beyond that gets 503 + Retry-After at once '
                             '(default: %(default)s)')
    parser.add_argument('--timeout-s', type=config.limited(float, 'timeout_s'), default=10.0,
                        help='a request not answered within this many seconds gets 503 (default: %(default)s)')
    parser.add_argument('--quiet', action='store_true',
                        help='no access log (otherwise one line per request on stdout: method, path, status, ms)')
    config.add_inference_precision_flag(parser)
    config.add_flags(parser, 'long_text', 'stride')
    return parser.parse_args(argv)


def listen(host, port):
    """A socket bound to (host, port) for the server, or config.InputError: a busy port is said
    in one line before the model loads, and before any line says the server is serving."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise config.InputError(f'--host {host}: {error.strerror}') from None
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise config.InputError(f'{host}:{port}: port {port} is in use; stop the other server or choose '
                                    'another --port') from None
        raise config.InputError(f'{host}:{port}: cannot listen there ({error.strerror})') from None
    return listener


class AccessLog:
    """ASGI middleware: one line per request on stdout, `POST /predict 200 12.3 ms`, written once
    the answer is sent (a request whose handler failed counts as the 500 the client got)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_and_note(message):
            nonlocal status
            if message['type'] == 'http.response.start':
                status = message['status']
            await send(message)
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The path as the client sent it (still %-encoded: no line break can get in), cut short.
            where = (scope.get('raw_path') or scope['path'].encode()).decode('latin-1')[:200]
            print(f'{scope["method"]} {where} {status} {1000 * (time.perf_counter() - started):.1f} ms', flush=True)


class Overloaded(Exception):
    """The queue is full, or a request waited past its timeout: 503, retry after `retry_after` s."""

    def __init__(self, reason, retry_after):
        super().__init__(reason)
        self.retry_after = retry_after


class Batcher:
    """Collects the texts of concurrent requests and scores them in one model call.

    The model runs on one worker thread, so the event loop keeps accepting requests while a
    batch is scored, and the next batch forms in the meantime. At most `max_queue` texts wait:
    a full queue answers at once instead of making every client wait longer.
    """

    def __init__(self, classifier, max_batch, max_wait_s, max_queue=256, timeout_s=10.0):
        self.classifier = classifier
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.queue = asyncio.Queue()
        self.queued = 0  # texts waiting, not yet in a batch
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix='model')
        self.requests = 0
        self.batches = 0
        self.rejected = 0
        self.timed_out = 0
        self.latencies = collections.deque(maxlen=1000)  # seconds of the last answered requests
        self.texts_per_second = None  # of the model, measured on the last batches

    def retry_after(self):
        """Whole seconds until the queue has drained at the model's recent speed (at least 1)."""
        rate = self.texts_per_second or self.max_batch
        return max(1, math.ceil(self.queued / rate))

    async def predict(self, texts):
        """(label lists, score rows) for `texts`, once their batch has been scored; Overloaded
        when the queue is full or the answer takes over the timeout."""
        if self.queued and self.queued + len(texts) > self.max_queue:
            self.rejected += 1
            raise Overloaded(f'server busy: {self.queued} texts already wait (--max-queue {self.max_queue})',
                             self.retry_after())
        started = time.perf_counter()
        future = asyncio.get_running_loop().create_future()
        self.requests += 1
        self.queued += len(texts)
        self.queue.put_nowait((texts, future))
        try:
            # wait_for cancels the future on timeout; the batcher then skips its texts.
            answer = await asyncio.wait_for(future, self.timeout_s)
        except asyncio.TimeoutError:
            self.timed_out += 1
            raise Overloaded(f'not answered within {self.timeout_s:g} s (--timeout-s)', self.retry_after()) from None
        self.latencies.append(time.perf_counter() - started)
        return answer

    async def next_request(self, timeout=None):
        """The next (texts, future) still awaited, taken off the queue; TimeoutError after `timeout` s."""
        while True:
            texts, future = await (self.queue.get() if timeout is None else asyncio.wait_for(self.queue.get(), timeout))
            self.queued -= len(texts)
            if not future.done():  # a timed-out request's texts are not scored
                return texts, future

    async def run(self):
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self.next_request()]
            count = len(waiting[0][0])
            deadline = loop.time() + self.max_wait_s
            while count < self.max_batch and loop.time() < deadline:
                try:
                    waiting.append(await self.next_request(deadline - loop.time()))
                except asyncio.TimeoutError:
                    break
                count += len(waiting[-1][0])
            texts = [text for request_texts, _ in waiting for text in request_texts]
            self.batches += 1
            started = time.perf_counter()
            try:
                _, label_lists, scores = await loop.run_in_executor(
                    self.executor, self.classifier.predict_batch, texts, self.max_batch)
            except Exception as error:  # a failed batch fails its requests, not the server
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(error)
                continue
            rate = len(texts) / max(time.perf_counter() - started, 1e-6)
            self.texts_per_second = rate if self.texts_per_second is None else 0.8 * self.texts_per_second + 0.2 * rate
            start = 0
            for request_texts, future in waiting:
                end = start + len(request_texts)
                if not future.done():  # timed out while its batch was scored
                    future.set_result((label_lists[start:end], scores[start:end]))
                start = end

    def health(self):
        """Queue depth, counters and the recent latency, for /health."""
        recent = sorted(self.latencies)
        latency = {f'p{p}_ms': round(1000 * recent[min(len(recent) - 1, len(recent) * p // 100)], 2)
                   for p in (50, 99)} if recent else {}
        return {'queued_texts': self.queued, 'max_queue': self.max_queue, 'requests': self.requests,
                'batches': self.batches, 'rejected': self.rejected, 'timed_out': self.timed_out,
                'recent_latency': dict(latency, window=len(recent))}


def validation_reason(error, shown=3):
    """pydantic's ValidationError as one short line: where (`text`, `texts[3]`) and why, the first
    `shown` problems and their count, never the input nor pydantic's internals."""
    problems = []
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        if item['type'] == 'extra_forbidden':  # the unknown key is the client's text: not repeated
            problems.append('body: Extra inputs are not permitted (the keys are "text" or "texts")')
            continue
        where = ''.join(f'[{part}]' if isinstance(part, int) else f'.{part}' for part in item['loc'])
        problems.append(f'{where.lstrip(".") or "body"}: {item["msg"].removeprefix("Value error, ")}')
    more = len(problems) - shown
    return '; '.join(problems[:shown]) + (f'; and {more} more' if more > 0 else '')


def create_app(classifier, max_batch=64, max_wait_ms=5.0, max_body_bytes=1_000_000, max_texts=256,
               max_text_chars=10_000, max_queue=256, timeout_s=10.0, access_log=True):
    """The FastAPI application around a loaded inference.Classifier."""
    Text = Annotated[str, pydantic.Field(max_length=max_text_chars)]

    class PredictRequest(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra='forbid')
        text: Optional[Text] = None
        texts: Optional[Annotated[list[Text], pydantic.Field(min_length=1, max_length=max_texts)]] = None
        explain: bool = False  # with "text": the characters that raised each predicted label (multilabel/explain.py)

        @pydantic.model_validator(mode='after')
        def one_of_text_and_texts(self):
            if (self.text is None) == (self.texts is None):
                raise ValueError('give either "text" (a string) or "texts" (a list of strings)')
            if self.explain and self.text is None:
                raise ValueError('"explain" is for one "text": each explanation costs 20 model passes')
            return self

    batcher = Batcher(classifier, max_batch, max_wait_ms / 1000, max_queue, timeout_s)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.executor.shutdown(wait=False)

    # No /docs or /redoc: FastAPI's pages load Swagger UI and ReDoc from a CDN, so offline they
    # are blank. The schema stays at /openapi.json, plain JSON.
    app = FastAPI(title='RoFormer-v2 multi-label classifier', lifespan=lifespan, docs_url=None, redoc_url=None)
    if access_log:
        app.add_middleware(AccessLog)

    def result(labels, row):
        return {'labels': labels, 'scores': {l: round(float(s), 6) for l, s in zip(classifier.labels, row)}}

    @app.exception_handler(Overloaded)
    async def overloaded(request, error):
        return JSONResponse({'detail': str(error)}, status_code=503, headers={'Retry-After': str(error.retry_after)})

    page = open(path.SERVE_PAGE, encoding='utf-8').read()  # read once; the page's HTML and JS live in multilabel/page.html

    @app.get('/', include_in_schema=False)
    async def index():
        return HTMLResponse(page)

    @app.get('/health')
    async def health():
        return {'status': 'ok', 'labels': len(classifier.labels), 'threshold': classifier.threshold_json(),
                'top1_fallback': classifier.top1_fallback, 'precision': classifier.precision, **batcher.health()}

    schema = {'requestBody': {'content': {'application/json': {'schema': PredictRequest.model_json_schema()}}}}

    @app.post('/predict', openapi_extra=schema)  # the schema for /openapi.json, as the body is parsed by hand
    async def predict(request: Request):
        # The body is read here rather than by FastAPI so that its size is capped while it
        # arrives (also without a Content-Length) and bad JSON is a 400, not a 422.
        declared = request.headers.get('content-length', '')
        if declared.isdigit() and int(declared) > max_body_bytes:
            raise HTTPException(413, f'request body over {max_body_bytes} bytes')
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                raise HTTPException(413, f'request body over {max_body_bytes} bytes')
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as error:  # JSONDecodeError, bytes that are not UTF-8, [[[[...
            reason = 'nested too deep' if isinstance(error, RecursionError) else error
            raise HTTPException(400, f'the body is not valid JSON: {reason}') from None
        if not isinstance(payload, dict):
            raise HTTPException(422, 'body: must be a JSON object, {"text": "..."} or {"texts": ["...", ...]}')
        try:
            parsed = PredictRequest.model_validate(payload)
        except pydantic.ValidationError as error:
            raise HTTPException(422, validation_reason(error)) from None
        texts = [parsed.text] if parsed.texts is None else parsed.texts
        # An empty text has no words to classify: its labels would be the model's prior guess.
        empty = [i for i, text in enumerate(texts) if not text.strip()]
        if empty:
            where = 'text' if parsed.texts is None else f'texts[{empty[0]}]'
            raise HTTPException(422, f'{where}: empty (or only white space): there is nothing to classify')
        label_lists, scores = await batcher.predict(texts)
        if parsed.texts is None:
            answer = result(label_lists[0], scores[0])
            if parsed.explain:  # on the model's worker thread, like every other model call
                answer['explanations'] = await asyncio.get_running_loop().run_in_executor(
                    batcher.executor, explain.explained_spans, classifier, parsed.text, label_lists[0])
            return answer
        return {'results': [result(labels, row) for labels, row in zip(label_lists, scores)]}

    return app


def main(argv=None):
    args = parse_args(argv)
    model_folder.read(args.weights)  # a missing model is said before the port is taken
    listener = listen(args.host, args.port)
    classifier = inference.Classifier(args.weights, args.threshold, args.top1_fallback, args.inference_precision,
                                    long_text=args.long_text, stride=args.stride)
    classifier.predict_batch(['warm-up'])  # build the scoring graph now, not during the first request
    app = create_app(classifier, args.max_batch, args.max_wait_ms, args.max_body_bytes, args.max_texts,
                     args.max_text_chars, args.max_queue, args.timeout_s, access_log=not args.quiet)
    print(f'serving {args.weights} ({len(classifier.labels)} labels, {classifier.precision}) on '
          f'http://{args.host}:{args.port}', flush=True)
    # On SIGTERM uvicorn stops listening and lets the requests in flight finish (each ends
    # within --timeout-s) before the lifespan's shutdown stops the batcher. Its own access log
    # is off: AccessLog writes one line per request, with the time it took.
    server = uvicorn.Server(uvicorn.Config(app, log_level='warning', access_log=False,
                                           timeout_graceful_shutdown=args.timeout_s + 5))
    server.run(sockets=[listener])


if __name__ == '__main__':
    config.run_main(main)
