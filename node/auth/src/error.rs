//! Why a policy document was refused.
//!
//! Each message starts with the sentence AWS's MalformedPolicyDocument error carries for the
//! same fault, so a client that matches on AWS's text keeps working. Where AWS says no more
//! than "Syntax errors in policy." the rest of the message names the fault, since a bare
//! "syntax error" leaves the author guessing.

use thiserror::Error;

/// A policy document that IAM would refuse, with AWS's MalformedPolicyDocument wording.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// Not JSON, or JSON of the wrong shape (a list where an object belongs, and so on).
    #[error("Syntax errors in policy. {0}")]
    Syntax(String),

    #[error(
        "The policy must contain a valid version string. {0:?} is neither 2012-10-17 nor 2008-10-17."
    )]
    InvalidVersion(String),

    #[error("Syntax errors in policy. Unknown field {0}.")]
    UnknownField(String),

    #[error("Syntax errors in policy. The policy has no statements.")]
    NoStatements,

    #[error("Missing required field Effect.")]
    MissingEffect,

    #[error("Invalid effect: {0}. An effect is Allow or Deny.")]
    InvalidEffect(String),

    #[error("Policy document should not specify a principal.")]
    PrincipalInIdentityPolicy,

    #[error("Missing required field Principal.")]
    MissingPrincipal,

    #[error("Syntax errors in policy. A statement cannot have both Principal and NotPrincipal.")]
    PrincipalAndNotPrincipal,

    /// `kind` is the principal type (`AWS`, `Service`, ...), empty when the principal was a bare
    /// string other than `*`.
    #[error("Invalid principal in policy: \"{kind}\":\"{value}\"")]
    InvalidPrincipal { kind: String, value: String },

    #[error("Policy statement must contain actions.")]
    MissingActions,

    #[error("Syntax errors in policy. A statement cannot have both Action and NotAction.")]
    ActionAndNotAction,

    #[error("Policy statement must contain resources.")]
    MissingResources,

    #[error("Syntax errors in policy. A statement cannot have both Resource and NotResource.")]
    ResourceAndNotResource,

    #[error(
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc. Got {0:?}."
    )]
    MissingVendor(String),

    #[error("Actions/Condition can contain only one colon. Got {0:?}.")]
    TooManyColons(String),

    #[error("Vendor {0} is not valid")]
    InvalidVendor(String),

    #[error("Resource {0} must be in ARN format or \"*\".")]
    InvalidResource(String),

    #[error("Statement IDs (SID) in a single policy must be unique. {0:?} is used twice.")]
    DuplicateSid(String),

    #[error(
        "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*. Got {0:?}."
    )]
    InvalidSid(String),

    #[error("Syntax errors in policy. Unknown condition operator {0}.")]
    UnknownConditionOperator(String),

    /// `IfExists` on `Null`: the operator already asks whether the key exists.
    #[error("Syntax errors in policy. The Null condition operator cannot take IfExists.")]
    NullIfExists,

    #[error("Syntax errors in policy. Condition {operator} on {key}: {problem}.")]
    InvalidConditionValue {
        operator: String,
        key: String,
        problem: String,
    },
}
