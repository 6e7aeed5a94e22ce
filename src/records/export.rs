//! Records as a spreadsheet: the visible fields of an entity as columns, one row per record, as
//! a person reads them (option labels, linked records' titles, people's names, dates in the
//! workspace's zone) but typed where a spreadsheet can use it (numbers and money as numbers in
//! XLSX, exact decimals in CSV). CSV is UTF-8 with a BOM, so Excel in China opens it right.
//! Text a spreadsheet would run as a formula is written with a leading apostrophe.
//! Rows are produced a page at a time: an export of any size holds one page in memory.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate};
use serde_json::Value;

use super::{Context, Page, Records};
use crate::access::FieldRule;
use crate::definitions::entity::{Field, FieldKind};
use crate::error::{Error, Result};
use crate::render::i18n::Locale;

/// Records read per page while exporting.
pub const PAGE: u64 = 500;

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Nothing.
    Empty,
    /// Text.
    Text(String),
    /// A number, with its exact text (money's decimals).
    Number(f64, String),
    /// Yes or no.
    Bool(bool),
}

/// What an export writes for one entity and one reader.
pub struct Exporter {
    columns: Vec<Field>,
    header: Vec<String>,
    options: HashMap<String, HashMap<String, String>>,
    people: HashMap<String, String>,
    locale: Locale,
    zone: chrono_tz::Tz,
}

/// Text as a spreadsheet cell: text it would read as a formula (`=`, `+`, `-`, `@`, a tab or a
/// carriage return first) keeps a leading apostrophe.
pub fn cell_text(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

impl Exporter {
    /// The exporter of `entity` for the caller: its visible fields (not sub-tables) in order.
    /// `people` names the workspace's members by account id.
    ///
    /// # Errors
    /// As reading the entity's shape: not found, not readable.
    pub async fn new(
        records: &Records<'_>,
        ctx: &Context,
        entity: &str,
        locale: Locale,
        people: HashMap<String, String>,
    ) -> Result<Self> {
        let shape = records.shape(ctx, entity).await?;
        let model = shape.model.clone();
        let columns: Vec<Field> = model
            .fields
            .iter()
            .filter(|f| {
                !f.hidden
                    && shape.rule(&f.key) != FieldRule::Hidden
                    && !matches!(f.kind, FieldKind::SubTable { .. })
            })
            .cloned()
            .collect();
        let label = |key: &str| {
            locale
                .label(
                    model
                        .document
                        .pointer(&format!("/properties/{key}/x-label")),
                    key,
                )
                .to_owned()
        };
        let mut header = vec!["id".to_owned()];
        header.extend(columns.iter().map(|f| cell_text(&label(&f.key))));
        header.push(cell_text(&locale.text("export.owner")));
        header.push(cell_text(&locale.text("export.updated_at")));
        let options = columns
            .iter()
            .filter_map(|f| {
                let list = model
                    .document
                    .pointer(&format!("/properties/{}/x-options", f.key))?
                    .as_array()?;
                let labels = list
                    .iter()
                    .filter_map(|o| {
                        let value = o.get("value")?.as_str()?.to_owned();
                        let text = locale.label(o.get("label"), &value).to_owned();
                        Some((value, text))
                    })
                    .collect();
                Some((f.key.clone(), labels))
            })
            .collect();
        Ok(Self {
            columns,
            header,
            options,
            people,
            locale,
            zone: ctx.time_zone,
        })
    }

    /// The header row.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The titles of the records `page` links to, by id (links the caller cannot read stay
    /// as ids).
    pub async fn titles(
        &self,
        records: &Records<'_>,
        ctx: &Context,
        page: &Page,
    ) -> HashMap<String, String> {
        let mut wanted: HashMap<&str, HashSet<String>> = HashMap::new();
        for field in &self.columns {
            if let FieldKind::Reference { entity, .. } = &field.kind {
                let ids = wanted.entry(entity.as_str()).or_default();
                for record in &page.records {
                    if let Some(Value::String(id)) = record.fields.get(&field.key) {
                        ids.insert(id.clone());
                    }
                }
            }
        }
        let mut titles = HashMap::new();
        for (entity, ids) in wanted {
            titles.extend(records.titles(ctx, entity, ids.into_iter().collect()).await);
        }
        titles
    }

    /// The rows of `page`.
    pub fn rows(&self, page: &Page, titles: &HashMap<String, String>) -> Vec<Vec<Cell>> {
        page.records
            .iter()
            .map(|record| {
                let mut row = vec![Cell::Text(record.id.to_string())];
                row.extend(self.columns.iter().map(|field| {
                    self.cell(
                        field,
                        record.fields.get(&field.key).unwrap_or(&Value::Null),
                        titles,
                    )
                }));
                row.push(record.owner.map_or(Cell::Empty, |owner| {
                    let id = owner.to_string();
                    Cell::Text(cell_text(self.people.get(&id).unwrap_or(&id)))
                }));
                row.push(Cell::Text(
                    record
                        .updated_at
                        .with_timezone(&self.zone)
                        .format("%Y-%m-%d %H:%M")
                        .to_string(),
                ));
                row
            })
            .collect()
    }

    fn cell(&self, field: &Field, value: &Value, titles: &HashMap<String, String>) -> Cell {
        let option = |v: &str| {
            self.options
                .get(&field.key)
                .and_then(|o| o.get(v))
                .cloned()
                .unwrap_or_else(|| v.to_owned())
        };
        match (&field.kind, value) {
            (_, Value::Null) => Cell::Empty,
            (_, Value::Number(n)) => Cell::Number(n.as_f64().unwrap_or(0.0), n.to_string()),
            (FieldKind::Money { .. }, Value::String(amount)) => amount.parse::<f64>().map_or_else(
                |_| Cell::Text(amount.clone()),
                |n| Cell::Number(n, amount.clone()),
            ),
            (_, Value::Bool(b)) => Cell::Bool(*b),
            (FieldKind::DateTime, Value::String(text)) => {
                Cell::Text(DateTime::parse_from_rfc3339(text).map_or_else(
                    |_| text.clone(),
                    |at| {
                        at.with_timezone(&self.zone)
                            .format("%Y-%m-%d %H:%M")
                            .to_string()
                    },
                ))
            }
            (FieldKind::Date, Value::String(text)) => Cell::Text(
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map_or_else(|_| text.clone(), |d| d.to_string()),
            ),
            (FieldKind::SingleSelect { .. }, Value::String(v)) => Cell::Text(cell_text(&option(v))),
            (FieldKind::MultiSelect { .. }, Value::Array(items)) => Cell::Text(cell_text(
                &items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(option)
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
            (FieldKind::Reference { .. }, Value::String(id)) => {
                Cell::Text(cell_text(titles.get(id).unwrap_or(id)))
            }
            (FieldKind::User, Value::String(id)) => {
                Cell::Text(cell_text(self.people.get(id).unwrap_or(id)))
            }
            (FieldKind::Attachment { .. }, Value::Array(files)) => Cell::Text(cell_text(
                &files
                    .iter()
                    .filter_map(|f| f.get("name").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
            (_, Value::String(text)) => Cell::Text(cell_text(text)),
            (_, other) => Cell::Text(cell_text(&other.to_string())),
        }
    }

    /// Yes and no in the reader's language (CSV).
    fn yes_no(&self, b: bool) -> String {
        self.locale.text(if b { "value.yes" } else { "value.no" })
    }

    /// CSV text of `rows` (the header too when `header`), with the BOM first when `bom`.
    ///
    /// # Errors
    /// `Error::Internal` when the CSV writer fails (it writes to memory).
    pub fn csv(&self, rows: &[Vec<Cell>], header: bool, bom: bool) -> Result<Vec<u8>> {
        let start = if bom {
            Vec::from("\u{feff}".as_bytes())
        } else {
            Vec::new()
        };
        let mut writer = csv::Writer::from_writer(start);
        let failed = |e: csv::Error| Error::internal(format!("CSV: {e}"));
        if header {
            writer.write_record(&self.header).map_err(failed)?;
        }
        for row in rows {
            writer
                .write_record(row.iter().map(|cell| match cell {
                    Cell::Empty => String::new(),
                    Cell::Text(text) => text.clone(),
                    Cell::Number(_, exact) => exact.clone(),
                    Cell::Bool(b) => self.yes_no(*b),
                }))
                .map_err(failed)?;
        }
        writer
            .into_inner()
            .map_err(|e| Error::internal(format!("CSV: {e}")))
    }
}

/// An XLSX file written row by row to disk (constant memory), then read back to be sent.
pub struct XlsxFile {
    workbook: rust_xlsxwriter::Workbook,
    next_row: u32,
}

impl XlsxFile {
    /// A workbook with one sheet and `header` in bold.
    ///
    /// # Errors
    /// `Error::Internal` when the sheet cannot be written.
    pub fn new(sheet_name: &str, header: &[String]) -> Result<Self> {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook
            .add_worksheet_with_constant_memory()
            .map_err(xlsx)?;
        // Sheet names: at most 31 characters, none of []:*?/\.
        let name: String = sheet_name
            .chars()
            .filter(|c| !"[]:*?/\\".contains(*c))
            .take(31)
            .collect();
        if !name.is_empty() {
            sheet.set_name(&name).map_err(xlsx)?;
        }
        let bold = rust_xlsxwriter::Format::new().set_bold();
        for (column, text) in header.iter().enumerate() {
            sheet
                .write_string_with_format(0, column_of(column)?, text, &bold)
                .map_err(xlsx)?;
        }
        Ok(Self {
            workbook,
            next_row: 1,
        })
    }

    /// Appends `rows`.
    ///
    /// # Errors
    /// `Error::Internal` when a cell cannot be written; `Error::Invalid` past the format's
    /// 1,048,576 rows.
    pub fn write(&mut self, rows: &[Vec<Cell>]) -> Result<()> {
        let sheet = self.workbook.worksheet_from_index(0).map_err(xlsx)?;
        for row in rows {
            if self.next_row >= 1_048_576 {
                return Err(Error::invalid(
                    "/format",
                    "too_many_rows",
                    "an XLSX sheet holds at most 1,048,575 records; export CSV instead",
                ));
            }
            for (column, cell) in row.iter().enumerate() {
                let column = column_of(column)?;
                match cell {
                    Cell::Empty => {}
                    Cell::Text(text) => {
                        sheet
                            .write_string(self.next_row, column, text)
                            .map_err(xlsx)?;
                    }
                    Cell::Number(n, _) => {
                        sheet
                            .write_number(self.next_row, column, *n)
                            .map_err(xlsx)?;
                    }
                    Cell::Bool(b) => {
                        sheet
                            .write_boolean(self.next_row, column, *b)
                            .map_err(xlsx)?;
                    }
                }
            }
            self.next_row += 1;
        }
        Ok(())
    }

    /// Writes the file at `path`.
    ///
    /// # Errors
    /// `Error::Internal` when the file cannot be written.
    pub fn save(mut self, path: &std::path::Path) -> Result<()> {
        self.workbook.save(path).map_err(xlsx)
    }
}

fn column_of(index: usize) -> Result<u16> {
    u16::try_from(index).map_err(|_| Error::internal("too many columns for XLSX"))
}

#[allow(clippy::needless_pass_by_value)] // map_err hands the error over by value
fn xlsx(e: rust_xlsxwriter::XlsxError) -> Error {
    Error::internal(format!("XLSX: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_stay_text() {
        assert_eq!(cell_text("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(cell_text("-1"), "'-1");
        assert_eq!(cell_text("华东"), "华东");
    }
}
