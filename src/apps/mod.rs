//! App templates (bundles): loading them from files or one JSON document, validating a bundle
//! whole, and installing it into a workspace in one transaction.
//!
//! On disk a bundle named `<name>` is `schemas/templates/<name>/template.json` (the manifest),
//! `schemas/templates/<name>/{entities,forms,views}/<key>.json`, and the workflows in
//! `workflows/templates/<name>/`. The built-in bundles are embedded in the binary.

use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::SharedClock;
use crate::definitions::{self, DefinitionSet, Kind, Registry, check_document, check_references};
use crate::domain::{Actor, DefinitionKey};
use crate::error::{Error, FieldError, Result};
use crate::store::{self, Conn, Db};

/// Largest bundle document an install or import takes (an app with its records).
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;

pub mod demo;
pub mod demo_after;
pub mod merge;
pub mod rename;
pub mod team;
pub mod transfer;
pub mod upgrade;

static BUILT_IN_SCHEMAS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/schemas/templates");
static BUILT_IN_WORKFLOWS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/workflows/templates");

/// The bundle that the first start installs into the demo workspace.
pub const SALES_CRM: &str = "sales-crm";

/// A label in the two UI languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// English.
    pub en: String,
    /// Simplified Chinese.
    #[serde(rename = "zh-CN", default, skip_serializing_if = "Option::is_none")]
    pub zh_cn: Option<String>,
}

/// A bundle's manifest (`template.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Editor hint; ignored.
    #[serde(rename = "$schema", default, skip_serializing)]
    pub schema: Option<String>,
    /// Identifier, e.g. `sales-crm`.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Display title.
    pub title: Label,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Label>,
    /// UI languages it is labelled in.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Path of a preview image inside the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_image: Option<String>,
    /// Prefix of the app's role keys (`crm` → `crm.sales_rep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Manifest {
    /// The role namespace: the manifest's, or the name without dashes.
    pub fn namespace(&self) -> String {
        self.namespace.clone().unwrap_or_else(|| {
            self.name
                .replace('-', "_")
                .chars()
                .take(16)
                .collect::<String>()
                .trim_end_matches('_')
                .to_owned()
        })
    }
}

/// A role a bundle brings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRole {
    /// Key inside the bundle (installed as `<namespace>.<key>`).
    #[serde(skip)]
    pub key: String,
    /// Display name.
    pub name: Label,
    /// Rights, as the roles API takes them.
    pub rights: Value,
    /// Where it came from, for messages.
    #[serde(skip)]
    pub source: String,
}

/// One definition of a bundle.
#[derive(Debug, Clone)]
pub struct BundleDefinition {
    /// Kind.
    pub kind: Kind,
    /// Key (the file stem on disk).
    pub key: String,
    /// The document.
    pub document: Value,
    /// Where it came from, for messages: a file path, or the JSON pointer in a bundle document.
    pub source: String,
}

impl BundleDefinition {
    /// Its location in the one-document form of the bundle.
    pub fn pointer(&self) -> String {
        format!("/definitions/{}/{}", self.kind.as_str(), self.key)
    }
}

/// A whole bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The manifest.
    pub manifest: Manifest,
    /// Its definitions.
    pub definitions: Vec<BundleDefinition>,
    /// Its roles.
    pub roles: Vec<BundleRole>,
    /// Records that travel with it (`schemas/meta/template.schema.json#/$defs/data`).
    pub data: Option<Value>,
    /// For an exported app: the documents as its template shipped them (what upgrades merge
    /// against), `{"definitions": {kind: {key: doc}}, "roles": {key: role}}`.
    pub base: Option<Value>,
}

/// A problem found in a bundle: where (file or pointer), and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleProblem {
    /// The file, or the bundle document's pointer to the definition.
    pub source: String,
    /// The problem, its pointer relative to `source`.
    pub error: FieldError,
}

impl std::fmt::Display for BundleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pointer = if self.error.pointer.is_empty() {
            "/"
        } else {
            &self.error.pointer
        };
        write!(f, "{}: {pointer}: {}", self.source, self.error.message)
    }
}

fn problem(source: &str, pointer: &str, code: &str, message: impl Into<String>) -> BundleProblem {
    BundleProblem {
        source: source.to_owned(),
        error: FieldError::new(pointer, code, message),
    }
}

/// A file of a bundle: its path (for messages and kind detection) and its text.
#[derive(Debug, Clone)]
pub struct BundleFile {
    /// Path relative to the bundle's root (`entities/lead.json`), or as given.
    pub relative: String,
    /// Path shown in messages.
    pub display: String,
    /// Contents.
    pub text: String,
}

/// Parses the files of a bundle (manifest first, then definitions); every problem is listed.
///
/// # Errors
/// Every problem found: unreadable JSON, a file in an unknown folder, a bad key, a bad manifest.
pub fn from_files(
    manifest: &BundleFile,
    files: &[BundleFile],
) -> Result<Bundle, Vec<BundleProblem>> {
    let mut problems = Vec::new();
    let manifest = match serde_json::from_str::<Value>(&manifest.text) {
        Ok(doc) => {
            let mut found = definitions::meta::problems(manifest_validator(), &doc, "");
            if found.is_empty() {
                match serde_json::from_value::<Manifest>(doc) {
                    Ok(parsed) => Some(parsed),
                    Err(e) => {
                        problems.push(problem(&manifest.display, "", "manifest", e.to_string()));
                        None
                    }
                }
            } else {
                problems.extend(found.drain(..).map(|error| BundleProblem {
                    source: manifest.display.clone(),
                    error,
                }));
                None
            }
        }
        Err(e) => {
            problems.push(problem(
                &manifest.display,
                "",
                "json",
                format!("not valid JSON: {e}"),
            ));
            None
        }
    };
    let mut definitions = Vec::new();
    let mut roles = Vec::new();
    let mut data = None;
    for file in files {
        let path = Path::new(&file.relative);
        if path.parent().and_then(Path::file_name) == Some(std::ffi::OsStr::new("roles")) {
            match parse_role_file(file) {
                Ok(role) => roles.push(role),
                Err(found) => problems.extend(found),
            }
            continue;
        }
        if file.relative == "data.json" {
            match serde_json::from_str::<Value>(&file.text) {
                Ok(doc) => {
                    let found = definitions::meta::problems(part_validator("data"), &doc, "");
                    if found.is_empty() {
                        data = Some(doc);
                    }
                    problems.extend(found.into_iter().map(|error| BundleProblem {
                        source: file.display.clone(),
                        error,
                    }));
                }
                Err(e) => problems.push(problem(
                    &file.display,
                    "",
                    "json",
                    format!("not valid JSON: {e}"),
                )),
            }
            continue;
        }
        let Some(kind) = Kind::of_file(path) else {
            problems.push(problem(
                &file.display,
                "",
                "unknown_kind",
                format!(
                    "definitions in this folder are not supported; supported folders: {}",
                    Kind::folders()
                ),
            ));
            continue;
        };
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if let Err(Error::Invalid { errors, .. }) = DefinitionKey::parse_at(stem, "") {
            problems.extend(errors.into_iter().map(|mut error| {
                error.message = format!("file name: {}", error.message);
                BundleProblem {
                    source: file.display.clone(),
                    error,
                }
            }));
            continue;
        }
        match serde_json::from_str::<Value>(&file.text) {
            Ok(document) => definitions.push(BundleDefinition {
                kind,
                key: stem.to_owned(),
                document,
                source: file.display.clone(),
            }),
            Err(e) => problems.push(problem(
                &file.display,
                "",
                "json",
                format!("not valid JSON: {e}"),
            )),
        }
    }
    match manifest {
        Some(manifest) if problems.is_empty() => Ok(Bundle {
            manifest,
            definitions,
            roles,
            data,
            base: None,
        }),
        _ => Err(problems),
    }
}

fn manifest_validator() -> &'static jsonschema::Validator {
    part_validator("manifest")
}

/// A validator for one `$defs` part of the template meta-schema (manifest, role, data).
fn part_validator(part: &str) -> &'static jsonschema::Validator {
    static CELLS: std::sync::OnceLock<
        std::collections::HashMap<&'static str, jsonschema::Validator>,
    > = std::sync::OnceLock::new();
    let cells = CELLS.get_or_init(|| {
        let meta: Value =
            serde_json::from_str(definitions::meta::TEMPLATE_META).unwrap_or_default();
        ["manifest", "role", "data"]
            .into_iter()
            .filter_map(|name| {
                let mut schema = meta.pointer(&format!("/$defs/{name}")).cloned()?;
                if let Some(defs) = meta.get("$defs").cloned()
                    && let Some(object) = schema.as_object_mut()
                {
                    object.insert("$defs".to_owned(), defs);
                }
                let validator = definitions::meta::schema_options().build(&schema).ok()?;
                Some((name, validator))
            })
            .collect()
    });
    cells
        .get(part)
        .unwrap_or_else(|| definitions::meta::template())
}

fn parse_role_file(file: &BundleFile) -> Result<BundleRole, Vec<BundleProblem>> {
    let at = |error: FieldError| BundleProblem {
        source: file.display.clone(),
        error,
    };
    let stem = Path::new(&file.relative)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if !role_key_ok(stem) {
        return Err(vec![problem(
            &file.display,
            "",
            "pattern",
            "file name: a role key is 2–41 lower-case letters, digits and _, starting with a letter",
        )]);
    }
    let doc: Value = serde_json::from_str(&file.text).map_err(|e| {
        vec![problem(
            &file.display,
            "",
            "json",
            format!("not valid JSON: {e}"),
        )]
    })?;
    let found = definitions::meta::problems(part_validator("role"), &doc, "");
    if !found.is_empty() {
        return Err(found.into_iter().map(at).collect());
    }
    let mut role: BundleRole = serde_json::from_value(doc)
        .map_err(|e| vec![problem(&file.display, "", "role", e.to_string())])?;
    role.key = stem.to_owned();
    role.source = file.display.clone();
    Ok(role)
}

fn role_key_ok(key: &str) -> bool {
    (2..=41).contains(&key.len())
        && key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Parses a bundle given as one JSON document (`schemas/meta/template.schema.json`).
///
/// # Errors
/// `Error::Invalid` listing every problem by JSON pointer.
pub fn from_document(document: &Value) -> Result<Bundle> {
    let problems = definitions::meta::problems(definitions::meta::template(), document, "");
    if !problems.is_empty() {
        return Err(Error::invalid_all("the bundle is invalid", problems));
    }
    let manifest: Manifest = serde_json::from_value(document["manifest"].clone())
        .map_err(|e| Error::invalid("/manifest", "manifest", e.to_string()))?;
    let mut roles = Vec::new();
    if let Some(by_key) = document.get("roles").and_then(Value::as_object) {
        for (key, doc) in by_key {
            let mut role: BundleRole = serde_json::from_value(doc.clone())
                .map_err(|e| Error::invalid(format!("/roles/{key}"), "role", e.to_string()))?;
            role.key = key.clone();
            role.source = format!("/roles/{key}");
            roles.push(role);
        }
    }
    let mut definitions = Vec::new();
    for kind in Kind::ALL {
        if let Some(by_key) = document["definitions"]
            .get(kind.as_str())
            .and_then(Value::as_object)
        {
            for (key, doc) in by_key {
                definitions.push(BundleDefinition {
                    kind,
                    key: key.clone(),
                    document: doc.clone(),
                    source: format!("/definitions/{}/{key}", kind.as_str()),
                });
            }
        }
    }
    Ok(Bundle {
        manifest,
        definitions,
        roles,
        data: document.get("data").cloned(),
        base: document.get("base").cloned(),
    })
}

/// Every problem with a bundle as a whole: each definition against its meta-schema, duplicate
/// keys, and every reference resolved against the bundle plus `existing` definitions.
pub fn validate(bundle: &Bundle, existing: &DefinitionSet) -> Vec<BundleProblem> {
    let mut problems = Vec::new();
    let mut set = existing.clone();
    let mut seen = std::collections::HashSet::new();
    for def in &bundle.definitions {
        if !seen.insert((def.kind, def.key.clone())) {
            problems.push(problem(
                &def.source,
                "",
                "duplicate",
                format!("{} {:?} is defined twice", def.kind.as_str(), def.key),
            ));
        }
        problems.extend(
            check_document(def.kind, &def.document, "")
                .into_iter()
                .map(|error| BundleProblem {
                    source: def.source.clone(),
                    error,
                }),
        );
        set.insert(def.kind, &def.key, def.document.clone());
    }
    if problems.is_empty() {
        for def in &bundle.definitions {
            problems.extend(
                check_references(&set, def.kind, &def.key, &def.document, "")
                    .into_iter()
                    .map(|error| BundleProblem {
                        source: def.source.clone(),
                        error,
                    }),
            );
        }
    }
    let fields = |entity: &str| {
        set.get(Kind::Entity, entity).map(|doc| {
            doc.get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
    };
    for role in &bundle.roles {
        if let Err(Error::Invalid { errors, .. }) =
            crate::access::Rights::parse(&role.rights, "/rights", &fields)
        {
            problems.extend(errors.into_iter().map(|error| BundleProblem {
                source: role.source.clone(),
                error,
            }));
        }
    }
    problems
}

/// Files of a built-in bundle, from the binary.
fn built_in_files(name: &str) -> Option<(BundleFile, Vec<BundleFile>)> {
    let dir = BUILT_IN_SCHEMAS.get_dir(name)?;
    let manifest_file = dir.get_file(format!("{name}/template.json"))?;
    let as_file = |f: &include_dir::File<'_>, root: &str| BundleFile {
        relative: f
            .path()
            .strip_prefix(root)
            .unwrap_or(f.path())
            .to_string_lossy()
            .into_owned(),
        display: f.path().to_string_lossy().into_owned(),
        text: f.contents_utf8().unwrap_or_default().to_owned(),
    };
    let manifest = as_file(manifest_file, name);
    let mut files = Vec::new();
    for sub in dir.dirs() {
        for file in sub
            .files()
            .filter(|f| f.path().extension().is_some_and(|e| e == "json"))
        {
            files.push(as_file(file, name));
        }
    }
    if let Some(workflows) = BUILT_IN_WORKFLOWS.get_dir(name) {
        for file in workflows
            .files()
            .filter(|f| f.path().extension().is_some_and(|e| e == "json"))
        {
            files.push(BundleFile {
                relative: format!(
                    "workflows/{}",
                    file.path()
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                ),
                display: format!("workflows/templates/{}", file.path().to_string_lossy()),
                text: file.contents_utf8().unwrap_or_default().to_owned(),
            });
        }
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Some((manifest, files))
}

/// Whether version `offered` is newer than `installed` (`major.minor.patch`, compared as
/// numbers; anything unreadable is not newer).
pub fn is_newer(offered: &str, installed: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
        Some((parts.next()??, parts.next()??, parts.next()??))
    };
    matches!((parse(offered), parse(installed)), (Some(a), Some(b)) if a > b)
}

/// The names of the built-in bundles.
pub fn built_in_names() -> Vec<String> {
    let mut names: Vec<String> = BUILT_IN_SCHEMAS
        .dirs()
        .filter_map(|d| d.path().file_name()?.to_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// A built-in bundle by name.
///
/// # Errors
/// `Error::NotFound` for an unknown name; `Error::Internal` if a shipped bundle does not parse
/// (a test loads every one, so this is a build defect).
pub fn built_in(name: &str) -> Result<Bundle> {
    let (manifest, files) =
        built_in_files(name).ok_or_else(|| Error::not_found(format!("template {name:?}")))?;
    from_files(&manifest, &files).map_err(|problems| {
        Error::internal(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// The media type of a preview image by its name (SVG or PNG), if it is one.
fn preview_type(name: &str) -> Option<&'static str> {
    if name.ends_with(".svg") {
        Some("image/svg+xml")
    } else if name.ends_with(".png") {
        Some("image/png")
    } else {
        None
    }
}

/// Largest preview image of a template.
pub const MAX_PREVIEW_BYTES: u64 = 256 * 1024;

/// Checks a template folder's preview image: a plain file name, SVG or PNG, present, small.
///
/// # Errors
/// Why it is refused.
pub fn check_preview(name: &str, path: &Path) -> std::result::Result<(), String> {
    if name.contains('/') || name.contains('\\') || name.starts_with('.') {
        return Err(format!("{name:?} must be a file name beside template.json"));
    }
    if preview_type(name).is_none() {
        return Err(format!("{name:?} must be an .svg or .png file"));
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_PREVIEW_BYTES => Err(format!(
            "{name:?} is larger than {} KiB",
            MAX_PREVIEW_BYTES / 1024
        )),
        Ok(_) => Ok(()),
        Err(_) => Err(format!("{name:?} is not in the template's folder")),
    }
}

/// A built-in template's preview image: its bytes and media type.
pub fn built_in_preview(name: &str) -> Option<(&'static [u8], &'static str)> {
    let (manifest, _) = built_in_files(name)?;
    let manifest: Manifest = serde_json::from_str(&manifest.text).ok()?;
    let image = manifest.preview_image?;
    let media_type = preview_type(&image)?;
    if image.contains('/') {
        return None;
    }
    let file = BUILT_IN_SCHEMAS.get_file(format!("{name}/{image}"))?;
    Some((file.contents(), media_type))
}

fn read_dir_files(
    root: &Path,
    display_root: &Path,
    into: &mut Vec<BundleFile>,
    errors: &mut Vec<BundleProblem>,
) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            read_dir_files(&path, display_root, into, errors);
        } else if path.extension().is_some_and(|e| e == "json")
            && path.file_name().is_some_and(|n| n != "template.json")
        {
            let relative = path
                .strip_prefix(display_root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            match std::fs::read_to_string(&path) {
                Ok(text) => into.push(BundleFile {
                    relative,
                    display: path.display().to_string(),
                    text,
                }),
                Err(e) => errors.push(problem(
                    &path.display().to_string(),
                    "",
                    "io",
                    e.to_string(),
                )),
            }
        }
    }
}

/// Loads a bundle from its folder `schemas/templates/<name>`; workflows are read from the
/// sibling `workflows/templates/<name>` when the folder sits in a Formwork repository layout.
///
/// # Errors
/// Every problem found.
pub fn load_dir(dir: &Path) -> Result<Bundle, Vec<BundleProblem>> {
    let manifest_path = dir.join("template.json");
    let manifest = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => BundleFile {
            relative: "template.json".to_owned(),
            display: manifest_path.display().to_string(),
            text,
        },
        Err(e) => {
            return Err(vec![problem(
                &manifest_path.display().to_string(),
                "",
                "io",
                e.to_string(),
            )]);
        }
    };
    let mut files = Vec::new();
    let mut errors = Vec::new();
    read_dir_files(dir, dir, &mut files, &mut errors);
    if let (Some(name), Some(templates)) = (dir.file_name(), dir.parent())
        && let Some(repo) = templates.parent().and_then(Path::parent)
    {
        let workflows = repo.join("workflows").join("templates").join(name);
        if workflows.is_dir() {
            let mut found = Vec::new();
            read_dir_files(&workflows, &workflows, &mut found, &mut errors);
            files.extend(found.into_iter().map(|mut f| {
                f.relative = format!("workflows/{}", f.relative);
                f
            }));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    from_files(&manifest, &files)
}

/// How to install a bundle.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// A prefix for every key (`p` → `p_lead`, roles `p.sales_rep`): another copy of an app
    /// beside one already installed.
    pub prefix: Option<String>,
    /// The language role names are written in (`en` or `zh-CN`).
    pub language: Option<String>,
    /// Import the records the bundle carries.
    pub data: bool,
    /// Import a built-in template's generated sample records (owned by the installer).
    pub sample: bool,
}

/// What an install created (or, for a dry run, would create).
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    /// The installed app's id (for upgrades).
    pub app: uuid::Uuid,
    /// The bundle's name.
    pub template: String,
    /// Its version.
    pub version: String,
    /// The prefix of its keys, if cloned with one.
    pub prefix: Option<String>,
    /// Definitions created, each published at version 1.
    pub created: Vec<CreatedDefinition>,
    /// Roles created.
    pub roles: Vec<String>,
    /// Records imported, and how people were matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<transfer::DataReport>,
    /// Sample records created (a built-in template cloned with its sample data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_records: Option<usize>,
    /// Whether nothing was written (a dry run).
    pub dry_run: bool,
}

/// One definition an install created.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedDefinition {
    /// Kind.
    pub kind: Kind,
    /// Key.
    pub key: String,
}

/// Longest clone prefix.
pub const MAX_PREFIX: usize = 12;

/// Checks a clone prefix: 1–12 lower-case letters and digits, starting with a letter.
///
/// # Errors
/// `Error::Invalid` at `/prefix`.
pub fn check_prefix(prefix: &str) -> Result<()> {
    let ok = (1..=MAX_PREFIX).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "/prefix",
            "pattern",
            format!(
                "a prefix is 1–{MAX_PREFIX} lower-case letters and digits, starting with a letter (e.g. east)"
            ),
        ))
    }
}

impl Bundle {
    /// The renaming an install applies: `prefix_` before every definition key, and the role
    /// namespace (the prefix, or the manifest's) before every role key.
    ///
    /// # Errors
    /// A problem for every key that would grow too long.
    pub fn renaming(&self, prefix: Option<&str>) -> Result<rename::Renaming, Vec<BundleProblem>> {
        let mut renaming = rename::Renaming::default();
        let mut problems = Vec::new();
        if let Some(prefix) = prefix {
            for def in &self.definitions {
                let key = format!("{prefix}_{}", def.key);
                if key.len() > rename::MAX_KEY {
                    problems.push(problem(
                        &def.source,
                        "",
                        "too_long",
                        format!(
                            "with the prefix the key {key:?} is longer than {} characters",
                            rename::MAX_KEY
                        ),
                    ));
                }
                renaming.definition(def.kind, &def.key, key);
            }
        }
        let namespace = prefix.map_or_else(|| self.manifest.namespace(), str::to_owned);
        for role in &self.roles {
            renaming.role(&role.key, format!("{namespace}.{}", role.key));
        }
        if problems.is_empty() {
            Ok(renaming)
        } else {
            Err(problems)
        }
    }

    /// The bundle with every key and reference renamed.
    pub fn renamed(&self, renaming: &rename::Renaming) -> Bundle {
        Bundle {
            manifest: self.manifest.clone(),
            definitions: self
                .definitions
                .iter()
                .map(|def| {
                    let mut document = def.document.clone();
                    renaming.document(def.kind, &mut document);
                    BundleDefinition {
                        kind: def.kind,
                        key: renaming.key_of(def.kind, &def.key),
                        document,
                        source: def.source.clone(),
                    }
                })
                .collect(),
            roles: self
                .roles
                .iter()
                .map(|role| {
                    let mut rights = role.rights.clone();
                    renaming.rights(&mut rights);
                    BundleRole {
                        key: renaming.role_of(&role.key),
                        rights,
                        ..role.clone()
                    }
                })
                .collect(),
            data: self.data.clone(),
            base: self.base.clone(),
        }
    }

    /// The documents as installed, by kind and key, and the roles: what upgrades merge against.
    pub fn base(&self) -> Value {
        let mut definitions = serde_json::Map::new();
        for def in &self.definitions {
            let by_key = definitions
                .entry(def.kind.as_str())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Some(by_key) = by_key.as_object_mut() {
                by_key.insert(def.key.clone(), def.document.clone());
            }
        }
        let roles: serde_json::Map<String, Value> = self
            .roles
            .iter()
            .map(|role| {
                (
                    role.key.clone(),
                    serde_json::json!({"name": role.name, "rights": role.rights}),
                )
            })
            .collect();
        serde_json::json!({"definitions": definitions, "roles": roles})
    }
}

/// A base (`{"definitions": {kind: {key: doc}}, "roles": {key: {name, rights}}}`) with every key
/// and reference renamed.
pub fn rename_base(base: &Value, renaming: &rename::Renaming) -> Value {
    let mut definitions = serde_json::Map::new();
    for kind in Kind::ALL {
        let Some(by_key) = base
            .pointer(&format!("/definitions/{}", kind.as_str()))
            .and_then(Value::as_object)
        else {
            continue;
        };
        let renamed: serde_json::Map<String, Value> = by_key
            .iter()
            .map(|(key, doc)| {
                let mut doc = doc.clone();
                renaming.document(kind, &mut doc);
                (renaming.key_of(kind, key), doc)
            })
            .collect();
        definitions.insert(kind.as_str().to_owned(), Value::Object(renamed));
    }
    let roles: serde_json::Map<String, Value> = base
        .get("roles")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(key, role)| {
            let mut role = role.clone();
            if let Some(rights) = role.get_mut("rights") {
                renaming.rights(rights);
            }
            (renaming.role_of(key), role)
        })
        .collect();
    serde_json::json!({"definitions": definitions, "roles": roles})
}

/// Problems as one 422, each pointer located in the one-document form of the bundle.
fn as_invalid(bundle: &Bundle, problems: Vec<BundleProblem>) -> Error {
    let errors = problems
        .into_iter()
        .map(|p| {
            let prefix = bundle
                .definitions
                .iter()
                .find(|d| d.source == p.source)
                .map(BundleDefinition::pointer)
                .or_else(|| {
                    bundle
                        .roles
                        .iter()
                        .find(|r| r.source == p.source)
                        .map(|r| format!("/roles/{}", r.key))
                })
                .unwrap_or_default();
            FieldError {
                pointer: format!("{prefix}{}", p.error.pointer),
                ..p.error
            }
        })
        .collect();
    Error::invalid_all(
        format!("template {:?} cannot be installed", bundle.manifest.name),
        errors,
    )
}

/// Validates `bundle` against the workspace and installs it inside `conn` (the caller's
/// transaction): definitions (renamed for the prefix), roles, the app's record, and with
/// `options.data` its records. Nothing is written when any problem is found.
///
/// # Errors
/// `Error::Invalid` listing every problem; `Error::Conflict` when a key is taken.
pub async fn install_in(
    conn: &impl Conn,
    clock: &SharedClock,
    workspace_id: uuid::Uuid,
    bundle: &Bundle,
    options: &InstallOptions,
    actor: Actor,
) -> Result<InstallReport> {
    if let Some(prefix) = &options.prefix {
        check_prefix(prefix)?;
    }
    // Writing first serialises concurrent installs on the workspace row (PostgreSQL) and takes
    // SQLite's write lock before any read, so validation sees the state the install commits on.
    store::workspaces::bump_generation(conn, workspace_id).await?;
    let renaming = bundle
        .renaming(options.prefix.as_deref())
        .map_err(|problems| as_invalid(bundle, problems))?;
    let renamed = bundle.renamed(&renaming);
    let existing = &DefinitionSet::load(conn, workspace_id).await?;
    let problems = validate(&renamed, existing);
    if !problems.is_empty() {
        return Err(as_invalid(bundle, problems));
    }
    let existing_roles: std::collections::HashSet<String> =
        store::people::roles(conn, workspace_id)
            .await?
            .into_iter()
            .map(|r| r.key)
            .collect();
    let mut taken: Vec<FieldError> = bundle
        .definitions
        .iter()
        .zip(&renamed.definitions)
        .filter(|(_, new)| existing.get(new.kind, &new.key).is_some())
        .map(|(old, new)| {
            FieldError::new(
                old.pointer(),
                "exists",
                format!(
                    "the workspace already has a {} {:?}; clone with a prefix to keep both",
                    new.kind.as_str(),
                    new.key
                ),
            )
        })
        .collect();
    taken.extend(
        bundle
            .roles
            .iter()
            .zip(&renamed.roles)
            .filter(|(_, new)| existing_roles.contains(&new.key))
            .map(|(old, new)| {
                FieldError::new(
                    format!("/roles/{}", old.key),
                    "exists",
                    format!(
                        "the workspace already has a role {:?}; clone with a prefix to keep both",
                        new.key
                    ),
                )
            }),
    );
    if !taken.is_empty() {
        return Err(Error::Conflict {
            detail: "some keys of the template are taken in this workspace".to_owned(),
            errors: taken,
        });
    }
    let now = clock.now();
    let origin = format!(
        "bundle:{}@{}",
        bundle.manifest.name, bundle.manifest.version
    );
    // Roles first: workflows check the roles they name when they are published.
    let zh = options.language.as_deref() == Some("zh-CN");
    let mut roles = Vec::new();
    for role in &renamed.roles {
        let name = match (&role.name.zh_cn, zh) {
            (Some(zh_name), true) => zh_name.clone(),
            _ => role.name.en.clone(),
        };
        // Checked against the bundle's entities by `validate` above.
        let rights = role.rights.clone();
        store::people::upsert_role(
            conn,
            store::people::RoleRow {
                workspace_id,
                key: role.key.clone(),
                name,
                rights,
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        roles.push(role.key.clone());
    }
    let mut ordered: Vec<&BundleDefinition> = renamed.definitions.iter().collect();
    ordered.sort_by_key(|d| (d.kind, d.key.clone()));
    let mut created = Vec::new();
    for def in ordered {
        definitions::insert_published(
            conn,
            clock,
            workspace_id,
            definitions::Seed {
                kind: def.kind,
                key: &def.key,
                document: def.document.clone(),
                origin: &origin,
                actor,
                now,
            },
        )
        .await?;
        created.push(CreatedDefinition {
            kind: def.kind,
            key: def.key.clone(),
        });
    }
    let data = match (&renamed.data, options.data) {
        (Some(data), true) => {
            let entities = renamed
                .definitions
                .iter()
                .filter(|d| d.kind == Kind::Entity)
                .map(|d| d.key.clone())
                .collect();
            Some(
                transfer::import_data(conn, workspace_id, data, &renaming, &entities, actor, now)
                    .await?,
            )
        }
        _ => None,
    };
    let sample = match (options.sample, actor.account_id()) {
        (true, Some(owner)) => match demo::sample_records(&bundle.manifest.name, now) {
            Some(records) => {
                let workspace = store::workspaces::find(conn, workspace_id)
                    .await?
                    .ok_or_else(|| Error::not_found("workspace"))?;
                let records = records
                    .into_iter()
                    .map(|r| crate::records::ImportedRecord {
                        entity: renaming.key_of(Kind::Entity, r.entity),
                        id: r.id,
                        created_at: r.created_at,
                        fields: r.fields,
                        changes: r.changes.into_iter().map(|c| (c.at, c.fields)).collect(),
                        owner: None,
                    })
                    .collect();
                Some(
                    crate::records::import_in(
                        conn,
                        workspace_id,
                        owner,
                        records,
                        now,
                        crate::workspaces::zone_of(&workspace),
                        crate::workspaces::calendar_of(&workspace),
                    )
                    .await?,
                )
            }
            None => None,
        },
        _ => None,
    };
    let app = crate::domain::new_id();
    store::apps::insert(
        conn,
        store::apps::InstalledAppRow {
            id: app,
            workspace_id,
            template: bundle.manifest.name.clone(),
            version: bundle.manifest.version.clone(),
            title: serde_json::to_value(&bundle.manifest.title).unwrap_or(Value::Null),
            prefix: options.prefix.clone(),
            namespace: options
                .prefix
                .clone()
                .unwrap_or_else(|| bundle.manifest.namespace()),
            // An exported app brings the template's own documents as its base, so that its
            // customisations stay customisations at the next upgrade.
            base: bundle
                .base
                .as_ref()
                .map_or_else(|| renamed.base(), |base| rename_base(base, &renaming)),
            installed_at: now,
            installed_by: actor.account_id(),
            upgraded_at: None,
        },
    )
    .await?;
    Ok(InstallReport {
        app,
        template: bundle.manifest.name.clone(),
        version: bundle.manifest.version.clone(),
        prefix: options.prefix.clone(),
        created,
        roles,
        data,
        sample_records: sample,
        dry_run: false,
    })
}

/// After an app's change committed: access caches drop, and the workspace's registry reloads (a
/// failed reload only delays the swap to the next request).
async fn after_commit(
    db: &Db,
    clock: &SharedClock,
    registry: &Registry,
    workspace_id: uuid::Uuid,
    what: &str,
) {
    store::access_changed();
    if let Err(e) = (definitions::Store {
        db,
        clock,
        registry,
    })
    .refresh(workspace_id)
    .await
    {
        tracing::warn!(error = %e, "reloading the registry after {what} failed");
    }
}

/// The apps installed in a workspace, oldest first.
///
/// # Errors
/// `Error::Db`.
pub async fn installed(
    db: &Db,
    workspace_id: uuid::Uuid,
) -> Result<Vec<store::apps::InstalledAppRow>> {
    store::apps::list(db.conn(), workspace_id).await
}

/// Installs a bundle into a workspace in its own transaction and swaps the live registry; a
/// dry run does everything, reports, and rolls back.
///
/// # Errors
/// As [`install_in`].
#[allow(clippy::too_many_arguments)]
pub async fn install(
    db: &Db,
    clock: &SharedClock,
    registry: &Registry,
    workspace_id: uuid::Uuid,
    bundle: &Bundle,
    options: &InstallOptions,
    actor: Actor,
    dry_run: bool,
) -> Result<InstallReport> {
    let tx = db.begin().await?;
    let mut report = install_in(&tx, clock, workspace_id, bundle, options, actor).await?;
    if dry_run {
        tx.rollback().await?;
        report.dry_run = true;
        return Ok(report);
    }
    tx.commit().await?;
    after_commit(db, clock, registry, workspace_id, "an install").await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_bundle_is_valid() {
        let names = built_in_names();
        assert!(names.contains(&SALES_CRM.to_owned()), "{names:?}");
        for name in names {
            let bundle = built_in(&name).expect("parses");
            let problems = validate(&bundle, &DefinitionSet::new());
            assert!(problems.is_empty(), "{name}: {problems:#?}");
        }
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert!(is_newer("1.10.0", "1.9.3"));
        assert!(is_newer("2.0.0", "1.99.99"));
        assert!(!is_newer("1.1.0", "2.0.0"));
        assert!(!is_newer("1.1.0", "1.1.0"));
        assert!(!is_newer("x", "1.0.0"));
    }

    #[test]
    fn sales_crm_has_the_core_entities() {
        let bundle = built_in(SALES_CRM).expect("parses");
        for key in ["lead", "customer", "contact", "opportunity", "follow_up"] {
            assert!(
                bundle
                    .definitions
                    .iter()
                    .any(|d| d.kind == Kind::Entity && d.key == key),
                "missing entity {key}"
            );
        }
    }
}
