//! Printing: tables for people, JSON for scripts.

use std::io::Write as _;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

/// One column of a table: its header and where its value is in each row (a JSON pointer).
pub struct Column {
    /// Header text.
    pub header: &'static str,
    /// JSON pointer into a row, e.g. `/score` or `/portal/id`.
    pub pointer: &'static str,
}

/// Shorthand for a [`Column`].
pub const fn col(header: &'static str, pointer: &'static str) -> Column {
    Column { header, pointer }
}

/// Writes `text` and a newline to stdout.
pub fn line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Pretty JSON on stdout.
pub fn json(value: &Value) -> anyhow::Result<()> {
    line(&serde_json::to_string_pretty(value)?)
}

/// A value as a table cell's text: strings bare, null as `-`, others as JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.2}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// The colour a risk level is shown in.
pub fn risk_color(level: &str) -> Option<Color> {
    match level {
        "healthy" => Some(Color::Green),
        "at_risk" => Some(Color::Yellow),
        "critical" => Some(Color::Red),
        "none" => Some(Color::DarkGrey),
        _ => None,
    }
}

/// Builds a table of `rows`; a column whose header is `risk` is coloured by level.
pub fn table(rows: &[Value], columns: &[Column]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(columns.iter().map(|c| c.header));
    for row in rows {
        table.add_row(columns.iter().map(|c| {
            let value = row.pointer(c.pointer).unwrap_or(&Value::Null);
            let shown = text(value);
            let cell = Cell::new(&shown);
            match (c.header, risk_color(&shown)) {
                ("risk", Some(color)) => cell.fg(color),
                _ => cell,
            }
        }));
    }
    table
}

/// Prints `rows` as a table, or `whole` as JSON when `as_json`.
pub fn print_rows(
    as_json: bool,
    whole: &Value,
    rows: &[Value],
    columns: &[Column],
) -> anyhow::Result<()> {
    if as_json {
        return json(whole);
    }
    if rows.is_empty() {
        return line("(none)");
    }
    line(&table(rows, columns).to_string())
}

/// Prints an object's fields as a two-column table, or JSON when `as_json`.
pub fn print_object(as_json: bool, value: &Value, fields: &[Column]) -> anyhow::Result<()> {
    if as_json {
        return json(value);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    for field in fields {
        let shown = text(value.pointer(field.pointer).unwrap_or(&Value::Null));
        let cell = Cell::new(&shown);
        let cell = match (field.header, risk_color(&shown)) {
            ("risk", Some(color)) => cell.fg(color),
            _ => cell,
        };
        table.add_row(vec![Cell::new(field.header), cell]);
    }
    line(&table.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cells_show_strings_bare_and_missing_values_as_a_dash() {
        assert_eq!(text(&json!("healthy")), "healthy");
        assert_eq!(text(&Value::Null), "-");
        assert_eq!(text(&json!(72)), "72");
        assert_eq!(text(&json!(0.5)), "0.50");
    }

    #[test]
    fn a_table_has_a_row_per_item_and_the_values_at_each_pointer() {
        let rows = vec![
            json!({"name": "Ada", "score": {"value": 81}, "risk": "healthy"}),
            json!({"name": "Bob", "score": {"value": 12}, "risk": "critical"}),
        ];
        let shown = table(
            &rows,
            &[
                col("name", "/name"),
                col("score", "/score/value"),
                col("risk", "/risk"),
            ],
        )
        .to_string();
        assert!(
            shown.contains("Ada")
                && shown.contains("81")
                && shown.contains("Bob")
                && shown.contains("12"),
            "{shown}"
        );
    }
}
