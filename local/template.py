"""Reads template.yaml: the one description of tables, triggers and filters used locally too."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class _CfnLoader(yaml.SafeLoader):
    """Loads CloudFormation YAML, keeping intrinsic functions as {"!Tag": value}."""


def _intrinsic(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"!" + tag_suffix: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load(path):
    return yaml.load(Path(path).read_text(), Loader=_CfnLoader)


@dataclass
class StreamTrigger:
    """A DynamoDB event source mapping as the template declares it."""

    function: str  # the binary name (BuildProperties.Binary)
    batch_size: int
    filters: list  # parsed JSON patterns; empty means every record
    report_batch_item_failures: bool
    max_retry_attempts: int
    max_record_age_seconds: int
    bisect_on_error: bool
    starting_position: str = "TRIM_HORIZON"
    batching_window_seconds: float = 0  # MaximumBatchingWindowInSeconds
    parallelization_factor: int = 1  # ParallelizationFactor: batches in flight per shard


@dataclass
class Function:
    logical_id: str
    binary: str
    environment: dict = field(default_factory=dict)
    http_routes: list = field(default_factory=list)  # (METHOD, path)
    stream_triggers: list = field(default_factory=list)
    schedules: list = field(default_factory=list)


def functions(template):
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        props = resource.get("Properties", {})
        fn = Function(logical_id, binary, props.get("Environment", {}).get("Variables", {}))
        for event in props.get("Events", {}).values():
            p = event.get("Properties", {})
            if event["Type"] == "HttpApi":
                fn.http_routes.append((p["Method"].upper(), p["Path"]))
            elif event["Type"] == "DynamoDB":
                fn.stream_triggers.append(
                    StreamTrigger(
                        function=binary,
                        batch_size=int(p.get("BatchSize", 100)),
                        filters=[json.loads(f["Pattern"]) for f in p.get("FilterCriteria", {}).get("Filters", [])],
                        report_batch_item_failures="ReportBatchItemFailures" in p.get("FunctionResponseTypes", []),
                        max_retry_attempts=int(p.get("MaximumRetryAttempts", -1)),
                        max_record_age_seconds=int(p.get("MaximumRecordAgeInSeconds", -1)),
                        bisect_on_error=bool(p.get("BisectBatchOnFunctionError", False)),
                        starting_position=p.get("StartingPosition", "TRIM_HORIZON"),
                        batching_window_seconds=float(p.get("MaximumBatchingWindowInSeconds", 0)),
                        parallelization_factor=int(p.get("ParallelizationFactor", 1)),
                    )
                )
            elif event["Type"] in ("Schedule", "ScheduleV2"):
                fn.schedules.append(p.get("Schedule") or p.get("ScheduleExpression"))
        found.append(fn)
    return found


def table_definition(template, logical_id="ExpensesTable"):
    """The table's CreateTable arguments, straight from the template."""
    props = template["Resources"][logical_id]["Properties"]
    definition = {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        "StreamSpecification": {"StreamEnabled": True, **props["StreamSpecification"]},
    }
    if props.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return definition, props.get("TimeToLiveSpecification")


# ---- event filtering, as Lambda's event source mappings apply it ----


def _match_value(rule, value, present):
    if isinstance(rule, dict):
        if "exists" in rule:
            return present == bool(rule["exists"])
        if not present:
            return False
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if "suffix" in rule:
            return isinstance(value, str) and value.endswith(rule["suffix"])
        if "anything-but" in rule:
            banned = rule["anything-but"]
            banned = banned if isinstance(banned, list) else [banned]
            return value not in banned
        if "equals-ignore-case" in rule:
            return isinstance(value, str) and value.lower() == rule["equals-ignore-case"].lower()
        if "numeric" in rule:
            ops = rule["numeric"]
            try:
                number = float(value)
            except (TypeError, ValueError):
                return False
            checks = {"=": number.__eq__, "<": number.__lt__, "<=": number.__le__, ">": number.__gt__, ">=": number.__ge__}
            return all(checks[ops[i]](float(ops[i + 1])) for i in range(0, len(ops), 2))
        raise ValueError(f"filter rule not supported locally: {rule}")
    return present and value == rule


def matches(pattern, record):
    """True when `record` (a dict) matches the filter `pattern`."""
    for key, rule in pattern.items():
        present = isinstance(record, dict) and key in record
        value = record.get(key) if present else None
        if isinstance(rule, dict):
            if not present or not isinstance(value, dict) or not matches(rule, value):
                return False
        elif isinstance(rule, list):
            if isinstance(value, list):
                if not any(_match_value(r, v, True) for r in rule for v in value):
                    return False
            elif not any(_match_value(r, value, present) for r in rule):
                return False
        else:
            raise ValueError(f"filter patterns hold objects and arrays, not {rule!r}")
    return True


def passes(trigger, record):
    return not trigger.filters or any(matches(p, record) for p in trigger.filters)
