//! Reports: the monthly state of the union and the year, as one self-contained
//! HTML page each, and the same numbers for `attune stats`.
//!
//! `numbers` computes (pure), `svg` draws, `html` lays out; `period` says which
//! days.

pub mod html;
pub mod numbers;
pub mod period;
pub mod svg;

pub use numbers::{compute, Report};
pub use period::{Period, PeriodError, PeriodKind};
