//! Authorization: IAM JSON policies, evaluated for each request the way AWS evaluates them
//! for Kinesis.
//!
//! - `document.rs`: parses and checks policy documents (identity and resource policies);
//!   `error.rs` holds the MalformedPolicyDocument-style errors, `principal.rs` the
//!   `Principal`/`NotPrincipal` element.
//! - `glob.rs`: IAM's `*`/`?` wildcards, and ARN matching field by field.
//! - `condition/`: the `Condition` element, its operators, qualifiers and typed values.
//! - `context.rs`: the request as policies see it, and the condition keys it answers.
//! - `evaluate.rs`: explicit Deny, then Allow, then implicit deny; names the deciding
//!   statement.
//! - `message.rs`: AWS's AccessDeniedException wording.
//! - `catalogue.rs`: every operation of both APIs with its action and resource kind;
//!   `arn.rs` builds the ARNs.
//!
//! Pure logic: nothing here does I/O, keeps state or knows which API carried a request.
//! Policies are parsed once when stored, so evaluating one never fails. A new condition
//! operator goes in `condition/operator.rs` (name) and `condition/values.rs` (comparison); a
//! new operation goes in `catalogue.rs` and `docs/authorization.md`.

mod arn;
mod catalogue;
mod condition;
mod context;
mod document;
mod error;
mod evaluate;
mod glob;
mod message;
mod principal;

pub use arn::{consumer_arn, stream_arn, user_arn};
pub use catalogue::{
    KINESIS_OPERATIONS, Operation, ResourceKind, STREAMD_OPERATIONS, operation, operations,
};
pub use context::RequestContext;
pub use document::{Effect, PolicyDocument, PolicyKind, PolicyVersion, Statement};
pub use error::PolicyError;
pub use evaluate::{DecidingStatement, Decision, Evaluation, Policy, evaluate};
pub use message::{AccessDenied, DenyKind};
