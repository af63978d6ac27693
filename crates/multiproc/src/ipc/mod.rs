//! Communication between processes (and threads): the serialization seam for now;
//! pipes and queues build on it.

pub mod codec;
