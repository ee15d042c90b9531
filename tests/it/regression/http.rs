//! Regressions: the HTTP exchange itself (hang-ups, `Expect`, answers without a verdict).
