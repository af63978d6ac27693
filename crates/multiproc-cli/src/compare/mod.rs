//! `multiproc compare`: each claim of "threads or processes?" becomes a measurement on
//! this machine, and the advice at the end is derived from the numbers just measured.
//!
//! The flow is: [`args`] (what the user asked for) → [`plan`] (how long each
//! measurement may take) → [`measure`] (one module per section, each returning a
//! [`model::Section`]; the timed sections measure their contenders in interleaved
//! [`rounds`], paired round by round) → [`advice`] (rules over the measured figures,
//! a winner only where the ranges do not overlap: [`verdict`]) → one of the
//! renderers: [`table`] for the terminal, [`json`] (schema `schema/compare.v1.json`)
//! and [`html`] (one self-contained page with inline SVG charts).
//!
//! A section whose library feature is not in this build says so in its metrics
//! (`value: null` with a note); no number is ever made up.

mod advice;
mod args;
mod context;
mod html;
mod json;
mod measure;
mod model;
mod plan;
mod rounds;
mod run;
mod stats;
mod table;
mod verdict;

pub(crate) use args::{CompareArgs, FaultChildArgs};
pub(crate) use measure::fault::child_main as fault_child;
pub(crate) use run::run;
