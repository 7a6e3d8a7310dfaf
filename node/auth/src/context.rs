//! What a policy is asked about: who, what, on which resource, and the condition keys.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::principal::account_of;

/// One request as the policies see it.
///
/// Condition keys answered from the fields (names are case-insensitive, as in IAM):
/// `aws:SecureTransport`, `aws:SourceIp` (absent when `source_ip` is `None`),
/// `aws:PrincipalArn`, `aws:PrincipalAccount` and `aws:username` (derived from the principal
/// ARN, absent when it has no such part), `aws:CurrentTime` (ISO 8601, whole seconds, UTC) and
/// `aws:EpochTime` (seconds). Any other key comes from the extra keys; an extra key cannot
/// shadow one of those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// e.g. `arn:aws:iam::000000000000:user/alice`.
    pub principal_arn: String,
    /// e.g. `kinesis:PutRecords`.
    pub action: String,
    /// The ARN the action is on, or `*` for an account-level action such as ListStreams.
    pub resource_arn: String,
    /// Whether the request arrived over TLS.
    pub secure_transport: bool,
    pub source_ip: Option<IpAddr>,
    pub current_time: SystemTime,
    /// Lowercased key name to its values; more than one value makes a multivalued key.
    extra: HashMap<String, Vec<String>>,
}

impl RequestContext {
    /// A plaintext request from an unknown address; see the builder methods for the rest.
    pub fn new(
        principal_arn: impl Into<String>,
        action: impl Into<String>,
        resource_arn: impl Into<String>,
        current_time: SystemTime,
    ) -> Self {
        Self {
            principal_arn: principal_arn.into(),
            action: action.into(),
            resource_arn: resource_arn.into(),
            secure_transport: false,
            source_ip: None,
            current_time,
            extra: HashMap::new(),
        }
    }

    pub fn with_secure_transport(mut self, secure: bool) -> Self {
        self.secure_transport = secure;
        self
    }

    pub fn with_source_ip(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    /// Adds a single-valued condition key, replacing any earlier value.
    pub fn with_key(self, key: &str, value: impl Into<String>) -> Self {
        self.with_values(key, [value.into()])
    }

    /// Adds a multivalued condition key (for `ForAnyValue:` and `ForAllValues:`), replacing
    /// any earlier values. An empty list is a key that is present but empty.
    pub fn with_values(mut self, key: &str, values: impl IntoIterator<Item = String>) -> Self {
        self.extra
            .insert(key.to_ascii_lowercase(), values.into_iter().collect());
        self
    }

    /// The values of a condition key, or `None` when the request does not carry it.
    pub fn key_values(&self, key: &str) -> Option<Vec<String>> {
        self.lookup(&key.to_ascii_lowercase())
            .map(|values| values.into_iter().map(Cow::into_owned).collect())
    }

    /// `key` must already be lowercased; condition keys are stored that way when parsed.
    pub(crate) fn lookup(&self, key: &str) -> Option<Vec<Cow<'_, str>>> {
        let one = |s: String| Some(vec![Cow::Owned(s)]);
        match key {
            "aws:securetransport" => one(self.secure_transport.to_string()),
            "aws:sourceip" => self.source_ip.and_then(|ip| one(ip.to_string())),
            "aws:principalarn" => borrowed(&self.principal_arn),
            "aws:principalaccount" => account_of(&self.principal_arn).and_then(borrowed),
            "aws:username" => user_name(&self.principal_arn).and_then(borrowed),
            "aws:currenttime" => {
                one(DateTime::<Utc>::from(self.current_time)
                    .to_rfc3339_opts(SecondsFormat::Secs, true))
            }
            "aws:epochtime" => one(DateTime::<Utc>::from(self.current_time)
                .timestamp()
                .to_string()),
            _ => self
                .extra
                .get(key)
                .map(|values| values.iter().map(|v| Cow::Borrowed(v.as_str())).collect()),
        }
    }
}

fn borrowed(s: &str) -> Option<Vec<Cow<'_, str>>> {
    Some(vec![Cow::Borrowed(s)])
}

/// The friendly name of an IAM user: the last path segment of `arn:aws:iam::ACCOUNT:user/PATH/NAME`.
fn user_name(principal_arn: &str) -> Option<&str> {
    let fields: Vec<&str> = principal_arn.splitn(6, ':').collect();
    match fields.as_slice() {
        ["arn", _, "iam", _, _, resource] => resource
            .strip_prefix("user/")
            .and_then(|path| path.rsplit('/').next())
            .filter(|name| !name.is_empty()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ctx() -> RequestContext {
        RequestContext::new(
            "arn:aws:iam::000000000000:user/eng/alice",
            "kinesis:PutRecord",
            "arn:aws:kinesis:us-east-1:000000000000:stream/s1",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
    }

    fn value(ctx: &RequestContext, key: &str) -> Option<Vec<String>> {
        ctx.key_values(key)
    }

    #[test]
    fn global_keys_come_from_the_fields() {
        let c = ctx()
            .with_secure_transport(true)
            .with_source_ip("10.1.2.3".parse().unwrap());
        assert_eq!(value(&c, "aws:SecureTransport").unwrap(), ["true"]);
        assert_eq!(value(&c, "aws:SourceIp").unwrap(), ["10.1.2.3"]);
        assert_eq!(
            value(&c, "aws:PrincipalArn").unwrap(),
            ["arn:aws:iam::000000000000:user/eng/alice"]
        );
        assert_eq!(value(&c, "aws:PrincipalAccount").unwrap(), ["000000000000"]);
        assert_eq!(value(&c, "aws:username").unwrap(), ["alice"]);
        assert_eq!(
            value(&c, "aws:CurrentTime").unwrap(),
            ["2023-11-14T22:13:20Z"]
        );
        assert_eq!(value(&c, "aws:EpochTime").unwrap(), ["1700000000"]);
    }

    #[test]
    fn plaintext_and_unknown_address_by_default() {
        let c = ctx();
        assert_eq!(value(&c, "aws:SecureTransport").unwrap(), ["false"]);
        assert_eq!(value(&c, "aws:SourceIp"), None);
    }

    #[test]
    fn key_names_ignore_case() {
        let c = ctx().with_key("Kinesis:Custom", "v");
        assert_eq!(value(&c, "kinesis:custom").unwrap(), ["v"]);
        assert_eq!(value(&c, "KINESIS:CUSTOM").unwrap(), ["v"]);
        assert_eq!(value(&c, "AWS:SECURETRANSPORT").unwrap(), ["false"]);
    }

    #[test]
    fn extra_keys_may_be_multivalued_and_cannot_shadow_global_keys() {
        let c = ctx()
            .with_values("aws:TagKeys", ["a".to_owned(), "b".to_owned()])
            .with_key("aws:SecureTransport", "true");
        assert_eq!(value(&c, "aws:TagKeys").unwrap(), ["a", "b"]);
        assert_eq!(value(&c, "aws:SecureTransport").unwrap(), ["false"]);
        assert_eq!(value(&c, "aws:Missing"), None);
    }

    #[test]
    fn no_user_name_for_principals_that_are_not_users() {
        let c = RequestContext::new(
            "arn:aws:iam::000000000000:root",
            "kinesis:ListStreams",
            "*",
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(value(&c, "aws:username"), None);
        assert_eq!(value(&c, "aws:PrincipalAccount").unwrap(), ["000000000000"]);
    }
}
