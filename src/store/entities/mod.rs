//! sea-orm entities of the system tables: data only, one file per table.

pub mod account;
pub mod api_token;
pub mod approval;
pub mod approval_task;
pub mod audit_event;
pub mod definition;
pub mod definition_version;
pub mod form_link;
pub mod import;
pub mod installed_app;
pub mod instance_fact;
pub mod invitation;
pub mod job;
pub mod job_attempt;
pub mod membership;
pub mod notification;
pub mod org_unit;
pub mod password_reset;
pub mod role;
pub mod saved_view;
pub mod session;
pub mod webhook;
pub mod workflow_rotation;
pub mod workflow_run;
pub mod workflow_step;
pub mod workspace;
