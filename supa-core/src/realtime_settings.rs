//! A project's realtime settings, named as Supabase's Management API names
//! them (`/v1/projects/{ref}/config/realtime`): the limits its realtime
//! server enforces, and switches.

use serde::{Deserialize, Serialize};

use crate::Error;

/// How a project's realtime server behaves; the defaults are Supabase's
/// free-plan limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeSettings {
    /// Only private channels may be joined.
    pub private_only: bool,
    /// Open sockets at once.
    pub max_concurrent_users: u32,
    /// Broadcast and presence messages per second, project-wide.
    pub max_events_per_second: u32,
    /// Channel joins per second, project-wide.
    pub max_joins_per_second: u32,
    /// Channels one socket may join.
    pub max_channels_per_client: u32,
    /// Presence messages per second, project-wide.
    pub max_presence_events_per_second: u32,
    /// Largest message a client may send, KB.
    pub max_payload_size_in_kb: u32,
    /// Realtime is off for the project.
    pub suspend: bool,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        Self {
            private_only: false,
            max_concurrent_users: 200,
            max_events_per_second: 100,
            max_joins_per_second: 100,
            max_channels_per_client: 100,
            max_presence_events_per_second: 20,
            max_payload_size_in_kb: 256,
            suspend: false,
        }
    }
}

/// The largest message size a project may allow (Supabase's 3,000 KB).
pub const MAX_REALTIME_PAYLOAD_KB: u32 = 3000;

impl RealtimeSettings {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        let fields = [
            ("max_concurrent_users", self.max_concurrent_users, 1_000_000),
            (
                "max_events_per_second",
                self.max_events_per_second,
                1_000_000,
            ),
            ("max_joins_per_second", self.max_joins_per_second, 1_000_000),
            (
                "max_channels_per_client",
                self.max_channels_per_client,
                10_000,
            ),
            (
                "max_presence_events_per_second",
                self.max_presence_events_per_second,
                1_000_000,
            ),
            (
                "max_payload_size_in_kb",
                self.max_payload_size_in_kb,
                MAX_REALTIME_PAYLOAD_KB,
            ),
        ];
        for (field, value, max) in fields {
            if !(1..=max).contains(&value) {
                return Err(Error::InvalidSetting {
                    field,
                    reason: format!("{value} is not between 1 and {max}"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supabase_names_defaults_and_checks() {
        let s = RealtimeSettings::default();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["max_concurrent_users"], 200);
        assert_eq!(v["max_payload_size_in_kb"], 256);
        let partial: RealtimeSettings = serde_json::from_str(r#"{"suspend": true}"#).unwrap();
        assert!(partial.suspend && partial.max_events_per_second == 100);
        assert!(serde_json::from_str::<RealtimeSettings>(r#"{"max_users": 1}"#).is_err());
        let bad = RealtimeSettings {
            max_payload_size_in_kb: 3001,
            ..s.clone()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("max_payload_size_in_kb")
        );
        s.validate().unwrap();
    }
}
