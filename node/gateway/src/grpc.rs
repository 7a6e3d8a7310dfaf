//! The public gRPC service: a thin shell over the operations.

use streamd_proto::v1;
use streamd_proto::v1::streamd_server::{Streamd, StreamdServer};
use tonic::{Request, Response, Status};

use crate::Gateway;

/// PutRecords may carry 5 MiB of data plus framing.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

pub struct StreamdService {
    gw: Gateway,
}

impl StreamdService {
    pub fn new(gw: Gateway) -> StreamdServer<StreamdService> {
        StreamdServer::new(StreamdService { gw })
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(64 * 1024 * 1024)
    }
}

type R<T> = Result<Response<T>, Status>;

fn done<T>(r: Result<T, streamd_proto::ApiError>) -> R<T> {
    r.map(Response::new).map_err(|e| e.to_status())
}

#[tonic::async_trait]
impl Streamd for StreamdService {
    async fn create_stream(
        &self,
        r: Request<v1::CreateStreamRequest>,
    ) -> R<v1::CreateStreamResponse> {
        done(self.gw.create_stream(r.into_inner()).await)
    }
    async fn delete_stream(
        &self,
        r: Request<v1::DeleteStreamRequest>,
    ) -> R<v1::DeleteStreamResponse> {
        done(self.gw.delete_stream(r.into_inner()).await)
    }
    async fn describe_stream(
        &self,
        r: Request<v1::DescribeStreamRequest>,
    ) -> R<v1::DescribeStreamResponse> {
        done(self.gw.describe_stream(r.into_inner()))
    }
    async fn describe_stream_summary(
        &self,
        r: Request<v1::DescribeStreamSummaryRequest>,
    ) -> R<v1::DescribeStreamSummaryResponse> {
        done(self.gw.describe_stream_summary(r.into_inner()))
    }
    async fn list_streams(&self, r: Request<v1::ListStreamsRequest>) -> R<v1::ListStreamsResponse> {
        done(self.gw.list_streams(r.into_inner()))
    }
    async fn list_shards(&self, r: Request<v1::ListShardsRequest>) -> R<v1::ListShardsResponse> {
        done(self.gw.list_shards(r.into_inner()))
    }
    async fn increase_stream_retention_period(
        &self,
        r: Request<v1::UpdateRetentionRequest>,
    ) -> R<v1::UpdateRetentionResponse> {
        done(self.gw.update_retention(r.into_inner(), true).await)
    }
    async fn decrease_stream_retention_period(
        &self,
        r: Request<v1::UpdateRetentionRequest>,
    ) -> R<v1::UpdateRetentionResponse> {
        done(self.gw.update_retention(r.into_inner(), false).await)
    }
    async fn put_record(&self, r: Request<v1::PutRecordRequest>) -> R<v1::PutRecordResponse> {
        done(self.gw.put_record(r.into_inner()).await)
    }
    async fn put_records(&self, r: Request<v1::PutRecordsRequest>) -> R<v1::PutRecordsResponse> {
        done(self.gw.put_records(r.into_inner()).await)
    }
    async fn get_shard_iterator(
        &self,
        r: Request<v1::GetShardIteratorRequest>,
    ) -> R<v1::GetShardIteratorResponse> {
        done(self.gw.get_shard_iterator(r.into_inner()).await)
    }
    async fn get_records(&self, r: Request<v1::GetRecordsRequest>) -> R<v1::GetRecordsResponse> {
        done(self.gw.get_records(r.into_inner()).await)
    }
    async fn cluster_status(
        &self,
        _r: Request<v1::ClusterStatusRequest>,
    ) -> R<v1::ClusterStatusResponse> {
        done(self.gw.cluster_status())
    }
    async fn split_shard(&self, r: Request<v1::SplitShardRequest>) -> R<v1::SplitShardResponse> {
        done(self.gw.split_shard(r.into_inner()).await)
    }
    async fn merge_shards(&self, r: Request<v1::MergeShardsRequest>) -> R<v1::MergeShardsResponse> {
        done(self.gw.merge_shards(r.into_inner()).await)
    }
    async fn update_shard_count(
        &self,
        r: Request<v1::UpdateShardCountRequest>,
    ) -> R<v1::UpdateShardCountResponse> {
        done(self.gw.update_shard_count(r.into_inner()).await)
    }
    async fn drain_node(&self, r: Request<v1::DrainNodeRequest>) -> R<v1::DrainNodeResponse> {
        done(self.gw.drain_node(r.into_inner()).await)
    }
    async fn register_stream_consumer(
        &self,
        r: Request<v1::RegisterStreamConsumerRequest>,
    ) -> R<v1::RegisterStreamConsumerResponse> {
        done(self.gw.register_stream_consumer(r.into_inner()).await)
    }
    async fn list_stream_consumers(
        &self,
        r: Request<v1::ListStreamConsumersRequest>,
    ) -> R<v1::ListStreamConsumersResponse> {
        done(self.gw.list_stream_consumers(r.into_inner()))
    }
    async fn deregister_stream_consumer(
        &self,
        r: Request<v1::DeregisterStreamConsumerRequest>,
    ) -> R<v1::DeregisterStreamConsumerResponse> {
        done(self.gw.deregister_stream_consumer(r.into_inner()).await)
    }
    async fn update_lease(&self, r: Request<v1::UpdateLeaseRequest>) -> R<v1::UpdateLeaseResponse> {
        done(self.gw.update_lease(r.into_inner()).await)
    }
    async fn list_leases(&self, r: Request<v1::ListLeasesRequest>) -> R<v1::ListLeasesResponse> {
        done(self.gw.list_leases(r.into_inner()))
    }
}
