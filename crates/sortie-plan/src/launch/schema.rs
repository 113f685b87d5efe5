//! The plan file as written: serde structures with spans, before any meaning is checked.
//!
//! Owns the TOML shape (field names, types, unknown-key refusal). Every value keeps its byte span
//! so validation can point at it. Nothing here interprets values; see `validate`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// Map of named tables; keys keep their span, file order is recovered by sorting on spans.
pub(crate) type Named<T> = BTreeMap<Spanned<String>, Spanned<T>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlan {
    pub name: Option<Spanned<String>>,
    pub inventory: Option<Spanned<String>>,
    #[serde(default)]
    pub defaults: Option<Spanned<RawConnection>>,
    #[serde(default)]
    pub groups: Named<RawGroup>,
    #[serde(default)]
    pub data: Named<RawData>,
    pub roles: Spanned<Named<RawRole>>,
    #[serde(default)]
    pub run: Option<Spanned<RawRun>>,
    #[serde(default)]
    pub thresholds: Vec<Spanned<RawThreshold>>,
    #[serde(default)]
    pub upload: Vec<Spanned<RawTransfer>>,
    #[serde(default)]
    pub collect: Vec<Spanned<RawTransfer>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnection {
    pub user: Option<Spanned<String>>,
    pub port: Option<Spanned<u16>>,
    pub identity_file: Option<Spanned<String>>,
    pub proxy_jump: Option<Spanned<String>>,
    pub transport: Option<Spanned<String>>,
}

/// `hosts = "a,b"` or `hosts = ["a", "b[1-3]"]` (as in the inventory file). Elements of the
/// string form carry an empty span; use the span of the enclosing `Spanned<HostList>`.
#[derive(Debug)]
pub(crate) struct HostList(pub Vec<Spanned<String>>);

impl<'de> Deserialize<'de> for HostList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = HostList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a host expression or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HostList, E> {
                Ok(HostList(vec![Spanned::new(0..0, v.to_owned())]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<HostList, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element::<Spanned<String>>()? {
                    out.push(v);
                }
                Ok(HostList(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroup {
    pub hosts: Option<Spanned<HostList>>,
    pub command: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub port: Option<Spanned<u16>>,
    pub identity_file: Option<Spanned<String>>,
    pub proxy_jump: Option<Spanned<String>>,
    pub transport: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawData {
    pub csv: Option<Spanned<String>>,
    pub column: Option<Spanned<String>>,
    pub values: Option<Vec<Spanned<String>>>,
    pub columns: Option<Vec<Spanned<String>>>,
    pub rows: Option<Vec<Spanned<Vec<Spanned<String>>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    pub hosts: Option<Spanned<HostList>>,
    pub group: Option<Spanned<String>>,
    pub for_each: Option<Spanned<String>>,
    pub count: Option<Spanned<u32>>,
    pub key: Option<Spanned<String>>,
    pub command: Spanned<String>,
    #[serde(default)]
    pub env: Named<String>,
    #[serde(default)]
    pub env_from_controller: Vec<Spanned<String>>,
    pub workdir: Option<Spanned<String>>,
    #[serde(default)]
    pub fresh_dir: Option<Spanned<bool>>,
    #[serde(default)]
    pub links: Vec<Spanned<String>>,
    pub slots: Option<Spanned<u32>>,
    pub rate: Option<Spanned<String>>,
    pub min_spacing_per_key: Option<Spanned<String>>,
    pub ready: Option<Spanned<String>>,
    pub ready_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub fail: Vec<Spanned<String>>,
    pub stop: Option<Spanned<Vec<Spanned<RawStop>>>>,
    pub restart: Option<Spanned<String>>,
    pub max_restarts: Option<Spanned<u32>>,
    pub after: Option<Spanned<String>>,
    pub after_mode: Option<Spanned<String>>,
    #[serde(default)]
    pub unique_key: Option<Spanned<bool>>,
    pub max_per_key: Option<Spanned<u32>>,
    pub stages: Option<Spanned<Vec<Spanned<RawStage>>>>,
    pub step: Option<Spanned<RawStep>>,
}

/// Step load: `[roles.NAME.step]` with `add`, `every`, `max` and an optional `start`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub start: Option<Spanned<u32>>,
    pub add: Spanned<u32>,
    pub every: Spanned<String>,
    pub max: Spanned<u32>,
}

/// One stage of a role's load shape: `{ target = N, over = "1m" }` or `{ hold = "5m" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStage {
    pub target: Option<Spanned<u32>>,
    pub over: Option<Spanned<String>>,
    pub hold: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStop {
    pub signal: Spanned<String>,
    pub grace: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRun {
    pub duration: Option<Spanned<String>>,
    pub run_dir: Option<Spanned<String>>,
    pub rate: Option<Spanned<String>>,
    pub max_starting: Option<Spanned<u32>>,
    pub remote_dir: Option<Spanned<String>>,
    pub reconnect_window: Option<Spanned<String>>,
    pub lease: Option<Spanned<String>>,
    pub sample_interval: Option<Spanned<DurationValue>>,
}

/// A duration written as text (`"5s"`) or as a bare number of seconds (`0`, `2.5`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum DurationValue {
    Text(String),
    Int(i64),
    Float(f64),
}

impl DurationValue {
    /// The value as duration text (a bare number means seconds).
    pub(crate) fn text(&self) -> String {
        match self {
            DurationValue::Text(s) => s.clone(),
            DurationValue::Int(n) => n.to_string(),
            DurationValue::Float(f) => f.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawThreshold {
    pub metric: Spanned<String>,
    pub role: Option<Spanned<String>>,
    pub min: Option<Spanned<toml::Value>>,
    pub max: Option<Spanned<toml::Value>>,
    pub window: Option<Spanned<String>>,
    pub abort: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTransfer {
    pub src: Spanned<String>,
    pub dest: Spanned<String>,
    pub role: Option<Spanned<String>>,
}
