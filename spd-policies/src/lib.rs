//! dsmip policy files: the SPD entries of RFC 5555 §5.2 (and RFC 4877) for a home agent
//! and its mobile nodes, written in TOML, checked with precise errors, expanded into
//! `mipsec`'s SPD and rendered for strongSwan (swanctl.conf) and Linux XFRM (`ip xfrm`).
//!
//! - [`parse`](parse::parse): file text to a checked [`Policy`], or every error with
//!   file:line:column and field.
//! - [`compile`](compile::compile): a policy and its [`Bindings`] to the native SPD.
//! - [`check`](check::check): shadowed and overlapping rules, and what a backend cannot say.
//! - [`render`]: native, strongSwan and Linux XFRM outputs.
//! - [`explain`](explain::explain): which rule a packet matches and why the earlier did not.

pub mod check;
pub mod compile;
pub mod error;
pub mod explain;
pub mod model;
pub mod names;
pub mod parse;
pub mod render;
mod rule;

pub use compile::{compile, Compiled, Origin};
pub use error::{Error, Loc, Warning};
pub use model::{Bindings, MobileNode, Policy, Role};
pub use render::Backend;

/// Reads, checks and expands a policy with the bindings it carries: what a daemon that
/// has no bindings of its own calls.
pub fn load(file: &str, text: &str) -> Result<(Policy, Compiled), Vec<Error>> {
    let policy = parse::parse(file, text)?;
    let compiled = compile(&policy, &policy.bindings)?;
    Ok((policy, compiled))
}
