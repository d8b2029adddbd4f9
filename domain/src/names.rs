//! Names of systems and components. Raw strings become these newtypes at the edge, so the rest
//! of the code never sees an invalid name.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest system name accepted.
pub const MAX_SYSTEM_LEN: usize = 64;
/// The longest component name accepted.
pub const MAX_COMPONENT_LEN: usize = 200;

/// A system such as `derecho` or `casper`. It is one NATS subject token, so it may hold ASCII
/// letters, digits, `-` and `_` only, and starts with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SystemName(String);

impl SystemName {
    /// Parses a system name; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > MAX_SYSTEM_LEN {
            return Err(format!("is {} bytes long; at most {MAX_SYSTEM_LEN} are allowed", raw.len()));
        }
        if !raw.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(format!("{raw:?} must start with a letter or digit"));
        }
        if let Some(bad) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(format!("{raw:?} contains {bad:?}; only ASCII letters, digits, '-' and '_' are allowed"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A component of a system, as a `/`-separated path such as `login/derecho1`, `queue/main` or
/// `fs/glade`. Each segment is non-empty, holds ASCII letters, digits, `-`, `_`, `.`, `@` or `+`,
/// and is not `.` or `..` (the component's page is at `/systems/{system}/components/{name}`,
/// and a browser resolves such segments: `../../../ops` would link to `/ops`).
///
/// Stored events are read back through [`ComponentName::parse_stored`], which keeps every rule
/// but the last: names stored before it came in still replay.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ComponentName(String);

impl ComponentName {
    /// Parses a new component name (from a collector, a form, a URL); the error says what is
    /// wrong with it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = Self::parse_stored(raw)?;
        if raw.split('/').any(|segment| segment == "." || segment == "..") {
            return Err(format!("{raw:?} has a \".\" or \"..\" segment, which would make its links point elsewhere"));
        }
        Ok(name)
    }

    /// Parses a name as it was stored: the rules of [`ComponentName::parse`] but the one
    /// against `.` and `..` segments, which came later. Deserializing (replaying events, reading
    /// snapshots) goes through this, so an event stored before that rule still replays; anything
    /// new goes through `parse`.
    pub fn parse_stored(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > MAX_COMPONENT_LEN {
            return Err(format!("is {} bytes long; at most {MAX_COMPONENT_LEN} are allowed", raw.len()));
        }
        if raw.split('/').any(str::is_empty) {
            return Err(format!("{raw:?} has an empty path segment"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.@+/".contains(c);
        if let Some(bad) = raw.chars().find(|c| !allowed(*c)) {
            return Err(format!(
                "{raw:?} contains {bad:?}; only ASCII letters, digits, '/', '-', '_', '.', '@' and '+' are allowed"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path prefix used to group components when no `kind` label is given:
    /// `login/derecho1` → `login`; a name with no `/` → `other`.
    pub fn prefix(&self) -> &str {
        self.0.split_once('/').map(|(head, _)| head).unwrap_or("other")
    }
}

/// The id of a component's aggregate: `system:component`. A system name holds no `:`, so the
/// first `:` always splits it.
pub fn component_aggregate_id(system: &SystemName, component: &ComponentName) -> String {
    format!("{}:{}", system.0, component.0)
}

impl TryFrom<String> for SystemName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value)
    }
}

/// What serde uses: names read back from stored events (see [`ComponentName::parse_stored`]).
impl TryFrom<String> for ComponentName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse_stored(&value)
    }
}

macro_rules! string_newtype_impls {
    ($t:ty) => {
        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
string_newtype_impls!(SystemName);
string_newtype_impls!(ComponentName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_system_names_parse() {
        for ok in ["derecho", "casper", "jupyterhub", "a", "svc-1_b", "X9"] {
            assert!(SystemName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn invalid_system_names_say_why() {
        let cases = [
            ("", "empty"),
            ("der.echo", "'.'"),
            ("der echo", "' '"),
            ("a*", "'*'"),
            (">", "start with"),
            ("-x", "start with"),
            ("dé", "'é'"),
        ];
        for (raw, why) in cases {
            let err = SystemName::parse(raw).unwrap_err();
            assert!(err.contains(why), "{raw:?}: {err}");
        }
        assert!(SystemName::parse(&"a".repeat(65)).unwrap_err().contains("at most 64"));
    }

    #[test]
    fn valid_component_names_parse() {
        for ok in ["login/derecho1", "queue/main", "fs/glade", "node", "gpu/a100.x@1+2"] {
            assert!(ComponentName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn invalid_component_names_say_why() {
        let cases = [
            ("", "empty"),
            ("login//x", "empty path segment"),
            ("/x", "empty path segment"),
            ("x/", "empty path segment"),
            ("a b", "' '"),
            ("a:b", "':'"),
            ("<script>", "'<'"),
            (".", "\".\" or \"..\" segment"),
            ("..", "\".\" or \"..\" segment"),
            ("../../../ops", "would make its links point elsewhere"),
            ("fs/./glade", "\".\" or \"..\" segment"),
            ("fs/glade/..", "\".\" or \"..\" segment"),
        ];
        for (raw, why) in cases {
            let err = ComponentName::parse(raw).unwrap_err();
            assert!(err.contains(why), "{raw:?}: {err}");
        }
    }

    #[test]
    fn dots_inside_a_segment_are_still_fine() {
        for ok in ["...", "fs/.snapshot", "node.1/..x", "a../b", "v1.2.3"] {
            assert!(ComponentName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_stored_name_with_a_dot_segment_still_deserializes_so_old_events_replay() {
        let name: ComponentName = serde_json::from_str(r#""fs/../ops""#).unwrap();
        assert_eq!(name.as_str(), "fs/../ops");
        assert!(ComponentName::parse_stored("fs/./glade").is_ok());
        // The other rules hold for stored names too.
        assert!(serde_json::from_str::<ComponentName>(r#""a b""#).is_err());
        assert!(serde_json::from_str::<ComponentName>(r#""""#).is_err());
    }

    #[test]
    fn prefix_is_the_first_path_segment() {
        assert_eq!(ComponentName::parse("login/derecho1").unwrap().prefix(), "login");
        assert_eq!(ComponentName::parse("fs/glade/ost3").unwrap().prefix(), "fs");
        assert_eq!(ComponentName::parse("broker").unwrap().prefix(), "other");
    }

    #[test]
    fn aggregate_id_joins_with_a_colon() {
        let s = SystemName::parse("derecho").unwrap();
        let c = ComponentName::parse("login/derecho1").unwrap();
        assert_eq!(component_aggregate_id(&s, &c), "derecho:login/derecho1");
    }
}
