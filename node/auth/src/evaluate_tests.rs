use std::time::{Duration, SystemTime};

use super::*;

const ALICE: &str = "arn:aws:iam::000000000000:user/alice";
const BOB: &str = "arn:aws:iam::000000000000:user/bob";
const S1: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/s1";

fn identity(name: &str, json: &str) -> Policy {
    Policy::new(name, PolicyDocument::parse_identity(json).unwrap())
}

fn resource(name: &str, json: &str) -> Policy {
    Policy::new(name, PolicyDocument::parse_resource(json).unwrap())
}

fn request(principal: &str, action: &str, resource_arn: &str) -> RequestContext {
    RequestContext::new(
        principal,
        action,
        resource_arn,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    )
}

fn decide<'a>(ctx: &RequestContext, policies: impl IntoIterator<Item = &'a Policy>) -> Decision {
    evaluate(ctx, policies).decision
}

fn allow_put() -> Policy {
    identity(
        "producer",
        r#"{"Version":"2012-10-17","Statement":{"Sid":"Put","Effect":"Allow",
            "Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":"arn:aws:kinesis:us-east-1:000000000000:stream/s1"}}"#,
    )
}

#[test]
fn an_identity_allow_allows_and_says_which_statement() {
    let eval = evaluate(&request(ALICE, "kinesis:PutRecord", S1), &[allow_put()]);
    assert_eq!(eval.decision, Decision::Allow);
    assert!(eval.is_allowed());
    assert_eq!(
        eval.decided_by,
        Some(DecidingStatement {
            policy: "producer".to_owned(),
            kind: PolicyKind::Identity,
            sid: Some("Put".to_owned()),
            index: 0,
        })
    );
}

#[test]
fn nothing_that_applies_is_an_implicit_deny() {
    let eval = evaluate(&request(ALICE, "kinesis:GetRecords", S1), &[allow_put()]);
    assert_eq!(eval.decision, Decision::ImplicitDeny);
    assert!(!eval.is_allowed());
    assert_eq!(eval.decided_by, None);
    assert_eq!(
        decide(
            &request(ALICE, "kinesis:PutRecord", &S1.replace("s1", "s2")),
            &[allow_put()]
        ),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(&request(ALICE, "kinesis:PutRecord", S1), &[]),
        Decision::ImplicitDeny
    );
}

#[test]
fn an_explicit_deny_beats_an_allow_in_another_policy_in_either_order() {
    let deny = identity(
        "guardrail",
        r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Other","Effect":"Deny","Action":"kinesis:DeleteStream","Resource":"*"},
            {"Sid":"NoS1","Effect":"Deny","Action":"kinesis:*","Resource":"arn:aws:kinesis:*:*:stream/s1"}]}"#,
    );
    let ctx = request(ALICE, "kinesis:PutRecord", S1);
    for policies in [[allow_put(), deny.clone()], [deny.clone(), allow_put()]] {
        let eval = evaluate(&ctx, &policies);
        assert_eq!(eval.decision, Decision::ExplicitDeny);
        let by = eval.decided_by.unwrap();
        assert_eq!(
            (by.policy.as_str(), by.sid.as_deref(), by.index),
            ("guardrail", Some("NoS1"), 1)
        );
        assert_eq!(by.kind, PolicyKind::Identity);
    }
}

#[test]
fn a_deny_in_the_resource_policy_beats_an_identity_allow() {
    let stream_policy = resource(
        "stream/s1",
        r#"{"Version":"2012-10-17","Statement":{"Sid":"NoAlice","Effect":"Deny",
            "Principal":{"AWS":"arn:aws:iam::000000000000:user/alice"},"Action":"kinesis:*","Resource":"*"}}"#,
    );
    let eval = evaluate(
        &request(ALICE, "kinesis:PutRecord", S1),
        &[allow_put(), stream_policy.clone()],
    );
    assert_eq!(eval.decision, Decision::ExplicitDeny);
    assert_eq!(eval.decided_by.unwrap().kind, PolicyKind::Resource);
    // Bob is not named by the Deny, and nothing allows him.
    assert_eq!(
        decide(&request(BOB, "kinesis:PutRecord", S1), [&stream_policy]),
        Decision::ImplicitDeny
    );
}

#[test]
fn a_resource_policy_grants_the_principal_it_names_without_an_identity_policy() {
    let stream_policy = resource(
        "stream/s1",
        r#"{"Version":"2012-10-17","Statement":{"Sid":"BobReads","Effect":"Allow",
            "Principal":{"AWS":["arn:aws:iam::000000000000:user/bob"]},
            "Action":["kinesis:GetRecords","kinesis:GetShardIterator"],"Resource":"arn:aws:kinesis:us-east-1:000000000000:stream/s1"}}"#,
    );
    let eval = evaluate(&request(BOB, "kinesis:GetRecords", S1), [&stream_policy]);
    assert_eq!(eval.decision, Decision::Allow);
    assert_eq!(eval.decided_by.unwrap().sid.as_deref(), Some("BobReads"));
    // Not to someone else, not for another action.
    assert_eq!(
        decide(&request(ALICE, "kinesis:GetRecords", S1), [&stream_policy]),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(&request(BOB, "kinesis:PutRecord", S1), [&stream_policy]),
        Decision::ImplicitDeny
    );
}

#[test]
fn a_resource_policy_naming_only_the_account_leaves_it_to_identity_policies() {
    let to_account = resource(
        "stream/s1",
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kinesis:*","Resource":"*"}}"#,
    );
    assert_eq!(
        decide(&request(BOB, "kinesis:PutRecord", S1), [&to_account]),
        Decision::ImplicitDeny
    );
    // The account's root user is named directly.
    assert_eq!(
        decide(
            &request("arn:aws:iam::000000000000:root", "kinesis:PutRecord", S1),
            [&to_account]
        ),
        Decision::Allow
    );
    // A Deny naming the account reaches every principal in it.
    let deny_account = resource(
        "stream/s1",
        r#"{"Statement":{"Effect":"Deny","Principal":{"AWS":"000000000000"},"Action":"kinesis:PutRecord","Resource":"*"}}"#,
    );
    assert_eq!(
        decide(
            &request(ALICE, "kinesis:PutRecord", S1),
            &[allow_put(), deny_account.clone()]
        ),
        Decision::ExplicitDeny
    );
    assert_eq!(
        decide(
            &request(
                "arn:aws:iam::111111111111:user/alice",
                "kinesis:PutRecord",
                S1
            ),
            [&deny_account]
        ),
        Decision::ImplicitDeny
    );
}

#[test]
fn a_public_resource_policy_grants_anyone() {
    let public = resource(
        "stream/s1",
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kinesis:DescribeStreamSummary","Resource":"*"}}"#,
    );
    assert_eq!(
        decide(
            &request(BOB, "kinesis:DescribeStreamSummary", S1),
            [&public]
        ),
        Decision::Allow
    );
}

#[test]
fn not_principal_deny_spares_only_those_listed() {
    let only_alice = resource(
        "stream/s1",
        r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"*"},
            {"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::000000000000:user/alice"},"Action":"kinesis:DeleteStream","Resource":"*"}]}"#,
    );
    assert_eq!(
        decide(&request(ALICE, "kinesis:DeleteStream", S1), [&only_alice]),
        Decision::Allow
    );
    assert_eq!(
        decide(&request(BOB, "kinesis:DeleteStream", S1), [&only_alice]),
        Decision::ExplicitDeny
    );
    assert_eq!(
        decide(&request(BOB, "kinesis:PutRecord", S1), [&only_alice]),
        Decision::Allow
    );
}

#[test]
fn not_action_covers_every_other_action() {
    let all_but_delete = identity(
        "ops",
        r#"{"Statement":{"Effect":"Allow","NotAction":["kinesis:DeleteStream","kinesis:Update*"],"Resource":"*"}}"#,
    );
    assert_eq!(
        decide(&request(ALICE, "kinesis:PutRecord", S1), [&all_but_delete]),
        Decision::Allow
    );
    assert_eq!(
        decide(
            &request(ALICE, "kinesis:DeleteStream", S1),
            [&all_but_delete]
        ),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(
            &request(ALICE, "kinesis:UpdateShardCount", S1),
            [&all_but_delete]
        ),
        Decision::ImplicitDeny
    );
}

#[test]
fn not_resource_covers_every_other_resource() {
    let deny_outside = identity(
        "fence",
        r#"{"Statement":[
            {"Effect":"Allow","Action":"kinesis:*","Resource":"*"},
            {"Effect":"Deny","Action":"kinesis:*","NotResource":"arn:aws:kinesis:*:*:stream/team-*"}]}"#,
    );
    let team = "arn:aws:kinesis:us-east-1:000000000000:stream/team-a";
    assert_eq!(
        decide(&request(ALICE, "kinesis:PutRecord", team), [&deny_outside]),
        Decision::Allow
    );
    assert_eq!(
        decide(&request(ALICE, "kinesis:PutRecord", S1), [&deny_outside]),
        Decision::ExplicitDeny
    );
}

#[test]
fn action_wildcards_ignore_case() {
    let readers = identity(
        "readers",
        r#"{"Statement":{"Effect":"Allow","Action":"kinesis:Get*","Resource":"*"}}"#,
    );
    assert_eq!(
        decide(&request(ALICE, "kinesis:GetRecords", S1), [&readers]),
        Decision::Allow
    );
    assert_eq!(
        decide(&request(ALICE, "kinesis:GetShardIterator", S1), [&readers]),
        Decision::Allow
    );
    assert_eq!(
        decide(&request(ALICE, "KINESIS:getrecords", S1), [&readers]),
        Decision::Allow
    );
    assert_eq!(
        decide(&request(ALICE, "kinesis:PutRecord", S1), [&readers]),
        Decision::ImplicitDeny
    );
    // `kinesis:Get*` is not `streamd:Get*`.
    assert_eq!(
        decide(&request(ALICE, "streamd:GetThing", S1), [&readers]),
        Decision::ImplicitDeny
    );
}

#[test]
fn resource_wildcards_are_case_sensitive_and_field_bound() {
    let logs = identity(
        "logs",
        r#"{"Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":"arn:aws:kinesis:*:*:stream/logs-*"}}"#,
    );
    let ok = "arn:aws:kinesis:eu-west-1:000000000000:stream/logs-api";
    assert_eq!(
        decide(&request(ALICE, "kinesis:PutRecord", ok), [&logs]),
        Decision::Allow
    );
    assert_eq!(
        decide(
            &request(ALICE, "kinesis:PutRecord", &ok.replace("logs-", "LOGS-")),
            [&logs]
        ),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(
            &request(
                ALICE,
                "kinesis:PutRecord",
                "arn:aws:kinesis:eu-west-1:000000000000:stream/metrics"
            ),
            [&logs]
        ),
        Decision::ImplicitDeny
    );
    // An account-level action's resource is `*`, which no stream pattern covers.
    assert_eq!(
        decide(&request(ALICE, "kinesis:ListStreams", "*"), [&logs]),
        Decision::ImplicitDeny
    );
}

#[test]
fn account_level_actions_need_resource_star() {
    let list = identity(
        "list",
        r#"{"Statement":{"Effect":"Allow","Action":["kinesis:ListStreams","kinesis:DescribeLimits"],"Resource":"*"}}"#,
    );
    assert_eq!(
        decide(&request(ALICE, "kinesis:ListStreams", "*"), [&list]),
        Decision::Allow
    );
    assert_eq!(
        decide(&request(ALICE, "kinesis:DescribeLimits", "*"), [&list]),
        Decision::Allow
    );
}

#[test]
fn deny_without_secure_transport_refuses_plaintext_only() {
    let tls_only = identity(
        "tls",
        r#"{"Statement":[
            {"Effect":"Allow","Action":"kinesis:*","Resource":"*"},
            {"Sid":"DenyPlaintext","Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
    );
    let plaintext = request(ALICE, "kinesis:PutRecord", S1);
    let eval = evaluate(&plaintext, [&tls_only]);
    assert_eq!(eval.decision, Decision::ExplicitDeny);
    assert_eq!(
        eval.decided_by.unwrap().sid.as_deref(),
        Some("DenyPlaintext")
    );
    assert_eq!(
        decide(&plaintext.with_secure_transport(true), [&tls_only]),
        Decision::Allow
    );
}

#[test]
fn source_ip_condition_limits_an_allow_to_a_network() {
    let office = identity(
        "office",
        r#"{"Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","fd00::/8"]}}}}"#,
    );
    let ctx = request(ALICE, "kinesis:PutRecord", S1);
    assert_eq!(
        decide(
            &ctx.clone().with_source_ip("10.20.30.40".parse().unwrap()),
            [&office]
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(
            &ctx.clone().with_source_ip("fd12::1".parse().unwrap()),
            [&office]
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(
            &ctx.clone().with_source_ip("192.0.2.1".parse().unwrap()),
            [&office]
        ),
        Decision::ImplicitDeny
    );
    // Address unknown: the key is missing, so IpAddress is false.
    assert_eq!(decide(&ctx, [&office]), Decision::ImplicitDeny);
}

#[test]
fn a_time_window_on_current_time() {
    let from_2024 = identity(
        "later",
        r#"{"Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}}}"#,
    );
    let now = request(ALICE, "kinesis:PutRecord", S1); // late 2023
    assert_eq!(decide(&now, [&from_2024]), Decision::ImplicitDeny);
    let mut later = now;
    later.current_time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_720_000_000);
    assert_eq!(decide(&later, [&from_2024]), Decision::Allow);
}

#[test]
fn if_exists_lets_requests_without_the_key_through() {
    let policy = identity(
        "tier",
        r#"{"Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":"*","Condition":{"StringEqualsIfExists":{"streamd:Tier":"gold"}}}}"#,
    );
    let ctx = request(ALICE, "kinesis:PutRecord", S1);
    assert_eq!(decide(&ctx, [&policy]), Decision::Allow);
    assert_eq!(
        decide(&ctx.clone().with_key("streamd:Tier", "gold"), [&policy]),
        Decision::Allow
    );
    assert_eq!(
        decide(&ctx.with_key("streamd:Tier", "tin"), [&policy]),
        Decision::ImplicitDeny
    );
}

#[test]
fn for_any_value_denies_when_a_forbidden_tag_is_requested() {
    let policy = identity(
        "tags",
        r#"{"Statement":[
            {"Effect":"Allow","Action":"kinesis:AddTagsToStream","Resource":"*"},
            {"Effect":"Deny","Action":"kinesis:AddTagsToStream","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["owner","cost-center"]}}}]}"#,
    );
    let ctx = request(ALICE, "kinesis:AddTagsToStream", S1);
    let harmless = ctx
        .clone()
        .with_values("aws:TagKeys", ["env".to_owned(), "team".to_owned()]);
    let forbidden = ctx.with_values("aws:TagKeys", ["env".to_owned(), "owner".to_owned()]);
    assert_eq!(decide(&harmless, [&policy]), Decision::Allow);
    assert_eq!(decide(&forbidden, [&policy]), Decision::ExplicitDeny);
}

#[test]
fn a_condition_that_fails_takes_the_statement_out_of_play() {
    // The Deny does not apply to this principal, so the Allow stands.
    let policy = identity(
        "p",
        r#"{"Statement":[
            {"Effect":"Allow","Action":"kinesis:*","Resource":"*"},
            {"Effect":"Deny","Action":"kinesis:*","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/bob"}}}]}"#,
    );
    assert_eq!(
        decide(&request(ALICE, "kinesis:PutRecord", S1), [&policy]),
        Decision::Allow
    );
    assert_eq!(
        decide(&request(BOB, "kinesis:PutRecord", S1), [&policy]),
        Decision::ExplicitDeny
    );
}

#[test]
fn the_first_allow_is_reported_when_several_apply() {
    let policy = identity(
        "p",
        r#"{"Statement":[
            {"Sid":"First","Effect":"Allow","Action":"kinesis:Put*","Resource":"*"},
            {"Sid":"Second","Effect":"Allow","Action":"kinesis:*","Resource":"*"}]}"#,
    );
    let by = evaluate(&request(ALICE, "kinesis:PutRecord", S1), [&policy])
        .decided_by
        .unwrap();
    assert_eq!(by.sid.as_deref(), Some("First"));
    let by = evaluate(&request(ALICE, "kinesis:GetRecords", S1), [&policy])
        .decided_by
        .unwrap();
    assert_eq!((by.sid.as_deref(), by.index), (Some("Second"), 1));
}

#[test]
fn consumer_arns_match_consumer_patterns() {
    let policy = identity(
        "efo",
        r#"{"Statement":{"Effect":"Allow","Action":"kinesis:SubscribeToShard","Resource":"arn:aws:kinesis:*:*:stream/s1/consumer/*"}}"#,
    );
    let consumer = "arn:aws:kinesis:us-east-1:000000000000:stream/s1/consumer/app:1700000000";
    assert_eq!(
        decide(
            &request(ALICE, "kinesis:SubscribeToShard", consumer),
            [&policy]
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(&request(ALICE, "kinesis:SubscribeToShard", S1), [&policy]),
        Decision::ImplicitDeny
    );
}
