//! Knowledge-base logic without I/O: structure-aware chunking, exact vector top-k, and
//! reciprocal-rank fusion of lexical and vector results.

pub mod chunk;
pub mod eval;
pub mod extract;
pub mod fuse;
pub mod scan;
pub mod static_model;
pub mod text;
