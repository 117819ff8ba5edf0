//! The applications: functions and the APIs they serve, written against ports and events only.

pub mod blog;
pub mod media;
pub mod todos;
