//! The `Principal` and `NotPrincipal` elements of a resource policy, and whom they name.

use serde_json::Value;

use crate::error::PolicyError;

/// Who a resource policy statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrincipalClause {
    /// `NotPrincipal`: the statement is about everyone *except* the principals listed.
    pub(crate) negated: bool,
    pub(crate) principals: Vec<Principal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// `"*"` or `{"AWS": "*"}`: anyone.
    Anyone,
    /// `{"AWS": "123456789012"}` or `{"AWS": "arn:aws:iam::123456789012:root"}`.
    Account(String),
    /// `{"AWS": "arn:aws:iam::123456789012:user/alice"}` and other exact principal ARNs.
    Arn(String),
    /// `Service`, `Federated` and `CanonicalUser` principals. streamd authenticates IAM users
    /// only, so these are accepted (a policy copied from AWS still loads) but name nobody.
    Other,
}

/// How a principal clause covers the principal making the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrincipalMatch {
    /// Not named.
    None,
    /// Named through its account. For a same-account request IAM reads this as "the account
    /// trusts its identity policies": it lets a Deny apply but grants nothing by itself.
    Account,
    /// Named by its own ARN, by `*`, or as not excluded by a `NotPrincipal`.
    Direct,
}

impl PrincipalClause {
    pub(crate) fn parse(value: &Value, negated: bool) -> Result<Self, PolicyError> {
        let principals = match value {
            Value::String(s) if s == "*" => vec![Principal::Anyone],
            Value::String(s) => {
                return Err(PolicyError::InvalidPrincipal {
                    kind: String::new(),
                    value: s.clone(),
                });
            }
            Value::Object(map) if !map.is_empty() => {
                let mut principals = Vec::new();
                for (kind, ids) in map {
                    for id in string_list(ids, kind)? {
                        principals.push(parse_one(kind, id)?);
                    }
                }
                principals
            }
            other => {
                return Err(PolicyError::Syntax(format!(
                    "Principal must be \"*\" or an object such as {{\"AWS\": \"arn\"}}, not {other}."
                )));
            }
        };
        Ok(Self {
            negated,
            principals,
        })
    }

    /// How this clause covers `principal_arn`.
    pub(crate) fn matches(&self, principal_arn: &str) -> PrincipalMatch {
        let named = self
            .principals
            .iter()
            .map(|p| p.matches(principal_arn))
            .max_by_key(|m| match m {
                PrincipalMatch::None => 0,
                PrincipalMatch::Account => 1,
                PrincipalMatch::Direct => 2,
            })
            .unwrap_or(PrincipalMatch::None);
        if !self.negated {
            return named;
        }
        match named {
            PrincipalMatch::None => PrincipalMatch::Direct,
            PrincipalMatch::Account | PrincipalMatch::Direct => PrincipalMatch::None,
        }
    }
}

impl Principal {
    fn matches(&self, principal_arn: &str) -> PrincipalMatch {
        match self {
            Principal::Anyone => PrincipalMatch::Direct,
            Principal::Arn(arn) if arn == principal_arn => PrincipalMatch::Direct,
            Principal::Arn(_) | Principal::Other => PrincipalMatch::None,
            Principal::Account(account) => {
                if principal_arn == root_arn(account) {
                    PrincipalMatch::Direct
                } else if account_of(principal_arn) == Some(account.as_str()) {
                    PrincipalMatch::Account
                } else {
                    PrincipalMatch::None
                }
            }
        }
    }
}

fn string_list<'a>(value: &'a Value, kind: &str) -> Result<Vec<&'a str>, PolicyError> {
    let invalid = || PolicyError::InvalidPrincipal {
        kind: kind.to_owned(),
        value: value.to_string(),
    };
    match value {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| item.as_str().ok_or_else(invalid))
            .collect(),
        _ => Err(invalid()),
    }
}

fn parse_one(kind: &str, id: &str) -> Result<Principal, PolicyError> {
    let invalid = || PolicyError::InvalidPrincipal {
        kind: kind.to_owned(),
        value: id.to_owned(),
    };
    match kind {
        "AWS" => parse_aws(id).ok_or_else(invalid),
        "Service" | "Federated" | "CanonicalUser" if !id.is_empty() => Ok(Principal::Other),
        _ => Err(invalid()),
    }
}

/// IAM allows no wildcard in a principal except the lone `*`.
fn parse_aws(id: &str) -> Option<Principal> {
    if id == "*" {
        return Some(Principal::Anyone);
    }
    if id.contains(['*', '?']) {
        return None;
    }
    if is_account_id(id) {
        return Some(Principal::Account(id.to_owned()));
    }
    let fields: Vec<&str> = id.splitn(6, ':').collect();
    match fields.as_slice() {
        ["arn", _, "iam", "", account, "root"] if is_account_id(account) => {
            Some(Principal::Account((*account).to_owned()))
        }
        ["arn", partition, "iam" | "sts", "", account, resource]
            if !partition.is_empty() && is_account_id(account) && !resource.is_empty() =>
        {
            Some(Principal::Arn(id.to_owned()))
        }
        _ => None,
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn root_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:root")
}

/// The account field of an IAM or STS principal ARN.
pub(crate) fn account_of(principal_arn: &str) -> Option<&str> {
    let fields: Vec<&str> = principal_arn.splitn(6, ':').collect();
    match fields.as_slice() {
        ["arn", _, "iam" | "sts", _, account, _] if !account.is_empty() => Some(account),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALICE: &str = "arn:aws:iam::000000000000:user/alice";

    fn clause(value: Value) -> PrincipalClause {
        PrincipalClause::parse(&value, false).unwrap()
    }

    #[test]
    fn star_and_aws_star_name_anyone() {
        assert_eq!(clause(json!("*")).matches(ALICE), PrincipalMatch::Direct);
        assert_eq!(
            clause(json!({"AWS": "*"})).matches(ALICE),
            PrincipalMatch::Direct
        );
    }

    #[test]
    fn an_exact_arn_names_that_principal_only() {
        let c = clause(json!({"AWS": ["arn:aws:iam::000000000000:user/bob", ALICE]}));
        assert_eq!(c.matches(ALICE), PrincipalMatch::Direct);
        assert_eq!(
            c.matches("arn:aws:iam::000000000000:user/carol"),
            PrincipalMatch::None
        );
    }

    #[test]
    fn an_account_names_its_principals_through_the_account() {
        for form in ["000000000000", "arn:aws:iam::000000000000:root"] {
            let c = clause(json!({ "AWS": form }));
            assert_eq!(c.matches(ALICE), PrincipalMatch::Account, "{form}");
            assert_eq!(
                c.matches("arn:aws:iam::000000000000:root"),
                PrincipalMatch::Direct,
                "{form}"
            );
            assert_eq!(
                c.matches("arn:aws:iam::111111111111:user/alice"),
                PrincipalMatch::None,
                "{form}"
            );
        }
    }

    #[test]
    fn not_principal_covers_everyone_not_listed() {
        let c = PrincipalClause::parse(&json!({ "AWS": ALICE }), true).unwrap();
        assert_eq!(c.matches(ALICE), PrincipalMatch::None);
        assert_eq!(
            c.matches("arn:aws:iam::000000000000:user/bob"),
            PrincipalMatch::Direct
        );
        let by_account = PrincipalClause::parse(&json!({"AWS": "000000000000"}), true).unwrap();
        assert_eq!(by_account.matches(ALICE), PrincipalMatch::None);
    }

    #[test]
    fn service_principals_load_but_name_no_user() {
        let c = clause(json!({"Service": "kinesisanalytics.amazonaws.com"}));
        assert_eq!(c.matches(ALICE), PrincipalMatch::None);
    }

    #[test]
    fn wildcards_inside_a_principal_are_refused() {
        for bad in [
            json!({"AWS": "arn:aws:iam::*:user/alice"}),
            json!({"AWS": "arn:aws:iam::000000000000:user/a?ice"}),
        ] {
            let err = PrincipalClause::parse(&bad, false).unwrap_err();
            assert!(
                matches!(err, PolicyError::InvalidPrincipal { ref kind, .. } if kind == "AWS"),
                "{err}"
            );
        }
    }

    #[test]
    fn malformed_principals_are_refused() {
        for bad in [
            json!("alice"),
            json!({}),
            json!({"AWS": []}),
            json!({"AWS": 12}),
            json!({"AWS": "not-an-arn"}),
            json!({"AWS": "arn:aws:s3:::bucket"}),
            json!({"Martian": "x"}),
            json!(["*"]),
        ] {
            assert!(PrincipalClause::parse(&bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_principal_message_has_aws_shape() {
        let err = PrincipalClause::parse(&json!({"AWS": "nobody"}), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid principal in policy: \"AWS\":\"nobody\""
        );
    }

    #[test]
    fn account_of_reads_iam_and_sts_arns() {
        assert_eq!(account_of(ALICE), Some("000000000000"));
        assert_eq!(
            account_of("arn:aws:sts::123456789012:assumed-role/r/s"),
            Some("123456789012")
        );
        assert_eq!(account_of("arn:aws:kinesis:us-east-1:1:stream/s"), None);
        assert_eq!(account_of("alice"), None);
    }
}
