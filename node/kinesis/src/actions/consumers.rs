//! Enhanced fan-out consumers, registered in the cluster's metadata.

use streamd_meta::{ConsumerMeta, ConsumerStatus, MetaCommand, MetaReply, StreamMeta};

use crate::codec::{Doc, Input};
use crate::error::KinesisError;
use crate::router::KinesisApi;

fn status(s: ConsumerStatus) -> &'static str {
    match s {
        ConsumerStatus::Creating => "CREATING",
        ConsumerStatus::Active => "ACTIVE",
        ConsumerStatus::Deleting => "DELETING",
    }
}

fn consumer_doc(c: &ConsumerMeta, stream_arn: Option<&str>) -> Doc {
    let mut d = Doc::map([
        ("ConsumerName", Doc::Str(c.name.clone())),
        ("ConsumerARN", Doc::Str(c.arn.clone())),
        ("ConsumerStatus", Doc::Str(status(c.status).into())),
        ("ConsumerCreationTimestamp", Doc::Timestamp(c.created_ms)),
    ]);
    if let Some(a) = stream_arn {
        d = d.with("StreamARN", Doc::Str(a.to_string()));
    }
    d
}

fn stream_by_arn(api: &KinesisApi, arn: &str) -> Result<StreamMeta, KinesisError> {
    api.gw
        .metadata()
        .stream_by_arn(arn)
        .cloned()
        .ok_or_else(|| KinesisError::resource_not_found(format!("Stream {arn} not found.")))
}

fn check_consumer_name(name: &str) -> Result<(), KinesisError> {
    if streamd_meta::valid_consumer_name(name) {
        Ok(())
    } else {
        Err(KinesisError::validation(format!(
            "1 validation error detected: Value '{name}' at 'consumerName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        )))
    }
}

/// The consumer named by `ConsumerARN`, or by `StreamARN` + `ConsumerName`.
fn find(api: &KinesisApi, input: &Input) -> Result<(StreamMeta, ConsumerMeta), KinesisError> {
    let meta = api.gw.metadata();
    if let Some(arn) = input.opt_str("ConsumerARN")? {
        return meta
            .consumer_by_arn(&arn)
            .map(|(s, c)| (s.clone(), c.clone()))
            .ok_or_else(|| KinesisError::resource_not_found(format!("Consumer {arn} not found.")));
    }
    let (Some(stream_arn), Some(name)) =
        (input.opt_str("StreamARN")?, input.opt_str("ConsumerName")?)
    else {
        return Err(KinesisError::invalid_argument(
            "Either ConsumerARN, or StreamARN and ConsumerName, must be provided.",
        ));
    };
    let s = stream_by_arn(api, &stream_arn)?;
    let c = s
        .consumers
        .iter()
        .find(|c| c.name == name)
        .cloned()
        .ok_or_else(|| {
            KinesisError::resource_not_found(format!(
                "Consumer {name} under stream {stream_arn} not found."
            ))
        })?;
    Ok((s, c))
}

pub(super) async fn register(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let stream_arn = input.req_str("StreamARN")?;
    let name = input.req_str("ConsumerName")?;
    check_consumer_name(&name)?;
    let s = stream_by_arn(api, &stream_arn)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    match api
        .gw
        .propose_meta(&MetaCommand::RegisterConsumer {
            stream: s.name,
            name,
            now_ms: now,
        })
        .await?
    {
        MetaReply::Consumer(c) => Ok(Doc::map([("Consumer", consumer_doc(&c, None))])),
        _ => Err(KinesisError::internal(
            "unexpected reply to a consumer registration",
        )),
    }
}

pub(super) async fn deregister(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let (_, c) = find(api, input)?;
    api.gw
        .propose_meta(&MetaCommand::DeregisterConsumer { arn: c.arn })
        .await?;
    Ok(Doc::Map(Vec::new()))
}

pub(super) fn describe(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let (s, c) = find(api, input)?;
    Ok(Doc::map([(
        "ConsumerDescription",
        consumer_doc(&c, Some(&s.arn)),
    )]))
}

pub(super) fn list(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let stream_arn = input.req_str("StreamARN")?;
    let s = stream_by_arn(api, &stream_arn)?;
    let max = input.opt_u32("MaxResults")?.unwrap_or(100) as usize;
    if !(1..=10_000).contains(&max) {
        return Err(KinesisError::invalid_argument(format!(
            "MaxResults must be between 1 and 10000, got {max}."
        )));
    }
    // NextToken is the name of the last consumer of the previous page.
    let start = input.opt_str("NextToken")?;
    let after: Vec<&ConsumerMeta> = s
        .consumers
        .iter()
        .filter(|c| start.as_ref().is_none_or(|st| c.name > *st))
        .collect();
    let has_more = after.len() > max;
    let page: Vec<&ConsumerMeta> = after.into_iter().take(max).collect();
    let mut out = Doc::map([(
        "Consumers",
        Doc::List(page.iter().map(|c| consumer_doc(c, None)).collect()),
    )]);
    if has_more && let Some(last) = page.last() {
        out = out.with("NextToken", Doc::Str(last.name.clone()));
    }
    Ok(out)
}
