//! The ARNs streamd's requests are about, in the shapes AWS gives them.

/// `arn:aws:kinesis:{region}:{account}:stream/{stream}`.
pub fn stream_arn(region: &str, account: &str, stream: &str) -> String {
    format!("arn:aws:kinesis:{region}:{account}:stream/{stream}")
}

/// `arn:aws:kinesis:{region}:{account}:stream/{stream}/consumer/{consumer}:{creation_epoch}`,
/// the creation time in epoch seconds.
pub fn consumer_arn(
    region: &str,
    account: &str,
    stream: &str,
    consumer: &str,
    creation_epoch: u64,
) -> String {
    format!(
        "arn:aws:kinesis:{region}:{account}:stream/{stream}/consumer/{consumer}:{creation_epoch}"
    )
}

/// The principal of an access key's user: `arn:aws:iam::{account}:user/{user}`.
pub fn user_arn(account: &str, user: &str) -> String {
    format!("arn:aws:iam::{account}:user/{user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_have_aws_shapes() {
        assert_eq!(
            stream_arn("us-east-1", "000000000000", "s1"),
            "arn:aws:kinesis:us-east-1:000000000000:stream/s1"
        );
        assert_eq!(
            consumer_arn("us-east-1", "000000000000", "s1", "app", 1_700_000_000),
            "arn:aws:kinesis:us-east-1:000000000000:stream/s1/consumer/app:1700000000"
        );
        assert_eq!(
            user_arn("000000000000", "alice"),
            "arn:aws:iam::000000000000:user/alice"
        );
    }
}
