//! Image segments.
#![forbid(unsafe_code)]

pub mod bind;
pub mod container;
pub mod datastream;
mod error;
pub mod file;
pub mod project;
pub mod tenant;
pub mod v3;

pub use error::{Result, SegmentError};
pub use project::{OutPointer, Project, ProjectReport};
