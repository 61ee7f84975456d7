//! The native SPD: `mipsec::spd`'s text format, one entry a line in match order.

use crate::compile::Compiled;
use crate::model::Policy;

pub(crate) fn render(policy: &Policy, c: &Compiled) -> String {
    let mut out = super::header(policy, "#", "native SPD (first match wins)");
    out.push_str(&c.spd.to_string());
    out
}
