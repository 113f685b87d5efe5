//! Executor tests with an in-memory transport under paused time.
