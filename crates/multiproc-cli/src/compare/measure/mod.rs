//! One module per section of the report. Each `run` measures with the library as it is
//! in this build and returns a finished [`Section`](super::model::Section).

pub(crate) mod communicating;
pub(crate) mod cpu_bound;
pub(crate) mod fault;
pub(crate) mod io_bound;
pub(crate) mod memory;
pub(crate) mod procfs;
pub(crate) mod sharing;
pub(crate) mod starting;

pub(crate) use super::context::Ctx;
