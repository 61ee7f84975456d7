//! Findings that do not stop a policy from loading: a rule that can never match because an
//! earlier one covers it, and rules that overlap with different actions (first match wins,
//! RFC 4301 §4.4.1, so the later one loses those packets). Template rules report once per
//! pair of rules, with the number of mobile nodes concerned.

use std::collections::HashMap;

use mipsec::spd::Action;

use crate::compile::Compiled;
use crate::error::Warning;
use crate::model::Policy;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Finding {
    Shadowed,
    Overlap,
}

fn same_action(a: &Action, b: &Action) -> bool {
    a == b || matches!((a, b), (Action::Protect(x), Action::Protect(y)) if x.mode == y.mode)
}

/// Shadow and overlap warnings for a compiled policy, in file order.
pub fn check(policy: &Policy, c: &Compiled) -> Vec<Warning> {
    let entries = c.spd.entries();
    // (later rule, earlier rule, finding) -> number of entries (mobile nodes) concerned.
    let mut found: HashMap<(usize, usize, Finding), usize> = HashMap::new();
    // Entries found shadowed: they match nothing, so nothing overlaps them.
    let mut dead = vec![false; entries.len()];
    for i in 0..entries.len() {
        let e = &entries[i];
        let mut shadowed = false;
        for j in c.spd.earlier_candidates(i) {
            if dead[j] {
                continue;
            }
            let d = &entries[j];
            let key = |f| (c.origins[i].rule, c.origins[j].rule, f);
            if !shadowed && d.covers(e) {
                shadowed = true;
                *found.entry(key(Finding::Shadowed)).or_default() += 1;
                dead[i] = true;
            } else if !same_action(&d.action, &e.action) && d.intersects(e) {
                *found.entry(key(Finding::Overlap)).or_default() += 1;
            }
        }
    }
    let mut keys: Vec<_> = found.into_iter().collect();
    keys.sort_by_key(|((later, earlier, f), _)| (*later, *earlier, *f == Finding::Overlap));
    keys.into_iter()
        .map(|((later, earlier, f), n)| {
            let (l, e) = (&policy.rules[later], &policy.rules[earlier]);
            let times = if n > 1 { format!(" (for {n} mobile nodes)") } else { String::new() };
            let message = match f {
                Finding::Shadowed => format!(
                    "rule `{}` can never match: rule `{}` at line {} comes first and covers it{times}",
                    l.name, e.name, e.at.line
                ),
                Finding::Overlap => format!(
                    "rule `{}` overlaps rule `{}` at line {} with a different action; the earlier rule wins for the shared packets{times}",
                    l.name, e.name, e.at.line
                ),
            };
            Warning {
                at: l.at.clone(),
                field: format!("rule[{later}] `{}`", l.name),
                message,
            }
        })
        .collect()
}
