//! The published JSON Schemas and the serde types accept and reject the same examples.

use casebridge::protocol::{parse_agent_response, AgentRequest};
use serde_json::json;

fn schema(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[test]
fn response_schema_and_parser_agree() {
    let validator = schema("agent-response.schema.json");
    let examples = vec![
        json!({"responseType": "Question", "message": "Which order?"}),
        json!({"responseType": "Resolved", "message": "Refunded.", "handlingOptions": {"needsReview": true}}),
        json!({"responseType": "Resolved", "message": "Refunded.", "handlingOptions": {}}),
        json!({"responseType": "UnableToResolve"}),
        json!({"responseType": "UnableToResolve", "message": null}),
        json!({"responseType": "NoAction", "extra": 1}),
        json!({"responseType": "ResolveCase", "handlingOptions": null}),
        json!({"responseType": "Question"}),
        json!({"responseType": "Question", "message": ""}),
        json!({"responseType": "Question", "message": "  "}),
        json!({"responseType": "Resolved", "message": 12}),
        json!({"responseType": "Maybe", "message": "x"}),
        json!({"responseType": 1}),
        json!({"message": "x"}),
        json!({"responseType": "NoAction", "handlingOptions": {"needsReview": "yes"}}),
        json!({"responseType": "NoAction", "handlingOptions": 3}),
        json!({"responseType": "Resolved", "message": "a".repeat(65_537)}),
        json!(["Question"]),
        json!("Question"),
    ];
    let mut accepted = 0;
    for example in &examples {
        let by_schema = validator.is_valid(example);
        let by_parser = parse_agent_response(example.to_string().as_bytes()).is_ok();
        assert_eq!(by_schema, by_parser, "schema and parser disagree on {example}");
        accepted += usize::from(by_parser);
    }
    assert!(accepted >= 6 && accepted < examples.len(), "the examples cover both outcomes");
}

#[test]
fn request_schema_and_type_agree() {
    let validator = schema("agent-request.schema.json");
    let request = AgentRequest {
        case_id: "CB-0000000000".into(),
        conversation_id: "c".into(),
        turn_id: Some("t".into()),
        intent: None,
        new_text: vec!["not on the wire".into()],
        remote_task: Some("not on the wire either".into()),
    };
    let value = serde_json::to_value(&request).unwrap();
    assert!(validator.is_valid(&value));
    assert_eq!(value["caseId"], "CB-0000000000");
    assert_eq!(value["conversationId"], "c");
    assert_eq!(
        value.as_object().unwrap().len(),
        3,
        "only the contract's fields go on the wire: {value}"
    );
    for bad in [
        json!({"caseId": "x"}),
        json!({"conversationId": "x"}),
        json!({"caseId": 1, "conversationId": "x"}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad}");
        assert!(serde_json::from_value::<AgentRequest>(bad).is_err());
    }
}
