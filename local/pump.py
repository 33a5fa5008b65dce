"""Delivers the table's stream to the stream-triggered functions the way AWS's event source
mapping does: each mapping keeps its own position in the shard, filters first, batches up to
BatchSize, and on failure retries only the failed records and those after them (or bisects
the batch on a function error) until MaximumRetryAttempts, then sends the records to the
dead-letter queue (here a JSON-lines file). Also fires the schedule sweep."""

import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
import zlib

import template as tpl


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(value).decode()
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return value


def invoke(invoke_url, function, payload, timeout=300):
    """Invokes a function through cargo lambda's Lambda API. Returns (ok, parsed result)."""
    request = urllib.request.Request(
        f"{invoke_url}/2015-03-31/functions/{function}/invocations",
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            function_error = response.headers.get("X-Amz-Function-Error")
    except urllib.error.HTTPError as err:
        return False, {"errorType": f"HTTP {err.code}", "errorMessage": err.read().decode(errors="replace")[:500]}
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        return False, {"errorType": "InvokeFailed", "errorMessage": str(err)}
    result = json.loads(body) if body else None
    if function_error or (isinstance(result, dict) and "errorType" in result and "errorMessage" in result):
        return False, result
    return True, result


class Shard:
    """An ordered, shared log of the table's stream records (read once from moto)."""

    def __init__(self, streams_client, stream_arn, region):
        self.client = streams_client
        self.stream_arn = stream_arn
        self.region = region
        self.records = []
        self.lock = threading.Condition()
        self.iterators = {}

    def poll(self):
        shards = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        fresh = []
        for shard in shards:
            sid = shard["ShardId"]
            if sid not in self.iterators:
                self.iterators[sid] = self.client.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            out = self.client.get_records(ShardIterator=self.iterators[sid], Limit=1000)
            self.iterators[sid] = out.get("NextShardIterator") or self.iterators[sid]
            for record in out.get("Records", []):
                record = _jsonable(record)
                record["eventSourceARN"] = self.stream_arn
                record.setdefault("awsRegion", self.region)
                record["dynamodb"].setdefault("SizeBytes", len(json.dumps(record["dynamodb"])))
                fresh.append(record)
        if fresh:
            with self.lock:
                self.records.extend(fresh)
                self.lock.notify_all()


def lane_of(record, lanes):
    """Which of a mapping's concurrent batches takes `record`: as Lambda does with
    ParallelizationFactor, records of one partition key always go to the same one, in order."""
    if lanes == 1:
        return 0
    pk = record["dynamodb"].get("Keys", {}).get("pk", {}).get("S", "")
    return zlib.crc32(pk.encode()) % lanes


class Mapping(threading.Thread):
    """One event source mapping's lane (of ParallelizationFactor): its own position in the shard."""

    def __init__(self, shard, trigger, invoke_url, dlq_path, stop, log, lane=0):
        super().__init__(daemon=True, name=f"esm-{trigger.function}-{lane}")
        self.shard, self.trigger, self.invoke_url = shard, trigger, invoke_url
        self.dlq_path, self.stop, self.log = dlq_path, stop, log
        self.lane = lane
        self.position = 0
        self.invocations = 0

    def takes(self, record):
        return lane_of(record, self.trigger.parallelization_factor) == self.lane and tpl.passes(self.trigger, record)

    def next_batch(self):
        """Matching records from the current position, up to BatchSize; advances past misses.
        As Lambda does, a batch that is not full waits up to MaximumBatchingWindowInSeconds
        from its first record for more."""
        batch = []
        window_ends = None
        with self.shard.lock:
            while not self.stop.is_set():
                while self.position < len(self.shard.records) and len(batch) < self.trigger.batch_size:
                    record = self.shard.records[self.position]
                    self.position += 1
                    if self.takes(record):
                        batch.append(record)
                if len(batch) >= self.trigger.batch_size:
                    return batch
                if batch and window_ends is None:
                    window_ends = time.monotonic() + self.trigger.batching_window_seconds
                left = 0.5 if window_ends is None else window_ends - time.monotonic()
                if left <= 0:
                    return batch
                self.shard.lock.wait(timeout=left)
                if window_ends is None and self.position >= len(self.shard.records):
                    return batch  # nothing new within half a second: let run() check stop
        return batch

    def run(self):
        while not self.stop.is_set():
            batch = self.next_batch()
            if batch:
                self.deliver(batch)

    def deliver(self, batch, attempt=0):
        """Invokes with `batch`; retries what failed as Lambda would, then dead-letters it."""
        while batch and not self.stop.is_set():
            self.invocations += 1
            ok, result = invoke(self.invoke_url, self.trigger.function, {"Records": batch})
            if ok:
                failed = self.failed_from(batch, result)
                if not failed:
                    return
                batch = failed  # only the failed records and those after them
            else:
                self.log(f"{self.trigger.function}: function error on {len(batch)} records: {result}")
                if self.trigger.bisect_on_error and len(batch) > 1:
                    half = len(batch) // 2
                    self.deliver(batch[:half], attempt + 1)
                    self.deliver(batch[half:], attempt + 1)
                    return
            attempt += 1
            too_old = self.trigger.max_record_age_seconds > 0 and (
                time.time() - batch[0]["dynamodb"].get("ApproximateCreationDateTime", time.time())
                > self.trigger.max_record_age_seconds
            )
            if (self.trigger.max_retry_attempts >= 0 and attempt > self.trigger.max_retry_attempts) or too_old:
                self.dead_letter(batch)
                return
            time.sleep(min(0.5 * 2**attempt, 10))

    def failed_from(self, batch, result):
        if not self.trigger.report_batch_item_failures or not isinstance(result, dict):
            return []
        failures = result.get("batchItemFailures") or []
        if not failures:
            return []
        sequence_numbers = [r["dynamodb"]["SequenceNumber"] for r in batch]
        positions = [
            sequence_numbers.index(f.get("itemIdentifier")) for f in failures if f.get("itemIdentifier") in sequence_numbers
        ]
        if len(positions) != len(failures):
            return batch  # an unknown identifier fails the whole batch, as in AWS
        return batch[min(positions):]

    def dead_letter(self, batch):
        self.log(f"{self.trigger.function}: {len(batch)} records exhausted their retries -> dead-letter queue")
        with open(self.dlq_path, "a") as dlq:
            for record in batch:
                dlq.write(json.dumps({"function": self.trigger.function, "record": record}) + "\n")


class Pump:
    def __init__(self, streams_client, stream_arn, region, triggers, invoke_url, dlq_path, log):
        self.stop = threading.Event()
        self.shard = Shard(streams_client, stream_arn, region)
        self.mappings = [
            Mapping(self.shard, t, invoke_url, dlq_path, self.stop, log, lane)
            for t in triggers
            for lane in range(t.parallelization_factor)
        ]
        self.log = log
        self.reader = threading.Thread(target=self._read, daemon=True, name="stream-reader")

    def _read(self):
        while not self.stop.is_set():
            try:
                self.shard.poll()
            except Exception as err:  # noqa: BLE001 - keep pumping through a moto hiccup
                if not self.stop.is_set():  # moto going away at shutdown is no error
                    self.log(f"stream read failed: {err}")
            self.stop.wait(0.2)

    def start(self):
        self.reader.start()
        for mapping in self.mappings:
            mapping.start()

    def close(self):
        self.stop.set()


class Schedule(threading.Thread):
    """Fires a scheduled event at a function, like an EventBridge rule, every `seconds`."""

    def __init__(self, function, seconds, invoke_url, event, stop, log):
        super().__init__(daemon=True, name=f"schedule-{function}")
        self.function, self.seconds, self.invoke_url = function, seconds, invoke_url
        self.event, self.stop, self.log = event, stop, log

    def run(self):
        while not self.stop.wait(self.seconds):
            event = dict(self.event, time=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
            ok, result = invoke(self.invoke_url, self.function, event)
            if not ok:
                self.log(f"scheduled {self.function} failed: {result}")
