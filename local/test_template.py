"""Unit tests of the local event-filter matcher and template reading (run by scripts/test)."""

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import template as tpl  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def record(event_name, new=None, old=None):
    dynamodb = {}
    if new is not None:
        dynamodb["NewImage"] = new
    if old is not None:
        dynamodb["OldImage"] = old
    return {"eventName": event_name, "dynamodb": dynamodb}


def expense(status):
    return {"kind": {"S": "expense"}, "status": {"S": status}, "extra": {"M": {"x": {"N": "1"}}}}


class FilterMatching(unittest.TestCase):
    def setUp(self):
        functions = {f.binary: f for f in tpl.functions(tpl.load(ROOT / "template.yaml"))}
        self.upload = functions["attachment-upload"].stream_triggers[0]
        self.initiate = functions["sync-initiation"].stream_triggers[0]

    def test_upload_sees_only_syncing_to_synced_and_requeues(self):
        self.assertTrue(tpl.passes(self.upload, record("MODIFY", expense("synced"), expense("syncing"))))
        # The sweep's requeue of an expense left synced.
        self.assertTrue(tpl.passes(self.upload, record("MODIFY", expense("synced"), expense("synced"))))
        # An abandoned upload (uploading -> synced) must not re-trigger itself.
        self.assertFalse(tpl.passes(self.upload, record("MODIFY", expense("synced"), expense("uploading"))))
        self.assertFalse(tpl.passes(self.upload, record("INSERT", expense("synced"))))
        self.assertFalse(tpl.passes(self.upload, record("MODIFY", expense("uploaded"), expense("uploading"))))

    def test_initiation_sees_new_datasets_and_locks_released_by_syncs(self):
        dataset = {"kind": {"S": "dataset"}, "status": {"S": "pending"}}
        self.assertTrue(tpl.passes(self.initiate, record("INSERT", dataset)))
        self.assertFalse(tpl.passes(self.initiate, record("MODIFY", dataset, dataset)))
        lock = lambda kind: {"kind": {"S": "lock"}, "holder": {"M": {"kind": {"S": kind}, "id": {"S": "x"}}}}  # noqa: E731
        self.assertTrue(tpl.passes(self.initiate, record("REMOVE", old=lock("sync"))))
        # An initiation that found nothing releases the lock too: no trigger, or it would loop.
        self.assertFalse(tpl.passes(self.initiate, record("REMOVE", old=lock("initiation"))))
        self.assertFalse(tpl.passes(self.initiate, record("INSERT", lock("initiation"))))

    def test_initiation_records_each_webhook_notice_once(self):
        notice = {"kind": {"S": "webhookNotice"}, "syncId": {"S": "x"}}
        self.assertTrue(tpl.passes(self.initiate, record("INSERT", notice)))
        # Its expiry (TTL) is no second notice.
        self.assertFalse(tpl.passes(self.initiate, record("REMOVE", old=notice)))
        self.assertFalse(tpl.passes(self.upload, record("INSERT", notice)))

    def test_rule_operators(self):
        rec = {"a": {"S": "prefix-value"}, "n": {"N": "5"}}
        self.assertTrue(tpl.matches({"a": {"S": [{"prefix": "prefix-"}]}}, rec))
        self.assertTrue(tpl.matches({"a": {"S": [{"anything-but": ["other"]}]}}, rec))
        self.assertFalse(tpl.matches({"a": {"S": [{"anything-but": "prefix-value"}]}}, rec))
        self.assertTrue(tpl.matches({"missing": [{"exists": False}]}, rec))
        self.assertFalse(tpl.matches({"a": [{"exists": False}]}, rec))
        self.assertTrue(tpl.matches({"n": {"N": [{"numeric": [">", 1, "<=", 5]}]}}, rec))
        self.assertFalse(tpl.matches({"n": {"N": [{"numeric": [">", 5]}]}}, rec))


class TemplateReading(unittest.TestCase):
    def test_table_definition_comes_from_the_template(self):
        definition, ttl = tpl.table_definition(tpl.load(ROOT / "template.yaml"))
        self.assertEqual([k["AttributeName"] for k in definition["KeySchema"]], ["pk", "sk"])
        self.assertEqual(definition["StreamSpecification"]["StreamViewType"], "NEW_AND_OLD_IMAGES")
        indexes = [index["IndexName"] for index in definition["GlobalSecondaryIndexes"]]
        self.assertEqual(indexes, ["sweepShards", "sweep"])
        self.assertEqual(ttl, {"AttributeName": "ttl", "Enabled": True})

    def test_every_filter_is_json(self):
        for fn in tpl.functions(tpl.load(ROOT / "template.yaml")):
            for trigger in fn.stream_triggers:
                self.assertTrue(trigger.filters)
                json.dumps(trigger.filters)


if __name__ == "__main__":
    unittest.main()
