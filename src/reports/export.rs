//! A report's result as CSV (exact decimals, UTF-8 with a BOM so that Excel in China opens it
//! right) and as XLSX (numbers as numbers, with number formats per measure).

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::present::label_text;
use super::{Format, Outcome};
use crate::error::{Error, Result};
use crate::render::i18n::Locale;

/// Text as a spreadsheet cell: text that a spreadsheet would read as a formula (`=`, `+`, `-`,
/// `@`, a tab or a carriage return first) is kept as text with a leading apostrophe.
fn cell_text(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

/// The header row: group labels then measure labels.
fn header(outcome: &Outcome, locale: Locale) -> Vec<String> {
    outcome
        .groups
        .iter()
        .map(|g| label_text(&g.label, locale))
        .chain(
            outcome
                .measures
                .iter()
                .map(|m| label_text(&m.label, locale)),
        )
        .map(cell_text)
        .collect()
}

fn total_label(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "Total",
        Locale::ZhCn => "合计",
    }
}

/// A decimal as CSV writes it: exact, at the measure's places (percentages as ratios).
fn plain(value: Option<Decimal>, format: Format, scale: u32) -> String {
    match value {
        None => String::new(),
        Some(v) if format == Format::Percent => v.round_dp(scale + 2).normalize().to_string(),
        Some(v) => {
            let mut v = v.round_dp(scale);
            v.rescale(scale);
            v.to_string()
        }
    }
}

/// The result as CSV: a header, one line per row, and a total line when there are groups.
///
/// # Errors
/// `Error::Internal` if writing to memory fails.
pub fn csv(outcome: &Outcome, locale: Locale) -> Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::from("\u{feff}".as_bytes()));
    writer
        .write_record(header(outcome, locale))
        .map_err(Error::internal)?;
    let measure = |values: &[Option<Decimal>]| -> Vec<String> {
        values
            .iter()
            .zip(&outcome.measures)
            .map(|(v, m)| plain(*v, m.format, m.scale))
            .collect()
    };
    for row in &outcome.rows {
        let mut line: Vec<String> = row
            .keys
            .iter()
            .map(|k| cell_text(label_text(&k.label, locale)))
            .collect();
        line.extend(measure(&row.values));
        writer.write_record(&line).map_err(Error::internal)?;
    }
    if !outcome.groups.is_empty() {
        let mut line = vec![String::new(); outcome.groups.len()];
        line[0] = total_label(locale).to_owned();
        line.extend(measure(&outcome.totals));
        writer.write_record(&line).map_err(Error::internal)?;
    }
    writer.into_inner().map_err(Error::internal)
}

/// The result as an XLSX workbook of one sheet.
///
/// # Errors
/// `Error::Internal` if the workbook cannot be written.
pub fn xlsx(outcome: &Outcome, locale: Locale) -> Result<Vec<u8>> {
    use rust_xlsxwriter::{Format as Cell, Workbook};
    let mut workbook = Workbook::new();
    let bold = Cell::new().set_bold();
    let formats: Vec<Cell> = outcome
        .measures
        .iter()
        .map(|m| {
            let places = if m.scale == 0 {
                String::new()
            } else {
                format!(".{}", "0".repeat(m.scale as usize))
            };
            Cell::new().set_num_format(match m.format {
                Format::Percent => format!("0{places}%"),
                Format::Integer => "#,##0".to_owned(),
                Format::Money | Format::Number => format!("#,##0{places}"),
            })
        })
        .collect();
    let sheet = workbook.add_worksheet();
    // Sheet names are at most 31 characters, hold none of []:*?/\ and do not start or end
    // with an apostrophe; a label that cannot be one keeps Excel's default name.
    let name: String = label_text(&outcome.label, locale)
        .chars()
        .filter(|c| !"[]:*?/\\'".contains(*c))
        .take(31)
        .collect();
    if !name.trim().is_empty() {
        let _ = sheet.set_name(name.trim());
    }
    for (c, text) in header(outcome, locale).iter().enumerate() {
        sheet
            .write_with_format(0, c as u16, text.as_str(), &bold)
            .map_err(Error::internal)?;
    }
    let groups = outcome.groups.len();
    let write_values = |sheet: &mut rust_xlsxwriter::Worksheet,
                        r: u32,
                        values: &[Option<Decimal>]|
     -> Result<()> {
        for (i, (value, format)) in values.iter().zip(&formats).enumerate() {
            if let Some(number) = value.and_then(|v| v.to_f64()) {
                sheet
                    .write_with_format(r, (groups + i) as u16, number, format)
                    .map_err(Error::internal)?;
            }
        }
        Ok(())
    };
    let mut r = 1u32;
    for row in &outcome.rows {
        for (c, key) in row.keys.iter().enumerate() {
            sheet
                .write(r, c as u16, label_text(&key.label, locale).as_str())
                .map_err(Error::internal)?;
        }
        write_values(sheet, r, &row.values)?;
        r += 1;
    }
    if groups > 0 {
        sheet
            .write_with_format(r, 0, total_label(locale), &bold)
            .map_err(Error::internal)?;
        write_values(sheet, r, &outcome.totals)?;
    }
    sheet.set_column_width(0, 24).map_err(Error::internal)?;
    workbook.save_to_buffer().map_err(Error::internal)
}
