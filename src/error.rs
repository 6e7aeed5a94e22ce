//! The crate's one error type, by meaning; `http::error` maps it to RFC 9457 problem+json.

use serde::Serialize;

/// One problem with an input, located by a JSON pointer (and, for scripts, a line and column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON pointer into the request body or definition (`""` for the whole document).
    pub pointer: String,
    /// Stable machine-readable code, e.g. `required`, `schema`, `stale_revision`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Line (1-based) for errors inside scripts and templates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Column (1-based) for errors inside scripts and templates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// The validation rule behind the problem, for rule failures (`rule` and `messages` in the
    /// body; boxed so that the common problem stays small).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Box<RuleRef>>,
}

/// The validation rule a problem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    /// The rule's key.
    pub rule: String,
    /// The rule's message in every language the definition gives (`{"en": …, "zh-CN": …}`),
    /// absent when the rule could not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<serde_json::Value>,
}

impl FieldError {
    /// A problem at `pointer` with a code and message.
    pub fn new(pointer: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            code: code.to_owned(),
            message: message.into(),
            line: None,
            column: None,
            rule: None,
        }
    }
}

/// Everything that can go wrong, named by what it means to the caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the request itself is malformed (bad JSON, wrong content type, bad query string).
    #[error("{detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
        /// Located problems, if any.
        errors: Vec<FieldError>,
    },
    /// 401: no valid session or token.
    #[error("authentication required")]
    Unauthenticated,
    /// 403: the caller can see the target but may not do this.
    #[error("{detail}")]
    Forbidden {
        /// What is refused.
        detail: String,
        /// Located problems (fields the caller may not write or query), if any.
        errors: Vec<FieldError>,
    },
    /// 405: the route exists but not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 404: no such thing, or it is outside the caller's workspace or scope.
    #[error("{0} not found")]
    NotFound(String),
    /// 409: a stale version or revision, or a uniqueness clash.
    #[error("{detail}")]
    Conflict {
        /// What clashed.
        detail: String,
        /// Located problems, if any.
        errors: Vec<FieldError>,
    },
    /// 413: the body is larger than allowed.
    #[error("request body too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// 422: well-formed but invalid input; every problem listed.
    #[error("{detail}")]
    Invalid {
        /// Summary.
        detail: String,
        /// Every problem found, by JSON pointer.
        errors: Vec<FieldError>,
    },
    /// 429: too many attempts; retry after the given number of seconds.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// 503: a dependency (the database) is not ready.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a database failure the caller cannot fix.
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// 500: any other internal failure; the cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The crate-wide result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The located problems the error carries (none for most kinds).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::BadRequest { errors, .. }
            | Self::Forbidden { errors, .. }
            | Self::Conflict { errors, .. }
            | Self::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }

    /// 422 with one located problem.
    pub fn invalid(pointer: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        let error = FieldError::new(pointer, code, message);
        Self::Invalid {
            detail: error.message.clone(),
            errors: vec![error],
        }
    }

    /// 422 with a list of problems (the list must not be empty to be useful).
    pub fn invalid_all(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        Self::Invalid {
            detail: detail.into(),
            errors,
        }
    }

    /// 409 with one located problem.
    pub fn conflict(pointer: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        let error = FieldError::new(pointer, code, message);
        Self::Conflict {
            detail: error.message.clone(),
            errors: vec![error],
        }
    }

    /// 403 without located problems.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 403 with one located problem.
    pub fn forbidden_at(
        pointer: impl Into<String>,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        let error = FieldError::new(pointer, code, message);
        Self::Forbidden {
            detail: error.message.clone(),
            errors: vec![error],
        }
    }

    /// 400 without located problems.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 404 for the named thing.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    /// 500 from any displayable cause.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }
}
