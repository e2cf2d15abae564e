//! In-memory vector indexes for SQLite: every vector of a base in one contiguous slab,
//! scanned exactly (`cairn_core::kb::scan`). A slab is reloaded when the base's
//! generation moved (any ingest or delete, by this process or the CLI).

use std::sync::Arc;

use cairn_core::ids::{KbId, TenantId};
use cairn_store::kb_search::VectorSlab;
use cairn_store::{Store, StoreError};

pub struct VectorIndexes {
    slabs: moka::sync::Cache<(TenantId, KbId), Arc<VectorSlab>>,
    /// One load at a time: concurrent searches of a stale base wait for the first
    /// load instead of all reading the table.
    loading: tokio::sync::Mutex<()>,
}

impl VectorIndexes {
    pub fn new_with(max_bytes: u64) -> Self {
        Self {
            slabs: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, v: &Arc<VectorSlab>| u32::try_from(slab_bytes(v)).unwrap_or(u32::MAX))
                .build(),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// Memory the slab of `kb` holds now; `None` when it is not loaded.
    pub fn loaded_bytes(&self, tenant: TenantId, kb: KbId) -> Option<usize> {
        self.slabs.get(&(tenant, kb)).map(|s| slab_bytes(&s))
    }

    /// The slab of `kb` at `generation` (or newer).
    pub async fn get(
        &self,
        store: &Store,
        tenant: TenantId,
        kb: KbId,
        dim: usize,
        generation: i64,
    ) -> Result<Arc<VectorSlab>, StoreError> {
        if let Some(s) = self.slabs.get(&(tenant, kb)).filter(|s| s.generation >= generation) {
            return Ok(s);
        }
        let _one = self.loading.lock().await;
        if let Some(s) = self.slabs.get(&(tenant, kb)).filter(|s| s.generation >= generation) {
            return Ok(s);
        }
        let slab = Arc::new(store.kb_vectors(tenant, kb, dim).await?);
        self.slabs.insert((tenant, kb), slab.clone());
        Ok(slab)
    }
}

/// Memory counted per slab row besides its vector: the 20-byte chunk key and some slack.
/// The cache weighs slabs with it and the capacity report projects with it.
pub const KEY_BYTES: usize = 24;

/// Memory of a slab: its vectors and keys.
pub fn slab_bytes(s: &VectorSlab) -> usize {
    s.slab.len() * 4 + s.keys.len() * KEY_BYTES
}
