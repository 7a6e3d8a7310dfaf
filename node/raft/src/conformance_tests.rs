//! openraft's storage conformance suite, run on this crate's log store (over the node's WAL) and
//! state-machine adapter (over sled).

use std::io;

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb, StorageError};
use streamd_storage::{LogEngine, SledStore, WalOptions, group_key, sled};

use crate::log_store::LogStore;
use crate::state_machine::{GroupStateMachine, StateMachineAdapter};
use crate::type_config::TypeConfig;

/// Counts applied commands in sled: the smallest state machine that keeps durable state.
struct Counter {
    group: u64,
    count: u64,
}

impl GroupStateMachine for Counter {
    fn apply(&mut self, _index: u64, _command: &[u8], batch: &mut sled::Batch) -> Vec<u8> {
        self.count += 1;
        batch.insert(
            group_key(self.group, b"\x01count"),
            &self.count.to_be_bytes(),
        );
        self.count.to_be_bytes().to_vec()
    }

    fn reload(&mut self, tree: &sled::Tree) -> io::Result<()> {
        self.count = match tree
            .get(group_key(self.group, b"\x01count"))
            .map_err(io::Error::other)?
        {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(io::Error::other)?),
            None => 0,
        };
        Ok(())
    }
}

fn io_err(e: impl Into<io::Error>) -> StorageError<TypeConfig> {
    StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Read, e.into())
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineAdapter, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineAdapter), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().map_err(io_err)?;
        let engine =
            LogEngine::open(&dir.path().join("wal"), WalOptions::default()).map_err(io_err)?;
        let db = SledStore::open(dir.path().join("sled")).map_err(io_err)?;
        let tree = db.tree("t").map_err(io_err)?;
        let group = 42;
        let sm = StateMachineAdapter::open(
            group,
            db,
            tree,
            Box::new(Counter { group, count: 0 }),
            &dir.path().join("snapshots"),
        )
        .map_err(io_err)?;
        Ok((dir, LogStore::new(group, engine), sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).await.unwrap();
}
