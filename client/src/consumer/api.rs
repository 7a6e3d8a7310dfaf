//! The consumer calls of the API: named consumers and consumer-group leases.

use streamd_proto::v1;
use streamd_proto::v1::update_lease_request::Op;

use crate::client::StreamdClient;
use crate::error::ClientError;

impl StreamdClient {
    pub async fn register_stream_consumer(
        &self,
        stream: &str,
        consumer: &str,
    ) -> Result<v1::Consumer, ClientError> {
        let req = v1::RegisterStreamConsumerRequest {
            stream_name: stream.to_string(),
            consumer_name: consumer.to_string(),
        };
        self.write("RegisterStreamConsumer", req, |mut c, r| async move {
            c.register_stream_consumer(r).await
        })
        .await?
        .consumer
        .ok_or(ClientError::MissingField {
            op: "RegisterStreamConsumer",
            field: "consumer",
        })
    }

    pub async fn list_stream_consumers(
        &self,
        stream: &str,
    ) -> Result<Vec<v1::Consumer>, ClientError> {
        let req = v1::ListStreamConsumersRequest {
            stream_name: stream.to_string(),
        };
        Ok(self
            .read("ListStreamConsumers", req, |mut c, r| async move {
                c.list_stream_consumers(r).await
            })
            .await?
            .consumers)
    }

    pub async fn deregister_stream_consumer(
        &self,
        stream: &str,
        consumer: &str,
    ) -> Result<(), ClientError> {
        let req = v1::DeregisterStreamConsumerRequest {
            stream_name: stream.to_string(),
            consumer_name: consumer.to_string(),
        };
        self.write("DeregisterStreamConsumer", req, |mut c, r| async move {
            c.deregister_stream_consumer(r).await
        })
        .await
        .map(|_| ())
    }

    /// One compare-and-set on a lease. Retried like a read: repeating a take, renewal or
    /// checkpoint by the same owner and counter yields the same lease.
    pub async fn update_lease(
        &self,
        application: &str,
        stream: &str,
        shard_id: &str,
        owner: &str,
        op: Op,
    ) -> Result<v1::Lease, ClientError> {
        let req = v1::UpdateLeaseRequest {
            application: application.to_string(),
            stream_name: stream.to_string(),
            shard_id: shard_id.to_string(),
            owner: owner.to_string(),
            op: Some(op),
        };
        self.read("UpdateLease", req, |mut c, r| async move {
            c.update_lease(r).await
        })
        .await?
        .lease
        .ok_or(ClientError::MissingField {
            op: "UpdateLease",
            field: "lease",
        })
    }

    pub async fn list_leases(
        &self,
        application: &str,
        stream: &str,
    ) -> Result<v1::ListLeasesResponse, ClientError> {
        let req = v1::ListLeasesRequest {
            application: application.to_string(),
            stream_name: stream.to_string(),
        };
        self.read("ListLeases", req, |mut c, r| async move {
            c.list_leases(r).await
        })
        .await
    }
}
