//! Deployment checks: `template.yaml` against the code, and every function's real bootstrap
//! binary (its `main.rs` wiring) invoked through a Lambda Runtime API emulator.

mod bootstraps;
mod lockdown;
mod template;
