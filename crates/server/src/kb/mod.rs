//! The knowledge base (issue 6, in progress): so far the embedders.

pub mod embed;
