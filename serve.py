"""Serve a trained model over HTTP: JSON in, labels and scores out (FastAPI + uvicorn).

    python serve.py                                   # weights/, http://127.0.0.1:8000
    python serve.py --weights weights --port 8080 --max-batch 64 --max-wait-ms 5

    curl -s localhost:8000/predict -d '{"text": "青岛地铁施工段坍塌致3人遇难"}'
    curl -s localhost:8000/predict -d \
         '{"texts": ["某汽车品牌召回两万辆新车", "中国队3比1击败日本队"]}'
    curl -s localhost:8000/health

`POST /predict` takes {"text": "..."} and answers {"labels": [...], "scores": {label: score}},
or takes {"texts": [...]} and answers {"results": [{"labels": ..., "scores": ...}, ...]} in
the same order. The decision rule is predict.py's (the threshold saved with the model, or the per-label
thresholds tuned at training).

Concurrent requests are batched: texts that arrive within --max-wait-ms of each other (up to
--max-batch of them) go through the model together, which is what makes a CPU or GPU
server fast under load. Errors: 400 for a body that is not JSON, 413 for a body over
--max-body-bytes, 422 (with the reason) for JSON of the wrong shape, more than --max-texts
texts, or a text over --max-text-chars characters.
"""
import argparse
import asyncio
import concurrent.futures
import contextlib
import json
from typing import Annotated, Optional

import config
import path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='HTTP JSON server for a trained model.')
    parser.add_argument('--weights', default=path.WEIGHTS_DIR, help='trained model folder (default: %(default)s)')
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on (default: %(default)s)')
    parser.add_argument('--port', type=int, default=8000, help='(default: %(default)s)')
    parser.add_argument('--max-batch', type=int, default=64, help='most texts scored together (default: %(default)s)')
    parser.add_argument('--max-wait-ms', type=float, default=5.0,
                        help='how long the first request of a batch waits for others (default: %(default)s)')
    parser.add_argument('--max-body-bytes', type=int, default=1_000_000, help='(default: %(default)s)')
    parser.add_argument('--max-texts', type=int, default=256, help='texts per request (default: %(default)s)')
    parser.add_argument('--max-text-chars', type=int, default=10_000,
                        help='characters per text; the model reads only its first maxlen tokens (default: %(default)s)')
    config.add_flags(parser, 'long_text', 'stride')
    return parser.parse_args(argv)


class Batcher:
    """Collects the texts of concurrent requests and scores them in one model call.

    The model runs on one worker thread, so the event loop keeps accepting requests while a
    batch is scored, and the next batch forms in the meantime.
    """

    def __init__(self, classifier, max_batch, max_wait_s):
        self.classifier = classifier
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue = asyncio.Queue()
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix='model')
        self.requests = 0
        self.batches = 0

    async def predict(self, texts):
        """(label lists, score rows) for `texts`, once their batch has been scored."""
        future = asyncio.get_running_loop().create_future()
        self.requests += 1
        await self.queue.put((texts, future))
        return await future

    async def run(self):
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self.queue.get()]
            count = len(waiting[0][0])
            deadline = loop.time() + self.max_wait_s
            while count < self.max_batch and loop.time() < deadline:
                try:
                    waiting.append(await asyncio.wait_for(self.queue.get(), deadline - loop.time()))
                except asyncio.TimeoutError:
                    break
                count += len(waiting[-1][0])
            texts = [text for request_texts, _ in waiting for text in request_texts]
            self.batches += 1
            try:
                _, label_lists, scores = await loop.run_in_executor(
                    self.executor, self.classifier.predict_batch, texts, self.max_batch)
            except Exception as error:  # a failed batch fails its requests, not the server
                for _, future in waiting:
                    future.set_exception(error)
                continue
            start = 0
            for request_texts, future in waiting:
                end = start + len(request_texts)
                if not future.cancelled():  # the client may have gone away
                    future.set_result((label_lists[start:end], scores[start:end]))
                start = end


def create_app(classifier, max_batch=64, max_wait_ms=5.0, max_body_bytes=1_000_000, max_texts=256,
               max_text_chars=10_000):
    """The FastAPI application around a loaded predict.Classifier."""
    import pydantic
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError

    Text = Annotated[str, pydantic.Field(max_length=max_text_chars)]

    class PredictRequest(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra='forbid')
        text: Optional[Text] = None
        texts: Optional[Annotated[list[Text], pydantic.Field(min_length=1, max_length=max_texts)]] = None

        @pydantic.model_validator(mode='after')
        def one_of_text_and_texts(self):
            if (self.text is None) == (self.texts is None):
                raise ValueError('give either "text" (a string) or "texts" (a list of strings)')
            return self

    batcher = Batcher(classifier, max_batch, max_wait_ms / 1000)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.executor.shutdown(wait=False)

    app = FastAPI(title='RoFormer-v2 multi-label classifier', lifespan=lifespan)

    def result(labels, row):
        return {'labels': labels, 'scores': {l: round(float(s), 6) for l, s in zip(classifier.labels, row)}}

    @app.get('/health')
    async def health():
        return {'status': 'ok', 'labels': len(classifier.labels), 'threshold': classifier.threshold_json(),
                'requests': batcher.requests, 'batches': batcher.batches}

    schema = {'requestBody': {'content': {'application/json': {'schema': PredictRequest.model_json_schema()}}}}

    @app.post('/predict', openapi_extra=schema)  # the schema for /docs, as the body is parsed by hand
    async def predict(request: Request):
        # The body is read here rather than by FastAPI so that its size is capped while it
        # arrives (also without a Content-Length) and bad JSON is a 400, not a 422.
        if int(request.headers.get('content-length') or 0) > max_body_bytes:
            raise HTTPException(413, f'request body over {max_body_bytes} bytes')
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                raise HTTPException(413, f'request body over {max_body_bytes} bytes')
        try:
            payload = json.loads(body)
        except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
            raise HTTPException(400, f'the body is not valid JSON: {error}') from None
        try:
            parsed = PredictRequest.model_validate(payload)
        except pydantic.ValidationError as error:
            raise RequestValidationError(error.errors(include_url=False)) from None
        texts = [parsed.text] if parsed.texts is None else parsed.texts
        label_lists, scores = await batcher.predict(texts)
        if parsed.texts is None:
            return result(label_lists[0], scores[0])
        return {'results': [result(labels, row) for labels, row in zip(label_lists, scores)]}

    return app


def main(argv=None):
    args = parse_args(argv)
    import predict
    import uvicorn
    classifier = predict.Classifier(args.weights, long_text=args.long_text, stride=args.stride)
    classifier.predict_batch(['warm-up'])  # build the scoring graph now, not during the first request
    app = create_app(classifier, args.max_batch, args.max_wait_ms, args.max_body_bytes, args.max_texts,
                     args.max_text_chars)
    print(f'serving {args.weights} ({len(classifier.labels)} labels) on http://{args.host}:{args.port}', flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level='warning')


if __name__ == '__main__':
    config.run_main(main)
