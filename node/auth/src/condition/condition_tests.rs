use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::ConditionBlock;
use crate::context::RequestContext;
use crate::error::PolicyError;

/// 2023-11-14T22:13:20Z.
const NOW: u64 = 1_700_000_000;

fn ctx() -> RequestContext {
    RequestContext::new(
        "arn:aws:iam::000000000000:user/alice",
        "kinesis:PutRecord",
        "arn:aws:kinesis:us-east-1:000000000000:stream/s1",
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
    )
}

fn holds(condition: Value, ctx: &RequestContext) -> bool {
    ConditionBlock::parse(&condition).unwrap().is_satisfied(ctx)
}

fn parse_err(condition: Value) -> PolicyError {
    ConditionBlock::parse(&condition).unwrap_err()
}

#[test]
fn string_equals_ors_the_values_and_respects_case() {
    let c = ctx().with_key("kinesis:tier", "gold");
    assert!(holds(json!({"StringEquals": {"kinesis:tier": "gold"}}), &c));
    assert!(holds(
        json!({"StringEquals": {"kinesis:tier": ["silver", "gold"]}}),
        &c
    ));
    assert!(!holds(
        json!({"StringEquals": {"kinesis:tier": ["silver", "bronze"]}}),
        &c
    ));
    assert!(!holds(
        json!({"StringEquals": {"kinesis:tier": "Gold"}}),
        &c
    ));
}

#[test]
fn string_not_equals_holds_when_no_value_matches() {
    let c = ctx().with_key("kinesis:tier", "gold");
    assert!(holds(
        json!({"StringNotEquals": {"kinesis:tier": ["silver", "bronze"]}}),
        &c
    ));
    assert!(!holds(
        json!({"StringNotEquals": {"kinesis:tier": ["silver", "gold"]}}),
        &c
    ));
}

#[test]
fn ignore_case_operators_fold_case() {
    let c = ctx().with_key("kinesis:tier", "GOLD");
    assert!(holds(
        json!({"StringEqualsIgnoreCase": {"kinesis:tier": "gold"}}),
        &c
    ));
    assert!(!holds(
        json!({"StringEqualsIgnoreCase": {"kinesis:tier": "golden"}}),
        &c
    ));
    assert!(!holds(
        json!({"StringNotEqualsIgnoreCase": {"kinesis:tier": "Gold"}}),
        &c
    ));
    assert!(holds(
        json!({"StringNotEqualsIgnoreCase": {"kinesis:tier": "silver"}}),
        &c
    ));
}

#[test]
fn string_like_takes_wildcards_case_sensitively() {
    let c = ctx().with_key("kinesis:app", "billing-eu");
    assert!(holds(
        json!({"StringLike": {"kinesis:app": "billing-*"}}),
        &c
    ));
    assert!(holds(
        json!({"StringLike": {"kinesis:app": ["x", "billing-e?"]}}),
        &c
    ));
    assert!(!holds(
        json!({"StringLike": {"kinesis:app": "Billing-*"}}),
        &c
    ));
    assert!(!holds(
        json!({"StringNotLike": {"kinesis:app": "*-eu"}}),
        &c
    ));
    assert!(holds(json!({"StringNotLike": {"kinesis:app": "*-us"}}), &c));
}

#[test]
fn arn_operators_compare_field_by_field_with_wildcards() {
    let c = ctx();
    let key = "aws:PrincipalArn";
    assert!(holds(
        json!({"ArnEquals": {key: "arn:aws:iam::000000000000:user/alice"}}),
        &c
    ));
    assert!(holds(
        json!({"ArnLike": {key: "arn:aws:iam::*:user/*"}}),
        &c
    ));
    // ArnEquals takes wildcards too, as in IAM.
    assert!(holds(
        json!({"ArnEquals": {key: "arn:aws:iam::000000000000:user/a*"}}),
        &c
    ));
    assert!(!holds(
        json!({"ArnLike": {key: "arn:aws:iam::111111111111:user/*"}}),
        &c
    ));
    assert!(holds(
        json!({"ArnNotLike": {key: "arn:aws:iam::*:user/bob"}}),
        &c
    ));
    assert!(!holds(
        json!({"ArnNotEquals": {key: "arn:aws:iam::000000000000:user/alice"}}),
        &c
    ));
    // A value that is not an ARN matches no six-field pattern.
    let not_arn = ctx().with_key("kinesis:source", "alice");
    assert!(!holds(
        json!({"ArnLike": {"kinesis:source": "arn:aws:iam::*:user/*"}}),
        &not_arn
    ));
}

#[test]
fn secure_transport_false_catches_plaintext_only() {
    let deny_plaintext = json!({"Bool": {"aws:SecureTransport": "false"}});
    assert!(holds(deny_plaintext.clone(), &ctx()));
    assert!(!holds(deny_plaintext, &ctx().with_secure_transport(true)));
    // JSON booleans are read as their text, as IAM does.
    assert!(holds(
        json!({"Bool": {"aws:SecureTransport": true}}),
        &ctx().with_secure_transport(true)
    ));
}

#[test]
fn numeric_operators_compare_as_numbers() {
    let c = ctx().with_key("kinesis:shards", "10");
    let k = "kinesis:shards";
    assert!(holds(json!({"NumericEquals": {k: "10.0"}}), &c));
    assert!(holds(json!({"NumericEquals": {k: 10}}), &c));
    assert!(!holds(json!({"NumericNotEquals": {k: 10}}), &c));
    assert!(holds(json!({"NumericNotEquals": {k: 9}}), &c));
    assert!(holds(json!({"NumericLessThan": {k: 11}}), &c));
    assert!(!holds(json!({"NumericLessThan": {k: 10}}), &c));
    assert!(holds(json!({"NumericLessThanEquals": {k: 10}}), &c));
    assert!(!holds(json!({"NumericLessThanEquals": {k: 9.5}}), &c));
    // "10" > "9" as numbers, though not as text.
    assert!(holds(json!({"NumericGreaterThan": {k: 9}}), &c));
    assert!(!holds(json!({"NumericGreaterThan": {k: 10}}), &c));
    assert!(holds(json!({"NumericGreaterThanEquals": {k: 10}}), &c));
    assert!(!holds(json!({"NumericGreaterThanEquals": {k: 10.5}}), &c));
}

#[test]
fn date_operators_on_current_time() {
    let c = ctx();
    let t = "aws:CurrentTime";
    assert!(holds(
        json!({"DateGreaterThan": {t: "2023-01-01T00:00:00Z"}}),
        &c
    ));
    assert!(!holds(
        json!({"DateGreaterThan": {t: "2024-01-01T00:00:00Z"}}),
        &c
    ));
    assert!(holds(json!({"DateLessThan": {t: "2024-01-01"}}), &c));
    assert!(!holds(
        json!({"DateLessThan": {t: "2023-11-14T22:13:20Z"}}),
        &c
    ));
    assert!(holds(
        json!({"DateLessThanEquals": {t: "2023-11-14T22:13:20Z"}}),
        &c
    ));
    assert!(holds(
        json!({"DateGreaterThanEquals": {t: "2023-11-14T23:13:20+01:00"}}),
        &c
    ));
    assert!(holds(
        json!({"DateEquals": {t: "2023-11-14T22:13:20Z"}}),
        &c
    ));
    assert!(!holds(
        json!({"DateNotEquals": {t: "2023-11-14T22:13:20Z"}}),
        &c
    ));
    assert!(holds(
        json!({"DateNotEquals": {t: "2023-11-14T22:13:21Z"}}),
        &c
    ));
}

#[test]
fn date_operators_take_epoch_seconds_on_either_side() {
    let c = ctx();
    assert!(holds(
        json!({"DateGreaterThan": {"aws:CurrentTime": NOW - 1}}),
        &c
    ));
    assert!(!holds(
        json!({"DateGreaterThan": {"aws:CurrentTime": NOW}}),
        &c
    ));
    assert!(holds(
        json!({"DateLessThan": {"aws:EpochTime": "2023-11-14T22:13:21Z"}}),
        &c
    ));
    assert!(!holds(
        json!({"DateLessThan": {"aws:EpochTime": "2023-11-14T22:13:20Z"}}),
        &c
    ));
}

#[test]
fn source_ip_is_checked_against_cidr_blocks() {
    let inside = ctx().with_source_ip("192.0.2.17".parse().unwrap());
    let outside = ctx().with_source_ip("198.51.100.1".parse().unwrap());
    let v6 = ctx().with_source_ip("2001:db8::9".parse().unwrap());
    let allow = json!({"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/64"]}});
    assert!(holds(allow.clone(), &inside));
    assert!(!holds(allow.clone(), &outside));
    assert!(holds(allow.clone(), &v6));
    let block = json!({"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}});
    assert!(!holds(block.clone(), &inside));
    assert!(holds(block, &outside));
}

#[test]
fn a_missing_key_fails_positive_operators_and_passes_negated_ones() {
    let c = ctx();
    assert!(!holds(
        json!({"StringEquals": {"kinesis:tier": "gold"}}),
        &c
    ));
    assert!(!holds(json!({"StringLike": {"kinesis:tier": "*"}}), &c));
    assert!(!holds(json!({"Bool": {"kinesis:flag": "false"}}), &c));
    assert!(!holds(
        json!({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}),
        &c
    ));
    assert!(!holds(json!({"NumericLessThan": {"kinesis:n": 1}}), &c));
    assert!(holds(
        json!({"StringNotEquals": {"kinesis:tier": "gold"}}),
        &c
    ));
    assert!(holds(json!({"StringNotLike": {"kinesis:tier": "*"}}), &c));
    assert!(holds(
        json!({"NotIpAddress": {"aws:SourceIp": "0.0.0.0/0"}}),
        &c
    ));
    assert!(holds(json!({"ArnNotLike": {"kinesis:arn": "*"}}), &c));
}

#[test]
fn if_exists_passes_a_missing_key_and_checks_a_present_one() {
    let cond = json!({"StringEqualsIfExists": {"kinesis:tier": "gold"}});
    assert!(holds(cond.clone(), &ctx()));
    assert!(holds(cond.clone(), &ctx().with_key("kinesis:tier", "gold")));
    assert!(!holds(cond, &ctx().with_key("kinesis:tier", "silver")));
    let ip = json!({"IpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}});
    assert!(holds(ip.clone(), &ctx()));
    assert!(!holds(
        ip,
        &ctx().with_source_ip("192.0.2.1".parse().unwrap())
    ));
}

#[test]
fn null_asks_whether_the_key_is_present() {
    let with = ctx().with_key("kinesis:tier", "gold");
    assert!(holds(json!({"Null": {"kinesis:tier": "true"}}), &ctx()));
    assert!(!holds(json!({"Null": {"kinesis:tier": "true"}}), &with));
    assert!(holds(json!({"Null": {"kinesis:tier": false}}), &with));
    assert!(!holds(json!({"Null": {"kinesis:tier": false}}), &ctx()));
    assert!(holds(json!({"Null": {"aws:SourceIp": true}}), &ctx()));
    // An empty multivalued key counts as absent.
    let empty = ctx().with_values("aws:TagKeys", Vec::<String>::new());
    assert!(holds(json!({"Null": {"aws:TagKeys": true}}), &empty));
}

#[test]
fn for_any_value_needs_one_request_value_to_match() {
    let c = ctx().with_values("aws:TagKeys", ["team".to_owned(), "cost".to_owned()]);
    assert!(holds(
        json!({"ForAnyValue:StringEquals": {"aws:TagKeys": ["cost", "x"]}}),
        &c
    ));
    assert!(!holds(
        json!({"ForAnyValue:StringEquals": {"aws:TagKeys": ["x", "y"]}}),
        &c
    ));
    // Negated inside the qualifier: some request value matches none of the policy's.
    assert!(holds(
        json!({"ForAnyValue:StringNotEquals": {"aws:TagKeys": "team"}}),
        &c
    ));
    assert!(!holds(
        json!({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["team", "cost"]}}),
        &c
    ));
    // No values: nothing can match.
    assert!(!holds(
        json!({"ForAnyValue:StringEquals": {"aws:TagKeys": "team"}}),
        &ctx()
    ));
    assert!(holds(
        json!({"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "team"}}),
        &ctx()
    ));
}

#[test]
fn for_all_values_needs_every_request_value_to_match() {
    let c = ctx().with_values("aws:TagKeys", ["team".to_owned(), "cost".to_owned()]);
    let allowed = json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "cost", "env"]}});
    assert!(holds(allowed.clone(), &c));
    assert!(!holds(
        json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}),
        &c
    ));
    // Vacuously true without values, as IAM warns.
    assert!(holds(allowed.clone(), &ctx()));
    assert!(holds(
        allowed,
        &ctx().with_values("aws:TagKeys", Vec::<String>::new())
    ));
    assert!(holds(
        json!({"ForAllValues:StringLike": {"aws:TagKeys": ["t*", "c*"]}}),
        &c
    ));
}

#[test]
fn an_unqualified_operator_on_a_multivalued_key_matches_any_value() {
    let c = ctx().with_values("aws:TagKeys", ["team".to_owned(), "cost".to_owned()]);
    assert!(holds(json!({"StringEquals": {"aws:TagKeys": "cost"}}), &c));
    assert!(!holds(
        json!({"StringNotEquals": {"aws:TagKeys": "cost"}}),
        &c
    ));
    assert!(holds(
        json!({"StringNotEquals": {"aws:TagKeys": "env"}}),
        &c
    ));
}

#[test]
fn keys_and_operators_are_and_ed() {
    let c = ctx()
        .with_secure_transport(true)
        .with_source_ip("10.0.0.1".parse().unwrap())
        .with_key("kinesis:tier", "gold");
    let both = json!({
        "Bool": {"aws:SecureTransport": "true"},
        "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
        "StringEquals": {"kinesis:tier": "gold", "aws:PrincipalArn": "arn:aws:iam::000000000000:user/alice"}
    });
    assert!(holds(both, &c));
    let one_key_fails = json!({
        "StringEquals": {"kinesis:tier": "gold", "aws:PrincipalArn": "arn:aws:iam::000000000000:user/bob"}
    });
    assert!(!holds(one_key_fails, &c));
    let one_operator_fails = json!({
        "Bool": {"aws:SecureTransport": "true"},
        "IpAddress": {"aws:SourceIp": "192.168.0.0/16"}
    });
    assert!(!holds(one_operator_fails, &c));
}

#[test]
fn key_names_ignore_case_but_values_do_not() {
    let c = ctx().with_key("kinesis:Tier", "gold");
    assert!(holds(json!({"StringEquals": {"KINESIS:TIER": "gold"}}), &c));
    assert!(holds(json!({"Bool": {"AWS:securetransport": "false"}}), &c));
    assert!(!holds(
        json!({"StringEquals": {"kinesis:tier": "GOLD"}}),
        &c
    ));
}

#[test]
fn an_empty_condition_block_holds() {
    assert!(holds(json!({}), &ctx()));
}

#[test]
fn malformed_conditions_are_refused() {
    assert_eq!(
        parse_err(json!({"StringEqual": {"kinesis:tier": "gold"}})),
        PolicyError::UnknownConditionOperator("StringEqual".to_owned())
    );
    assert_eq!(
        parse_err(json!({"StringEquals": {"tier": "gold"}})),
        PolicyError::MissingVendor("tier".to_owned())
    );
    assert!(matches!(
        parse_err(json!(["StringEquals"])),
        PolicyError::Syntax(_)
    ));
    assert!(matches!(
        parse_err(json!({"StringEquals": "x"})),
        PolicyError::Syntax(_)
    ));
    for bad_value in [json!([]), json!({"a": 1}), json!(null), json!([["x"]])] {
        assert!(
            matches!(
                parse_err(json!({"StringEquals": {"kinesis:tier": bad_value.clone()}})),
                PolicyError::InvalidConditionValue { .. }
            ),
            "{bad_value}"
        );
    }
}

#[test]
fn values_of_the_wrong_type_are_refused_when_the_policy_loads() {
    let err = parse_err(json!({"NumericLessThan": {"kinesis:shards": "many"}}));
    assert_eq!(
        err.to_string(),
        "Syntax errors in policy. Condition NumericLessThan on kinesis:shards: \"many\" is not a number."
    );
    for bad in [
        json!({"DateGreaterThan": {"aws:CurrentTime": "tomorrow"}}),
        json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/40"}}),
        json!({"Bool": {"aws:SecureTransport": "yes"}}),
        json!({"Null": {"aws:SourceIp": "absent"}}),
    ] {
        assert!(
            matches!(
                parse_err(bad.clone()),
                PolicyError::InvalidConditionValue { .. }
            ),
            "{bad}"
        );
    }
}
