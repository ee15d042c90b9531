//! Regressions: client attribution, forwarding headers, loops and upstream answers.
