use super::*;

fn identity_err(json: &str) -> PolicyError {
    PolicyDocument::parse_identity(json).unwrap_err()
}

fn resource_err(json: &str) -> PolicyError {
    PolicyDocument::parse_resource(json).unwrap_err()
}

#[test]
fn a_single_statement_object_or_a_list() {
    let one = PolicyDocument::parse_identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kinesis:PutRecord","Resource":"*"}}"#,
    )
    .unwrap();
    assert_eq!(one.statements().len(), 1);
    assert_eq!(one.kind(), PolicyKind::Identity);
    assert_eq!(one.version(), PolicyVersion::V2012_10_17);

    let two = PolicyDocument::parse_identity(
        r#"{"Version":"2008-10-17","Id":"p","Statement":[
            {"Sid":"Put","Effect":"Allow","Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":"*"},
            {"Sid":"NoDelete","Effect":"Deny","NotAction":"kinesis:Get*","NotResource":["arn:aws:kinesis:*:*:stream/keep"]}
        ]}"#,
    )
    .unwrap();
    assert_eq!(two.version(), PolicyVersion::V2008_10_17);
    let sids: Vec<_> = two.statements().iter().map(Statement::sid).collect();
    assert_eq!(sids, [Some("Put"), Some("NoDelete")]);
    assert_eq!(two.statements()[1].effect(), Effect::Deny);
    assert!(two.statements()[1].actions.negated);
    assert!(two.statements()[1].resources.negated);
    assert_eq!(two.statements()[0].actions.patterns.len(), 2);
}

#[test]
fn version_may_be_left_out() {
    let doc = PolicyDocument::parse_identity(
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
    )
    .unwrap();
    assert_eq!(doc.version(), PolicyVersion::V2008_10_17);
}

#[test]
fn a_resource_policy_keeps_its_principal() {
    let doc = PolicyDocument::parse_resource(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"let bob read","Effect":"Allow",
            "Principal":{"AWS":"arn:aws:iam::000000000000:user/bob"},
            "Action":"kinesis:GetRecords","Resource":"arn:aws:kinesis:us-east-1:000000000000:stream/s1"}]}"#,
    )
    .unwrap();
    assert_eq!(doc.kind(), PolicyKind::Resource);
    // Resource policies take Sids with spaces; identity policies do not.
    assert_eq!(doc.statements()[0].sid(), Some("let bob read"));
    assert!(doc.statements()[0].principal.is_some());
}

#[test]
fn not_json_is_a_syntax_error() {
    let err = identity_err("{\"Statement\": ");
    assert!(matches!(err, PolicyError::Syntax(_)));
    assert!(
        err.to_string().starts_with("Syntax errors in policy."),
        "{err}"
    );
    assert!(matches!(identity_err("[]"), PolicyError::Syntax(_)));
    assert!(matches!(identity_err("\"policy\""), PolicyError::Syntax(_)));
}

#[test]
fn identity_policies_may_not_name_a_principal() {
    for field in ["Principal", "NotPrincipal"] {
        let err = identity_err(&format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","{field}":"*","Action":"kinesis:*","Resource":"*"}}}}"#
        ));
        assert_eq!(err, PolicyError::PrincipalInIdentityPolicy);
        assert_eq!(
            err.to_string(),
            "Policy document should not specify a principal."
        );
    }
}

#[test]
fn resource_policies_must_name_a_principal() {
    let err = resource_err(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}}"#,
    );
    assert_eq!(err, PolicyError::MissingPrincipal);
    assert_eq!(err.to_string(), "Missing required field Principal.");
    assert_eq!(
        resource_err(
            r#"{"Statement":{"Effect":"Deny","Principal":"*","NotPrincipal":{"AWS":"000000000000"},"Action":"kinesis:*","Resource":"*"}}"#
        ),
        PolicyError::PrincipalAndNotPrincipal
    );
}

#[test]
fn effect_is_required_and_exactly_allow_or_deny() {
    let err = identity_err(r#"{"Statement":{"Action":"kinesis:*","Resource":"*"}}"#);
    assert_eq!(err, PolicyError::MissingEffect);
    assert_eq!(err.to_string(), "Missing required field Effect.");
    assert_eq!(
        identity_err(r#"{"Statement":{"Effect":"allow","Action":"kinesis:*","Resource":"*"}}"#),
        PolicyError::InvalidEffect("allow".to_owned())
    );
    assert!(matches!(
        identity_err(r#"{"Statement":{"Effect":true,"Action":"kinesis:*","Resource":"*"}}"#),
        PolicyError::InvalidEffect(_)
    ));
}

#[test]
fn action_and_not_action_are_exclusive_and_one_is_required() {
    let err = identity_err(
        r#"{"Statement":{"Effect":"Allow","Action":"kinesis:*","NotAction":"kinesis:DeleteStream","Resource":"*"}}"#,
    );
    assert_eq!(err, PolicyError::ActionAndNotAction);
    assert!(
        err.to_string().starts_with("Syntax errors in policy."),
        "{err}"
    );
    let missing = identity_err(r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#);
    assert_eq!(
        missing.to_string(),
        "Policy statement must contain actions."
    );
    assert_eq!(
        identity_err(r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#),
        PolicyError::MissingActions
    );
}

#[test]
fn resource_and_not_resource_are_exclusive_and_one_is_required() {
    assert_eq!(
        identity_err(
            r#"{"Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":"*","NotResource":"*"}}"#
        ),
        PolicyError::ResourceAndNotResource
    );
    let missing = identity_err(r#"{"Statement":{"Effect":"Allow","Action":"kinesis:*"}}"#);
    assert_eq!(
        missing.to_string(),
        "Policy statement must contain resources."
    );
    assert_eq!(
        resource_err(r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kinesis:*"}}"#),
        PolicyError::MissingResources
    );
}

#[test]
fn actions_need_a_vendor_and_one_colon() {
    let no_vendor =
        identity_err(r#"{"Statement":{"Effect":"Allow","Action":"PutRecord","Resource":"*"}}"#);
    assert_eq!(
        no_vendor,
        PolicyError::MissingVendor("PutRecord".to_owned())
    );
    assert!(
        no_vendor.to_string().starts_with(
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
        )
    );
    assert_eq!(
        identity_err(
            r#"{"Statement":{"Effect":"Allow","Action":"kinesis:Put:Record","Resource":"*"}}"#
        ),
        PolicyError::TooManyColons("kinesis:Put:Record".to_owned())
    );
    assert_eq!(
        identity_err(
            r#"{"Statement":{"Effect":"Allow","Action":"kine sis:PutRecord","Resource":"*"}}"#
        ),
        PolicyError::InvalidVendor("kine sis".to_owned())
    );
    assert_eq!(
        identity_err(r#"{"Statement":{"Effect":"Allow","Action":"*:PutRecord","Resource":"*"}}"#),
        PolicyError::InvalidVendor("*".to_owned())
    );
}

#[test]
fn resources_are_arns_or_star() {
    let err = identity_err(
        r#"{"Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":"stream/s1"}}"#,
    );
    assert_eq!(
        err.to_string(),
        "Resource stream/s1 must be in ARN format or \"*\"."
    );
}

#[test]
fn wrong_shapes_are_syntax_errors() {
    for doc in [
        r#"{"Statement":"Allow everything"}"#,
        r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}, 7]}"#,
        r#"{"Statement":{"Effect":"Allow","Action":["kinesis:*", 1],"Resource":"*"}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":{"arn":"*"}}}"#,
        r#"{"Statement":{"Sid":5,"Effect":"Allow","Action":"kinesis:*","Resource":"*"}}"#,
        r#"{"Id":5,"Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}}"#,
    ] {
        assert!(matches!(identity_err(doc), PolicyError::Syntax(_)), "{doc}");
    }
}

#[test]
fn statements_are_required() {
    assert_eq!(
        identity_err(r#"{"Version":"2012-10-17"}"#),
        PolicyError::NoStatements
    );
    assert_eq!(
        identity_err(r#"{"Version":"2012-10-17","Statement":[]}"#),
        PolicyError::NoStatements
    );
}

#[test]
fn unknown_fields_are_refused() {
    assert_eq!(
        identity_err(r#"{"Version":"2012-10-17","Statements":[]}"#),
        PolicyError::UnknownField("Statements".to_owned())
    );
    assert_eq!(
        identity_err(r#"{"Statement":{"Effect":"Allow","Actions":"kinesis:*","Resource":"*"}}"#),
        PolicyError::UnknownField("Actions".to_owned())
    );
}

#[test]
fn only_the_two_versions_exist() {
    let err = identity_err(
        r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
    );
    assert_eq!(err, PolicyError::InvalidVersion("2020-01-01".to_owned()));
    assert!(
        err.to_string()
            .starts_with("The policy must contain a valid version string.")
    );
}

#[test]
fn sids_are_unique_and_alphanumeric_in_identity_policies() {
    let dup = identity_err(
        r#"{"Statement":[{"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},
                          {"Sid":"A","Effect":"Deny","Action":"*","Resource":"*"}]}"#,
    );
    assert_eq!(dup, PolicyError::DuplicateSid("A".to_owned()));
    assert!(
        dup.to_string()
            .starts_with("Statement IDs (SID) in a single policy must be unique.")
    );
    assert_eq!(
        identity_err(
            r#"{"Statement":{"Sid":"no spaces","Effect":"Allow","Action":"*","Resource":"*"}}"#
        ),
        PolicyError::InvalidSid("no spaces".to_owned())
    );
    // Resource policies check uniqueness too.
    assert!(matches!(
        resource_err(
            r#"{"Statement":[{"Sid":"x y","Effect":"Allow","Principal":"*","Action":"*","Resource":"*"},
                              {"Sid":"x y","Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#
        ),
        PolicyError::DuplicateSid(_)
    ));
}

#[test]
fn condition_errors_surface_from_the_document() {
    let err = identity_err(
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqual":{"aws:username":"a"}}}}"#,
    );
    assert_eq!(
        err,
        PolicyError::UnknownConditionOperator("StringEqual".to_owned())
    );
    assert_eq!(
        err.to_string(),
        "Syntax errors in policy. Unknown condition operator StringEqual."
    );
}

#[test]
fn principal_errors_surface_from_the_document() {
    let err = resource_err(
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::*:root"},"Action":"*","Resource":"*"}}"#,
    );
    assert!(matches!(err, PolicyError::InvalidPrincipal { .. }), "{err}");
}
