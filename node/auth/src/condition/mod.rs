//! The `Condition` element: `{ operator: { key: value | [values] } }`.
//!
//! IAM's rules, which this module keeps:
//! - the values listed for one key are OR-ed; keys under one operator, and operators, are
//!   AND-ed;
//! - a key the request does not carry makes the condition false, except that `Null` asks
//!   exactly that, an `...IfExists` operator is then true, a negated operator (`StringNotEquals`,
//!   `NotIpAddress`, ...) is then true, and `ForAllValues:` is then true;
//! - a negated operator is true when the request value matches none of the policy values;
//! - `ForAnyValue:` holds when some request value satisfies the operator, `ForAllValues:` when
//!   every one does; without a qualifier a multivalued key holds when any value matches (for a
//!   negated operator: when none does).
//!
//! `operator.rs` reads operator names, `values.rs` parses and compares the values.

mod operator;
mod values;

use serde_json::Value;

use crate::context::RequestContext;
use crate::error::PolicyError;
use operator::{Operator, SetQualifier};
use values::Expected;

/// All the conditions of one statement; satisfied when every one of them is.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ConditionBlock {
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    operator: Operator,
    /// Lowercased: IAM condition key names ignore case.
    key: String,
    expected: Expected,
}

impl ConditionBlock {
    pub(crate) fn parse(value: &Value) -> Result<Self, PolicyError> {
        let Value::Object(operators) = value else {
            return Err(PolicyError::Syntax(
                "Condition must be an object of operators.".to_owned(),
            ));
        };
        let mut conditions = Vec::new();
        for (name, keys) in operators {
            let operator = Operator::parse(name)?;
            let Value::Object(keys) = keys else {
                return Err(PolicyError::Syntax(format!(
                    "Condition {name} must be an object of condition keys."
                )));
            };
            for (key, raw) in keys {
                conditions.push(Condition::parse(operator.clone(), key, raw)?);
            }
        }
        Ok(Self { conditions })
    }

    pub(crate) fn is_satisfied(&self, ctx: &RequestContext) -> bool {
        self.conditions.iter().all(|c| c.is_satisfied(ctx))
    }
}

impl Condition {
    fn parse(operator: Operator, key: &str, raw: &Value) -> Result<Self, PolicyError> {
        let invalid = |problem: String| PolicyError::InvalidConditionValue {
            operator: operator.name.clone(),
            key: key.to_owned(),
            problem,
        };
        if !key.contains(':') {
            return Err(PolicyError::MissingVendor(key.to_owned()));
        }
        let raw = value_list(raw).map_err(invalid)?;
        let expected = Expected::parse(operator.family, raw).map_err(invalid)?;
        Ok(Self {
            key: key.to_ascii_lowercase(),
            operator,
            expected,
        })
    }

    fn is_satisfied(&self, ctx: &RequestContext) -> bool {
        let request_values = ctx.lookup(&self.key).filter(|v| !v.is_empty());
        if let Expected::Null(want_absent) = &self.expected {
            let absent = request_values.is_none();
            return want_absent.contains(&absent);
        }
        let Some(request_values) = request_values else {
            return self.operator.if_exists
                || match self.operator.qualifier {
                    Some(SetQualifier::ForAllValues) => true,
                    Some(SetQualifier::ForAnyValue) => false,
                    None => self.operator.negated,
                };
        };
        let satisfies = |v: &str| self.expected.any_matches(v) != self.operator.negated;
        match self.operator.qualifier {
            Some(SetQualifier::ForAnyValue) => request_values.iter().any(|v| satisfies(v)),
            Some(SetQualifier::ForAllValues) => request_values.iter().all(|v| satisfies(v)),
            None => {
                let any_match = request_values.iter().any(|v| self.expected.any_matches(v));
                any_match != self.operator.negated
            }
        }
    }
}

/// IAM takes a string, number or boolean, or a non-empty list of them, and compares them as
/// text.
fn value_list(raw: &Value) -> Result<Vec<String>, String> {
    fn scalar(v: &Value) -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!(
                "values are strings, numbers or booleans, not {other}"
            )),
        }
    }
    match raw {
        Value::Array(items) if items.is_empty() => Err("no values are listed".to_owned()),
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

#[cfg(test)]
#[path = "condition_tests.rs"]
mod tests;
