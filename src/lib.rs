//! Formwork: a low-code CRM platform. Modules are listed in dependency order.

pub mod error;
pub mod clock;
pub mod config;
pub mod domain;
pub mod calendar;
pub mod store;
pub mod auth;
pub mod definitions;
