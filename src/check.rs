//! `formwork check`: validates definition files and bundles offline, listing every problem with
//! its file and JSON pointer.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::apps::{self, BundleProblem};
use crate::definitions::{DefinitionSet, Kind, check_document};
use crate::error::FieldError;

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Bundles checked.
    pub bundles: usize,
    /// Definition files checked (inside bundles or alone).
    pub definitions: usize,
    /// Every problem.
    pub problems: Vec<BundleProblem>,
}

fn problem(path: &Path, pointer: &str, code: &str, message: impl Into<String>) -> BundleProblem {
    BundleProblem {
        source: path.display().to_string(),
        error: FieldError::new(pointer, code, message),
    }
}

/// Checks every path: bundle folders (with `template.json`), bundle documents, definition files
/// in `entities/`, `forms/` or `views/` folders, and folders holding any of these.
pub fn run(paths: &[PathBuf]) -> Report {
    let mut report = Report::default();
    for path in paths {
        check_path(path, &mut report);
    }
    report
}

fn check_path(path: &Path, report: &mut Report) {
    if path.is_dir() {
        if path.join("template.json").is_file() {
            check_bundle_dir(path, report);
            return;
        }
        // Meta-schemas describe definitions; they are not definitions themselves.
        if path.file_name().is_some_and(|n| n == "meta") {
            return;
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            report
                .problems
                .push(problem(path, "", "io", "cannot read this folder"));
            return;
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            if child.is_dir() || child.extension().is_some_and(|e| e == "json") {
                check_path(&child, report);
            }
        }
    } else if path.is_file() {
        if path.file_name().is_some_and(|n| n == "template.json") {
            if let Some(dir) = path.parent() {
                check_bundle_dir(dir, report);
            }
            return;
        }
        check_file(path, report);
    } else {
        report
            .problems
            .push(problem(path, "", "io", "no such file or folder"));
    }
}

fn check_bundle_dir(dir: &Path, report: &mut Report) {
    report.bundles += 1;
    match apps::load_dir(dir) {
        Ok(bundle) => {
            report.definitions += bundle.definitions.len();
            if let Some(image) = &bundle.manifest.preview_image
                && let Err(why) = apps::check_preview(image, &dir.join(image))
            {
                report.problems.push(problem(
                    &dir.join("template.json"),
                    "/preview_image",
                    "preview_image",
                    why,
                ));
            }
            report
                .problems
                .extend(apps::validate(&bundle, &DefinitionSet::new()));
        }
        Err(problems) => report.problems.extend(problems),
    }
}

fn check_file(path: &Path, report: &mut Report) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            report.problems.push(problem(path, "", "io", e.to_string()));
            return;
        }
    };
    let document: Value = match serde_json::from_str(&text) {
        Ok(doc) => doc,
        Err(e) => {
            report
                .problems
                .push(problem(path, "", "json", format!("not valid JSON: {e}")));
            return;
        }
    };
    if document.get("manifest").is_some() && document.get("definitions").is_some() {
        report.bundles += 1;
        match apps::from_document(&document) {
            Ok(bundle) => {
                report.definitions += bundle.definitions.len();
                report.problems.extend(
                    apps::validate(&bundle, &DefinitionSet::new())
                        .into_iter()
                        .map(|mut p| {
                            p.error.pointer = format!("{}{}", p.source, p.error.pointer);
                            p.source = path.display().to_string();
                            p
                        }),
                );
            }
            Err(crate::error::Error::Invalid { errors, .. }) => {
                report
                    .problems
                    .extend(errors.into_iter().map(|error| BundleProblem {
                        source: path.display().to_string(),
                        error,
                    }));
            }
            Err(e) => report
                .problems
                .push(problem(path, "", "bundle", e.to_string())),
        }
        return;
    }
    let Some(kind) = Kind::of_file(path) else {
        report.problems.push(problem(
            path,
            "",
            "unknown_kind",
            format!(
                "cannot tell what this defines: put it in a folder named {} or give a bundle",
                Kind::folders()
            ),
        ));
        return;
    };
    report.definitions += 1;
    report.problems.extend(
        check_document(kind, &document, "")
            .into_iter()
            .map(|error| BundleProblem {
                source: path.display().to_string(),
                error,
            }),
    );
}
