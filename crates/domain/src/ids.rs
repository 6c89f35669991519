//! Id newtypes for the ids that cross service boundaries, so an org id cannot be passed
//! where a connection id is expected, nor a HubSpot record id where an owner id is.
//!
//! They parse and print; they do not generate ids (that is the owning service's job).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A hubscore organisation (tenant). Every customer-owned row carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgId(pub Uuid);

/// One connected HubSpot portal of an organisation (auth-gateway's `connections` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(pub Uuid);

macro_rules! uuid_id {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim())
                    .map($name)
                    .map_err(|_| IdError::NotAUuid {
                        value: s.to_owned(),
                    })
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }
    };
}

uuid_id!(OrgId);
uuid_id!(ConnectionId);

/// A HubSpot portal (hub) id, e.g. `62515`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PortalId(pub u64);

/// A HubSpot CRM record id (`hs_object_id`), unique per object type within a portal.
///
/// HubSpot sends it as a string of digits; it is numeric for contacts, companies and
/// deals, so it is held as a number and printed back as the same digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HubSpotObjectId(pub u64);

/// A HubSpot owner id: the value that goes into `hubspot_owner_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OwnerId(pub u64);

macro_rules! numeric_id {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            /// Accepts the decimal digits HubSpot sends, surrounding blanks tolerated;
            /// no sign, no exponent, no empty string.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_numeric_id(s).map($name)
            }
        }

        impl From<u64> for $name {
            fn from(id: u64) -> Self {
                $name(id)
            }
        }
    };
}

numeric_id!(PortalId);
numeric_id!(HubSpotObjectId);
numeric_id!(OwnerId);

fn parse_numeric_id(s: &str) -> Result<u64, IdError> {
    let t = s.trim();
    // u64::from_str would accept a leading '+', which HubSpot never sends.
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdError::NotANumber {
            value: s.to_owned(),
        });
    }
    t.parse::<u64>().map_err(|_| IdError::NotANumber {
        value: s.to_owned(),
    })
}

/// A deal pipeline id. HubSpot's default pipeline is `"default"`, others are digits,
/// so it stays a string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PipelineId(pub String);

/// A deal stage id, e.g. `"closedwon"` or `"12345678"`; unique within a portal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StageId(pub String);

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Expected a UUID.
    #[error("not a UUID: {value:?}")]
    NotAUuid {
        /// The rejected input.
        value: String,
    },
    /// Expected the decimal digits of a HubSpot id.
    #[error("not a numeric HubSpot id: {value:?}")]
    NotANumber {
        /// The rejected input.
        value: String,
    },
}

/// The HubSpot CRM object types hubscore mirrors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    /// `contacts` (`0-1`), mapped to [`crate::records::Customer`].
    Contact,
    /// `companies` (`0-2`).
    Company,
    /// `deals` (`0-3`).
    Deal,
}

impl ObjectType {
    /// The plural name used in HubSpot API paths: `contacts`, `companies`, `deals`.
    pub fn api_name(self) -> &'static str {
        match self {
            ObjectType::Contact => "contacts",
            ObjectType::Company => "companies",
            ObjectType::Deal => "deals",
        }
    }

    /// The singular name used in routing keys, e.g. `crm.changed.contact`.
    pub fn singular(self) -> &'static str {
        match self {
            ObjectType::Contact => "contact",
            ObjectType::Company => "company",
            ObjectType::Deal => "deal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubspot_ids_parse_from_the_digit_strings_hubspot_sends() {
        assert_eq!("51".parse::<HubSpotObjectId>(), Ok(HubSpotObjectId(51)));
        assert_eq!(" 51 ".parse::<HubSpotObjectId>(), Ok(HubSpotObjectId(51)));
        assert_eq!(HubSpotObjectId(51).to_string(), "51");
    }

    #[test]
    fn signed_empty_or_overflowing_ids_are_rejected() {
        for bad in ["", "+5", "-5", "5e3", "18446744073709551616", "abc"] {
            assert!(bad.parse::<HubSpotObjectId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_serialize_as_bare_values() {
        let json = serde_json::to_string(&HubSpotObjectId(7)).unwrap_or_default();
        assert_eq!(json, "7");
        let json = serde_json::to_string(&StageId("closedwon".into())).unwrap_or_default();
        assert_eq!(json, "\"closedwon\"");
    }
}
