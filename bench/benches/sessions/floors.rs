//! The raw floors: the least any store could do for the same session, one MessagePack blob of
//! the whole record, decoded whole on every load.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use dashmap::DashMap;
use redis::AsyncCommands as _;

use crate::subject::{Kind, Medium, Op, Subject};
use crate::workload::{Workload, key_bytes, key_hex};

fn bump(work: &mut Workload) {
    work.login_count = work.login_count.wrapping_add(1);
}

fn decode_checked(bytes: &[u8]) -> anyhow::Result<bool> {
    let w: Workload = rmp_serde::from_slice(bytes)?;
    anyhow::ensure!(!w.username.is_empty(), "read key missing");
    Ok(true)
}

/// A `DashMap` of key bytes to the record's blob.
#[derive(Default)]
pub(crate) struct MapFloor {
    map: DashMap<[u8; 32], Bytes>,
}

impl Subject for MapFloor {
    type Scratch = Workload;

    fn name(&self) -> String {
        "DashMap + rmp-serde (floor)".into()
    }
    fn kind(&self) -> Kind {
        Kind::Floor
    }
    fn medium(&self) -> Medium {
        Medium::Memory
    }
    fn scratch(&self) -> Workload {
        Workload::sample()
    }

    async fn run(&self, op: Op, i: u64, work: &mut Workload) -> anyhow::Result<bool> {
        let key = key_bytes(i);
        match op {
            Op::LoadHit | Op::LoadMiss | Op::ReadOnly => {
                let blob = self.map.get(&key).map(|b| b.value().clone());
                match blob {
                    Some(b) => decode_checked(&b),
                    None => Ok(false),
                }
            }
            Op::SaveNew => {
                self.map.insert(key, Bytes::from(work.blob()));
                Ok(true)
            }
            Op::SaveChanged => {
                bump(work);
                self.map.insert(key, Bytes::from(work.blob()));
                Ok(true)
            }
            Op::Delete => {
                self.map.remove(&key);
                Ok(true)
            }
        }
    }
}

/// redis-rs `GET` / `SET EX` of the blob over one multiplexed connection.
pub(crate) struct RedisFloor {
    conn: redis::aio::MultiplexedConnection,
}

impl RedisFloor {
    pub(crate) fn new(conn: redis::aio::MultiplexedConnection) -> Self {
        RedisFloor { conn }
    }
}

fn redis_key(i: u64) -> String {
    format!("floor:{}", key_hex(i))
}

impl Subject for RedisFloor {
    type Scratch = Workload;

    fn name(&self) -> String {
        "redis-rs GET/SET EX (floor)".into()
    }
    fn kind(&self) -> Kind {
        Kind::Floor
    }
    fn medium(&self) -> Medium {
        Medium::Redis
    }
    fn scratch(&self) -> Workload {
        Workload::sample()
    }

    async fn run(&self, op: Op, i: u64, work: &mut Workload) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let key = redis_key(i);
        match op {
            Op::LoadHit | Op::LoadMiss | Op::ReadOnly => {
                let blob: Option<Vec<u8>> = conn.get(&key).await?;
                match blob {
                    Some(b) => decode_checked(&b),
                    None => Ok(false),
                }
            }
            Op::SaveNew => {
                let () = conn.set_ex(&key, work.blob(), 3600).await?;
                Ok(true)
            }
            Op::SaveChanged => {
                bump(work);
                let () = conn.set_ex(&key, work.blob(), 3600).await?;
                Ok(true)
            }
            Op::Delete => {
                let () = conn.del(&key).await?;
                Ok(true)
            }
        }
    }
}

/// One file per session: write a temporary file and rename it into place; read it whole.
/// Plain blocking `std::fs` calls on the runtime's threads, no fsync: the least work a file
/// store can do.
pub(crate) struct FileFloor {
    dir: PathBuf,
    tmp_seq: AtomicU64,
}

impl FileFloor {
    pub(crate) fn new(dir: PathBuf) -> Self {
        FileFloor {
            dir,
            tmp_seq: AtomicU64::new(0),
        }
    }

    fn write(&self, i: u64, blob: &[u8]) -> anyhow::Result<()> {
        let name = key_hex(i);
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(".{name}.{seq}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(blob)?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(name))?;
        Ok(())
    }
}

impl Subject for FileFloor {
    type Scratch = Workload;

    fn name(&self) -> String {
        "file write+rename / read (floor)".into()
    }
    fn kind(&self) -> Kind {
        Kind::Floor
    }
    fn medium(&self) -> Medium {
        Medium::File
    }
    fn scratch(&self) -> Workload {
        Workload::sample()
    }

    async fn run(&self, op: Op, i: u64, work: &mut Workload) -> anyhow::Result<bool> {
        match op {
            Op::LoadHit | Op::LoadMiss | Op::ReadOnly => {
                match std::fs::read(self.dir.join(key_hex(i))) {
                    Ok(b) => decode_checked(&b),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
            Op::SaveNew => {
                self.write(i, &work.blob())?;
                Ok(true)
            }
            Op::SaveChanged => {
                bump(work);
                self.write(i, &work.blob())?;
                Ok(true)
            }
            Op::Delete => match std::fs::remove_file(self.dir.join(key_hex(i))) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
                Err(e) => Err(e.into()),
            },
        }
    }
}
