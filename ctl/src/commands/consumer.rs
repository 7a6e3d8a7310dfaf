//! `streamctl consumer register|list|deregister`: a stream's named consumers.

use serde::Serialize;
use streamd_client::v1;

use super::Ctx;
use crate::cli::ConsumerCmd;
use crate::error::CtlError;
use crate::output::Table;

#[derive(Debug, Serialize)]
struct ConsumerView {
    name: String,
    arn: String,
    status: String,
    created_ms: i64,
}

impl From<v1::Consumer> for ConsumerView {
    fn from(c: v1::Consumer) -> Self {
        ConsumerView {
            name: c.consumer_name,
            arn: c.consumer_arn,
            status: c.consumer_status,
            created_ms: c.consumer_creation_timestamp_ms,
        }
    }
}

fn table(views: &[ConsumerView]) -> String {
    let mut t = Table::new(["NAME", "STATUS", "ARN"]);
    for v in views {
        t.row(vec![v.name.clone(), v.status.clone(), v.arn.clone()]);
    }
    t.render()
}

pub(crate) async fn run(ctx: &Ctx, cmd: ConsumerCmd) -> Result<(), CtlError> {
    match cmd {
        ConsumerCmd::Register { stream, name } => {
            let c = ctx
                .client
                .register_stream_consumer(&stream, &name)
                .await
                .map_err(|e| CtlError::about_stream(&stream, e))?;
            let view = ConsumerView::from(c);
            ctx.out.emit(&view, |v| {
                format!("consumer {} registered on {stream} ({})", v.name, v.arn)
            })
        }
        ConsumerCmd::List { stream } => {
            let views: Vec<ConsumerView> = ctx
                .client
                .list_stream_consumers(&stream)
                .await
                .map_err(|e| CtlError::about_stream(&stream, e))?
                .into_iter()
                .map(ConsumerView::from)
                .collect();
            ctx.out.emit(&views, |v| table(v))
        }
        ConsumerCmd::Deregister { stream, name } => {
            ctx.client
                .deregister_stream_consumer(&stream, &name)
                .await
                .map_err(CtlError::from_client)?;
            #[derive(Serialize)]
            struct Done<'a> {
                stream: &'a str,
                name: &'a str,
                deregistered: bool,
            }
            ctx.out.emit(
                &Done {
                    stream: &stream,
                    name: &name,
                    deregistered: true,
                },
                |d| format!("consumer {} deregistered from {}", d.name, d.stream),
            )
        }
    }
}
