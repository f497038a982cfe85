//! Image segments.
