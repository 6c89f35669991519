//! Macros shared by the modules of this crate.

/// Declares an enum over HubSpot's internal values that keeps any other value in
/// `Unknown(String)`, (de)serialised as the HubSpot value itself.
macro_rules! hubspot_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $value:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
        )]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version does not know (a portal's custom value, or one HubSpot
            /// added later), kept exactly as received.
            Unknown(String),
        }

        impl $name {
            /// Every known value, in HubSpot's order.
            pub const KNOWN: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// Reads a HubSpot value. Never fails: unknown values become `Unknown`.
            pub fn from_hubspot(value: &str) -> $name {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other.to_owned()),
                }
            }

            /// The HubSpot internal value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $value, )+
                    $name::Unknown(v) => v,
                }
            }

            /// True for a value this version does not know.
            pub fn is_unknown(&self) -> bool {
                matches!(self, $name::Unknown(_))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> $name {
                match $name::from_hubspot(&value) {
                    $name::Unknown(_) => $name::Unknown(value),
                    known => known,
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                match value {
                    $name::Unknown(v) => v,
                    known => known.as_str().to_owned(),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
