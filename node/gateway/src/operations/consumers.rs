//! Named stream consumers and consumer-group leases, both kept in the cluster's metadata.

use streamd_meta::{ConsumerMeta, ConsumerStatus, Lease, LeaseOp, MetaCommand, MetaReply};
use streamd_proto::v1;
use streamd_proto::{ApiError, ErrorCode};

use crate::Gateway;
use crate::operations::stream_name;

fn consumer(c: &ConsumerMeta) -> v1::Consumer {
    v1::Consumer {
        consumer_name: c.name.clone(),
        consumer_arn: c.arn.clone(),
        consumer_status: match c.status {
            ConsumerStatus::Creating => "CREATING",
            ConsumerStatus::Active => "ACTIVE",
            ConsumerStatus::Deleting => "DELETING",
        }
        .into(),
        consumer_creation_timestamp_ms: c.created_ms,
    }
}

fn lease(shard_id: &str, l: &Lease) -> v1::Lease {
    v1::Lease {
        shard_id: shard_id.to_string(),
        owner: l.owner.clone(),
        counter: l.counter,
        expires_ms: l.expires_ms,
        checkpoint: l.checkpoint.clone(),
    }
}

fn check_consumer_name(name: &str) -> Result<(), ApiError> {
    if streamd_meta::valid_consumer_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Consumer name {name:?} must be 1 to 128 characters of [a-zA-Z0-9_.-]."
        )))
    }
}

impl Gateway {
    #[tracing::instrument(name = "gateway.register_stream_consumer", skip_all, fields(stream = %req.stream_name))]
    pub async fn register_stream_consumer(
        &self,
        req: v1::RegisterStreamConsumerRequest,
    ) -> Result<v1::RegisterStreamConsumerResponse, ApiError> {
        self.stream(&req.stream_name)?;
        check_consumer_name(&req.consumer_name)?;
        match self
            .propose_meta(&MetaCommand::RegisterConsumer {
                stream: req.stream_name,
                name: req.consumer_name,
                now_ms: streamd_shard::now_ms(),
            })
            .await?
        {
            MetaReply::Consumer(c) => Ok(v1::RegisterStreamConsumerResponse {
                consumer: Some(consumer(&c)),
            }),
            _ => Err(ApiError::internal(
                "unexpected reply to a consumer registration",
            )),
        }
    }

    #[tracing::instrument(name = "gateway.list_stream_consumers", skip_all, fields(stream = %req.stream_name))]
    pub fn list_stream_consumers(
        &self,
        req: v1::ListStreamConsumersRequest,
    ) -> Result<v1::ListStreamConsumersResponse, ApiError> {
        let s = self.stream(&req.stream_name)?;
        Ok(v1::ListStreamConsumersResponse {
            consumers: s.consumers.iter().map(consumer).collect(),
        })
    }

    #[tracing::instrument(name = "gateway.deregister_stream_consumer", skip_all, fields(stream = %req.stream_name))]
    pub async fn deregister_stream_consumer(
        &self,
        req: v1::DeregisterStreamConsumerRequest,
    ) -> Result<v1::DeregisterStreamConsumerResponse, ApiError> {
        let s = self.stream(&req.stream_name)?;
        let c = s
            .consumers
            .iter()
            .find(|c| c.name == req.consumer_name)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "Consumer {} under stream {} not found.",
                    req.consumer_name, req.stream_name
                ))
            })?;
        self.propose_meta(&MetaCommand::DeregisterConsumer { arn: c.arn.clone() })
            .await?;
        Ok(v1::DeregisterStreamConsumerResponse {})
    }

    #[tracing::instrument(name = "gateway.update_lease", skip_all, fields(app = %req.application, stream = %req.stream_name, shard = %req.shard_id))]
    pub async fn update_lease(
        &self,
        req: v1::UpdateLeaseRequest,
    ) -> Result<v1::UpdateLeaseResponse, ApiError> {
        stream_name(&req.stream_name)?;
        let op = match req.op {
            Some(v1::update_lease_request::Op::Take(t)) => LeaseOp::Take {
                steal: t.steal,
                expect_counter: t.expect_counter,
                lease_ms: t.lease_ms,
            },
            Some(v1::update_lease_request::Op::Renew(r)) => LeaseOp::Renew {
                counter: r.counter,
                lease_ms: r.lease_ms,
            },
            Some(v1::update_lease_request::Op::Checkpoint(c)) => LeaseOp::Checkpoint {
                counter: c.counter,
                checkpoint: c.checkpoint,
            },
            Some(v1::update_lease_request::Op::Release(r)) => {
                LeaseOp::Release { counter: r.counter }
            }
            None => return Err(ApiError::invalid("UpdateLease needs an operation")),
        };
        let shard = req.shard_id.clone();
        match self
            .propose_meta(&MetaCommand::Lease {
                app: req.application,
                stream: req.stream_name,
                shard: req.shard_id,
                owner: req.owner,
                op,
                // Replaced by the metadata leader's clock when proposed.
                now_ms: 0,
            })
            .await?
        {
            MetaReply::Lease(l) => Ok(v1::UpdateLeaseResponse {
                lease: Some(lease(&shard, &l)),
            }),
            _ => Err(ApiError::new(
                ErrorCode::InternalFailure,
                "unexpected reply to a lease update",
            )),
        }
    }

    #[tracing::instrument(name = "gateway.list_leases", skip_all, fields(app = %req.application, stream = %req.stream_name))]
    pub fn list_leases(
        &self,
        req: v1::ListLeasesRequest,
    ) -> Result<v1::ListLeasesResponse, ApiError> {
        self.stream(&req.stream_name)?;
        let meta = self.meta.read();
        let table = meta
            .leases
            .get(&(req.application.clone(), req.stream_name.clone()));
        Ok(v1::ListLeasesResponse {
            leases: table
                .map(|t| t.leases.iter().map(|(s, l)| lease(s, l)).collect())
                .unwrap_or_default(),
            clock_ms: table.map(|t| t.clock_ms).unwrap_or(0),
        })
    }
}
