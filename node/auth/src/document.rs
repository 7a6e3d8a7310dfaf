//! Policy documents: parsed and checked once, when a policy is stored, so that evaluation
//! never meets a malformed statement.

use serde_json::{Map, Value};

use crate::condition::ConditionBlock;
use crate::error::PolicyError;
use crate::principal::PrincipalClause;

/// Where a policy is attached, which decides whether it may name principals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to a user: applies to that user's requests, names no principal.
    Identity,
    /// Attached to a stream or consumer: names the principals it applies to.
    Resource,
}

/// The policy language version. Both are accepted; streamd has no policy variables, the one
/// thing that tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyVersion {
    V2012_10_17,
    V2008_10_17,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    kind: PolicyKind,
    version: PolicyVersion,
    statements: Vec<Statement>,
}

/// One statement of a policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    sid: Option<String>,
    effect: Effect,
    /// `None` in identity policies, always set in resource policies.
    pub(crate) principal: Option<PrincipalClause>,
    pub(crate) actions: Matcher,
    pub(crate) resources: Matcher,
    pub(crate) conditions: ConditionBlock,
}

/// `Action` or `NotAction`, `Resource` or `NotResource`: a list of patterns, and whether the
/// statement covers what they match or everything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matcher {
    pub(crate) negated: bool,
    pub(crate) patterns: Vec<String>,
}

impl PolicyDocument {
    /// A policy attached to a user. It must not name a principal.
    pub fn parse_identity(json: &str) -> Result<Self, PolicyError> {
        Self::parse(json, PolicyKind::Identity)
    }

    /// A policy attached to a stream or consumer. Every statement must name a principal.
    pub fn parse_resource(json: &str) -> Result<Self, PolicyError> {
        Self::parse(json, PolicyKind::Resource)
    }

    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    fn parse(json: &str, kind: PolicyKind) -> Result<Self, PolicyError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| PolicyError::Syntax(format!("The document is not valid JSON: {e}.")))?;
        let Value::Object(top) = value else {
            return Err(PolicyError::Syntax(
                "The document must be a JSON object.".to_owned(),
            ));
        };
        reject_unknown_fields(&top, &["Version", "Id", "Statement"])?;
        let version = match top.get("Version") {
            None => PolicyVersion::V2008_10_17,
            Some(Value::String(v)) if v == "2012-10-17" => PolicyVersion::V2012_10_17,
            Some(Value::String(v)) if v == "2008-10-17" => PolicyVersion::V2008_10_17,
            Some(Value::String(v)) => return Err(PolicyError::InvalidVersion(v.clone())),
            Some(other) => return Err(PolicyError::InvalidVersion(other.to_string())),
        };
        if top.get("Id").is_some_and(|id| !id.is_string()) {
            return Err(PolicyError::Syntax("Id must be a string.".to_owned()));
        }
        let raw_statements = match top.get("Statement") {
            None => return Err(PolicyError::NoStatements),
            Some(Value::Array(list)) if list.is_empty() => return Err(PolicyError::NoStatements),
            Some(Value::Array(list)) => list.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            Some(_) => {
                return Err(PolicyError::Syntax(
                    "Statement must be an object or a list of objects.".to_owned(),
                ));
            }
        };
        let statements = raw_statements
            .into_iter()
            .map(|s| Statement::parse(s, kind))
            .collect::<Result<Vec<_>, _>>()?;
        check_sids_unique(&statements)?;
        Ok(Self {
            kind,
            version,
            statements,
        })
    }
}

impl Statement {
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }

    fn parse(value: &Value, kind: PolicyKind) -> Result<Self, PolicyError> {
        let Value::Object(fields) = value else {
            return Err(PolicyError::Syntax(
                "Each statement must be a JSON object.".to_owned(),
            ));
        };
        reject_unknown_fields(
            fields,
            &[
                "Sid",
                "Effect",
                "Principal",
                "NotPrincipal",
                "Action",
                "NotAction",
                "Resource",
                "NotResource",
                "Condition",
            ],
        )?;
        let sid = parse_sid(fields.get("Sid"), kind)?;
        let effect = match fields.get("Effect") {
            None => return Err(PolicyError::MissingEffect),
            Some(Value::String(e)) if e == "Allow" => Effect::Allow,
            Some(Value::String(e)) if e == "Deny" => Effect::Deny,
            Some(Value::String(e)) => return Err(PolicyError::InvalidEffect(e.clone())),
            Some(other) => return Err(PolicyError::InvalidEffect(other.to_string())),
        };
        let principal = parse_principal(fields, kind)?;
        let actions = parse_matcher(
            fields,
            "Action",
            "NotAction",
            PolicyError::MissingActions,
            PolicyError::ActionAndNotAction,
        )?;
        for action in &actions.patterns {
            check_action(action)?;
        }
        let resources = parse_matcher(
            fields,
            "Resource",
            "NotResource",
            PolicyError::MissingResources,
            PolicyError::ResourceAndNotResource,
        )?;
        for resource in &resources.patterns {
            check_resource(resource)?;
        }
        let conditions = match fields.get("Condition") {
            Some(c) => ConditionBlock::parse(c)?,
            None => ConditionBlock::default(),
        };
        Ok(Self {
            sid,
            effect,
            principal,
            actions,
            resources,
            conditions,
        })
    }
}

fn reject_unknown_fields(fields: &Map<String, Value>, known: &[&str]) -> Result<(), PolicyError> {
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(PolicyError::UnknownField(unknown.clone())),
        None => Ok(()),
    }
}

/// IAM holds identity policies' Sids to `[0-9A-Za-z]*`; resource policies (Kinesis's
/// included) take any string.
fn parse_sid(value: Option<&Value>, kind: PolicyKind) -> Result<Option<String>, PolicyError> {
    match value {
        None => Ok(None),
        Some(Value::String(sid)) => {
            if kind == PolicyKind::Identity && !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(PolicyError::InvalidSid(sid.clone()));
            }
            Ok(Some(sid.clone()).filter(|s| !s.is_empty()))
        }
        Some(other) => Err(PolicyError::Syntax(format!(
            "Sid must be a string, not {other}."
        ))),
    }
}

fn parse_principal(
    fields: &Map<String, Value>,
    kind: PolicyKind,
) -> Result<Option<PrincipalClause>, PolicyError> {
    let principal = fields.get("Principal");
    let not_principal = fields.get("NotPrincipal");
    match (kind, principal, not_principal) {
        (PolicyKind::Identity, None, None) => Ok(None),
        (PolicyKind::Identity, _, _) => Err(PolicyError::PrincipalInIdentityPolicy),
        (PolicyKind::Resource, Some(_), Some(_)) => Err(PolicyError::PrincipalAndNotPrincipal),
        (PolicyKind::Resource, Some(p), None) => PrincipalClause::parse(p, false).map(Some),
        (PolicyKind::Resource, None, Some(p)) => PrincipalClause::parse(p, true).map(Some),
        (PolicyKind::Resource, None, None) => Err(PolicyError::MissingPrincipal),
    }
}

fn parse_matcher(
    fields: &Map<String, Value>,
    name: &str,
    not_name: &str,
    missing: PolicyError,
    both: PolicyError,
) -> Result<Matcher, PolicyError> {
    let (negated, value) = match (fields.get(name), fields.get(not_name)) {
        (Some(_), Some(_)) => return Err(both),
        (None, None) => return Err(missing),
        (Some(v), None) => (false, v),
        (None, Some(v)) => (true, v),
    };
    let field = if negated { not_name } else { name };
    let shape_error =
        || PolicyError::Syntax(format!("{field} must be a string or a list of strings."));
    let patterns = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.is_empty() => return Err(missing),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(shape_error))
            .collect::<Result<_, _>>()?,
        _ => return Err(shape_error()),
    };
    Ok(Matcher { negated, patterns })
}

/// `*`, or `vendor:name` with one colon; the name may hold wildcards, the vendor may not.
fn check_action(action: &str) -> Result<(), PolicyError> {
    if action == "*" {
        return Ok(());
    }
    let mut parts = action.split(':');
    let (Some(vendor), Some(_name)) = (parts.next(), parts.next()) else {
        return Err(PolicyError::MissingVendor(action.to_owned()));
    };
    if parts.next().is_some() {
        return Err(PolicyError::TooManyColons(action.to_owned()));
    }
    if vendor.is_empty()
        || !vendor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(PolicyError::InvalidVendor(vendor.to_owned()));
    }
    Ok(())
}

fn check_resource(resource: &str) -> Result<(), PolicyError> {
    if resource == "*" || resource.starts_with("arn:") {
        Ok(())
    } else {
        Err(PolicyError::InvalidResource(resource.to_owned()))
    }
}

fn check_sids_unique(statements: &[Statement]) -> Result<(), PolicyError> {
    let mut seen = std::collections::HashSet::new();
    for sid in statements.iter().filter_map(Statement::sid) {
        if !seen.insert(sid) {
            return Err(PolicyError::DuplicateSid(sid.to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "document_tests.rs"]
mod tests;
