//! Pure types and logic shared by every Cairn crate. Nothing here performs I/O.

pub mod alert;
pub mod api_key;
pub mod audit;
pub mod crypto;
pub mod ids;
pub mod kb;
pub mod mcp;
pub mod oauth;
pub mod secret;
pub mod tenant;
pub mod usage;
pub mod user;
pub mod validate;
pub mod webhook;

pub use validate::{validate_text, ValidationError};
