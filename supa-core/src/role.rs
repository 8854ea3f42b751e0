use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The PostgreSQL role a request runs as, named in the JWT's `role` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Requests without a user session, made with the publishable key.
    Anon,
    /// Requests carrying a signed-in user's JWT.
    Authenticated,
    /// Trusted server-side requests made with a secret key; bypasses RLS.
    ServiceRole,
}

impl Role {
    /// Creates the three roles in a cluster that lacks them, as Supabase
    /// has them: no login, no inherited privileges, `service_role`
    /// bypassing row level security. Safe to run again.
    pub const CREATE_SQL: &str = "DO $$ BEGIN
       IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
         CREATE ROLE anon NOLOGIN NOINHERIT; END IF;
       IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
         CREATE ROLE authenticated NOLOGIN NOINHERIT; END IF;
       IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
         CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS; END IF;
     END $$";

    /// Every role, in a stable order.
    pub const ALL: [Role; 3] = [Role::Anon, Role::Authenticated, Role::ServiceRole];

    /// The role's name as PostgreSQL and the JWT know it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Anon => "anon",
            Role::Authenticated => "authenticated",
            Role::ServiceRole => "service_role",
        }
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::InvalidRole(s.to_owned()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two kinds of opaque API key a project has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// `sb_publishable_...`: safe to ship in a browser; requests run as `anon`.
    Publishable,
    /// `sb_secret_...`: server-side only; requests run as `service_role`.
    Secret,
}

impl KeyKind {
    /// Both kinds.
    pub const ALL: [KeyKind; 2] = [KeyKind::Publishable, KeyKind::Secret];

    /// The kind's name in APIs and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyKind::Publishable => "publishable",
            KeyKind::Secret => "secret",
        }
    }

    /// The literal prefix every key of this kind starts with.
    pub const fn prefix(self) -> &'static str {
        match self {
            KeyKind::Publishable => "sb_publishable_",
            KeyKind::Secret => "sb_secret_",
        }
    }

    /// The role a request authenticated by this kind of key runs as.
    pub const fn role(self) -> Role {
        match self {
            KeyKind::Publishable => Role::Anon,
            KeyKind::Secret => Role::ServiceRole,
        }
    }
}

impl FromStr for KeyKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        KeyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::InvalidKeyKind(s.to_owned()))
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        for k in KeyKind::ALL {
            assert_eq!(k.as_str().parse::<KeyKind>().unwrap(), k);
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
    }

    #[test]
    fn rejects_unknown_names() {
        assert!(matches!(
            "postgres".parse::<Role>(),
            Err(Error::InvalidRole(_))
        ));
        assert!(matches!("Anon".parse::<Role>(), Err(Error::InvalidRole(_))));
        assert!(matches!(
            "anon".parse::<KeyKind>(),
            Err(Error::InvalidKeyKind(_))
        ));
    }

    #[test]
    fn key_kinds_map_to_their_roles() {
        assert_eq!(KeyKind::Publishable.role(), Role::Anon);
        assert_eq!(KeyKind::Secret.role(), Role::ServiceRole);
    }
}
