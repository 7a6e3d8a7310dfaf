//! The AccessDeniedException message, word for word as AWS writes it.

use thiserror::Error;

use crate::context::RequestContext;
use crate::document::PolicyKind;
use crate::evaluate::{Decision, Evaluation};

/// Why a request was refused, which picks the message's ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyKind {
    /// No policy allowed the request.
    Implicit,
    ExplicitInIdentityPolicy,
    ExplicitInResourcePolicy,
}

/// A refused request, displayed as AWS's AccessDeniedException message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", Self::message(&self.principal_arn, &self.action, &self.resource_arn, self.kind))]
pub struct AccessDenied {
    pub principal_arn: String,
    pub action: String,
    pub resource_arn: String,
    pub kind: DenyKind,
}

impl AccessDenied {
    /// `None` when the evaluation allowed the request.
    pub fn from_evaluation(ctx: &RequestContext, evaluation: &Evaluation) -> Option<Self> {
        let kind = match evaluation.decision {
            Decision::Allow => return None,
            Decision::ImplicitDeny => DenyKind::Implicit,
            Decision::ExplicitDeny => match evaluation.decided_by.as_ref().map(|s| s.kind) {
                Some(PolicyKind::Resource) => DenyKind::ExplicitInResourcePolicy,
                Some(PolicyKind::Identity) | None => DenyKind::ExplicitInIdentityPolicy,
            },
        };
        Some(Self {
            principal_arn: ctx.principal_arn.clone(),
            action: ctx.action.clone(),
            resource_arn: ctx.resource_arn.clone(),
            kind,
        })
    }

    /// e.g. `User: arn:aws:iam::000000000000:user/alice is not authorized to perform:
    /// kinesis:PutRecord on resource: arn:aws:kinesis:us-east-1:000000000000:stream/s1 because
    /// no identity-based policy allows the kinesis:PutRecord action` (on one line).
    pub fn message(
        principal_arn: &str,
        action: &str,
        resource_arn: &str,
        kind: DenyKind,
    ) -> String {
        let head = format!(
            "User: {principal_arn} is not authorized to perform: {action} on resource: {resource_arn}"
        );
        match kind {
            DenyKind::Implicit => {
                format!("{head} because no identity-based policy allows the {action} action")
            }
            DenyKind::ExplicitInIdentityPolicy => {
                format!("{head} with an explicit deny in an identity-based policy")
            }
            DenyKind::ExplicitInResourcePolicy => {
                format!("{head} with an explicit deny in a resource-based policy")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::document::PolicyDocument;
    use crate::evaluate::{Policy, evaluate};

    const ALICE: &str = "arn:aws:iam::000000000000:user/alice";
    const S1: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/s1";

    #[test]
    fn implicit_deny_message() {
        assert_eq!(
            AccessDenied::message(ALICE, "kinesis:PutRecord", S1, DenyKind::Implicit),
            "User: arn:aws:iam::000000000000:user/alice is not authorized to perform: \
             kinesis:PutRecord on resource: arn:aws:kinesis:us-east-1:000000000000:stream/s1 \
             because no identity-based policy allows the kinesis:PutRecord action"
        );
    }

    #[test]
    fn explicit_deny_messages() {
        assert_eq!(
            AccessDenied::message(
                ALICE,
                "kinesis:DeleteStream",
                S1,
                DenyKind::ExplicitInIdentityPolicy
            ),
            "User: arn:aws:iam::000000000000:user/alice is not authorized to perform: \
             kinesis:DeleteStream on resource: arn:aws:kinesis:us-east-1:000000000000:stream/s1 \
             with an explicit deny in an identity-based policy"
        );
        assert_eq!(
            AccessDenied::message(
                ALICE,
                "kinesis:DeleteStream",
                S1,
                DenyKind::ExplicitInResourcePolicy
            ),
            "User: arn:aws:iam::000000000000:user/alice is not authorized to perform: \
             kinesis:DeleteStream on resource: arn:aws:kinesis:us-east-1:000000000000:stream/s1 \
             with an explicit deny in a resource-based policy"
        );
    }

    #[test]
    fn from_evaluation_picks_the_kind_and_displays_the_message() {
        let ctx = RequestContext::new(ALICE, "kinesis:PutRecord", S1, SystemTime::UNIX_EPOCH);
        let deny_here = Policy::new(
            "stream/s1",
            PolicyDocument::parse_resource(
                r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"kinesis:*","Resource":"*"}}"#,
            )
            .unwrap(),
        );
        let allow = Policy::new(
            "all",
            PolicyDocument::parse_identity(
                r#"{"Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}}"#,
            )
            .unwrap(),
        );

        let denied =
            AccessDenied::from_evaluation(&ctx, &evaluate(&ctx, [&allow, &deny_here])).unwrap();
        assert_eq!(denied.kind, DenyKind::ExplicitInResourcePolicy);
        assert!(
            denied
                .to_string()
                .ends_with("with an explicit deny in a resource-based policy")
        );

        let implicit = AccessDenied::from_evaluation(&ctx, &evaluate(&ctx, [])).unwrap();
        assert_eq!(implicit.kind, DenyKind::Implicit);
        assert_eq!(
            implicit.to_string(),
            AccessDenied::message(ALICE, "kinesis:PutRecord", S1, DenyKind::Implicit)
        );

        assert_eq!(
            AccessDenied::from_evaluation(&ctx, &evaluate(&ctx, [&allow])),
            None
        );
    }
}
