//! [`Listing`] for [`FileStore`]: a walk of `sessions/` in key order, one page per step on the
//! blocking pool. The cursor is the hex of the last key examined; a page lists only the
//! directories at or after it, so a key is never returned twice and no lock is taken (files
//! are only ever replaced by rename, so a read sees a whole file).

use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use sessionkit::SessionKey;
use sessionkit::store::{Cursor, Entry, Listing, Page, Result};

use super::FileStore;
use super::layout::{Layout, Slot};
use super::sweep::{hex_dirs, is_hex};

/// The names of `dir`'s subdirectories (or files) that are `len` hex digits, sorted.
fn sorted_hex(dir: &Path, len: usize) -> Result<Vec<String>> {
    let mut names: Vec<String> = hex_dirs(dir, len)?
        .into_iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

/// One page: the first `batch` session files after `after`, and the live records among them.
fn page(layout: &Layout, after: Option<SessionKey>, batch: usize) -> Result<Page> {
    let after_hex = after.map(|k| k.to_hex());
    let (top_from, leaf_from) = match &after_hex {
        Some(h) => (h[0..2].to_owned(), h[0..4].to_owned()),
        None => (String::new(), String::new()),
    };
    let now = SystemTime::now();
    let mut sessions = Vec::new();
    let mut examined = 0;
    let root = layout.sessions_root();
    for top in sorted_hex(root, 2)? {
        if top < top_from {
            continue;
        }
        let top_dir = root.join(&top);
        for leaf in sorted_hex(&top_dir, 2)? {
            if format!("{top}{leaf}") < leaf_from {
                continue;
            }
            let leaf_dir = top_dir.join(&leaf);
            let listing = super::layout::list_dir(&leaf_dir, "listing the store directory")?;
            let mut files: Vec<String> = listing
                .into_iter()
                .filter_map(|item| item.file_name().to_str().map(str::to_owned))
                .filter(|name| is_hex(name, 64))
                .filter(|name| after_hex.as_ref().is_none_or(|a| name > a))
                .collect();
            files.sort();
            for name in files {
                let Some(key) = SessionKey::from_hex(&name) else {
                    continue;
                };
                if let Slot::Entry(Entry::Record(r)) =
                    layout.read_slot(&leaf_dir.join(&name), &key)?
                    && r.is_live_at(now)
                {
                    sessions.push((key, r));
                }
                examined += 1;
                if examined == batch {
                    return Ok(Page::new(sessions, Some(Cursor::after_key(&key))));
                }
            }
        }
    }
    Ok(Page::new(sessions, None))
}

#[async_trait]
impl Listing for FileStore {
    async fn scan(&self, cursor: Option<&Cursor>, batch: usize) -> Result<Page> {
        let after = cursor.map(Cursor::key).transpose()?;
        let batch = batch.max(1);
        self.run(move |l| page(l, after, batch)).await
    }
}
