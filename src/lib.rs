//! Formwork: a low-code CRM platform. Modules are listed in dependency order.

pub mod access;
pub mod app;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod calendar;
pub mod check;
pub mod clock;
pub mod config;
pub mod definitions;
pub mod domain;
pub mod error;
pub mod forms;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod records;
pub mod render;
pub mod reports;
pub mod script;
pub mod store;
pub mod telemetry;
pub mod views;
pub mod workflows;
pub mod workspaces;
