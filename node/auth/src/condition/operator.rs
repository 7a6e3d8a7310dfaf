//! Condition operator names: `[ForAnyValue:|ForAllValues:]Base[IfExists]`.

use crate::error::PolicyError;

/// How an operator compares a request value with a policy value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    String,
    StringIgnoreCase,
    StringLike,
    /// ArnEquals and ArnLike behave alike in IAM: both take wildcards, field by field.
    Arn,
    Numeric(Ordering),
    Date(Ordering),
    Bool,
    /// The policy holds base64 text; the request value is compared as the same text.
    Binary,
    IpAddress,
    Null,
}

/// The request value on the left, the policy value on the right: `NumericLessThan` holds when
/// the request's number is less than the policy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ordering {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetQualifier {
    /// At least one request value satisfies the operator; false when the key is absent.
    ForAnyValue,
    /// Every request value satisfies the operator; true when the key is absent or empty.
    ForAllValues,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operator {
    pub(crate) family: Family,
    /// The `Not` operators: true when no policy value matches.
    pub(crate) negated: bool,
    pub(crate) if_exists: bool,
    pub(crate) qualifier: Option<SetQualifier>,
    /// As written in the policy, for messages.
    pub(crate) name: String,
}

const BASE_OPERATORS: &[(&str, Family, bool)] = {
    use Family::*;
    use Ordering::*;
    &[
        ("StringEquals", String, false),
        ("StringNotEquals", String, true),
        ("StringEqualsIgnoreCase", StringIgnoreCase, false),
        ("StringNotEqualsIgnoreCase", StringIgnoreCase, true),
        ("StringLike", StringLike, false),
        ("StringNotLike", StringLike, true),
        ("ArnEquals", Arn, false),
        ("ArnLike", Arn, false),
        ("ArnNotEquals", Arn, true),
        ("ArnNotLike", Arn, true),
        ("NumericEquals", Numeric(Equal), false),
        ("NumericNotEquals", Numeric(Equal), true),
        ("NumericLessThan", Numeric(Less), false),
        ("NumericLessThanEquals", Numeric(LessOrEqual), false),
        ("NumericGreaterThan", Numeric(Greater), false),
        ("NumericGreaterThanEquals", Numeric(GreaterOrEqual), false),
        ("DateEquals", Date(Equal), false),
        ("DateNotEquals", Date(Equal), true),
        ("DateLessThan", Date(Less), false),
        ("DateLessThanEquals", Date(LessOrEqual), false),
        ("DateGreaterThan", Date(Greater), false),
        ("DateGreaterThanEquals", Date(GreaterOrEqual), false),
        ("Bool", Bool, false),
        ("BinaryEquals", Binary, false),
        ("IpAddress", IpAddress, false),
        ("NotIpAddress", IpAddress, true),
        ("Null", Null, false),
    ]
};

impl Operator {
    /// Operator names are matched exactly, as IAM does: `stringequals` is refused rather
    /// than quietly read as something the author may not have meant.
    pub(crate) fn parse(name: &str) -> Result<Self, PolicyError> {
        let unknown = || PolicyError::UnknownConditionOperator(name.to_owned());
        let (qualifier, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), rest)
        } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), rest)
        } else {
            (None, name)
        };
        let (if_exists, base) = match rest.strip_suffix("IfExists") {
            Some(base) => (true, base),
            None => (false, rest),
        };
        let &(_, family, negated) = BASE_OPERATORS
            .iter()
            .find(|(n, _, _)| *n == base)
            .ok_or_else(unknown)?;
        if family == Family::Null && if_exists {
            return Err(PolicyError::NullIfExists);
        }
        Ok(Self {
            family,
            negated,
            if_exists,
            qualifier,
            name: name.to_owned(),
        })
    }
}

impl Ordering {
    pub(crate) fn holds<T: PartialOrd>(self, request: &T, policy: &T) -> bool {
        match self {
            Ordering::Equal => request == policy,
            Ordering::Less => request < policy,
            Ordering::LessOrEqual => request <= policy,
            Ordering::Greater => request > policy,
            Ordering::GreaterOrEqual => request >= policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_base_operator_parses_plain_with_if_exists_and_with_each_qualifier() {
        for &(base, family, negated) in BASE_OPERATORS {
            let plain = Operator::parse(base).unwrap();
            assert_eq!((plain.family, plain.negated), (family, negated), "{base}");
            assert!(!plain.if_exists && plain.qualifier.is_none(), "{base}");
            if family != Family::Null {
                let op = Operator::parse(&format!("ForAllValues:{base}IfExists")).unwrap();
                assert!(op.if_exists, "{base}");
                assert_eq!(op.qualifier, Some(SetQualifier::ForAllValues));
            }
            let any = Operator::parse(&format!("ForAnyValue:{base}")).unwrap();
            assert_eq!(any.qualifier, Some(SetQualifier::ForAnyValue));
        }
    }

    #[test]
    fn unknown_operators_are_refused_with_their_name() {
        for bad in [
            "StringEqual",
            "stringequals",
            "StringEqualsIfexists",
            "ForSomeValues:StringEquals",
            "ForAnyValue:",
            "IfExists",
            "",
        ] {
            assert_eq!(
                Operator::parse(bad),
                Err(PolicyError::UnknownConditionOperator(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn null_cannot_take_if_exists() {
        assert_eq!(
            Operator::parse("NullIfExists"),
            Err(PolicyError::NullIfExists)
        );
    }

    #[test]
    fn orderings_put_the_request_value_on_the_left() {
        assert!(Ordering::Less.holds(&1, &2));
        assert!(!Ordering::Less.holds(&2, &2));
        assert!(Ordering::LessOrEqual.holds(&2, &2));
        assert!(Ordering::Greater.holds(&3, &2));
        assert!(!Ordering::Greater.holds(&2, &2));
        assert!(Ordering::GreaterOrEqual.holds(&2, &2));
        assert!(Ordering::Equal.holds(&2, &2));
        assert!(!Ordering::Equal.holds(&1, &2));
    }
}
