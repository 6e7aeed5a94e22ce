//! Reading spreadsheet files a row at a time: CSV in UTF-8 (with or without a BOM), UTF-16 (with
//! a BOM) or GB18030 (a superset of GBK, what Excel in China saves), its delimiter sniffed; XLSX
//! through calamine's streaming cell reader (cached values of formulas; a formula Excel never
//! computed is a problem of its cell). A file is read through once when uploaded (its
//! [`Layout`]) and once per run; neither holds more than a row and a sample in memory (XLSX
//! keeps its shared strings).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};

/// Rows kept as a sample of the file for the mapping page.
pub const SAMPLE_ROWS: usize = 5;

/// Most columns a file may have.
pub const MAX_COLUMNS: usize = 500;

/// How a file is laid out, found when it was uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// `csv` or `xlsx`.
    pub format: String,
    /// CSV: `utf-8`, `utf-16le`, `utf-16be`, `gb18030`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// CSV: the delimiter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// XLSX: the sheet read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// The header row's cells, as written.
    pub headers: Vec<String>,
    /// Data rows (not counting the header or empty rows).
    pub rows: u64,
    /// The first data rows, as text.
    pub sample: Vec<Vec<String>>,
}

/// One cell as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Nothing.
    Empty,
    /// Text.
    Text(String),
    /// A number (XLSX).
    Number(f64),
    /// Yes or no (XLSX).
    Bool(bool),
    /// A date or date-time cell (XLSX).
    Date(NaiveDateTime),
    /// A formula without a computed value (XLSX saved by a program that does not compute).
    Formula(String),
    /// An error value such as `#DIV/0!` (XLSX).
    Error(String),
}

impl Cell {
    /// Whether the cell holds nothing but spaces.
    pub fn is_blank(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Text(t) => t.trim().is_empty(),
            _ => false,
        }
    }

    /// The cell as text (for samples and problem reports).
    pub fn text(&self) -> String {
        match self {
            Self::Empty => String::new(),
            Self::Text(t) => t.clone(),
            Self::Number(n) => number_text(*n),
            Self::Bool(b) => b.to_string(),
            Self::Date(d) => {
                if d.time() == chrono::NaiveTime::MIN {
                    d.date().to_string()
                } else {
                    d.format("%Y-%m-%d %H:%M:%S").to_string()
                }
            }
            Self::Formula(f) => format!("={f}"),
            Self::Error(e) => e.clone(),
        }
    }
}

/// A number without a needless `.0`.
pub fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// One data row: its line in the file (XLSX: its row number) and its cells.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    /// Line (1 is the header).
    pub line: u64,
    /// Cells by column.
    pub cells: Vec<Cell>,
}

fn unreadable(message: impl Into<String>) -> Error {
    Error::invalid("/file", "unreadable", message)
}

/// The format a file name and its first bytes tell.
///
/// # Errors
/// `Error::Invalid` at `/file` for anything but CSV (or TSV, TXT) and XLSX.
pub fn format_of(file_name: &str, head: &[u8]) -> Result<&'static str> {
    let lower = file_name.to_ascii_lowercase();
    if head.starts_with(b"PK\x03\x04") {
        if lower.ends_with(".xls") || lower.ends_with(".xlsx") || lower.ends_with(".xlsm") {
            return Ok("xlsx");
        }
        return Err(Error::invalid(
            "/file",
            "format",
            "this is a ZIP file; save the spreadsheet as .xlsx or .csv",
        ));
    }
    if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return Err(Error::invalid(
            "/file",
            "format",
            "old Excel files (.xls) are not read; save the sheet as .xlsx or .csv",
        ));
    }
    if lower.ends_with(".xlsx") {
        return Err(Error::invalid(
            "/file",
            "format",
            "the file is named .xlsx but is not an Excel workbook",
        ));
    }
    Ok("csv")
}

/// The names of the encodings a person may choose (`None` = found from the file).
pub const ENCODINGS: &[&str] = &[
    "utf-8",
    "gb18030",
    "gbk",
    "big5",
    "shift_jis",
    "euc-kr",
    "windows-1252",
    "utf-16le",
    "utf-16be",
];

fn encoding_named(name: &str) -> Result<&'static encoding_rs::Encoding> {
    encoding_rs::Encoding::for_label(name.trim().as_bytes())
        .filter(|_| ENCODINGS.contains(&name.trim().to_ascii_lowercase().as_str()))
        .ok_or_else(|| {
            Error::invalid(
                "/encoding",
                "encoding",
                format!(
                    "{name:?} is not an encoding Formwork reads ({})",
                    ENCODINGS.join(", ")
                ),
            )
        })
}

/// The encoding of a CSV file: from its BOM, else UTF-8 if every byte sequence is, else
/// GB18030 if it decodes without errors.
///
/// # Errors
/// `Error::Invalid` when no encoding fits (the person can name one).
pub fn detect_encoding(path: &Path) -> Result<&'static str> {
    let mut file = File::open(path).map_err(Error::internal)?;
    let mut head = [0u8; 3];
    let n = read_full(&mut file, &mut head)?;
    match &head[..n] {
        [0xEF, 0xBB, 0xBF] => return Ok("utf-8"),
        [0xFF, 0xFE, ..] => return Ok("utf-16le"),
        [0xFE, 0xFF, ..] => return Ok("utf-16be"),
        _ => {}
    }
    let mut file = File::open(path).map_err(Error::internal)?;
    if is_utf8(&mut file)? {
        return Ok("utf-8");
    }
    let mut file = File::open(path).map_err(Error::internal)?;
    let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
    let mut buf = vec![0u8; 1 << 16];
    let mut out = String::with_capacity(1 << 17);
    loop {
        let n = file.read(&mut buf).map_err(Error::internal)?;
        out.clear();
        let (_, _, errors) = decoder.decode_to_string(&buf[..n], &mut out, n == 0);
        if errors {
            return Err(Error::invalid(
                "/encoding",
                "encoding",
                "the file is neither UTF-8 nor GBK/GB18030: choose its encoding",
            ));
        }
        if n == 0 {
            return Ok("gb18030");
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]).map_err(Error::internal)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Whether the whole stream is UTF-8 (read in blocks; a character split between blocks is
/// carried over).
fn is_utf8(file: &mut File) -> Result<bool> {
    let mut buf = vec![0u8; 1 << 16];
    let mut carry = 0usize;
    loop {
        let n = file.read(&mut buf[carry..]).map_err(Error::internal)?;
        let filled = carry + n;
        match std::str::from_utf8(&buf[..filled]) {
            Ok(_) => carry = 0,
            Err(e) => {
                if e.error_len().is_some() {
                    return Ok(false);
                }
                // An incomplete character at the end: keep it for the next block.
                let valid = e.valid_up_to();
                buf.copy_within(valid..filled, 0);
                carry = filled - valid;
                if n == 0 {
                    return Ok(false);
                }
            }
        }
        if n == 0 {
            return Ok(carry == 0);
        }
    }
}

/// A reader giving UTF-8 from bytes in another encoding.
struct Decoding<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    raw: Vec<u8>,
    out: Vec<u8>,
    start: usize,
    done: bool,
}

impl<R: Read> Decoding<R> {
    fn new(inner: R, encoding: &'static encoding_rs::Encoding) -> Self {
        Self {
            inner,
            // A BOM of the encoding is dropped; BOM sniffing already chose the encoding.
            decoder: encoding.new_decoder_with_bom_removal(),
            raw: vec![0u8; 1 << 16],
            out: Vec::new(),
            start: 0,
            done: false,
        }
    }
}

impl<R: Read> Read for Decoding<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.start >= self.out.len() {
            if self.done {
                return Ok(0);
            }
            let n = self.inner.read(&mut self.raw)?;
            let last = n == 0;
            let mut text =
                String::with_capacity(self.decoder.max_utf8_buffer_length(n).unwrap_or(n * 3 + 16));
            let (_, _, _) = self
                .decoder
                .decode_to_string(&self.raw[..n], &mut text, last);
            self.out = text.into_bytes();
            self.start = 0;
            self.done = last;
        }
        let k = buf.len().min(self.out.len() - self.start);
        buf[..k].copy_from_slice(&self.out[self.start..self.start + k]);
        self.start += k;
        Ok(k)
    }
}

/// A CSV file's text as UTF-8, whatever its encoding (a UTF-8 BOM skipped).
fn csv_text(path: &Path, encoding: &str) -> Result<Box<dyn Read + Send>> {
    let file = File::open(path).map_err(Error::internal)?;
    let reader = BufReader::with_capacity(1 << 16, file);
    let encoding = encoding_named(encoding)?;
    if encoding == encoding_rs::UTF_8 {
        let mut reader = reader;
        let mut bom = [0u8; 3];
        let mut head = Vec::new();
        let n = (&mut reader)
            .take(3)
            .read(&mut bom)
            .map_err(Error::internal)?;
        if bom[..n] != [0xEF, 0xBB, 0xBF] {
            head.extend_from_slice(&bom[..n]);
        }
        return Ok(Box::new(std::io::Cursor::new(head).chain(reader)));
    }
    Ok(Box::new(Decoding::new(reader, encoding)))
}

/// The delimiter of a CSV: the one of `, ; tab |` found most often in its first line outside
/// quotes (a comma when none is).
fn sniff_delimiter(path: &Path, encoding: &str) -> Result<u8> {
    let mut text = csv_text(path, encoding)?;
    let mut head = vec![0u8; 1 << 16];
    let mut n = 0;
    while n < head.len() {
        match text.read(&mut head[n..]).map_err(Error::internal)? {
            0 => break,
            k => n += k,
        }
    }
    let mut counts = [0usize; 4];
    let candidates = [b',', b';', b'\t', b'|'];
    let mut quoted = false;
    for &b in &head[..n] {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = candidates.iter().position(|c| *c == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    let best = (0..4).max_by_key(|i| (counts[*i], 4 - i)).unwrap_or(0);
    Ok(if counts[best] == 0 {
        b','
    } else {
        candidates[best]
    })
}

/// The offsets of the line ends a reader passed on, so a record's line can be told from its byte
/// offset (the CSV reader's own line count skips empty lines).
#[derive(Debug, Default)]
struct LineEnds {
    /// Offsets of `\n` not yet behind the record being read.
    ahead: std::collections::VecDeque<u64>,
    /// Line ends before the record being read.
    behind: u64,
}

impl LineEnds {
    /// The 1-based line of the record starting at `byte`.
    fn line_at(&mut self, byte: u64) -> u64 {
        while self.ahead.front().is_some_and(|end| *end < byte) {
            self.ahead.pop_front();
            self.behind += 1;
        }
        self.behind + 1
    }
}

/// A reader noting where lines end.
struct Counting<R> {
    inner: R,
    offset: u64,
    ends: std::sync::Arc<std::sync::Mutex<LineEnds>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut ends) = self.ends.lock() {
            for (i, b) in buf[..n].iter().enumerate() {
                if *b == b'\n' {
                    ends.ahead.push_back(self.offset + i as u64);
                }
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

type CsvReader = csv::Reader<Counting<Box<dyn Read + Send>>>;

fn csv_reader(
    path: &Path,
    encoding: &str,
    delimiter: u8,
) -> Result<(CsvReader, std::sync::Arc<std::sync::Mutex<LineEnds>>)> {
    let ends = std::sync::Arc::new(std::sync::Mutex::new(LineEnds::default()));
    let counting = Counting {
        inner: csv_text(path, encoding)?,
        offset: 0,
        ends: ends.clone(),
    };
    let reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        // Records end at \n (a \r before it is cut from the last field), so a record starts
        // right after a line end.
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(1 << 16)
        .from_reader(counting);
    Ok((reader, ends))
}

fn delimiter_byte(layout: &Layout) -> u8 {
    match layout.delimiter.as_deref() {
        Some("\t") => b'\t',
        Some(";") => b';',
        Some("|") => b'|',
        _ => b',',
    }
}

/// Reads a file through once: its layout (encoding and delimiter found unless given).
///
/// # Errors
/// `Error::Invalid` at `/file` or `/encoding` for what cannot be read: no header row, more than
/// [`MAX_COLUMNS`] columns, an unknown encoding, a broken workbook.
pub fn describe(
    path: &Path,
    format: &str,
    encoding: Option<&str>,
    sheet: Option<&str>,
) -> Result<Layout> {
    let mut layout = Layout {
        format: format.to_owned(),
        encoding: None,
        delimiter: None,
        sheet: None,
        headers: Vec::new(),
        rows: 0,
        sample: Vec::new(),
    };
    if format == "xlsx" {
        layout.sheet = Some(pick_sheet(path, sheet)?);
    } else {
        let encoding = match encoding.filter(|e| !e.trim().is_empty()) {
            Some(e) => {
                encoding_named(e)?;
                e.trim().to_ascii_lowercase()
            }
            None => detect_encoding(path)?.to_owned(),
        };
        let delimiter = sniff_delimiter(path, &encoding)?;
        layout.encoding = Some(encoding);
        layout.delimiter = Some((delimiter as char).to_string());
    }
    let mut header: Option<Vec<String>> = None;
    let mut rows = 0u64;
    let mut sample = Vec::new();
    each_row(path, &layout, 0, &mut |row| {
        if header.is_none() {
            header = Some(
                row.cells
                    .iter()
                    .map(|c| c.text().trim().to_owned())
                    .collect(),
            );
            return Ok(true);
        }
        rows += 1;
        if sample.len() < SAMPLE_ROWS {
            sample.push(row.cells.iter().map(Cell::text).collect());
        }
        Ok(true)
    })?;
    let headers = header.ok_or_else(|| unreadable("the file is empty: no header row"))?;
    if headers.iter().all(String::is_empty) {
        return Err(unreadable("the first row holds no column names"));
    }
    if headers.len() > MAX_COLUMNS {
        return Err(unreadable(format!(
            "the file has {} columns; at most {MAX_COLUMNS} are read",
            headers.len()
        )));
    }
    layout.headers = headers;
    layout.rows = rows;
    layout.sample = sample;
    Ok(layout)
}

/// Calls `each` with the header row (line 1 in CSV; the first non-empty row in XLSX) and then
/// every non-empty row, skipping the first `skip` data rows; `each` answers whether to go on.
///
/// # Errors
/// `Error::Invalid` at `/file` for a broken file; `each`'s errors.
pub fn each_row(
    path: &Path,
    layout: &Layout,
    skip: u64,
    each: &mut dyn FnMut(SourceRow) -> Result<bool>,
) -> Result<()> {
    if layout.format == "xlsx" {
        return each_xlsx_row(path, layout, skip, each);
    }
    let encoding = layout.encoding.as_deref().unwrap_or("utf-8");
    let (mut reader, ends) = csv_reader(path, encoding, delimiter_byte(layout))?;
    let mut record = csv::ByteRecord::new();
    let mut seen_header = false;
    let mut data = 0u64;
    loop {
        let more = reader.read_byte_record(&mut record).map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            Error::Invalid {
                detail: format!("line {line} of the file cannot be read: {e}"),
                errors: vec![FieldError::new("/file", "unreadable", e.to_string())],
            }
        })?;
        if !more {
            return Ok(());
        }
        // The reader's own start of a record may lie on blank lines it skipped: the record's
        // line is told from where it ended, less the line breaks inside its quoted fields.
        let end = reader.position().byte().saturating_sub(1);
        let inner = record
            .iter()
            .map(|f| f.iter().filter(|b| **b == b'\n').count() as u64)
            .sum::<u64>();
        let line = ends
            .lock()
            .map_or(0, |mut e| e.line_at(end))
            .saturating_sub(inner);
        let width = record.len();
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        if seen_header {
            data += 1;
            if data <= skip {
                continue;
            }
        }
        let cells = record
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let field = match field.strip_suffix(b"\r") {
                    Some(cut) if i + 1 == width => cut,
                    _ => field,
                };
                // Decoding made it UTF-8 already; a stray invalid byte is replaced, not fatal.
                let text = String::from_utf8_lossy(field).into_owned();
                if text.is_empty() {
                    Cell::Empty
                } else {
                    Cell::Text(text)
                }
            })
            .collect();
        seen_header = true;
        if !each(SourceRow { line, cells })? {
            return Ok(());
        }
    }
}

fn open_xlsx(path: &Path) -> Result<calamine::Xlsx<BufReader<File>>> {
    calamine::open_workbook::<calamine::Xlsx<_>, _>(path)
        .map_err(|e| unreadable(format!("the workbook cannot be read: {e}")))
}

fn pick_sheet(path: &Path, wanted: Option<&str>) -> Result<String> {
    use calamine::Reader;
    let workbook = open_xlsx(path)?;
    let names = workbook.sheet_names();
    match wanted.filter(|w| !w.trim().is_empty()) {
        Some(wanted) => names
            .iter()
            .find(|n| n.as_str() == wanted.trim())
            .cloned()
            .ok_or_else(|| {
                Error::invalid(
                    "/sheet",
                    "unknown_sheet",
                    format!(
                        "the workbook has no sheet {wanted:?} (it has {})",
                        names.join(", ")
                    ),
                )
            }),
        None => names
            .first()
            .cloned()
            .ok_or_else(|| unreadable("the workbook has no sheets")),
    }
}

fn xlsx_cell(value: &calamine::DataRef<'_>, formula: Option<&str>) -> Cell {
    use calamine::DataRef;
    match value {
        DataRef::Empty => match formula.filter(|f| !f.is_empty()) {
            Some(f) => Cell::Formula(f.to_owned()),
            None => Cell::Empty,
        },
        DataRef::Int(i) => Cell::Number(*i as f64),
        DataRef::Float(f) => Cell::Number(*f),
        DataRef::String(s) => Cell::Text(s.clone()),
        DataRef::SharedString(s) => Cell::Text((*s).to_owned()),
        DataRef::Bool(b) => Cell::Bool(*b),
        DataRef::DateTime(d) => match d.as_datetime() {
            Some(at) if d.is_datetime() => Cell::Date(at),
            _ => Cell::Number(d.as_f64()),
        },
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Cell::Text(s.clone()),
        DataRef::Error(e) => Cell::Error(e.to_string()),
    }
}

fn each_xlsx_row(
    path: &Path,
    layout: &Layout,
    skip: u64,
    each: &mut dyn FnMut(SourceRow) -> Result<bool>,
) -> Result<()> {
    let mut workbook = open_xlsx(path)?;
    let sheet = layout.sheet.clone().unwrap_or_default();
    let mut cells = workbook
        .worksheet_cells_reader(&sheet)
        .map_err(|e| unreadable(format!("sheet {sheet:?} cannot be read: {e}")))?;
    let mut current: Option<(u32, Vec<Cell>)> = None;
    let mut seen_header = false;
    let mut data = 0u64;
    let mut flush = |row: u32, values: Vec<Cell>| -> Result<bool> {
        if values.iter().all(Cell::is_blank) {
            return Ok(true);
        }
        if seen_header {
            data += 1;
            if data <= skip {
                return Ok(true);
            }
        }
        seen_header = true;
        each(SourceRow {
            line: u64::from(row) + 1,
            cells: values,
        })
    };
    loop {
        let next = cells
            .next_cell_with_formula()
            .map_err(|e| unreadable(format!("sheet {sheet:?} cannot be read: {e}")))?;
        let Some(cell) = next else {
            if let Some((row, values)) = current.take() {
                flush(row, values)?;
            }
            return Ok(());
        };
        let (row, column) = cell.pos;
        if current.as_ref().is_some_and(|(r, _)| *r != row)
            && let Some((done_row, values)) = current.take()
            && !flush(done_row, values)?
        {
            return Ok(());
        }
        let (_, values) = current.get_or_insert_with(|| (row, Vec::new()));
        let column = column as usize;
        if column >= MAX_COLUMNS * 4 {
            continue;
        }
        if values.len() <= column {
            values.resize(column + 1, Cell::Empty);
        }
        values[column] = xlsx_cell(&cell.value, cell.formula.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(bytes).expect("write");
        f
    }

    fn rows(path: &Path, layout: &Layout) -> Vec<(u64, Vec<String>)> {
        let mut out = Vec::new();
        each_row(path, layout, 0, &mut |row| {
            out.push((row.line, row.cells.iter().map(Cell::text).collect()));
            Ok(true)
        })
        .expect("read");
        out
    }

    #[test]
    fn gbk_csv_with_semicolons_is_found_and_decoded() {
        let (text, _, _) =
            encoding_rs::GBK.encode("姓名;公司\n张三;北京科技\n\n李四;\"上海;贸易\"\n");
        let f = file(&text);
        let layout = describe(f.path(), "csv", None, None).expect("layout");
        assert_eq!(layout.encoding.as_deref(), Some("gb18030"));
        assert_eq!(layout.delimiter.as_deref(), Some(";"));
        assert_eq!(layout.headers, vec!["姓名", "公司"]);
        assert_eq!(layout.rows, 2);
        assert_eq!(
            rows(f.path(), &layout),
            vec![
                (1, vec!["姓名".to_owned(), "公司".to_owned()]),
                (2, vec!["张三".to_owned(), "北京科技".to_owned()]),
                (4, vec!["李四".to_owned(), "上海;贸易".to_owned()]),
            ]
        );
    }

    #[test]
    fn bom_utf8_and_utf16_are_read_and_ragged_rows_kept() {
        let f = file(b"\xEF\xBB\xBFname,email\r\nAda,ada@example.com,extra\r\n\"Bob\nBobson\"\r\n");
        let layout = describe(f.path(), "csv", None, None).expect("layout");
        assert_eq!(layout.encoding.as_deref(), Some("utf-8"));
        assert_eq!(layout.headers, vec!["name", "email"]);
        let read = rows(f.path(), &layout);
        assert_eq!(read[1].1, vec!["Ada", "ada@example.com", "extra"]);
        assert_eq!(read[2], (3, vec!["Bob\nBobson".to_owned()]));
        assert_eq!(read[1].0, 2);

        let mut utf16 = vec![0xFF, 0xFE];
        for unit in "名称\t邮箱\n王五\tw@example.com\n".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        let f = file(&utf16);
        let layout = describe(f.path(), "csv", None, None).expect("layout");
        assert_eq!(layout.encoding.as_deref(), Some("utf-16le"));
        assert_eq!(layout.delimiter.as_deref(), Some("\t"));
        assert_eq!(layout.headers, vec!["名称", "邮箱"]);
        assert_eq!(layout.sample, vec![vec!["王五", "w@example.com"]]);
    }

    #[test]
    fn undecodable_files_and_unknown_encodings_are_refused() {
        let f = file(b"name\n\xFF\xFF\xFF\n");
        let error = describe(f.path(), "csv", None, None).expect_err("not decodable");
        assert!(error.to_string().contains("encoding"), "{error}");
        let error = describe(f.path(), "csv", Some("klingon"), None).expect_err("unknown");
        assert!(matches!(error, Error::Invalid { .. }));
        let f = file(b"");
        assert!(describe(f.path(), "csv", None, None).is_err());
        assert!(format_of("old.xls", &[0xD0, 0xCF, 0x11, 0xE0]).is_err());
        assert!(format_of("x.xlsx", b"name,email").is_err());
        assert_eq!(format_of("x.csv", b"a,b").ok(), Some("csv"));
    }

    #[test]
    fn skipping_resumes_after_the_rows_already_read() {
        let f = file(b"n\n1\n2\n\n3\n4\n");
        let layout = describe(f.path(), "csv", None, None).expect("layout");
        assert_eq!(layout.rows, 4);
        let mut lines = Vec::new();
        each_row(f.path(), &layout, 2, &mut |row| {
            lines.push(row.line);
            Ok(true)
        })
        .expect("read");
        assert_eq!(lines, vec![1, 5, 6]);
    }
}
