//! The peer libraries, each through its own store trait.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_session::storage::{SessionKey as ActixKey, SessionStore as ActixStore};
use time::OffsetDateTime;

use crate::subject::{Kind, Medium, Op, Subject};
use crate::workload::{CHANGED_KEY, READ_KEY, Workload, key_bytes};

fn tower_id(i: u64) -> i128 {
    let b = key_bytes(i);
    let mut half = [0u8; 16];
    half.copy_from_slice(&b[..16]);
    i128::from_le_bytes(half)
}

/// tower-sessions stores. tower-sessions 0.15's own `MemoryStore` implements
/// tower-sessions-core 0.15's trait, the moka and Redis stores still implement 0.14's: the
/// same code drives both through a module path.
macro_rules! tower_subject {
    ($name:ident) => {
        pub(crate) struct $name<S> {
            name: String,
            medium: Medium,
            store: S,
            work: Workload,
        }

        impl<S> $name<S> {
            pub(crate) fn new(name: impl Into<String>, medium: Medium, store: S) -> Self {
                $name {
                    name: name.into(),
                    medium,
                    store,
                    work: Workload::sample(),
                }
            }
        }

        impl<S> Subject for $name<S>
        where
            S: store_api::SessionStore,
        {
            type Scratch = (session_api::Record, u32);

            fn name(&self) -> String {
                self.name.clone()
            }
            fn kind(&self) -> Kind {
                Kind::Peer
            }
            fn medium(&self) -> Medium {
                self.medium
            }
            fn scratch(&self) -> Self::Scratch {
                use session_api::{Id, Record};
                let record = Record {
                    id: Id(0),
                    data: self.work.json_map(),
                    expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
                };
                (record, self.work.login_count)
            }

            async fn run(
                &self,
                op: Op,
                i: u64,
                (record, count): &mut Self::Scratch,
            ) -> anyhow::Result<bool> {
                use session_api::{Id, Record};
                let id = Id(tower_id(i));
                match op {
                    Op::LoadHit | Op::LoadMiss => Ok(self.store.load(&id).await?.is_some()),
                    Op::ReadOnly => {
                        let Some(loaded) = self.store.load(&id).await? else {
                            return Ok(false);
                        };
                        // What `Session::get` does; an unmodified session is not saved.
                        let name: Option<String> = loaded
                            .data
                            .get(READ_KEY)
                            .cloned()
                            .map(serde_json::from_value)
                            .transpose()?;
                        anyhow::ensure!(name.is_some(), "read key missing");
                        Ok(true)
                    }
                    Op::SaveNew => {
                        let mut fresh = Record {
                            id,
                            data: self.work.json_map(),
                            expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
                        };
                        self.store.create(&mut fresh).await?;
                        anyhow::ensure!(fresh.id == id, "id collision in the benchmark");
                        Ok(true)
                    }
                    Op::SaveChanged => {
                        *count = count.wrapping_add(1);
                        record.id = id;
                        record
                            .data
                            .insert(CHANGED_KEY.to_owned(), serde_json::to_value(*count)?);
                        self.store.save(record).await?;
                        Ok(true)
                    }
                    Op::Delete => {
                        self.store.delete(&id).await?;
                        Ok(true)
                    }
                }
            }
        }
    };
}

pub(crate) mod v15 {
    use super::*;
    use tower_sessions::{session as session_api, session_store as store_api};
    tower_subject!(Tower15);
}

pub(crate) mod v14 {
    use super::*;
    use tower_sessions_core_014::{session as session_api, session_store as store_api};
    tower_subject!(Tower14);
}

/// actix-session's `RedisSessionStore`, through its `SessionStore` trait. It makes its own
/// session keys, so the subject remembers which index got which key.
pub(crate) struct Actix {
    store: actix_session::storage::RedisSessionStore,
    work: Workload,
    keys: Mutex<HashMap<u64, String>>,
}

impl Actix {
    pub(crate) fn new(store: actix_session::storage::RedisSessionStore) -> Self {
        Actix {
            store,
            work: Workload::sample(),
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn key_of(&self, i: u64) -> anyhow::Result<ActixKey> {
        let key = match self
            .keys
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .get(&i)
        {
            Some(k) => k.clone(),
            // A key the store never issued: a miss, shaped like its own keys.
            None => format!("{:064}", i),
        };
        ActixKey::try_from(key).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

const ACTIX_TTL: time::Duration = time::Duration::hours(1);

impl Subject for Actix {
    type Scratch = (HashMap<String, String>, u32);

    fn name(&self) -> String {
        "actix-session RedisSessionStore".into()
    }
    fn kind(&self) -> Kind {
        Kind::Peer
    }
    fn medium(&self) -> Medium {
        Medium::Redis
    }
    fn scratch(&self) -> Self::Scratch {
        (self.work.json_strings(), self.work.login_count)
    }

    async fn run(
        &self,
        op: Op,
        i: u64,
        (state, count): &mut Self::Scratch,
    ) -> anyhow::Result<bool> {
        match op {
            Op::LoadHit | Op::LoadMiss => {
                let key = self.key_of(i)?;
                let found = self
                    .store
                    .load(&key)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(found.is_some())
            }
            Op::ReadOnly => {
                let key = self.key_of(i)?;
                let Some(loaded) = self
                    .store
                    .load(&key)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                else {
                    return Ok(false);
                };
                let name: Option<String> = loaded
                    .get(READ_KEY)
                    .map(|s| serde_json::from_str(s))
                    .transpose()?;
                anyhow::ensure!(name.is_some(), "read key missing");
                Ok(true)
            }
            Op::SaveNew => {
                let key = self
                    .store
                    .save(self.work.json_strings(), &ACTIX_TTL)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                self.keys
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .insert(i, key.into());
                Ok(true)
            }
            Op::SaveChanged => {
                *count = count.wrapping_add(1);
                state.insert(CHANGED_KEY.to_owned(), count.to_string());
                let key = self.key_of(i)?;
                // The middleware hands the store the session's state by value.
                self.store
                    .update(key, state.clone(), &ACTIX_TTL)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(true)
            }
            Op::Delete => {
                let key = self.key_of(i)?;
                self.store.delete(&key).await?;
                Ok(true)
            }
        }
    }
}
