//! Test support shared by the workspace: the AWS event fixtures of `tests/fixtures/`.
//! The end-to-end tests themselves live in `tests/tests/` and drive the local environment
//! that `local/devenv.py test` starts.

use std::path::PathBuf;

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// A fixture as JSON, changed by `edit` (e.g. a header or a path parameter).
pub fn fixture(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    let mut event = serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    edit(&mut event);
    event
}
