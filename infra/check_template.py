"""Checks the wiring of template.yaml that matters to casebridge.

Run with a Python that has cfn-lint installed (infra/template-check.sh does):
  python infra/check_template.py template.yaml
Exits non-zero listing every finding.
"""

import json
import sys

from cfnlint.decode import decode


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
    import os
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
