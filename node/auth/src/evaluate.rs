//! The decision for one request, as IAM makes it when principal and resource share an account:
//!
//! 1. an explicit Deny in any applicable statement, identity or resource policy, wins;
//! 2. otherwise an Allow in an identity policy of the principal allows, and so does an Allow
//!    in a resource policy that names the principal by its ARN, by `*`, or by leaving it out
//!    of a `NotPrincipal`; naming only the principal's account grants nothing by itself (IAM
//!    reads it as "the account's identity policies decide");
//! 3. otherwise the request is implicitly denied.
//!
//! A statement applies when its action, resource, principal (resource policies only) and
//! conditions all match. Whether some principal skips evaluation altogether (an administrator)
//! is the caller's decision, not this module's.

use crate::context::RequestContext;
use crate::document::{Effect, Matcher, PolicyDocument, PolicyKind, Statement};
use crate::glob;
use crate::principal::PrincipalMatch;

/// A policy document and the name it is logged under.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// e.g. the user policy's name, or `stream/s1` for a stream's resource policy.
    pub name: String,
    pub document: PolicyDocument,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

/// The statement that decided a request: the Deny that won, or the first Allow found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidingStatement {
    pub policy: String,
    pub kind: PolicyKind,
    pub sid: Option<String>,
    /// Position of the statement in its document, for statements without a Sid.
    pub index: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub decision: Decision,
    /// `None` for an implicit deny: no statement decided it.
    pub decided_by: Option<DecidingStatement>,
}

impl Evaluation {
    pub fn is_allowed(&self) -> bool {
        self.decision == Decision::Allow
    }
}

impl Policy {
    pub fn new(name: impl Into<String>, document: PolicyDocument) -> Self {
        Self {
            name: name.into(),
            document,
        }
    }
}

/// Decides `ctx` against every policy that bears on it: the principal's identity policies
/// and the resource's policy, in any order (each document knows its kind).
pub fn evaluate<'a>(
    ctx: &RequestContext,
    policies: impl IntoIterator<Item = &'a Policy>,
) -> Evaluation {
    let mut first_allow = None;
    for policy in policies {
        for (index, statement) in policy.document.statements().iter().enumerate() {
            let Some(grants) = applies(statement, ctx) else {
                continue;
            };
            let decided_by = || DecidingStatement {
                policy: policy.name.clone(),
                kind: policy.document.kind(),
                sid: statement.sid().map(str::to_owned),
                index,
            };
            match statement.effect() {
                // Nothing can outvote a Deny, so there is no need to read further.
                Effect::Deny => {
                    return Evaluation {
                        decision: Decision::ExplicitDeny,
                        decided_by: Some(decided_by()),
                    };
                }
                Effect::Allow if grants && first_allow.is_none() => {
                    first_allow = Some(decided_by());
                }
                Effect::Allow => {}
            }
        }
    }
    match first_allow {
        Some(statement) => Evaluation {
            decision: Decision::Allow,
            decided_by: Some(statement),
        },
        None => Evaluation {
            decision: Decision::ImplicitDeny,
            decided_by: None,
        },
    }
}

/// `None` when the statement does not apply to the request; otherwise whether an Allow in it
/// would grant (false when a resource policy names the principal only through its account).
fn applies(statement: &Statement, ctx: &RequestContext) -> Option<bool> {
    let grants = match &statement.principal {
        None => true,
        Some(clause) => match clause.matches(&ctx.principal_arn) {
            PrincipalMatch::None => return None,
            PrincipalMatch::Account => false,
            PrincipalMatch::Direct => true,
        },
    };
    let applies = covers(&statement.actions, |p| {
        glob::matches_ignore_case(p, &ctx.action)
    }) && covers(&statement.resources, |p| {
        glob::arn_matches(p, &ctx.resource_arn)
    }) && statement.conditions.is_satisfied(ctx);
    applies.then_some(grants)
}

fn covers(matcher: &Matcher, matches: impl Fn(&str) -> bool) -> bool {
    matcher.patterns.iter().any(|p| matches(p)) != matcher.negated
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
