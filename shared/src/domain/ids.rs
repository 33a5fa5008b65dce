use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new(id: Uuid) -> Self {
                Self(id)
            }
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
            /// Only the canonical form (lowercase, hyphenated): one id, one spelling, so the
            /// same id can never arrive twice under two names.
            pub fn parse_canonical(s: &str) -> Option<Self> {
                let id = Uuid::try_parse(s).ok()?;
                (id.hyphenated().to_string() == s).then_some(Self(id))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A company in Codat (the SMB whose accounting software receives the expenses).
    CompanyId
);
uuid_id!(
    /// An expense; also the Codat transaction id, which is Codat's idempotency key.
    ExpenseId
);
uuid_id!(
    /// A dataset of expense transactions created in Codat.
    DatasetId
);
uuid_id!(
    /// A sync of one or more datasets to the accounting software.
    SyncId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_uuids_parse_canonically() {
        let canonical = "4d7c6929-7770-412b-91bb-44d3bc71d111";
        assert!(ExpenseId::parse_canonical(canonical).is_some());
        for other in [
            "4D7C6929-7770-412B-91BB-44D3BC71D111",
            "{4d7c6929-7770-412b-91bb-44d3bc71d111}",
            "urn:uuid:4d7c6929-7770-412b-91bb-44d3bc71d111",
            "4d7c69297770412b91bb44d3bc71d111",
            "4d7c6929-7770-412b-91bb-44d3bc71d11",
            "",
        ] {
            assert!(ExpenseId::parse_canonical(other).is_none(), "{other}");
        }
    }
}
