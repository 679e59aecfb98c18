//! Decoding of the API server's replies (list pages and single objects), bounded and
//! checked: a page's items are counted before any is built (a reply of millions of tiny
//! items is refused cheaply), every object must have a `metadata.name`, and parser
//! errors become a short reason instead of serde's internals. Pure: no I/O.

use std::fmt;

use kube::Resource;
use serde::de::{DeserializeOwned, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Why a reply was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyError {
    /// Not JSON, or JSON that is not the expected object; the short reason.
    NotJson(String),
    /// The page holds more items than the room left.
    TooMany { room: usize },
    /// An object without `metadata.name`.
    MissingName,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page<K> {
    pub items: Vec<K>,
    /// `metadata.continue`: where the next page starts, if there is one.
    pub continue_token: Option<String>,
}

/// A short reason for a parser error: serde's message without type names and long
/// quoted input, on one line.
pub fn short_reason(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => "the reply ends early".to_string(),
        Category::Syntax => format!("{e}"),
        Category::Data => format!("unexpected content: {e}"),
        Category::Io => format!("{e}"),
    };
    let mut s: String = what
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > 200 {
        s = s.chars().take(200).collect::<String>() + "...";
    }
    s
}

/// Why bytes are not UTF-8, for the message.
pub fn utf8_reason(e: &std::str::Utf8Error) -> String {
    format!("invalid UTF-8 at byte {}", e.valid_up_to())
}

/// The marker error of a page with too many items.
const TOO_MANY: &str = "kubectl-trace: too many items";

/// The items of a page, counted without building them; fails past `room`.
struct Count;

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of items")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Count)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Count)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let room = ROOM.with(|r| r.get());
                let mut n = 0usize;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                    if n > room {
                        // Stop reading here: the caller refuses the page.
                        return Err(serde::de::Error::custom(TOO_MANY));
                    }
                }
                Ok(Count)
            }
        }
        d.deserialize_option(V)
    }
}

thread_local! {
    /// The room of the page being counted (a `Deserialize` impl takes no arguments).
    static ROOM: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[derive(Deserialize)]
struct Counted {
    #[serde(default)]
    #[allow(dead_code)] // read for its checks, not its value
    items: Option<Count>,
}

#[derive(Deserialize)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

#[derive(Deserialize)]
#[serde(bound = "K: DeserializeOwned")]
struct RawPage<K> {
    #[serde(default)]
    items: Option<Vec<K>>,
    #[serde(default)]
    metadata: Option<ListMeta>,
}

fn check_name<K: Resource>(obj: &K) -> Result<(), ReplyError> {
    match obj.meta().name.as_deref() {
        Some(n) if !n.is_empty() => Ok(()),
        _ => Err(ReplyError::MissingName),
    }
}

/// Decode one page of a list, refusing more than `room` items before building any.
pub fn decode_page<K>(text: &str, room: usize) -> Result<Page<K>, ReplyError>
where
    K: Resource + DeserializeOwned,
{
    ROOM.with(|r| r.set(room));
    serde_json::from_str::<Counted>(text).map_err(|e| {
        if e.to_string().starts_with(TOO_MANY) {
            ReplyError::TooMany { room }
        } else {
            ReplyError::NotJson(short_reason(&e))
        }
    })?;
    let raw: RawPage<K> =
        serde_json::from_str(text).map_err(|e| ReplyError::NotJson(short_reason(&e)))?;
    let items = raw.items.unwrap_or_default();
    for obj in &items {
        check_name(obj)?;
    }
    Ok(Page {
        items,
        continue_token: raw
            .metadata
            .and_then(|m| m.continue_)
            .filter(|c| !c.is_empty()),
    })
}

/// Decode one object.
pub fn decode_object<K>(text: &str) -> Result<K, ReplyError>
where
    K: Resource + DeserializeOwned,
{
    let obj: K = serde_json::from_str(text).map_err(|e| ReplyError::NotJson(short_reason(&e)))?;
    check_name(&obj)?;
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn pages() {
        let p: Page<Job> = decode_page(
            r#"{"kind":"JobList","metadata":{"continue":"abc"},"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]}"#,
            10,
        )
        .unwrap();
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.continue_token.as_deref(), Some("abc"));
        let p: Page<Job> = decode_page(r#"{"metadata":{"continue":""},"items":null}"#, 10).unwrap();
        assert!(p.items.is_empty());
        assert_eq!(p.continue_token, None);
    }

    #[test]
    fn too_many_items_are_refused_before_decoding() {
        let text = format!(r#"{{"items":[{}{{}}]}}"#, "{},".repeat(20));
        assert_eq!(
            decode_page::<Job>(&text, 20).unwrap_err(),
            ReplyError::TooMany { room: 20 }
        );
        // Items that are not even objects: still counted, not decoded.
        let text = format!(r#"{{"items":[{}1]}}"#, "1,".repeat(5));
        assert_eq!(
            decode_page::<Job>(&text, 3).unwrap_err(),
            ReplyError::TooMany { room: 3 }
        );
    }

    #[test]
    fn odd_replies() {
        assert_eq!(
            decode_page::<Pod>(r#"{"items":[{"metadata":{}}]}"#, 5).unwrap_err(),
            ReplyError::MissingName
        );
        assert_eq!(
            decode_object::<Pod>(r#"{"spec":{}}"#).unwrap_err(),
            ReplyError::MissingName
        );
        let ReplyError::NotJson(why) = decode_page::<Pod>(r#"{"items":[{1:2}]}"#, 5).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(why, "key must be a string at line 1 column 12");
        let ReplyError::NotJson(why) = decode_page::<Pod>(r#"{"items":[{"#, 5).unwrap_err() else {
            panic!()
        };
        assert_eq!(why, "the reply ends early");
        let ReplyError::NotJson(why) =
            decode_object::<Pod>(r#"{"metadata":{"name":7}}"#).unwrap_err()
        else {
            panic!()
        };
        assert!(
            why.starts_with("unexpected content: invalid type: integer `7`"),
            "{why}"
        );
    }

    #[test]
    fn recursion_limit_is_on() {
        // serde_json stops at 128 levels: deep nesting is an error, not a stack overflow.
        let deep = format!(r#"{{"items":[{}]}}"#, "[".repeat(100_000));
        assert!(matches!(
            decode_page::<Job>(&deep, 10),
            Err(ReplyError::NotJson(_))
        ));
        // An unknown field is skipped, and skipping recurses too.
        let deep = format!(
            r#"{{"metadata":{{"name":"a"}},"x":{}}}"#,
            "[".repeat(100_000)
        );
        assert!(matches!(
            decode_object::<Pod>(&deep),
            Err(ReplyError::NotJson(_))
        ));
        // Where the plugin builds `Value`s (recursive), the limit is what stops it.
        let e = serde_json::from_str::<serde_json::Value>(&deep).unwrap_err();
        assert!(e.to_string().starts_with("recursion limit exceeded"), "{e}");
    }
}
