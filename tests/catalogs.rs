//! The README's reference tables say what the code's catalogs say: the metrics table is the
//! metric catalog (`src/core/metrics.rs`), the properties table the record's properties
//! (`src/core/emf.rs`), the settings table the settings table (`src/core/settings.rs`). A
//! metric, property or setting added to one and not the other fails here.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use lambda_meter_core::metrics::{CATALOG, Class, Source};
use lambda_meter_core::settings::{Dimension, SETTINGS};
use std::collections::BTreeSet;
use std::path::Path;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The rows of the README table whose header line is `header`, each split into its cells.
fn table(readme: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = readme.lines().skip_while(|l| *l != header);
    assert!(lines.next().is_some(), "no table {header:?} in the README");
    lines
        .skip(1) // |---|
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            // Cells are split at `|` outside backticks (a cell may show `a|b`).
            let mut cells = Vec::new();
            let (mut cell, mut code) = (String::new(), false);
            for c in l.trim().trim_matches('|').chars() {
                match c {
                    '`' => {
                        code = !code;
                        cell.push(c);
                    }
                    '|' if !code => cells.push(std::mem::take(&mut cell).trim().to_string()),
                    _ => cell.push(c),
                }
            }
            cells.push(cell.trim().to_string());
            cells
        })
        .collect()
}

/// The names a first cell shows: `` `A` `` or `` `A` / `B` ``.
fn names(cell: &str) -> Vec<String> {
    cell.split(" / ")
        .map(|n| {
            let n = n.trim();
            assert!(n.starts_with('`') && n.ends_with('`'), "{cell}");
            n.trim_matches('`').to_string()
        })
        .collect()
}

#[test]
fn the_metrics_table_is_the_catalog() {
    let readme = readme();
    let mut documented = BTreeSet::new();
    for row in table(&readme, "| metric | unit | by default | meaning |") {
        for name in names(&row[0]) {
            let m = CATALOG
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("the README's {name} is not in the catalog"));
            assert_eq!(row[1], m.unit, "{name}'s unit");
            let by_default = match (m.class, m.source) {
                (Class::Default, _) => "declared",
                (Class::Value, _) => "value",
                (Class::OptIn, Source::Gauges) => "off (read only when declared)",
                (Class::OptIn, Source::Record) => "off (opt-in)",
            };
            assert_eq!(row[2], by_default, "{name}");
            assert!(!row[3].is_empty(), "{name} has no meaning");
            assert!(documented.insert(name.clone()), "{name} twice");
        }
    }
    let catalog: BTreeSet<String> = CATALOG.iter().map(|m| m.name.to_string()).collect();
    assert_eq!(documented, catalog);
}

#[test]
fn the_properties_table_is_every_property_a_record_has() {
    let readme = readme();
    let documented: BTreeSet<String> = table(&readme, "| property | value |")
        .iter()
        .flat_map(|row| names(&row[0]))
        .collect();
    let properties: BTreeSet<String> = lambda_meter_core::emf::property_keys()
        .map(str::to_string)
        .collect();
    assert_eq!(documented, properties);
    // Every other key a record may carry is a metric of the table above, a dimension key the
    // settings table names, or the EMF metadata.
    let settings = table(&readme, "| variable | default | meaning |");
    let dimensions = settings
        .iter()
        .find(|r| r[0] == "`LAMBDA_METER_DIMENSIONS`")
        .unwrap();
    for key in lambda_meter_core::emf::record_keys() {
        let documented = key == "_aws"
            || properties.contains(key)
            || CATALOG.iter().any(|m| m.name == key)
            || (Dimension::from_key(key).is_some() && dimensions[2].contains(&format!("`{key}`")));
        assert!(documented, "the record key {key} is not in the README");
    }
}

#[test]
fn the_settings_table_is_the_settings() {
    let readme = readme();
    let rows = table(&readme, "| variable | default | meaning |");
    let documented: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r[0].trim_matches('`').to_string(), r[1].clone()))
        .collect();
    let settings: Vec<(String, String)> = SETTINGS
        .iter()
        .map(|s| (s.var.to_string(), s.default.to_string()))
        .collect();
    assert_eq!(documented, settings);
}
