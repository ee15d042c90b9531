//! Regressions: configurations `check` must refuse, and data the store must keep apart.
