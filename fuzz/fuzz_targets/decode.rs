//! Stored-bytes decoding (what FileStore and the cache tiers read back): arbitrary bytes
//! through `Record::decode` and `Entry::decode` must not panic, and whatever decodes must
//! re-encode to something that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit::store::{Entry, Record};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::decode(data) {
        let again = Record::decode(&record.encode().expect("encode")).expect("re-decode");
        assert_eq!(again, record);
    }
    if let Ok(entry) = Entry::decode(data) {
        let again = Entry::decode(&entry.encode().expect("encode")).expect("re-decode");
        assert_eq!(again, entry);
    }
});
