"""Checks the wiring of template.yaml that matters to casebridge.

Besides the wiring of functions, streams, mail and permissions, it checks the
metrics: every metric the dashboard and the alarms name is in infra/metrics.json
(written from shared/src/metrics.rs) with its namespace and one of its dimension
sets, and every metric there is on the dashboard.

Run with a Python that has cfn-lint installed (infra/template-check.sh does):
  python infra/check_template.py template.yaml
Exits non-zero listing every finding.
"""

import json
import os
import re
import sys

from cfnlint.decode import decode


PSEUDO_PARAMETERS = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::StackName": "casebridge", "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


def substitute(value, template, where, check):
    """The text of a string or an Fn::Sub string, with every ${Name} replaced
    by a stand-in (a parameter's default, a pseudo parameter's example), so
    that a dashboard body or an expression can be parsed as CloudFormation
    would hand it to CloudWatch. Every ${Name} must be a parameter, a
    resource or a pseudo parameter; None if the value is neither form."""
    if isinstance(value, str):
        return value
    if not (isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str)):
        check(False, f"{where}: a string or a one-argument !Sub, not {json.dumps(value)[:80]}")
        return None
    parameters = template.get("Parameters", {})
    resources = template.get("Resources", {})

    def stand_in(match):
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in parameters:
            default = parameters[name].get("Default")
            check(default is not None, f"{where}: parameter {name} needs a default to be checked")
            return str(default)
        check(name.split(".")[0] in resources, f"{where}: ${{{name}}} names nothing in the template")
        return name

    return re.sub(r"\$\{([^}]+)\}", stand_in, value["Fn::Sub"])


def search_metrics(expression, where, check):
    """(namespace, metric name, dimension names) of each SEARCH in a metric math
    expression. A SEARCH must name its schema {namespace,dimension,...} and its
    metric names exactly, so that it can be checked against the catalogue."""
    found = []
    for query in re.findall(r"SEARCH\(\s*'([^']*)'", expression):
        schemas = re.findall(r"\{([^}]*)\}", query)
        names = re.findall(r'MetricName\s*=\s*"([^"]+)"', query)
        check(len(schemas) == 1 and names, f"{where}: SEARCH names one schema and its metric names: {query}")
        for schema in schemas[:1]:
            parts = [p.strip().strip('"') for p in schema.split(",")]
            found.extend((parts[0], name, parts[1:]) for name in names)
    return found


def expression_ids(expression):
    """The metric ids a metric math expression refers to (ids start with a
    lower-case letter; functions such as IF and FILL are upper case), outside
    quoted SEARCH text."""
    unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "", expression)
    return set(re.findall(r"\b[a-z][A-Za-z0-9_]*\b", unquoted))


def check_metrics(template, functions, of_type, check):
    """The dashboard and the alarms name only metrics the functions emit, in
    the catalogue's namespace and with one of its dimension sets (the
    catalogue, infra/metrics.json, is written from shared/src/metrics.rs by
    its test), and the dashboard shows every metric emitted."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics.json")) as f:
        catalogue = json.load(f)
    namespace = catalogue["namespace"]
    dimension_sets = [sorted(s) for s in catalogue["dimension_sets"]]
    emitted = [m["name"] for m in catalogue["metrics"]]
    resources = template["Resources"]
    parameters = template.get("Parameters", {})

    # EMF lines on in every function (the default in Lambda, and said in Globals).
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    check(variables.get("CASEBRIDGE_EMF") == "on", "Globals: CASEBRIDGE_EMF on")
    for name, function in functions.items():
        own = function["Properties"].get("Environment", {}).get("Variables", {})
        check(own.get("CASEBRIDGE_EMF", "on") == "on", f"{name}: EMF lines not turned off")

    def check_metric(where, ns, metric, dimensions):
        if isinstance(ns, str) and ns.startswith("AWS/"):
            return  # CloudWatch's own metrics (Lambda errors, queue depth)
        check(ns == namespace, f"{where}: namespace {ns!r}, the functions emit {namespace!r}")
        check(metric in emitted, f"{where}: metric {metric!r} is not in infra/metrics.json")
        check(sorted(dimensions) in dimension_sets, f"{where}: {metric} with dimensions {sorted(dimensions)}; emitted with {dimension_sets}")

    # Alarms: every metric they read is emitted; expressions refer to their own ids.
    alarm_action = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    alarms = of_type("AWS::CloudWatch::Alarm")
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        check(props.get("AlarmActions") == alarm_action, f"{name}: alarm actions to AlarmTopicArn when it is set")
        if "MetricName" in props:
            check_metric(name, props.get("Namespace"), props["MetricName"], [d["Name"] for d in props.get("Dimensions", [])])
        queries = props.get("Metrics", [])
        ids = {q.get("Id") for q in queries}
        check(not queries or sum(1 for q in queries if q.get("ReturnData", True)) == 1, f"{name}: exactly one query returns data")
        for query in queries:
            stat = query.get("MetricStat")
            if stat:
                metric = stat.get("Metric", {})
                check_metric(f"{name}.{query.get('Id')}", metric.get("Namespace"), metric.get("MetricName"), [d["Name"] for d in metric.get("Dimensions", [])])
            if "Expression" in query:
                expression = substitute(query["Expression"], template, f"{name}.{query.get('Id')}", check) or ""
                for ns, metric, dims in search_metrics(expression, f"{name}.{query.get('Id')}", check):
                    check_metric(f"{name}.{query.get('Id')}", ns, metric, dims)
                unknown = expression_ids(expression) - ids
                check(not unknown, f"{name}.{query.get('Id')}: expression refers to unknown ids {sorted(unknown)}")

    def reads(alarm, metric):
        props = alarm["Properties"]
        if props.get("MetricName") == metric:
            return True
        return any(q.get("MetricStat", {}).get("Metric", {}).get("MetricName") == metric for q in props.get("Metrics", []))

    # The escalation-rate spike: escalations over cases opened, with enough cases, above a parameter.
    rate = [a["Properties"] for a in alarms.values() if reads(a, "Escalations") and reads(a, "CasesOpened")]
    check(len(rate) == 1, "one escalation-rate alarm (Escalations over CasesOpened)")
    for props in rate[:1]:
        stats = {q["Id"]: q["MetricStat"] for q in props.get("Metrics", []) if "MetricStat" in q}
        by_metric = {s["Metric"]["MetricName"]: i for i, s in stats.items()}
        returned = [q for q in props.get("Metrics", []) if q.get("ReturnData", True)]
        expression = substitute(returned[0].get("Expression", ""), template, "escalation rate", check) if returned else ""
        escalated, opened = by_metric.get("Escalations"), by_metric.get("CasesOpened")
        check(escalated and opened and re.search(rf"\b{escalated}\b.*/\s*{opened}\b", expression or ""), f"escalation rate divides {escalated} by {opened}: {expression}")
        check({s.get("Stat") for s in stats.values()} == {"Sum"} and len({s.get("Period") for s in stats.values()}) == 1, "escalation rate: sums over one period")
        raw = json.dumps(returned[0].get("Expression")) if returned else ""
        check("${EscalationRateMinCases}" in raw, "escalation rate: only with EscalationRateMinCases cases or more")
        check(props.get("Threshold") == {"Ref": "EscalationRateThreshold"}, "escalation rate: threshold EscalationRateThreshold")
        check(props.get("ComparisonOperator") == "GreaterThanThreshold", "escalation rate: above the threshold")
        check(props.get("TreatMissingData") == "notBreaching", "escalation rate: missing data is not breaching")

    # The agent-failure spike: the sum of agent failures above a parameter.
    failures = [a["Properties"] for a in alarms.values() if a["Properties"].get("MetricName") == "AgentFailures"]
    check(len(failures) == 1, "one agent-failure alarm")
    for props in failures[:1]:
        check(props.get("Namespace") == namespace and not props.get("Dimensions"), "agent failures: the total over all agents")
        check(props.get("Statistic") == "Sum", "agent failures: summed")
        check(props.get("Threshold") == {"Ref": "AgentFailureThreshold"}, "agent failures: threshold AgentFailureThreshold")
        check(props.get("ComparisonOperator") == "GreaterThanThreshold", "agent failures: above the threshold")
        check(props.get("TreatMissingData") == "notBreaching", "agent failures: missing data is not breaching")
    for parameter in ["EscalationRateThreshold", "EscalationRateMinCases", "AgentFailureThreshold"]:
        p = parameters.get(parameter, {})
        check(p.get("Type") == "Number" and "Default" in p, f"parameter {parameter}: a number with a default")

    # The dashboard: valid JSON once substituted, only emitted metrics, every emitted metric.
    dashboards = of_type("AWS::CloudWatch::Dashboard")
    check(len(dashboards) == 1, "one CloudWatch dashboard")
    shown = set()
    for name, dashboard in dashboards.items():
        text = substitute(dashboard["Properties"].get("DashboardBody"), template, f"{name}.DashboardBody", check)
        try:
            body = json.loads(text or "")
        except ValueError as e:
            check(False, f"{name}: DashboardBody is not JSON once substituted: {e}")
            continue
        widgets = body.get("widgets", [])
        check(widgets, f"{name}: has widgets")
        for index, widget in enumerate(widgets):
            if widget.get("type") != "metric":
                continue
            props = widget.get("properties", {})
            where = f"{name} widget {index} ({props.get('title', '')[:40]})"
            check(props.get("region") == PSEUDO_PARAMETERS["AWS::Region"], f"{where}: region ${{AWS::Region}}")
            ids, expressions, previous = set(), [], []
            for entry in props.get("metrics", []):
                if entry and isinstance(entry[0], dict):
                    options = entry[0]
                    expressions.append(options.get("expression", ""))
                else:
                    options = entry[-1] if entry and isinstance(entry[-1], dict) else {}
                    fields = [f for f in entry if not isinstance(f, dict)]
                    # "." repeats the previous entry's field at that position.
                    fields = [previous[i] if f == "." and i < len(previous) else f for i, f in enumerate(fields)]
                    previous = fields
                    check(len(fields) >= 2 and len(fields) % 2 == 0, f"{where}: metric entry {entry}")
                    if len(fields) >= 2:
                        check_metric(where, fields[0], fields[1], fields[2::2])
                        shown.add(fields[1])
                if "id" in options:
                    ids.add(options["id"])
            for expression in expressions:
                for ns, metric, dims in search_metrics(expression, where, check):
                    check_metric(where, ns, metric, dims)
                    shown.add(metric)
                if "SEARCH(" not in expression:
                    unknown = expression_ids(expression) - ids
                    check(not unknown, f"{where}: expression refers to unknown ids {sorted(unknown)}")
    missing = [m for m in emitted if m not in shown]
    check(not missing, f"dashboard: metrics emitted but not shown: {missing}")


def main(path: str) -> int:
    template, matches = decode(path)
    if matches:
        print("\n".join(str(m) for m in matches))
        return 1
    resources = template["Resources"]
    findings = []

    def check(condition, message):
        if not condition:
            findings.append(message)

    def of_type(kind):
        return {name: r for name, r in resources.items() if r["Type"] == kind}

    functions = of_type("AWS::Serverless::Function")
    check(set(functions) == {"InboundEmailFunction", "AgentInvocationFunction", "OutcomeActionsFunction", "HttpApiFunction"}, f"functions: {sorted(functions)}")
    globals_fn = template.get("Globals", {}).get("Function", {})
    check(globals_fn.get("Runtime") == "provided.al2023", "runtime provided.al2023")
    check(globals_fn.get("Architectures") == ["arm64"], "arm64")
    # Configuration: a file from the configuration layer, never inline (4 KB of environment in all).
    variables = globals_fn.get("Environment", {}).get("Variables", {})
    check(variables.get("CASEBRIDGE_CONFIG_FILE") == "/opt/casebridge.toml" and "CASEBRIDGE_CONFIG" not in variables, "configuration from /opt/casebridge.toml")
    check(globals_fn.get("Layers") == [{"Ref": "ConfigLayer"}], "every function has the configuration layer")
    layer = resources.get("ConfigLayer", {})
    check(layer.get("Type") == "AWS::Serverless::LayerVersion" and layer.get("Properties", {}).get("ContentUri") == "infra/config/", "configuration layer from infra/config/")
    binaries = {"InboundEmailFunction": "inbound-email", "AgentInvocationFunction": "agent-invocation", "OutcomeActionsFunction": "outcome-actions", "HttpApiFunction": "http-api"}
    for name, binary in binaries.items():
        meta = functions.get(name, {}).get("Metadata", {})
        check(meta.get("BuildMethod") == "rust-cargolambda", f"{name}: BuildMethod rust-cargolambda")
        check(meta.get("BuildProperties", {}).get("Binary") == binary, f"{name}: builds binary {binary}")

    # Stream triggers: filters, partial batch responses, bisect, bounded retries, DLQ.
    dlq = "StreamDeadLetterQueue"
    # What each function's stream filters and schedules must be comes from the
    # trigger table (shared/src/triggers.rs), written to infra/triggers.json by its test.
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "triggers.json")) as f:
        triggers = json.load(f)
    expected_filters = {}
    for trigger in triggers["on_change"]:
        expected_filters.setdefault(trigger["function"], []).append(trigger["pattern"])
    expected_actions = {}
    for schedule in triggers["on_schedule"]:
        if schedule["function"]:
            expected_actions.setdefault(schedule["function"], []).append((schedule["action"], schedule["every_secs"]))
    for name, expected in expected_filters.items():
        events = functions[name]["Properties"].get("Events", {})
        streams = [e["Properties"] for e in events.values() if e["Type"] == "DynamoDB"]
        check(len(streams) == 1, f"{name}: one DynamoDB stream trigger")
        for stream in streams:
            check(stream.get("Stream") == {"Fn::GetAtt": ["CasesTable", "StreamArn"]}, f"{name}: triggered by the cases table's stream")
            patterns = [json.loads(f["Pattern"]) for f in stream.get("FilterCriteria", {}).get("Filters", [])]
            check(patterns == expected, f"{name}: stream filters {patterns}")
            check(stream.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], f"{name}: ReportBatchItemFailures")
            check(stream.get("BisectBatchOnFunctionError") is True, f"{name}: bisect on error")
            check(isinstance(stream.get("MaximumRetryAttempts"), int) and stream["MaximumRetryAttempts"] <= 10, f"{name}: bounded retries")
            destination = stream.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            check(destination == {"Fn::GetAtt": [dlq, "Arn"]}, f"{name}: on-failure destination is the dead-letter queue")
        schedules = [e["Properties"] for e in events.values() if e["Type"] == "ScheduleV2"]
        for action, every in expected_actions.get(name, []):
            rate = f"rate({every // 60} minute{'s' if every // 60 != 1 else ''})"
            found = [s for s in schedules if json.loads(s.get("Input") or "{}").get("action") == action]
            check(len(found) == 1 and found[0].get("ScheduleExpression") == rate, f"{name}: scheduled {action} at {rate}")

    # SES: store in S3 first, then invoke the inbound function asynchronously.
    rules = of_type("AWS::SES::ReceiptRule")
    check(len(rules) == 1, "one receipt rule")
    for rule in rules.values():
        actions = rule["Properties"]["Rule"]["Actions"]
        kinds = [next(iter(a)) for a in actions]
        check(kinds == ["S3Action", "LambdaAction"], f"receipt rule actions in order S3 then Lambda: {kinds}")
        lambda_action = actions[-1].get("LambdaAction", {})
        check(lambda_action.get("FunctionArn") == {"Fn::GetAtt": ["InboundEmailFunction", "Arn"]}, "receipt rule invokes the inbound function")
        check(lambda_action.get("InvocationType") == "Event", "inbound invoked asynchronously")
    permissions = [r["Properties"] for r in of_type("AWS::Lambda::Permission").values()]
    check(any(p.get("Principal") == "ses.amazonaws.com" and p.get("SourceAccount") == {"Ref": "AWS::AccountId"} for p in permissions), "SES may invoke the inbound function, this account only")

    # Table: stream image, indexes the queries use, TTL, point-in-time recovery.
    table = resources["CasesTable"]["Properties"]
    check(table.get("StreamSpecification", {}).get("StreamViewType") == "NEW_AND_OLD_IMAGES", "table stream NEW_AND_OLD_IMAGES")
    check({i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])} == {"due", "queue"}, "GSIs due and queue")
    check(table.get("TimeToLiveSpecification", {}).get("Enabled") is True, "TTL on")
    check(table.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True, "point-in-time recovery")
    check(table.get("BillingMode") == "PAY_PER_REQUEST", "on-demand")

    # Bucket: encrypted, private, expiring; only SES of this account writes.
    bucket = resources["MailBucket"]["Properties"]
    check("BucketEncryption" in bucket, "bucket encryption")
    check(all(bucket.get("PublicAccessBlockConfiguration", {}).get(k) for k in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"]), "public access blocked")
    check(bucket.get("LifecycleConfiguration", {}).get("Rules"), "lifecycle expiry")
    statements = resources["MailBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    check(all(s.get("Principal") == {"Service": "ses.amazonaws.com"} and "aws:SourceAccount" in s.get("Condition", {}).get("StringEquals", {}) for s in statements), "bucket policy: SES of this account only")

    # Intent training data: private, encrypted, kept (no expiry), readable by the inbound function.
    intent_data = resources["IntentDataBucket"]["Properties"]
    check("BucketEncryption" in intent_data and "LifecycleConfiguration" not in intent_data, "intent data bucket encrypted, not expiring")
    check(all(intent_data.get("PublicAccessBlockConfiguration", {}).get(k) for k in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"]), "intent data public access blocked")
    inbound_policies = json.dumps(functions["InboundEmailFunction"]["Properties"].get("Policies", []))
    check('{"S3ReadPolicy": {"BucketName": {"Ref": "IntentDataBucket"}}}' in inbound_policies, "inbound function reads the intent data bucket")

    # Bedrock: only when a model is configured, InvokeModel on that one model only.
    bedrock = [p["Fn::If"] for p in functions["InboundEmailFunction"]["Properties"].get("Policies", []) if isinstance(p, dict) and "Fn::If" in p]
    check(len(bedrock) == 1 and bedrock[0][0] == "HasBedrockModel" and bedrock[0][2] == {"Ref": "AWS::NoValue"}, "inbound function: a Bedrock grant only when BedrockModelId is set")
    for _, grant, _ in bedrock[:1]:
        statements = grant.get("Statement", [])
        check(len(statements) == 1 and statements[0].get("Action") == "bedrock:InvokeModel", f"Bedrock grant is bedrock:InvokeModel alone: {statements}")
        resource = json.dumps(statements[0].get("Resource") if statements else None)
        check("foundation-model/${BedrockModelId}" in resource and "*" not in resource, f"Bedrock grant on the configured model only: {resource}")
    condition = template.get("Conditions", {}).get("HasBedrockModel")
    check(condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "BedrockModelId"}, ""]}]}, "HasBedrockModel: a model id is set")
    for name, function in functions.items():
        if name != "InboundEmailFunction":
            check("bedrock" not in json.dumps(function["Properties"].get("Policies", [])), f"{name}: no Bedrock permission")

    # No wildcard resources in inline policy statements.
    for name, function in functions.items():
        for policy in function["Properties"].get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                resource = statement.get("Resource")
                flat = json.dumps(resource)
                check(resource != "*" and '"*"' not in flat, f"{name}: no '*' resource in {statement.get('Action')}")

    # Alarms on the dead-letter queue and on every function's errors.
    alarms = of_type("AWS::CloudWatch::Alarm").values()
    watched = {json.dumps(d["Value"]) for a in alarms for d in a["Properties"].get("Dimensions", [])}
    check(json.dumps({"Fn::GetAtt": [dlq, "QueueName"]}) in watched, "alarm on dead-letter depth")
    for name in functions:
        check(json.dumps({"Ref": name}) in watched, f"alarm on {name} errors")

    check_metrics(template, functions, of_type, check)

    # Representatives behind the JWT authorizer; agent routes authenticate in the function.
    api = resources["CasebridgeHttpApi"]["Properties"]["Auth"]
    check(api.get("DefaultAuthorizer") == "Representatives" and "JwtConfiguration" in api["Authorizers"]["Representatives"], "JWT authorizer by default")
    outputs = template.get("Outputs", {})
    check({"ApiUrl", "TableName", "MailBucketName", "IntentDataBucketName"} <= set(outputs), "outputs for the API URL, table and buckets")

    for finding in findings:
        print(f"template.yaml: {finding}")
    print(f"template.yaml: {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
