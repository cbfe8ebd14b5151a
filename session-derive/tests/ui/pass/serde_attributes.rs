// Field types whose own Serialize/Deserialize impls use serde attributes work unchanged:
// the derive stores each field with the type's own serde impl.
use serde::{Deserialize, Serialize};
use sessionkit::{Session, SessionData};

#[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
struct Profile {
    display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    avatar_url: Option<String>,
    #[serde(with = "as_text")]
    age: u32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "kind", content = "data")]
enum Role {
    Guest,
    Member { since: u32 },
}

mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(SessionData, Debug, PartialEq)]
struct Account {
    #[session(default)]
    profile: Profile,
    role: Role,
}

// The struct may derive serde too: `#[serde]` attributes shape its own serde encoding and
// `#[session]` attributes its session keys, independently.
#[derive(SessionData, Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "UPPERCASE")]
#[session(prefix = "prefs")]
struct Prefs {
    #[serde(rename = "t")]
    #[session(rename = "colour_theme")]
    theme: String,
    #[serde(default)]
    #[session(default)]
    font_size: u16,
}

fn main() {
    let session = Session::new();
    let account = Account {
        profile: Profile { display_name: "Ann".into(), avatar_url: None, age: 40 },
        role: Role::Member { since: 2020 },
    };
    account.store(&session).unwrap();
    assert_eq!(Account::load(&session).unwrap(), account);
    let raw = session.get_value("profile").unwrap().unwrap();
    assert_eq!(raw["age"].as_str(), Some("40"));
    assert_eq!(raw["displayName"].as_str(), Some("Ann"));

    let prefs = Prefs { theme: "dark".into(), font_size: 12 };
    prefs.store(&session).unwrap();
    assert_eq!(session.get::<String>("prefs.colour_theme").unwrap().as_deref(), Some("dark"));
    session.insert("prefs_blob", &prefs).unwrap();
    let blob = session.get_value("prefs_blob").unwrap().unwrap();
    assert_eq!(blob["t"].as_str(), Some("dark"));
    assert_eq!(blob["FONT_SIZE"].as_u64(), Some(12));
}
