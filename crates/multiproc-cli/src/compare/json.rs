//! The `--json` output and its schema.
//!
//! The schema (`schema/compare.v1.json`, printed by `--print-schema`) is versioned:
//! `schema_version` in every report names the version it follows. Version 1 may gain
//! optional fields and new metric ids; anything a program could trip over (a removed
//! or renamed field, a changed type or meaning) makes version 2, with a new file.

use super::model::Report;

/// The JSON Schema of the report, version 1.
pub(crate) const SCHEMA: &str = include_str!("../../schema/compare.v1.json");

/// The report as pretty-printed JSON.
pub(crate) fn render(r: &Report) -> String {
    serde_json::to_string_pretty(r).expect("the report contains only serializable values")
}
