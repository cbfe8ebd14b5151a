//! The Lua scripts behind every write and move, one round trip each (a load is a plain
//! `HGETALL`). Each is sent as `EVALSHA`;
//! when the server does not know it yet (a restart, a failover) `redis::Script` loads it and
//! retries once.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($name:ident, $($file:literal),+) => {
        pub(super) static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/common.lua"),
                $(include_str!(concat!("lua/", $file))),+
            ))
        });
    };
}

script!(CREATE, "create.lua");
script!(APPLY, "ops.lua", "apply.lua");
script!(RENAME, "rename.lua");
script!(PUT, "put.lua");
script!(SWAP, "swap.lua");
script!(INDEX, "index.lua");
script!(OWNERS, "owners.lua");
script!(DELETE, "delete.lua");

/// Every script, for loading them all when the store connects.
pub(super) fn all() -> [&'static Script; 8] {
    [
        &CREATE, &APPLY, &RENAME, &PUT, &SWAP, &INDEX, &OWNERS, &DELETE,
    ]
}
