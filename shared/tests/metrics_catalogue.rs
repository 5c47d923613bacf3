//! `infra/metrics.json` is the metric catalogue of `casebridge::metrics`,
//! written from `catalogue_json()`. `infra/check_template.py` checks the
//! dashboard and the alarms of `template.yaml` against that file (Python
//! cannot read the Rust code), so the file must not drift from the code:
//! this test fails when it does, and rewrites it when asked to.

use std::path::{Path, PathBuf};

use casebridge::metrics::{self, Fact};

/// Set to `1` to rewrite `infra/metrics.json` from the code instead of failing.
const WRITE_ENV: &str = "CASEBRIDGE_WRITE_METRICS";

fn catalogue_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/metrics.json")
}

/// The file's exact text: pretty JSON and a final newline, so a rewrite
/// is a clean diff and the file stays readable for reviewers.
fn expected_text() -> String {
    let pretty = serde_json::to_string_pretty(&metrics::catalogue_json()).unwrap_or_else(|e| panic!("catalogue as JSON: {e}"));
    format!("{pretty}\n")
}

/// One test rather than two: a rewrite and a read in parallel tests would race on the file.
#[test]
fn infra_metrics_json_is_the_catalogue() {
    let path = catalogue_path();
    let expected = expected_text();
    let write = std::env::var(WRITE_ENV).is_ok_and(|v| v == "1");
    if write {
        std::fs::write(&path, &expected).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
    let committed = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!(
            "reading {}: {e}\nwrite it with: {WRITE_ENV}=1 cargo test -p casebridge --test metrics_catalogue",
            path.display()
        ),
    };
    assert!(
        committed == expected,
        "{} differs from casebridge::metrics::catalogue_json(); rewrite it with\n  {WRITE_ENV}=1 cargo test -p casebridge --test metrics_catalogue\n\
         and commit it (infra/check_template.py checks the dashboard and alarms against it).\n--- committed\n{committed}\n--- expected\n{expected}",
        path.display()
    );

    // What infra/check_template.py relies on, read back the way it reads the file.
    let file: serde_json::Value = serde_json::from_str(&committed).unwrap_or_else(|e| panic!("infra/metrics.json is not JSON: {e}"));
    assert_eq!(file["namespace"], serde_json::json!(metrics::NAMESPACE));
    assert_eq!(file["dimension_sets"], serde_json::json!([["Intent"], ["Agent"], []]));
    let entries = file["metrics"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), Fact::ALL.len());
    for (entry, fact) in entries.iter().zip(Fact::ALL) {
        assert_eq!(entry["fact"], serde_json::json!(format!("{fact:?}")));
        assert_eq!(entry["name"], serde_json::json!(fact.metric_name()));
        assert_eq!(entry["unit"], serde_json::json!(metrics::UNIT));
        assert_eq!(entry["counts"], serde_json::json!(fact.description()));
    }
}
